"""The ML Metadata store: experiments and trials as Open Data Hub's HPO types.

``grpc://HOST:PORT`` is an ML Metadata service (a cluster's ``metadata-grpc-service``);
``mlmd+sqlite:///PATH`` an embedded ML Metadata file (``mlmd+sqlite:////abs/path`` or a
path relative to the working directory, as SQLAlchemy spells SQLite URLs). The types are
named with a prefix, ``odh.`` by default:

* an ``HPOExperiment`` context per experiment: the spec and its settings, the namespace,
  the status and best trial, the sampler's study state. It is named ``NAME`` when the
  namespace is "" (as the previous release named it, so its stores are read as they are)
  and ``NAMESPACE/NAME`` otherwise.
* an ``HPOTrial`` context per trial, a child of the experiment's, named after the trial
  (``NAME-0007``, ``NAMESPACE/NAME-0007``). Its properties are the experiment context's
  name, the number and the status; its custom properties the whole record (JSON), the
  claimer (``owner``, "" once released), the heartbeat and the attempt.
* per attempt to run a trial, a ``Train`` execution (state, times, exit reason) reading an
  ``HPOConfig`` artifact (the assignment) and writing a ``Metrics`` artifact, attributed
  and associated to both contexts and, for the run that recorded it, to KFP's
  ``system.PipelineRun`` context.

Claims (the primitives are in :mod:`hpo_kfp.store.base`, the claim in :mod:`hpo_kfp.claim`).
ML Metadata has no transaction across calls, but each call is one transaction and a
context's name is unique per type: appending writes the new trial contexts, named after
their numbers, together with the experiment's new study state in one ``put_contexts``. A
claimer whose numbers were taken meanwhile gets AlreadyExists, has written nothing, and
reads and suggests again. There are no turns (no lock to take). Reading takes the trials
before the study state, so a claimer never suggests from a study state older than the
trials it saw. A released trial is claimed again by creating the ``Train`` execution of its
next attempt (named ``.../attempt-N``, unique too) in the same call that names the new
owner: of two claimers only one creates it.

Deletion. ML Metadata 1.17 deletes nothing (its API has no delete call). Deleting an
experiment marks its context (custom property ``deleted``, status ``Deleted``); every read
skips it, and opening the experiment again starts a new generation whose contexts carry a
``~G`` suffix (``NAME~1``, ``NAME-0000~1``), so the old trials neither collide nor show.
The old nodes stay in the store, where ML Metadata's lineage views keep showing them.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from hpo_kfp.errors import StoreInputError
from hpo_kfp.history import ACTIVE, FINISHED, History, TrialRecord, jsonable, trial_name
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

__all__ = ["MlmdStore"]

_T = TypeVar("_T")
_STRING, _INT, _DOUBLE = "STRING", "INT", "DOUBLE"
_EXPERIMENT_PROPERTIES = {
    "namespace": _STRING,
    "objective_metric": _STRING,
    "objective_type": _STRING,
    "goal": _DOUBLE,
    "algorithm": _STRING,
    "max_trial_count": _INT,
    "parallel_trial_count": _INT,
    "max_failed_trial_count": _INT,
    "status": _STRING,
    "reason": _STRING,
    "best_trial": _STRING,
    "best_objective": _DOUBLE,
    "trials": _INT,
    "spec": _STRING,
    "study_attrs": _STRING,
    "updated": _STRING,
}
_TRIAL_PROPERTIES = {"experiment": _STRING, "number": _INT, "status": _STRING}
_CONFIG_PROPERTIES = {"experiment": _STRING, "trial": _STRING, "number": _INT, "parameters": _STRING}
_METRICS_PROPERTIES = {
    "experiment": _STRING,
    "trial": _STRING,
    "objective": _DOUBLE,
    "values": _STRING,
    "metrics": _STRING,
    "series": _STRING,
}
_TRAIN_PROPERTIES = {
    "experiment": _STRING,
    "trial": _STRING,
    "number": _INT,
    "status": _STRING,
    "reason": _STRING,
    "started": _STRING,
    "finished": _STRING,
    "duration_seconds": _DOUBLE,
    "origin": _STRING,
    "sampler_attrs": _STRING,
}
_SPEC_FIELDS = (
    "objective_metric",
    "objective_type",
    "goal",
    "algorithm",
    "max_trial_count",
    "parallel_trial_count",
    "max_failed_trial_count",
    "spec",
)
_RUN_CONTEXT_TYPE = "system.PipelineRun"
_KINDS = ("HPOExperiment", "HPOTrial", "HPOConfig", "Metrics", "Train")
_PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_.-]*")
_KEY_FORBIDDEN = re.compile(r"[/~'\"\\]")
_ATTEMPTS = 50
"""Writes tried before giving up: each lost race means another writer got there first."""
_TRANSIENT_ATTEMPTS = 8
_RELEASED = ""
"""The owner of a released trial: the next claim may take it."""


@dataclass(frozen=True)
class _Trial:
    context: Any
    record: TrialRecord
    owner: str
    heartbeat: float
    attempt: int
    import_key: str


@dataclass(frozen=True)
class _Located:
    """An experiment's live context and its generation."""

    key: ExperimentKey
    context: Any
    generation: int


@dataclass(frozen=True)
class _State(_Located):
    """An experiment as read: its context, its trials (by number) and its history."""

    trials: tuple[_Trial, ...]
    history: History


class MlmdStore:
    """The store in ML Metadata (see the module's docstring for the layout and the rules).

    Raises:
        StoreInputError: The URL is not ``grpc://HOST:PORT`` or ``mlmd+sqlite:///PATH``, the
            prefix has characters other than letters, digits, ``.``, ``_``, ``-``, or
            ml-metadata is not installed.
        StoreError: The store cannot be reached or its types registered.
    """

    def __init__(self, url: str, *, prefix: str = "odh.") -> None:
        if not _PREFIX_PATTERN.fullmatch(prefix):
            raise StoreInputError(
                f"the metadata type prefix must be letters, digits, '.', '_' or '-', but got {prefix!r}"
            )
        self.url = url
        self.prefix = prefix
        self._errors, metadata_store, self._pb = _modules()
        self._list_options = metadata_store.ListOptions
        config = _config(url, self._pb)
        self._store: Any = self._guard(lambda: metadata_store.MetadataStore(config), opening=True)
        self._names = {kind: prefix + kind for kind in _KINDS}
        self._type_ids = self._guard(self._register_types)
        self._states = {
            "Succeeded": self._pb.Execution.COMPLETE,
            "Failed": self._pb.Execution.FAILED,
            "MetricsUnavailable": self._pb.Execution.FAILED,
            "EarlyStopped": self._pb.Execution.CANCELED,
            "Pending": self._pb.Execution.NEW,
            "Running": self._pb.Execution.RUNNING,
        }

    # --- experiments -----------------------------------------------------------------

    def open_experiment(
        self, experiment: Experiment, key: ExperimentKey, *, allow_space_change: bool = False
    ) -> bool:
        return self._guard(lambda: self._open(experiment, key, allow_space_change))

    def load_experiment(self, key: ExperimentKey) -> Experiment | None:
        context, _ = self._guard(lambda: self._find(key))
        if context is None:
            return None
        return parse_experiment(json.loads(_get(context.properties, "spec") or "{}"), trial_template=None)

    def experiments(self) -> list[ExperimentSummary]:
        return self._guard(self._experiments)

    def save_decision(
        self, key: ExperimentKey, decision: ExperimentOutcome, study_attrs: dict[str, Any]
    ) -> None:
        def write() -> None:
            context, _ = self._find(key)
            if context is None:
                return
            best = decision.best
            values: dict[str, Any] = {
                "status": decision.status,
                "reason": decision.reason or "",
                "best_trial": best.name if best else "",
                "study_attrs": _dumps(study_attrs),
                "updated": _now(),
            }
            if decision.counts:
                values["trials"] = decision.counts.get("total", 0) + decision.counts.get("imported", 0)
            if best is not None and best.objective is not None:
                values["best_objective"] = best.objective
            # best_objective is in the mask even when absent: a decision without one clears it.
            self._update(context, values, [*values, "best_objective"])

        self._guard(write)

    def delete(self, key: ExperimentKey) -> bool:
        def mark() -> bool:
            context, _ = self._find(key)
            if context is None:
                return False
            update = self._pb.Context(id=context.id, type_id=context.type_id, name=context.name)
            update.custom_properties["deleted"].int_value = 1
            _set(update.properties, {"status": "Deleted", "updated": _now()}, _EXPERIMENT_PROPERTIES)
            self._store.put_contexts(
                [update],
                field_mask_paths=["custom_properties.deleted", "properties.status", "properties.updated"],
            )
            return True

        return self._guard(mark)

    # --- trials ----------------------------------------------------------------------

    def history(self, key: ExperimentKey) -> History:
        state = self._guard(lambda: self._read(key))
        return state.history if state is not None else History(experiment=key.name)

    @contextlib.contextmanager
    def turn(self, key: ExperimentKey) -> Iterator[None]:
        """No turns: ML Metadata has no lock, and a gRPC service offers none; claimers are
        kept apart by the unique trial context names alone."""
        context, _ = self._guard(lambda: self._find(key))  # one look-up: not the whole history
        if context is None:
            raise StoreError(f"experiment {key}: must be in the store {self.url}, but it is not")
        yield

    def take_released(self, key: ExperimentKey, count: int, *, owner: str) -> list[TrialRecord]:
        return self._guard(lambda: self._take_released(self._require(key), count, owner))

    def append_trials(
        self, key: ExperimentKey, trials: list[TrialRecord], *, owner: str, study_attrs: dict[str, Any]
    ) -> bool:
        return self._guard(lambda: self._append(self._require(key), trials, owner, study_attrs))

    def record(self, key: ExperimentKey, trial: TrialRecord, *, run_id: str = "") -> None:
        self._guard(lambda: self._record(key, trial, run_id))

    def heartbeat(self, key: ExperimentKey, names: list[str]) -> None:
        if not names:
            return

        def beat() -> None:
            state = self._read(key)
            if state is None:
                return
            wanted = set(names)
            beating = [t for t in state.trials if t.record.name in wanted and t.record.status in ACTIVE]
            self._update_trials(beating, {"heartbeat": time.time()})

        self._guard(beat)

    def release(
        self, key: ExperimentKey, *, older_than: float | None = None, owner_prefix: str | None = None
    ) -> list[str]:
        def give_back() -> list[str]:
            state = self._read(key)
            if state is None:
                return []
            cutoff = time.time() - older_than if older_than is not None else None
            released = [
                t
                for t in state.trials
                if t.record.status in ACTIVE
                and t.owner != _RELEASED
                and (cutoff is None or t.heartbeat < cutoff)
                and (owner_prefix is None or t.owner.startswith(owner_prefix))
            ]
            # Not a compare-and-set: a claimer whose heartbeat lands between this read and
            # this write loses its trials anyway; a grace period far above the heartbeat
            # interval makes that window irrelevant.
            self._update_trials(released, {"owner": _RELEASED})
            return [t.record.name for t in released]

        return self._guard(give_back)

    def import_trials(self, experiment: Experiment, key: ExperimentKey, records: list[TrialRecord]) -> int:
        self.open_experiment(experiment, key)
        return sum(self._guard(partial(self._import, experiment, key, record)) for record in records)

    # --- experiments, inside -----------------------------------------------------------

    def _open(self, experiment: Experiment, key: ExperimentKey, allow_space_change: bool) -> bool:
        spec = json.dumps(experiment.source, sort_keys=True, default=str)
        fingerprint = space_fingerprint(experiment)
        for _ in range(_ATTEMPTS):
            context, generation = self._find(key)
            if context is None:
                context = self._pb.Context(
                    type_id=self._type_ids["HPOExperiment"], name=_experiment_name(key, generation)
                )
                _set(
                    context.properties,
                    {
                        **_settings(experiment, spec),
                        "namespace": key.namespace,
                        "status": "Created",
                        "reason": "",
                        "best_trial": "",
                        "trials": 0,
                        "study_attrs": "{}",
                        "updated": _now(),
                    },
                    _EXPERIMENT_PROPERTIES,
                )
                context.custom_properties["fingerprint"].string_value = fingerprint
                context.custom_properties["generation"].int_value = generation
                try:
                    self._store.put_contexts([context])
                except self._errors.AlreadyExistsError:
                    continue  # created by another process meanwhile: check it
                return True
            stored_spec = _get(context.properties, "spec") or "{}"
            stored = _get(context.custom_properties, "fingerprint")
            if stored is None:  # written by the previous release
                stored = space_fingerprint(parse_experiment(json.loads(stored_spec), trial_template=None))
            if stored != fingerprint and not allow_space_change:
                before = parse_experiment(json.loads(stored_spec), trial_template=None)
                changes = "; ".join(space_changes(before, experiment)) or "the feasible spaces differ"
                raise SearchSpaceChanged(
                    f"experiment {key}: its search space must be the one the store recorded, but "
                    f"{changes}; start over (run --restart) or keep the old trials outside the "
                    "new space (--allow-space-change)"
                )
            if stored_spec != spec or stored != fingerprint:
                values = {**_settings(experiment, spec), "updated": _now()}
                update = self._update(context, values, [*_SPEC_FIELDS, "updated"], commit=False)
                update.custom_properties["fingerprint"].string_value = fingerprint
                self._store.put_contexts(
                    [update],
                    field_mask_paths=[
                        *(f"properties.{name}" for name in (*_SPEC_FIELDS, "updated")),
                        "custom_properties.fingerprint",
                    ],
                )
            return False
        raise StoreError(f"experiment {key}: could not be created in {self.url}")

    def _find(self, key: ExperimentKey) -> tuple[Any, int]:
        """The experiment's live context and its generation, or None and the next generation."""
        _check_key(key)
        generation = 0
        while True:
            context = self._store.get_context_by_type_and_name(
                self._names["HPOExperiment"], _experiment_name(key, generation)
            )
            if context is None:
                return None, generation
            if not _get(context.custom_properties, "deleted"):
                return context, generation
            generation += 1

    def _experiments(self) -> list[ExperimentSummary]:
        trials: dict[str, list[Any]] = {}
        for context in self._store.get_contexts_by_type(self._names["HPOTrial"]):
            trials.setdefault(_get(context.properties, "experiment") or "", []).append(context)
        summaries = []
        for context in self._store.get_contexts_by_type(self._names["HPOExperiment"]):
            p = context.properties
            if _get(context.custom_properties, "deleted"):
                continue
            namespace = _get(p, "namespace") or ""
            own = trials.get(context.name, [])
            summaries.append(
                ExperimentSummary(
                    namespace=namespace,
                    name=_experiment_of(context.name, namespace),
                    status=_get(p, "status") or "Created",
                    reason=_get(p, "reason") or "",
                    trials=len(own),
                    best_trial=_get(p, "best_trial") or "",
                    best_objective=_get(p, "best_objective"),
                    updated=_get(p, "updated") or "",
                    stale=sum(
                        1
                        for t in own
                        if _get(t.properties, "status") in ACTIVE
                        and (_get(t.custom_properties, "owner") or _RELEASED) == _RELEASED
                    ),
                )
            )
        return sorted(summaries, key=lambda s: (s.namespace, s.name))

    # --- trials, inside ----------------------------------------------------------------

    def _read(self, key: ExperimentKey) -> _State | None:
        context, generation = self._find(key)
        if context is None:
            return None
        # The trials first, then the study state: a claim writes both in one call, so the
        # study state read here is never older than the trials (see the module's docstring).
        query = (
            f"type = '{self._names['HPOTrial']}' AND properties.experiment.string_value = '{context.name}'"
        )
        contexts = self._store.get_contexts(list_options=self._list_options(filter_query=query))
        [context] = self._store.get_contexts_by_id([context.id])
        legacy: dict[str, TrialRecord] = {}
        if any("record" not in c.custom_properties for c in contexts):
            legacy = self._legacy_records(context)
        trials = []
        for trial in contexts:
            custom = trial.custom_properties
            text = _get(custom, "record")
            if text is not None:
                record = TrialRecord.from_dict(json.loads(text), f"trial context {trial.name}")
            else:
                record = legacy.get(trial.name) or TrialRecord(
                    name=trial.name,
                    number=int(_get(trial.properties, "number") or 0),
                    parameters={},
                    status=_get(trial.properties, "status") or "Pending",
                )
            trials.append(
                _Trial(
                    context=trial,
                    record=record,
                    owner=_get(custom, "owner") or _RELEASED,
                    heartbeat=float(_get(custom, "heartbeat") or 0.0),
                    attempt=int(_get(custom, "attempt") or 0),
                    import_key=_get(custom, "import_key") or "",
                )
            )
        trials.sort(key=lambda t: (t.record.number, t.record.name))
        study_attrs = json.loads(_get(context.properties, "study_attrs") or "{}")
        history = History(
            experiment=key.name, trials=tuple(t.record for t in trials), study_attrs=study_attrs
        )
        return _State(key=key, context=context, generation=generation, trials=tuple(trials), history=history)

    def _require(self, key: ExperimentKey) -> _State:
        state = self._read(key)
        if state is None:
            raise StoreError(f"experiment {key}: must be in the store {self.url}, but it is not")
        return state

    def _append(
        self, state: _State, trials: list[TrialRecord], owner: str, study_attrs: dict[str, Any]
    ) -> bool:
        stamp = time.time()
        contexts = [self._trial_context(state, trial, owner=owner, heartbeat=stamp) for trial in trials]
        experiment_update = self._update(
            state.context,
            {"study_attrs": _dumps(study_attrs), "status": "Running", "updated": _now()},
            ["study_attrs", "status", "updated"],
            commit=False,
        )
        try:
            # One call, one transaction: the trials and the study state they came from,
            # or nothing when any of these numbers was taken.
            ids = self._store.put_contexts(
                [experiment_update, *contexts],
                field_mask_paths=["properties.study_attrs", "properties.status", "properties.updated"],
            )
        except self._errors.AlreadyExistsError:
            return False  # another claimer took these numbers
        self._link_parent(state, ids[1:])
        return True

    def _take_released(self, state: _State, count: int, owner: str) -> list[TrialRecord]:
        """Takes released trials, oldest number first: each by creating its next attempt."""
        pb = self._pb
        claimed: list[TrialRecord] = []
        for trial in state.trials:
            if len(claimed) >= count:
                break
            if trial.record.status not in ACTIVE or trial.owner != _RELEASED:
                continue
            attempt = trial.attempt + 1
            execution = self._execution(state, trial.record, attempt)
            execution.last_known_state = pb.Execution.NEW
            execution.custom_properties["owner"].string_value = owner
            config = self._config_artifact(state, trial.record)
            context = pb.Context()
            context.CopyFrom(trial.context)
            context.custom_properties["owner"].string_value = owner
            context.custom_properties["heartbeat"].double_value = time.time()
            context.custom_properties["attempt"].int_value = attempt
            try:
                # The new owner goes in with the attempt's execution, whose name is unique:
                # of two claimers of this trial, only one writes either. put_execution
                # writes the whole trial context as read: a record by the released claimer
                # landing in between is overwritten, and the trial runs again anyway.
                execution_id, _, _ = self._store.put_execution(
                    execution,
                    [(config, pb.Event(type=pb.Event.INPUT))],
                    [context],
                    reuse_artifact_if_already_exist_by_external_id=True,
                )
            except self._errors.AlreadyExistsError:
                continue  # claimed by another claimer meanwhile
            self._store.put_attributions_and_associations(
                [], [pb.Association(context_id=state.context.id, execution_id=execution_id)]
            )
            self._abandon(state, trial.record, trial.attempt)
            claimed.append(replace(trial.record, status="Pending"))
        return claimed

    def _abandon(self, state: _Located, trial: TrialRecord, attempt: int) -> None:
        """Marks a released attempt's execution cancelled, for people reading the lineage."""
        name = _execution_name(state, trial.number, attempt)
        previous = self._store.get_execution_by_type_and_name(self._names["Train"], name)
        if previous is not None and previous.last_known_state not in (
            self._pb.Execution.COMPLETE,
            self._pb.Execution.FAILED,
        ):
            update = self._pb.Execution(id=previous.id, type_id=previous.type_id)
            update.last_known_state = self._pb.Execution.CANCELED
            self._store.put_executions([update], field_mask_paths=["last_known_state"])

    def _record(self, key: ExperimentKey, trial: TrialRecord, run_id: str) -> None:
        context, generation = self._find(key)
        if context is None:
            raise StoreError(f"experiment {key}: must be in the store {self.url}, but it is not")
        located = _Located(key=key, context=context, generation=generation)
        name = _trial_context_name(located, trial.number)
        for _ in range(_ATTEMPTS):
            known = self._store.get_context_by_type_and_name(self._names["HPOTrial"], name)
            if known is None:
                created = self._trial_context(located, trial, owner=_RELEASED, heartbeat=time.time())
                if run_id:
                    created.custom_properties["run_id"].string_value = run_id
                try:
                    ids = self._store.put_contexts([created])
                except self._errors.AlreadyExistsError:
                    continue  # claimed or recorded meanwhile: update that one
                self._link_parent(located, ids)
                created.id = ids[0]
                self._write_lineage(located, created, trial, 0, run_id)
                return
            values: dict[str, Any] = {"record": _dumps(trial.to_dict()), "heartbeat": time.time()}
            if run_id:
                values["run_id"] = run_id
            self._update_trial(known, values, status=trial.status)
            attempt = int(_get(known.custom_properties, "attempt") or 0)
            self._write_lineage(located, known, trial, attempt, run_id)
            return
        raise StoreError(f"experiment {key}: trial {trial.name} could not be written")

    def _import(self, experiment: Experiment, key: ExperimentKey, record: TrialRecord) -> int:

        identity = import_key(record)
        for _ in range(_ATTEMPTS):
            state = self._require(key)
            if any(t.import_key == identity for t in state.trials):
                return 0
            number = state.history.next_number
            trial = replace(record, number=number, name=trial_name(experiment.name, number), origin="import")
            context = self._trial_context(state, trial, owner=_RELEASED, heartbeat=None)
            context.custom_properties["import_key"].string_value = identity
            # The external id is unique in ML Metadata: the same trial imported twice at
            # once is written once.
            context.external_id = f"{state.context.name}/import/{identity}"
            try:
                ids = self._store.put_contexts([context])
            except self._errors.AlreadyExistsError:
                continue  # the number was taken, or the same trial imported meanwhile
            self._link_parent(state, ids)
            context.id = ids[0]
            self._write_lineage(state, context, trial, 0, "")
            return 1
        raise StoreError(f"experiment {key}: trial {record.name} could not be imported")

    # --- nodes -----------------------------------------------------------------------------

    def _trial_context(
        self, state: _Located, trial: TrialRecord, *, owner: str, heartbeat: float | None
    ) -> Any:
        context = self._pb.Context(
            type_id=self._type_ids["HPOTrial"], name=_trial_context_name(state, trial.number)
        )
        _set(
            context.properties,
            {"experiment": state.context.name, "number": trial.number, "status": trial.status},
            _TRIAL_PROPERTIES,
        )
        custom = context.custom_properties
        custom["record"].string_value = _dumps(trial.to_dict())
        custom["owner"].string_value = owner
        custom["attempt"].int_value = 0
        if heartbeat is not None:
            custom["heartbeat"].double_value = heartbeat
        return context

    def _update(self, context: Any, values: dict[str, Any], fields: list[str], *, commit: bool = True) -> Any:
        """A masked update of the experiment context's ``fields`` (absent ones are cleared)."""
        update = self._pb.Context(id=context.id, type_id=context.type_id, name=context.name)
        _set(update.properties, values, _EXPERIMENT_PROPERTIES)
        if commit:
            self._store.put_contexts([update], field_mask_paths=[f"properties.{name}" for name in fields])
        return update

    def _update_trials(self, trials: list[_Trial], custom: dict[str, Any]) -> None:
        for trial in trials:
            self._update_trial(trial.context, custom)

    def _update_trial(self, context: Any, custom: dict[str, Any], *, status: str | None = None) -> None:
        """A masked update of a trial context: only these fields, so concurrent writers of
        other fields (a heartbeat, a record, a release) do not undo each other."""
        update = self._pb.Context(id=context.id, type_id=context.type_id, name=context.name)
        for name, value in custom.items():
            _set_custom(update.custom_properties, name, value)
        paths = [f"custom_properties.{name}" for name in custom]
        if status is not None:
            update.properties["status"].string_value = status
            paths.append("properties.status")
        self._store.put_contexts([update], field_mask_paths=paths)

    def _link_parent(self, state: _Located, ids: list[int]) -> None:
        pb = self._pb
        links = [pb.ParentContext(child_id=child, parent_id=state.context.id) for child in ids]
        with contextlib.suppress(self._errors.AlreadyExistsError):  # linked by an earlier attempt
            self._store.put_parent_contexts(links)

    def _config_artifact(self, state: _Located, trial: TrialRecord) -> Any:
        pb = self._pb
        name = f"{_node_base(state, trial.number)}/config"
        config = pb.Artifact(
            type_id=self._type_ids["HPOConfig"], name=name, external_id=name, state=pb.Artifact.LIVE
        )
        _set(
            config.properties,
            {
                "experiment": state.context.name,
                "trial": trial.name,
                "number": trial.number,
                "parameters": json.dumps(trial.parameters),
            },
            _CONFIG_PROPERTIES,
        )
        for key, value in trial.parameters.items():
            _set_custom(config.custom_properties, key, value)
        return config

    def _execution(self, state: _Located, trial: TrialRecord, attempt: int) -> Any:
        pb = self._pb
        name = _execution_name(state, trial.number, attempt)
        execution = pb.Execution(
            type_id=self._type_ids["Train"],
            name=name,
            external_id=f"{name}/train",
            last_known_state=self._states[trial.status],
        )
        _set(
            execution.properties,
            {
                "experiment": state.context.name,
                "trial": trial.name,
                "number": trial.number,
                "status": trial.status,
                "reason": trial.reason,
                "started": trial.started or "",
                "finished": trial.finished or "",
                "duration_seconds": trial.duration if trial.duration is not None else 0.0,
                "origin": trial.origin,
                "sampler_attrs": _dumps(trial.sampler_attrs),
            },
            _TRAIN_PROPERTIES,
        )
        return execution

    def _write_lineage(
        self, state: _Located, context: Any, trial: TrialRecord, attempt: int, run_id: str
    ) -> None:
        """The trial's ODH nodes: its attempt's Train execution, reading the HPOConfig
        artifact and, once finished, writing the Metrics artifact; written by external id,
        so writing again updates the same nodes."""
        pb = self._pb
        config = self._config_artifact(state, trial)
        pairs: list[tuple[Any, Any]] = [(config, pb.Event.INPUT)]
        if trial.status in FINISHED:
            name = f"{_node_base(state, trial.number)}/metrics"
            metrics = pb.Artifact(
                type_id=self._type_ids["Metrics"], name=name, external_id=name, state=pb.Artifact.LIVE
            )
            values: dict[str, Any] = {
                "experiment": state.context.name,
                "trial": trial.name,
                "values": json.dumps(trial.values),
                "metrics": json.dumps(trial.metrics),
                "series": json.dumps(trial.series),
            }
            if trial.objective is not None:
                values["objective"] = trial.objective
            _set(metrics.properties, values, _METRICS_PROPERTIES)
            for key, value in trial.metrics.items():
                _set_custom(metrics.custom_properties, key, value)
            pairs.append((metrics, pb.Event.OUTPUT))
        execution = self._execution(state, trial, attempt)
        contexts = [pb.Context(id=state.context.id), pb.Context(id=context.id)]
        run = self._run_context(run_id)
        if run is not None:
            contexts.append(pb.Context(id=run.id))
        for _ in range(_ATTEMPTS):
            existing = self._found(
                lambda: self._store.get_executions_by_external_ids([execution.external_id])
            )
            events: set[tuple[int, int]] = set()
            if existing:
                execution.id = existing[0].id
                execution.custom_properties.MergeFrom(existing[0].custom_properties)
                events = {
                    (e.artifact_id, e.type) for e in self._store.get_events_by_execution_ids([execution.id])
                }
            ids = {
                a.external_id: a.id
                for a in self._found(
                    lambda: self._store.get_artifacts_by_external_ids([a.external_id for a, _ in pairs])
                )
            }
            with_events = []
            for artifact, kind in pairs:
                artifact.ClearField("id")
                if artifact.external_id in ids:
                    artifact.id = ids[artifact.external_id]
                known = artifact.HasField("id") and (artifact.id, kind) in events
                with_events.append((artifact, None if known else pb.Event(type=kind)))
            try:
                self._store.put_execution(
                    execution,
                    with_events,
                    contexts,
                    reuse_artifact_if_already_exist_by_external_id=True,
                    force_reuse_context=True,
                )
            except self._errors.AlreadyExistsError:
                execution.ClearField("id")
                continue  # written by a retried step meanwhile: update that one
            return
        raise StoreError(f"trial {trial.name}: its Train execution could not be written")

    def _run_context(self, run_id: str) -> Any:
        if not run_id:
            return None
        # None where KFP wrote no runs (the type does not exist) or not this one.
        return self._store.get_context_by_type_and_name(_RUN_CONTEXT_TYPE, run_id)

    def _legacy_records(self, context: Any) -> dict[str, TrialRecord]:
        """Trials as the previous release wrote them (no record on the trial context): read
        back from their Train executions and artifacts, by trial context name."""
        pb = self._pb
        executions = [
            e
            for e in self._store.get_executions_by_context(context.id)
            if e.type_id == self._type_ids["Train"]
        ]
        artifacts = {a.id: a for a in self._store.get_artifacts_by_context(context.id)}
        inputs: dict[int, Any] = {}
        outputs: dict[int, Any] = {}
        for event in self._store.get_events_by_execution_ids([e.id for e in executions]):
            target = inputs if event.type == pb.Event.INPUT else outputs
            if event.artifact_id in artifacts:
                target[event.execution_id] = artifacts[event.artifact_id]
        records = {}
        for execution in executions:
            record = _legacy_record(execution, inputs.get(execution.id), outputs.get(execution.id))
            records[record.name] = record
        return records

    def _register_types(self) -> dict[str, int]:
        pb = self._pb
        ids = {}
        for kind, factory, schema, put in (
            ("HPOExperiment", pb.ContextType, _EXPERIMENT_PROPERTIES, self._store.put_context_type),
            ("HPOTrial", pb.ContextType, _TRIAL_PROPERTIES, self._store.put_context_type),
            ("HPOConfig", pb.ArtifactType, _CONFIG_PROPERTIES, self._store.put_artifact_type),
            ("Metrics", pb.ArtifactType, _METRICS_PROPERTIES, self._store.put_artifact_type),
            ("Train", pb.ExecutionType, _TRAIN_PROPERTIES, self._store.put_execution_type),
        ):
            declared = factory(name=self._names[kind])
            for name, value_type in schema.items():
                declared.properties[name] = getattr(pb, value_type)
            ids[kind] = put(declared, can_add_fields=True, can_omit_fields=True)
        return ids

    def _found(self, lookup: Callable[[], list[Any]]) -> list[Any]:
        """The nodes a lookup by external id returns; ML Metadata raises NotFound for none."""
        try:
            return lookup()
        except self._errors.NotFoundError:
            return []

    def _guard(self, action: Callable[[], _T], *, opening: bool = False) -> _T:
        """Runs ``action``, again after a transient failure; ML Metadata's errors become StoreError.

        Transient: a busy SQLite file (steps of one run write at once; creating the file and
        registering the types from several processes at once races too), an aborted
        transaction (ML Metadata retries those itself, a few times), an unreachable server.
        Every action is safe to run again: its writes are idempotent or claims.
        """
        errors = self._errors
        transient = (errors.AbortedError, errors.UnavailableError, errors.AlreadyExistsError)
        # Opening an embedded file that another process is creating fails with a bare error.
        also: tuple[type[Exception], ...] = (RuntimeError,) if opening else ()
        for attempt in range(_TRANSIENT_ATTEMPTS):
            try:
                return action()
            except (errors.StatusError, *also) as error:
                busy = isinstance(error, transient) or "database is locked" in str(error) or opening
                if not busy or attempt == _TRANSIENT_ATTEMPTS - 1:
                    raise StoreError(f"the store {self.url} failed: {_first_line(error)}") from error
            time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")


# --- names ------------------------------------------------------------------------------


def _check_key(key: ExperimentKey) -> None:
    for field, value in (("namespace", key.namespace), ("name", key.name)):
        if _KEY_FORBIDDEN.search(value) or (field == "name" and not value):
            raise StoreInputError(
                f"experiment {field}: must be a Kubernetes name (no '/', '~' or quotes) for the "
                f"ML Metadata store, but got {value!r}"
            )


def _scoped(key: ExperimentKey, leaf: str, generation: int) -> str:
    text = f"{key.namespace}/{leaf}" if key.namespace else leaf
    return f"{text}~{generation}" if generation else text


def _experiment_name(key: ExperimentKey, generation: int) -> str:
    return _scoped(key, key.name, generation)


def _experiment_of(context_name: str, namespace: str) -> str:
    """The experiment's name in its context's name (``NAMESPACE/NAME~G``)."""
    name = context_name.removeprefix(f"{namespace}/") if namespace else context_name
    return name.split("~", 1)[0]


def _trial_context_name(state: _Located, number: int) -> str:

    return _scoped(state.key, trial_name(state.key.name, number), state.generation)


def _node_base(state: _Located, number: int) -> str:
    """What a trial's executions and artifacts are named after (as the previous release did)."""

    return f"{state.context.name}/{trial_name(state.key.name, number)}"


def _execution_name(state: _Located, number: int, attempt: int) -> str:
    base = _node_base(state, number)
    return f"{base}/attempt-{attempt}" if attempt else base


# --- connection ------------------------------------------------------------------------


def _modules() -> tuple[Any, Any, Any]:
    try:
        from ml_metadata import errors
        from ml_metadata.metadata_store import metadata_store
        from ml_metadata.proto import metadata_store_pb2
    except ImportError as error:
        raise StoreInputError(
            f"the ML Metadata store needs ml-metadata, which is not installed ({error}): "
            "pip install --no-deps 'ml-metadata>=1.17.1,<1.18' (its pins predate kfp's protobuf 6, "
            "on which it works)"
        ) from error
    return errors, metadata_store, metadata_store_pb2


def _config(url: str, pb: Any) -> Any:
    if url.startswith("mlmd+sqlite:///"):
        path = Path(url.removeprefix("mlmd+sqlite:///"))
        if not path.name:
            raise StoreInputError(f"the store must be mlmd+sqlite:///PATH with a file name, but got {url!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        config = pb.ConnectionConfig()
        config.sqlite.filename_uri = str(path)
        config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        return config
    if url.startswith("grpc://"):
        host, _, port = url.removeprefix("grpc://").rstrip("/").rpartition(":")
        if not host or not port.isdigit():
            raise StoreInputError(f"the store address must be grpc://HOST:PORT, but got {url!r}")
        return pb.MetadataStoreClientConfig(host=host, port=int(port))
    raise StoreInputError(
        f"the ML Metadata store must be grpc://HOST:PORT or mlmd+sqlite:///PATH, but got {url!r}"
    )


# --- properties ------------------------------------------------------------------------


def _settings(experiment: Experiment, spec: str) -> dict[str, Any]:
    """The experiment context's properties that come from the spec."""
    objective = experiment.objective
    values: dict[str, Any] = {
        "objective_metric": objective.metric,
        "objective_type": objective.type,
        "algorithm": experiment.algorithm.name,
        "max_trial_count": experiment.max_trial_count,
        "parallel_trial_count": experiment.parallel_trial_count,
        "spec": spec,
    }
    if objective.goal is not None:
        values["goal"] = objective.goal
    if experiment.max_failed_trial_count is not None:
        values["max_failed_trial_count"] = experiment.max_failed_trial_count
    return values


def _legacy_record(execution: Any, config: Any, metrics: Any) -> TrialRecord:
    p = execution.properties
    values = json.loads(_get(metrics.properties, "values") or "null") if metrics is not None else None
    series = json.loads(_get(metrics.properties, "series") or "{}") if metrics is not None else {}
    return TrialRecord.from_dict(
        {
            "name": _get(p, "trial"),
            "number": int(_get(p, "number") or 0),
            "parameters": json.loads(_get(config.properties, "parameters")) if config is not None else {},
            "status": _get(p, "status") or "Pending",
            "values": values,
            "metrics": json.loads(_get(metrics.properties, "metrics") or "{}") if metrics is not None else {},
            "series": series,
            "started": _get(p, "started") or None,
            "finished": _get(p, "finished") or None,
            "reason": _get(p, "reason") or "",
            "sampler_attrs": json.loads(_get(p, "sampler_attrs") or "{}"),
            "origin": _get(p, "origin") or "suggest",
        },
        f"execution {execution.name}",
    )


def _set(target: Any, values: dict[str, Any], schema: dict[str, str]) -> None:
    for key, value in values.items():
        kind = schema[key]
        if kind == _STRING:
            target[key].string_value = str(value)
        elif kind == _INT:
            target[key].int_value = int(value)
        else:
            target[key].double_value = float(value)


def _set_custom(target: Any, key: str, value: Any) -> None:
    if isinstance(value, bool | str):
        target[key].string_value = str(value)
    elif isinstance(value, int):
        target[key].int_value = value
    else:
        target[key].double_value = float(value)


def _get(properties: Any, key: str) -> Any:
    if key not in properties:
        return None
    value = properties[key]
    which = value.WhichOneof("value")
    return getattr(value, which) if which else None


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=jsonable)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
