"""The SQL store: SQLite (the embedded default), PostgreSQL and MySQL/MariaDB, through SQLAlchemy.

Why a schema of its own rather than Optuna's RDB storage: Optuna's model has no trial names,
folds ``MetricsUnavailable`` into ``FAIL``, keeps one value per step without the time it was
reported, has no notion of an imported prior trial or of a namespace, and hands out trial
numbers without a budget check; each would become attributes to encode and decode, and the
claim (suggest + write, against ``maxTrialCount``) would still need a rule of its own. Two
tables do it here. ``hpo-kfp export --optuna-storage URL`` still writes an Optuna study for
optuna-dashboard.

A trial row holds the trial's whole record as JSON, beside the columns a query needs. The
claim rule (see :mod:`hpo_kfp.store.base`) is the unique key (experiment, number): an
insert that loses the race fails as a whole and the claimer reads and suggests again.

Every write that changes what :meth:`SqlStore.history` returns counts up the experiment's
``revision`` and stamps the trial rows it writes with the new count, in one transaction that
starts by updating the experiment's row: the row's lock orders the writers of an experiment,
so revisions commit in order. A store object keeps the last history it read of each
experiment and reads again only the rows stamped after it (one statement, so one snapshot
on every database): a service asked a thousand times about a 1000-trial experiment parses
the few trials that changed, not the thousand, however many servers write to the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import sqlite3
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection, Engine

from hpo_kfp.errors import StoreInputError
from hpo_kfp.history import ACTIVE, History, TrialRecord, jsonable, trial_name
from hpo_kfp.spec import Experiment, parse_experiment
from hpo_kfp.store.base import (
    ExperimentKey,
    ExperimentOutcome,
    ExperimentSummary,
    SearchSpaceChanged,
    StoreError,
    import_key,
    space_changes,
    space_fingerprint,
)

__all__ = ["SqlStore"]

_TEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
_NAME = 253  # a Kubernetes name's longest
_ATTEMPTS = 50
"""Writes tried before giving up: each lost race means another writer got there first."""
_IMPORT_CHUNK = 500
"""Imported trials written in one statement (well below SQLite's 32,766 bound parameters)."""
_CLAIM_LOCK_SECONDS = 120.0
"""How long a claimer waits for its turn (:meth:`SqlStore._claim_turn`) before it claims
without one (the unique trial number still decides a race)."""
_PG_CLAIM_KEY = 0x68706B66  # "hpkf": the first key of the claims' advisory locks

_metadata = sa.MetaData()
_experiments = sa.Table(
    "hpo_experiments",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("namespace", sa.String(_NAME), nullable=False),
    sa.Column("name", sa.String(_NAME), nullable=False),
    sa.Column("spec", _TEXT, nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("status", sa.String(32), nullable=False, default="Created"),
    sa.Column("reason", sa.String(64), nullable=False, default=""),
    sa.Column("best_trial", sa.String(_NAME + 16), nullable=False, default=""),
    sa.Column("best_objective", sa.Double, nullable=True),
    sa.Column("study_attrs", _TEXT, nullable=False, default="{}"),
    sa.Column("updated", sa.String(40), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False, server_default="0"),
    sa.Column("incarnation", sa.String(32), nullable=False, server_default=""),
    sa.UniqueConstraint("namespace", "name", name="hpo_experiments_identity"),
)
_trials = sa.Table(
    "hpo_trials",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "experiment_id",
        sa.Integer,
        sa.ForeignKey("hpo_experiments.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("name", sa.String(_NAME + 16), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("origin", sa.String(16), nullable=False),
    sa.Column("record", _TEXT, nullable=False),
    sa.Column("owner", sa.String(128), nullable=False, default=""),
    sa.Column("heartbeat", sa.Double, nullable=True),
    sa.Column("run_id", sa.String(128), nullable=False, default=""),
    sa.Column("import_key", sa.String(64), nullable=True),
    sa.Column("revision", sa.Integer, nullable=False, server_default="0"),
    sa.UniqueConstraint("experiment_id", "number", name="hpo_trials_number"),
    sa.UniqueConstraint("experiment_id", "import_key", name="hpo_trials_import"),
)
_changes = sa.Index("hpo_trials_revision", _trials.c.experiment_id, _trials.c.revision)
_CACHED = 64
"""Experiments whose last history (and parsed spec) a store object keeps."""
_RELEASED = ""
"""The owner of a released trial: the next claim may take it."""


class SqlStore:
    """The store in an SQL database named by an SQLAlchemy URL.

    ``sqlite:///PATH``, ``postgresql://USER@HOST/DB`` (psycopg), ``mysql+pymysql://USER@HOST/DB``
    (also MariaDB). A password is never part of a compiled pipeline: give it in
    ``HPO_KFP_STORE_PASSWORD`` (or a file named by ``HPO_KFP_STORE_PASSWORD_FILE``, e.g. a
    mounted secret) and leave it out of the URL.
    """

    def __init__(self, url: str, *, read_only: bool = False) -> None:
        """
        Args:
            read_only: Only read (``report``, ``experiments``): an SQLite file is opened
                read-only, so a file or folder this user cannot write is still read; no table
                is created.
        """
        self.url = url
        self._engine = _engine(url, read_only=read_only)
        self._turns: Engine | None = None  # see _claim_turn
        self._cache_guard = threading.Lock()
        self._read: dict[ExperimentKey, _Read] = {}  # see _history
        self._specs: dict[str, Experiment] = {}  # parsed specs, by their text
        self._revisions = True
        # SQLite lets one connection write at a time, and one that finds the file taken waits
        # in SQLite's busy handler, which sleeps 1 to 100 ms between tries: threads of one
        # process writing at once made a 10 ms write take ~80 ms (8 clients of a server).
        # They take turns here instead, and wake at once.
        self._writing = threading.RLock() if self._engine.dialect.name == "sqlite" else None
        if read_only:
            self._check_tables()
            return
        for attempt in range(_ATTEMPTS):
            try:
                _metadata.create_all(self._engine, checkfirst=True)
                _add_revisions(self._engine)
                break
            except (sa.exc.IntegrityError, sa.exc.ProgrammingError, sa.exc.OperationalError) as error:
                # Steps (or a server's workers) starting at once race to create the tables; the
                # loser finds them made. A new SQLite file's switch to WAL takes the whole file
                # and is not retried by SQLite's busy timeout: 1 of 90 processes opening a new
                # store at once (6 at a time) failed with "database is locked" before this wait.
                if attempt < _ATTEMPTS - 1 and (
                    "already exists" in str(error)
                    or "uplicate" in str(error)  # a column or index added by another process
                    or "database is locked" in str(error)
                    or isinstance(error, sa.exc.IntegrityError)
                ):
                    time.sleep(random.uniform(0.01, 0.05))
                    continue
                need = "writable by this user" if "readonly database" in str(error) else "reachable"
                raise StoreError(
                    f"the store at {_safe(url)} must be {need}, but {_first_line(error)}"
                ) from error
            except sa.exc.SQLAlchemyError as error:
                raise StoreError(
                    f"the store at {_safe(url)} must be reachable, but {_first_line(error)}"
                ) from error

    def _check_tables(self) -> None:
        try:
            inspector = sa.inspect(self._engine)
            found = inspector.has_table(_experiments.name)
            # A store written by a release before revisions, read without being changed.
            self._revisions = found and "revision" in _columns(inspector, _trials.name)
        except sa.exc.SQLAlchemyError as error:
            raise StoreError(
                f"the store at {_safe(self.url)} must be reachable, but {_first_line(error)}"
            ) from error
        if not found:
            raise StoreError(f"the store at {_safe(self.url)} must hold hpo-kfp's tables, but it holds none")

    # --- experiments -----------------------------------------------------------------

    def open_experiment(
        self, experiment: Experiment, key: ExperimentKey, *, allow_space_change: bool = False
    ) -> bool:
        spec = json.dumps(experiment.source, sort_keys=True)
        fingerprint = space_fingerprint(experiment)
        for _ in range(_ATTEMPTS):
            with self._begin() as db:
                row = self._experiment_row(db, key)
                if row is None:
                    try:
                        db.execute(
                            _experiments.insert().values(
                                namespace=key.namespace,
                                name=key.name,
                                spec=spec,
                                fingerprint=fingerprint,
                                status="Created",
                                reason="",
                                best_trial="",
                                study_attrs="{}",
                                updated=_now(),
                                incarnation=uuid.uuid4().hex,
                            )
                        )
                    except _LOST_RACE as error:
                        _raise_unless_lost_race(error)
                        continue  # created by another process meanwhile: check it
                    return True
                if row.fingerprint != fingerprint and not allow_space_change:
                    stored = parse_experiment(json.loads(row.spec), trial_template=None)
                    changes = "; ".join(space_changes(stored, experiment)) or "the feasible spaces differ"
                    raise SearchSpaceChanged(
                        f"experiment {key}: its search space must be the one the store recorded, but "
                        f"{changes}; start over (run --restart) or keep the old trials outside the "
                        "new space (--allow-space-change)"
                    )
                if row.spec != spec:
                    db.execute(
                        _experiments.update()
                        .where(_experiments.c.id == row.id)
                        .values(spec=spec, fingerprint=fingerprint, updated=_now())
                    )
                return False
        raise StoreError(f"experiment {key}: could not be created in {_safe(self.url)}")

    def load_experiment(self, key: ExperimentKey) -> Experiment | None:
        with self._connect() as db:
            spec = db.execute(
                sa.select(_experiments.c.spec).where(
                    _experiments.c.namespace == key.namespace, _experiments.c.name == key.name
                )
            ).scalar()
        if spec is None:
            return None
        with self._cache_guard:
            experiment = self._specs.get(spec)
        if experiment is None:
            # Parsed once per text of the spec: an Experiment is immutable.
            experiment = parse_experiment(json.loads(spec), trial_template=None)
            with self._cache_guard:
                _keep(self._specs, spec, experiment)
        return experiment

    def experiments(self) -> list[ExperimentSummary]:
        counts = (
            sa.select(
                _trials.c.experiment_id,
                sa.func.count().label("trials"),
                sa.func.sum(
                    sa.case((_trials.c.status.in_(ACTIVE) & (_trials.c.owner == _RELEASED), 1), else_=0)
                ).label("stale"),
            )
            .group_by(_trials.c.experiment_id)
            .subquery()
        )
        query = (
            sa.select(_experiments, counts.c.trials, counts.c.stale)
            .select_from(_experiments.outerjoin(counts, counts.c.experiment_id == _experiments.c.id))
            .order_by(_experiments.c.namespace, _experiments.c.name)
        )
        with self._connect() as db:
            rows = db.execute(query).all()
        return [
            ExperimentSummary(
                namespace=row.namespace,
                name=row.name,
                status=row.status,
                reason=row.reason,
                trials=int(row.trials or 0),
                best_trial=row.best_trial,
                best_objective=row.best_objective,
                updated=row.updated,
                stale=int(row.stale or 0),
            )
            for row in rows
        ]

    def save_decision(
        self, key: ExperimentKey, decision: ExperimentOutcome, study_attrs: dict[str, Any]
    ) -> None:
        best = decision.best
        for _ in range(_ATTEMPTS):
            try:
                with self._begin() as db:
                    db.execute(
                        _experiments.update()
                        .where(_experiments.c.namespace == key.namespace, _experiments.c.name == key.name)
                        .values(
                            status=decision.status,
                            reason=decision.reason or "",
                            best_trial=best.name if best else "",
                            best_objective=best.objective if best else None,
                            study_attrs=_dumps(study_attrs),
                            updated=_now(),
                        )
                    )
            except _LOST_RACE as error:
                # A deadlock victim (InnoDB, beside a claim inserting trials): write again.
                _raise_unless_lost_race(error)
                continue
            return
        raise StoreError(f"experiment {key}: its decision could not be written")

    def delete(self, key: ExperimentKey) -> bool:
        with self._begin() as db:
            row = self._experiment_row(db, key)
            if row is None:
                return False
            # Not every engine cascades (SQLite without its pragma): delete the trials first.
            db.execute(_trials.delete().where(_trials.c.experiment_id == row.id))
            db.execute(_experiments.delete().where(_experiments.c.id == row.id))
        return True

    # --- trials ----------------------------------------------------------------------

    def history(self, key: ExperimentKey) -> History:
        with self._connect() as db:
            return self._history(db, key)

    @contextmanager
    def turn(self, key: ExperimentKey) -> Iterator[None]:
        with self._claim_turn(self._experiment_id(key)):
            yield

    def take_released(self, key: ExperimentKey, count: int, *, owner: str) -> list[TrialRecord]:
        released = sa.and_(
            _trials.c.experiment_id == _experiments.c.id,
            _trials.c.status.in_(ACTIVE),
            _trials.c.owner == _RELEASED,
        )
        with self._connect() as db:
            rows = db.execute(
                sa.select(_trials.c.id, _trials.c.record)
                .select_from(_experiments.outerjoin(_trials, released))
                .where(_experiments.c.namespace == key.namespace, _experiments.c.name == key.name)
                .order_by(_trials.c.number)
            ).all()
        if not rows:
            raise StoreError(f"experiment {key}: must be in the store {_safe(self.url)}, but it is not")
        taken: list[TrialRecord] = []
        for row in rows:
            if len(taken) >= count or row.id is None:
                break
            with self._begin() as db:  # compare-and-set on the owner
                updated = db.execute(
                    _trials.update()
                    .where(_trials.c.id == row.id, _trials.c.owner == _RELEASED)
                    .values(owner=owner, heartbeat=time.time())
                )
            if updated.rowcount:
                record = TrialRecord.from_dict(json.loads(row.record))
                taken.append(replace(record, status="Pending"))
        return taken

    def append_trials(
        self, key: ExperimentKey, trials: list[TrialRecord], *, owner: str, study_attrs: dict[str, Any]
    ) -> bool:
        try:
            with self._begin() as db:
                stamp = time.time()
                experiment_id, revision = self._bump(
                    db, key, study_attrs=_dumps(study_attrs), status="Running", updated=_now()
                )
                db.execute(
                    _trials.insert(),
                    [
                        _row(experiment_id, trial, owner=owner, heartbeat=stamp, revision=revision)
                        for trial in trials
                    ],
                )
        except _LOST_RACE as error:
            _raise_unless_lost_race(error)
            return False  # another claimer took these numbers
        return True

    def record(self, key: ExperimentKey, trial: TrialRecord, *, run_id: str = "") -> None:
        values = {
            "name": trial.name,
            "status": trial.status,
            "origin": trial.origin,
            "record": _dumps(trial.to_dict()),
            "heartbeat": time.time(),
        }
        if run_id:
            values["run_id"] = run_id
        for _ in range(_ATTEMPTS):
            try:
                with self._begin() as db:
                    experiment_id, revision = self._bump(db, key)
                    updated = db.execute(
                        _trials.update()
                        .where(_trials.c.experiment_id == experiment_id, _trials.c.number == trial.number)
                        .values(**values, revision=revision)
                    )
                    if not updated.rowcount:
                        db.execute(
                            _trials.insert().values(
                                _row(experiment_id, trial, owner="", run_id=run_id, revision=revision)
                            )
                        )
            except _LOST_RACE as error:
                _raise_unless_lost_race(error)
                continue  # inserted meanwhile, or a deadlock victim: write again
            return
        raise StoreError(f"experiment {key}: trial {trial.name} could not be written")

    def heartbeat(self, key: ExperimentKey, names: list[str]) -> None:
        if not names:
            return
        with self._begin() as db:
            db.execute(
                _trials.update()
                .where(
                    _trials.c.experiment_id == _id_of(key),
                    _trials.c.name.in_(names),
                    _trials.c.status.in_(ACTIVE),
                )
                .values(heartbeat=time.time())
            )

    def release(
        self, key: ExperimentKey, *, older_than: float | None = None, owner_prefix: str | None = None
    ) -> list[str]:
        condition = sa.and_(
            _trials.c.experiment_id == _id_of(key),
            _trials.c.status.in_(ACTIVE),
            _trials.c.owner != _RELEASED,
        )
        if older_than is not None:
            condition = sa.and_(condition, _trials.c.heartbeat < time.time() - older_than)
        # Looked for first, written only when found: a server asks before every claim, and
        # most times there is nothing to give back.
        with self._connect() as db:
            rows = db.execute(sa.select(_trials.c.id, _trials.c.name, _trials.c.owner).where(condition)).all()
        chosen = [row for row in rows if owner_prefix is None or row.owner.startswith(owner_prefix)]
        if not chosen:
            return []
        with self._begin() as db:
            db.execute(
                _trials.update()
                .where(condition, _trials.c.id.in_([row.id for row in chosen]))
                .values(owner=_RELEASED)
            )
        return [row.name for row in chosen]

    def import_trials(self, experiment: Experiment, key: ExperimentKey, records: list[TrialRecord]) -> int:
        self.open_experiment(experiment, key)
        added = 0
        for start in range(0, len(records), _IMPORT_CHUNK):
            chunk = records[start : start + _IMPORT_CHUNK]
            for attempt in range(_ATTEMPTS):
                try:
                    with self._begin() as db:
                        experiment_id, revision = self._bump(db, key)
                        added += _import_chunk(db, experiment, experiment_id, revision, chunk)
                    break
                except _LOST_RACE as error:
                    # The numbers were taken (a run claimed trials), or the same rows imported
                    # meanwhile: the chunk is tried again from a fresh look.
                    _raise_unless_lost_race(error)
                    if attempt == _ATTEMPTS - 1:
                        raise StoreError(
                            f"experiment {key}: importing trials lost {_ATTEMPTS} races in a row"
                        ) from error
        return added

    # --- helpers ---------------------------------------------------------------------

    def _history(self, db: Connection, key: ExperimentKey) -> History:
        """The history, from the last one this object read of the experiment and the trial rows
        written since (see the module's docstring); all of it when there is none."""
        with self._cache_guard:
            known = self._read.get(key)
        rows = self._changed_rows(db, key, known.revision if known else -1)
        if rows and known is not None and (rows[0].id, rows[0].incarnation) != known.identity:
            known = None  # deleted and made again meanwhile
            rows = self._changed_rows(db, key, -1)
        if not rows:
            with self._cache_guard:
                self._read.pop(key, None)
            return History(experiment=key.name)
        head = rows[0]
        changed = [TrialRecord.from_dict(json.loads(row.record)) for row in rows if row.record is not None]
        trials = _merged(known.history.trials, changed) if known else tuple(changed)
        history = History(experiment=key.name, trials=trials, study_attrs=json.loads(head.study_attrs))
        if self._revisions:
            with self._cache_guard:
                self._read.pop(key, None)
                _keep(self._read, key, _Read((head.id, head.incarnation), head.revision, history))
        return history

    def _changed_rows(self, db: Connection, key: ExperimentKey, since: int) -> Sequence[Any]:
        """The experiment's row joined with its trial rows written after revision ``since``,
        by number: one row with no record when none was; none when there is no experiment."""
        joined = _trials.c.experiment_id == _experiments.c.id
        columns = [_experiments.c.id, _experiments.c.study_attrs, _trials.c.record]
        if self._revisions:
            joined = sa.and_(joined, _trials.c.revision > since)
            columns += [_experiments.c.revision, _experiments.c.incarnation]
        query = (
            sa.select(*columns)
            .select_from(_experiments.outerjoin(_trials, joined))
            .where(_experiments.c.namespace == key.namespace, _experiments.c.name == key.name)
            .order_by(_trials.c.number)
        )
        return db.execute(query).all()

    def _experiment_row(self, db: Connection, key: ExperimentKey) -> Any:
        return db.execute(
            sa.select(_experiments).where(
                _experiments.c.namespace == key.namespace, _experiments.c.name == key.name
            )
        ).first()

    def _bump(self, db: Connection, key: ExperimentKey, **values: Any) -> tuple[int, int]:
        """Counts up the experiment's revision (locking its row until the transaction ends),
        setting ``values`` on its row too; returns its id and the new count, which the
        transaction stamps on the trial rows it writes.

        Raises:
            StoreError: The experiment is not in the store.
        """
        identity = sa.and_(_experiments.c.namespace == key.namespace, _experiments.c.name == key.name)
        update = _experiments.update().where(identity).values(revision=_experiments.c.revision + 1, **values)
        if db.dialect.update_returning:  # SQLite, PostgreSQL; not MySQL or MariaDB
            row = db.execute(update.returning(_experiments.c.id, _experiments.c.revision)).first()
        else:
            db.execute(update)
            row = db.execute(sa.select(_experiments.c.id, _experiments.c.revision).where(identity)).first()
        if row is None:
            raise StoreError(f"experiment {key}: must be in the store {_safe(self.url)}, but it is not")
        return int(row.id), int(row.revision)

    def _experiment_id(self, key: ExperimentKey) -> int:
        with self._connect() as db:
            row = self._experiment_row(db, key)
        if row is None:
            raise StoreError(f"experiment {key}: must be in the store {_safe(self.url)}, but it is not")
        return int(row.id)

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        """A transaction. A lost race (a unique key taken, a deadlock victim) propagates as
        the database raised it, for the caller to retry; any other failure of the database
        (gone, refusing connections) is a :class:`StoreError`."""
        try:
            with self._writing or contextlib.nullcontext(), self._engine.begin() as db:
                yield db
        except sa.exc.DBAPIError as error:
            if not _lost_race(error):
                raise StoreError(f"the store at {_safe(self.url)} failed: {_first_line(error)}") from error
            raise

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        """A connection to read with; a failure of the database is a :class:`StoreError`."""
        try:
            with self._engine.connect() as db:
                yield db
        except sa.exc.DBAPIError as error:
            raise StoreError(f"the store at {_safe(self.url)} failed: {_first_line(error)}") from error

    @contextmanager
    def _claim_turn(self, experiment_id: int) -> Iterator[None]:
        """Claimers of one experiment take turns, across processes and servers.

        Without turns, claimers that read the same history suggest the same trial numbers and
        all but one throw their suggestion away, wait and try again: with 4 lanes of instant
        trials, 21 of 40 claims lost at least one race, and one of two busy servers could lose
        nearly all of them. A turn is an advisory lock held while the claim reads, suggests
        and writes — PostgreSQL's ``pg_advisory_xact_lock`` and MySQL/MariaDB's ``GET_LOCK``
        on a connection of their own (from a pool apart from the store's: a claimer waiting for
        its turn must not hold a connection another claimer needs), a lock file per experiment
        beside an SQLite database — so it blocks only other claims of the experiment and ends
        with its process. A turn that cannot be had (after ``_CLAIM_LOCK_SECONDS``, a server
        without advisory locks such as Galera's, a folder that cannot hold the lock file) is
        done without: the unique trial number still decides a race then.
        """
        backend = self._engine.dialect.name
        if backend == "sqlite":
            path = self._engine.url.database
            if not path or path == ":memory:" or path.startswith("file:"):
                yield
                return
            with _file_turn(Path(f"{path}.claims") / str(experiment_id), _CLAIM_LOCK_SECONDS):
                yield
            return
        if backend not in ("postgresql", "mysql", "mariadb"):
            yield
            return
        if self._turns is None:
            # A pool of its own: two connections kept (a new PostgreSQL connection a claim
            # cost ~7 ms), and as many more as claimers wait, closed when given back.
            self._turns = sa.create_engine(self._engine.url, pool_size=2, max_overflow=-1, pool_pre_ping=True)
        database = hashlib.sha256(str(self._engine.url.database).encode()).hexdigest()[:16]
        name = f"hpo-kfp-claim:{database}:{experiment_id}"
        held = False
        with contextlib.ExitStack() as stack:
            try:
                db = stack.enter_context(self._turns.connect())
                if backend == "postgresql":
                    db.execute(sa.text(f"SET LOCAL lock_timeout = '{int(_CLAIM_LOCK_SECONDS * 1000)}ms'"))
                    db.execute(
                        sa.text("SELECT pg_advisory_xact_lock(CAST(:a AS integer), CAST(:b AS integer))"),
                        {"a": _PG_CLAIM_KEY, "b": experiment_id},
                    )
                else:
                    got = db.execute(
                        sa.text("SELECT GET_LOCK(:n, :t)"), {"n": name, "t": int(_CLAIM_LOCK_SECONDS)}
                    )
                    if got.scalar() != 1:
                        raise _NoTurn
                held = True
            except (sa.exc.DBAPIError, _NoTurn):  # waited too long, or no advisory locks here
                pass
            try:
                yield
            finally:
                # A lost connection has lost its lock with it: nothing to release then.
                with contextlib.suppress(sa.exc.DBAPIError):
                    if held and backend != "postgresql":
                        db.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": name})
                    if held:
                        db.rollback()  # ends PostgreSQL's transaction, and with it the lock


class _NoTurn(Exception):
    """``GET_LOCK`` gave up waiting."""


@contextmanager
def _file_turn(path: Path, seconds: float) -> Iterator[None]:
    """An exclusive lock on ``path`` (made if missing) for the block; none after ``seconds``,
    or when the file cannot be made."""
    try:
        path.parent.mkdir(exist_ok=True)
        stream = path.open("a+b")
    except OSError:
        yield
        return
    deadline = time.monotonic() + seconds
    held = False
    try:
        while not held:
            try:
                if sys.platform == "win32":
                    import msvcrt

                    stream.seek(0)
                    msvcrt.locking(stream.fileno(), msvcrt.LK_NBLCK, 1)
                else:
                    import fcntl

                    fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
            except OSError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.002)
        yield
    finally:
        if held and sys.platform == "win32":
            import msvcrt

            with contextlib.suppress(OSError):
                stream.seek(0)
                msvcrt.locking(stream.fileno(), msvcrt.LK_UNLCK, 1)
        stream.close()  # releases the lock


_LOST_RACE = (sa.exc.IntegrityError, sa.exc.OperationalError)
_DEADLOCKS = {1213, 1205, "40001", "40P01"}
"""MySQL/MariaDB's deadlock and lock wait time-out, PostgreSQL's serialization failure and
deadlock: InnoDB locks the gap before a unique key two inserts race for, and one of them is
picked to fail. For a claim that is a lost race like any other."""


def _lost_race(error: sa.exc.DBAPIError) -> bool:
    """Whether ``error`` is a write that lost a race: a unique key taken, a deadlock victim,
    SQLite's busy file."""
    if isinstance(error, sa.exc.IntegrityError):
        return True
    original = error.orig
    code = getattr(original, "sqlstate", None) or (original.args[0] if original and original.args else None)
    return code in _DEADLOCKS or "database is locked" in str(original)


def _raise_unless_lost_race(error: sa.exc.DBAPIError) -> None:
    if not _lost_race(error):
        raise StoreError(f"the store could not be written: {_first_line(error)}") from error


def _import_chunk(
    db: Connection, experiment: Experiment, experiment_id: int, revision: int, chunk: list[TrialRecord]
) -> int:
    """Inserts the trials of ``chunk`` not imported before (by their import key), numbered on
    from the experiment's last trial, in one statement; returns how many."""
    keys = [import_key(record) for record in chunk]
    seen = set(
        db.execute(
            sa.select(_trials.c.import_key).where(
                _trials.c.experiment_id == experiment_id, _trials.c.import_key.in_(set(keys))
            )
        ).scalars()
    )
    number = db.execute(
        sa.select(sa.func.coalesce(sa.func.max(_trials.c.number) + 1, 0)).where(
            _trials.c.experiment_id == experiment_id
        )
    ).scalar_one()
    rows = []
    for record, identity in zip(chunk, keys, strict=True):
        if identity in seen:
            continue
        seen.add(identity)
        trial = replace(record, number=number, name=trial_name(experiment.name, number), origin="import")
        rows.append(_row(experiment_id, trial, owner="", key=identity, revision=revision))
        number += 1
    if rows:
        db.execute(_trials.insert(), rows)
    return len(rows)


def _row(
    experiment_id: int,
    trial: TrialRecord,
    *,
    owner: str,
    heartbeat: float | None = None,
    run_id: str = "",
    key: str | None = None,
    revision: int = 0,
) -> dict[str, Any]:
    return {
        "experiment_id": experiment_id,
        "number": trial.number,
        "name": trial.name,
        "status": trial.status,
        "origin": trial.origin,
        "record": _dumps(trial.to_dict()),
        "owner": owner,
        "heartbeat": heartbeat,
        "run_id": run_id,
        "import_key": key,
        "revision": revision,
    }


class _Read(NamedTuple):
    """The last history a store object read of an experiment, and where it stood."""

    identity: tuple[int, str]
    """The experiment row's id and incarnation: another row, another experiment."""
    revision: int
    history: History


def _keep(cache: dict[Any, Any], key: Any, value: Any) -> None:
    """Adds to a cache of at most :data:`_CACHED` entries, dropping the oldest first."""
    cache[key] = value
    while len(cache) > _CACHED:
        del cache[next(iter(cache))]


def _merged(trials: tuple[TrialRecord, ...], changed: list[TrialRecord]) -> tuple[TrialRecord, ...]:
    """``trials`` with ``changed`` in place of the trials of the same numbers (or added), by number."""
    if not changed:
        return trials
    merged = list(trials)
    position: dict[int, int] | None = None
    added = False
    for trial in changed:
        # Numbers are dense from the first, as claims and imports write them: look there first.
        index: int | None = trial.number - merged[0].number if merged else None
        if index is None or not 0 <= index < len(trials) or merged[index].number != trial.number:
            if position is None:
                position = {t.number: i for i, t in enumerate(trials)}
            index = position.get(trial.number)
        if index is None:
            merged.append(trial)
            added = True
        else:
            merged[index] = trial
    if added:
        merged.sort(key=lambda trial: trial.number)
    return tuple(merged)


def _id_of(key: ExperimentKey) -> Any:
    """The experiment's id, as a subquery of the statement that needs it."""
    return (
        sa.select(_experiments.c.id)
        .where(_experiments.c.namespace == key.namespace, _experiments.c.name == key.name)
        .scalar_subquery()
    )


def _columns(inspector: Any, table: str) -> set[str]:
    return {column["name"] for column in inspector.get_columns(table)}


def _add_revisions(engine: Engine) -> None:
    """Gives a store made before revisions their columns and index (existing rows: 0, so the
    first read of each experiment reads it whole)."""
    inspector = sa.inspect(engine)
    for table, columns in (
        (
            _experiments,
            ("revision INTEGER NOT NULL DEFAULT 0", "incarnation VARCHAR(32) NOT NULL DEFAULT ''"),
        ),
        (_trials, ("revision INTEGER NOT NULL DEFAULT 0",)),
    ):
        present = _columns(inspector, table.name)
        for column in columns:
            if column.split()[0] not in present:
                with engine.begin() as db:
                    db.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {column}"))
    _changes.create(engine, checkfirst=True)


def _engine(url: str, *, read_only: bool = False) -> Engine:
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as error:
        raise StoreInputError(f"the store URL must be an SQLAlchemy URL, but got {url!r}") from error
    password = _password()
    if password is not None and parsed.password is None and parsed.get_backend_name() != "sqlite":
        parsed = parsed.set(password=password)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() in ("mysql", "mariadb") and "+" not in parsed.drivername:
        parsed = parsed.set(drivername=f"{parsed.get_backend_name()}+pymysql")
    options: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        _check_sqlite_file(parsed.database)
        # Steps of one run write at once: wait for the lock instead of failing at once.
        options = {"connect_args": {"timeout": 60}}
        path = parsed.database
        if read_only and path and path != ":memory:":
            options = {"creator": lambda: _read_only_sqlite(path)}
    try:
        engine = sa.create_engine(parsed, **options)
    except (ImportError, sa.exc.NoSuchModuleError) as error:
        extra = "postgres" if parsed.get_backend_name() == "postgresql" else "mysql"
        raise StoreInputError(
            f"the store {_safe(url)} needs its database driver: pip install 'hpo-kfp[{extra}]'"
        ) from error
    if parsed.get_backend_name() == "sqlite" and "creator" not in options:
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _read_only_sqlite(path: str) -> sqlite3.Connection:
    """A read-only connection to an SQLite store.

    A WAL database (every store is one) is read through its ``-shm`` file, which SQLite must
    be able to find or make beside it; in a folder this user cannot write, and with none left
    by a writer, the file is opened as immutable instead (no locks: what a writer changes
    meanwhile may go unseen; sqlite.org/wal.html, "Read-Only Databases").
    """
    base = "file:" + urllib.parse.quote(os.path.abspath(path))
    db = sqlite3.connect(f"{base}?mode=ro", uri=True, timeout=60, check_same_thread=False)
    try:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError:
        db.close()
    return sqlite3.connect(f"{base}?immutable=1", uri=True, check_same_thread=False)


def _check_sqlite_file(path: str | None) -> None:
    """Refuses an SQLite file that holds something else: its tables are never added to it.
    Read-only, before any connection could change the file (WAL mode is set on connect)."""
    if not path or path == ":memory:" or not os.path.isfile(path) or os.path.getsize(path) == 0:
        return
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as error:
        if "not a database" not in str(error):
            return  # locked by a step writing to it: SQLite waits and retries
        raise StoreInputError(f"{path}: must be an hpo-kfp store, but it is not an SQLite database") from None
    if not tables or _experiments.name in tables:
        return
    if "Type" in tables and "Context" in tables:
        raise StoreInputError(
            f"{path}: must be an hpo-kfp store, but it is an ML Metadata store (the previous release's); "
            f"copy it into a store with `hpo-kfp migrate mlmd+sqlite:///{path}`, or name it as "
            f"--store mlmd+sqlite:///{path}"
        )
    raise StoreInputError(
        f"{path}: must be an hpo-kfp store, but it is another database ({len(tables)} other tables)"
    )


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    # WAL lets readers go on while a step writes; foreign keys make deletes cascade.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _password() -> str | None:
    if os.environ.get("HPO_KFP_STORE_PASSWORD"):
        return os.environ["HPO_KFP_STORE_PASSWORD"]
    path = os.environ.get("HPO_KFP_STORE_PASSWORD_FILE")
    if path:
        with open(path, encoding="utf-8") as stream:
            return stream.read().strip()
    return None


def _safe(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def _first_line(error: BaseException) -> str:
    return str(getattr(error, "orig", None) or error).strip().splitlines()[0]


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=jsonable)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
