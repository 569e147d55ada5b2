"""The tracking interface and where a store is found."""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hpo_kfp.decide import Decision
from hpo_kfp.errors import StoreInputError, TrackingError
from hpo_kfp.history import History, TrialRecord
from hpo_kfp.spec import Experiment

__all__ = [
    "ExperimentSummary",
    "Tracker",
    "check_store_file",
    "TrackingTarget",
    "open_tracker",
    "resolve_target",
    "resolve_type_prefix",
]

HOST_ENV = "HPO_KFP_MLMD_HOST"
PORT_ENV = "HPO_KFP_MLMD_PORT"
PREFIX_ENV = "HPO_KFP_MLMD_TYPE_PREFIX"
DEFAULT_PREFIX = "odh."
_PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_.-]*")
DEFAULT_PORT = 8080
IN_CLUSTER_HOST = "metadata-grpc-service.kubeflow"


@dataclass(frozen=True, kw_only=True)
class ExperimentSummary:
    """One experiment as the store knows it."""

    name: str
    status: str
    reason: str
    trials: int
    best_trial: str
    best_objective: float | None
    updated: str


class Tracker(Protocol):
    """What hpo-kfp reads from and writes to a metadata store."""

    def save_trial(self, experiment: Experiment, trial: TrialRecord, *, run_id: str = "") -> None:
        """Records a finished trial; saving the same trial again updates it in place."""

    def save_experiment(
        self, experiment: Experiment, history: History, decision: Decision, *, run_id: str = ""
    ) -> None:
        """Records the experiment's state at the end of a round."""

    def load_history(self, name: str) -> History:
        """Every finished trial of experiment ``name`` (none if the store does not know it)."""

    def load_experiment(self, name: str) -> Experiment | None:
        """The experiment's spec as last recorded, or None if the store does not know it."""

    def experiments(self) -> list[ExperimentSummary]:
        """Every experiment in the store."""


@dataclass(frozen=True)
class TrackingTarget:
    """Where the store is: an SQLite file, or an ML Metadata gRPC service."""

    uri: str
    """``sqlite:///abs/path.sqlite`` or ``grpc://host:port``; empty for no tracking."""

    @property
    def enabled(self) -> bool:
        return bool(self.uri)


def resolve_target(
    mlmd: str | None = None, host: str | None = None, port: int | None = None
) -> TrackingTarget:
    """Picks the store from flags, then the environment.

    ``--mlmd PATH`` (an SQLite file) wins; then ``--mlmd-host``/``--mlmd-port``; then
    ``HPO_KFP_MLMD_HOST``/``HPO_KFP_MLMD_PORT``. With none of them, returns the empty target.
    """
    if mlmd:
        return TrackingTarget("sqlite://" + str(Path(mlmd).expanduser().resolve()))
    host = host or os.environ.get(HOST_ENV)
    if host:
        port = port or int(os.environ.get(PORT_ENV, DEFAULT_PORT))
        return TrackingTarget(f"grpc://{host}:{port}")
    return TrackingTarget("")


def resolve_type_prefix(prefix: str | None = None) -> str:
    """The metadata type names' prefix: ``prefix``, else ``HPO_KFP_MLMD_TYPE_PREFIX``, else ``odh.``.

    Raises:
        StoreInputError: The prefix has characters other than letters, digits, ``.``, ``_``, ``-``.
    """
    chosen = prefix if prefix is not None else os.environ.get(PREFIX_ENV, DEFAULT_PREFIX)
    if not _PREFIX_PATTERN.fullmatch(chosen):
        raise StoreInputError(
            f"the metadata type prefix must be letters, digits, '.', '_' or '-', but got {chosen!r}"
        )
    return chosen


def open_tracker(target: TrackingTarget | str, *, prefix: str = DEFAULT_PREFIX) -> Tracker:
    """Connects to the store at ``target``.

    Raises:
        TrackingError: The target is empty or malformed, or the store cannot be opened.
    """
    from hpo_kfp.tracking.mlmd import MlmdTracker

    uri = target.uri if isinstance(target, TrackingTarget) else target
    if not uri:
        raise TrackingError("no metadata store configured")
    return MlmdTracker(uri, prefix=prefix)


def check_store_file(path: Path) -> None:
    """Refuses a file that holds something else (ML Metadata would add its tables to it).

    For a file a user names; a missing or empty file is left for the store to create.

    Raises:
        StoreInputError: The file is not an SQLite database, or one without ML Metadata's tables.
    """
    if not path.is_file() or path.stat().st_size == 0:
        return
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as error:
        if "not a database" not in str(error):
            return  # e.g. locked by a step writing to it: ML Metadata waits and retries
        raise StoreInputError(
            f"{path}: must be an ML Metadata SQLite store, but it is not an SQLite database"
        ) from None
    if tables and "Type" not in tables:
        raise StoreInputError(
            f"{path}: must be an ML Metadata SQLite store, but it is another database "
            f"({len(tables)} other tables)"
        )
