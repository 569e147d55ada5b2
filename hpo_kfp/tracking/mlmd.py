"""ML Metadata implementation of the tracker, with the ODH decision record's types.

Per experiment: an ``HPOExperiment`` context. Per trial: an ``HPOTrial`` context (a child
of the experiment's), a ``Train`` execution (the trial's run: state, times, exit reason)
that reads an ``HPOConfig`` artifact (the assignment) and writes a ``Metrics`` artifact
(reduced values and series). Execution and artifacts are attributed/associated to both
contexts and, inside a KFP run, to that run's ``system.PipelineRun`` context.

Writes are keyed by external ids (``<experiment>/<trial>/train`` ...): saving a trial a
second time updates the same nodes, so a retried step leaves no duplicates.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from hpo_kfp.decide import Decision
from hpo_kfp.errors import StoreInputError, TrackingError
from hpo_kfp.history import History, TrialRecord, TrialStatus, jsonable
from hpo_kfp.spec import Experiment, parse_experiment
from hpo_kfp.tracking.base import ExperimentSummary

__all__ = ["MlmdTracker"]

_T = TypeVar("_T")
_STRING, _INT, _DOUBLE = "STRING", "INT", "DOUBLE"
_EXPERIMENT_PROPERTIES = {
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
_RUN_CONTEXT_TYPE = "system.PipelineRun"


class MlmdTracker:
    """A :class:`~hpo_kfp.tracking.Tracker` on an ML Metadata store."""

    def __init__(self, uri: str, *, prefix: str = "odh.") -> None:
        from ml_metadata.proto import metadata_store_pb2 as pb

        self._pb = pb
        self._store = _retry(lambda: _connect(uri))
        self._names = {
            kind: prefix + kind for kind in ("HPOExperiment", "HPOTrial", "HPOConfig", "Metrics", "Train")
        }
        self._type_ids = _retry(self._register_types)

    # -- writing -----------------------------------------------------------------------------

    def save_trial(self, experiment: Experiment, trial: TrialRecord, *, run_id: str = "") -> None:
        _retry(lambda: self._save_trial(experiment, trial, run_id))

    def save_experiment(
        self, experiment: Experiment, history: History, decision: Decision, *, run_id: str = ""
    ) -> None:
        del run_id  # an experiment spans runs; its trials carry the link to theirs
        best = decision.best
        properties = {
            "status": decision.status,
            "reason": decision.reason or "",
            "best_trial": best.name if best else "",
            "trials": len(history.trials),
            "study_attrs": json.dumps(history.study_attrs, default=jsonable),
            "updated": _now(),
        }
        if best is not None and best.objective is not None:
            properties["best_objective"] = best.objective

        def write() -> None:
            context = self._experiment_context(experiment)
            _set(context.properties, properties, _EXPERIMENT_PROPERTIES)
            self._store.put_contexts([context])

        _retry(write)

    def _save_trial(self, experiment: Experiment, trial: TrialRecord, run_id: str) -> None:
        pb = self._pb
        key = f"{experiment.name}/{trial.name}"
        contexts = [self._experiment_context(experiment), self._trial_context(experiment, trial)]
        run = self._run_context(run_id)
        if run is not None:
            contexts.append(run)
        config = pb.Artifact(
            type_id=self._type_ids["HPOConfig"],
            name=f"{key}/config",
            external_id=f"{key}/config",
            state=pb.Artifact.LIVE,
        )
        _set(
            config.properties,
            {
                "experiment": experiment.name,
                "trial": trial.name,
                "number": trial.number,
                "parameters": json.dumps(trial.parameters),
            },
            _CONFIG_PROPERTIES,
        )
        for name, value in trial.parameters.items():
            _set_custom(config.custom_properties, name, value)
        metrics = pb.Artifact(
            type_id=self._type_ids["Metrics"],
            name=f"{key}/metrics",
            external_id=f"{key}/metrics",
            state=pb.Artifact.LIVE,
        )
        metric_values: dict[str, Any] = {
            "experiment": experiment.name,
            "trial": trial.name,
            "values": json.dumps(trial.values),
            "metrics": json.dumps(trial.metrics),
            "series": json.dumps(trial.series),
        }
        if trial.objective is not None:
            metric_values["objective"] = trial.objective
        _set(metrics.properties, metric_values, _METRICS_PROPERTIES)
        for name, value in trial.metrics.items():
            _set_custom(metrics.custom_properties, name, value)
        execution = pb.Execution(
            type_id=self._type_ids["Train"],
            name=key,
            external_id=f"{key}/train",
            last_known_state=_STATE[trial.status],
        )
        _set(
            execution.properties,
            {
                "experiment": experiment.name,
                "trial": trial.name,
                "number": trial.number,
                "status": trial.status,
                "reason": trial.reason,
                "started": trial.started or "",
                "finished": trial.finished or "",
                "duration_seconds": trial.duration if trial.duration is not None else 0.0,
                "origin": trial.origin,
                "sampler_attrs": json.dumps(trial.sampler_attrs, default=jsonable),
            },
            _TRAIN_PROPERTIES,
        )
        existing = _found(lambda: self._store.get_executions_by_external_ids([execution.external_id]))
        if existing:
            # A retry: update the same nodes; their events and links exist already.
            execution.id = existing[0].id
            keys = [config.external_id, metrics.external_id]
            for artifact in _found(lambda: self._store.get_artifacts_by_external_ids(keys)):
                (config if artifact.external_id == config.external_id else metrics).id = artifact.id
            pairs: list[tuple[Any, Any]] = [(config, None), (metrics, None)]
        else:
            pairs = [(config, pb.Event(type=pb.Event.INPUT)), (metrics, pb.Event(type=pb.Event.OUTPUT))]
        self._store.put_execution(
            execution,
            pairs,
            contexts,
            reuse_context_if_already_exist=True,
            reuse_artifact_if_already_exist_by_external_id=True,
        )

    # -- reading -----------------------------------------------------------------------------

    def load_history(self, name: str) -> History:
        context = self._store.get_context_by_type_and_name(self._names["HPOExperiment"], name)
        if context is None:
            return History(experiment=name)
        executions = [
            e
            for e in self._store.get_executions_by_context(context.id)
            if e.type_id == self._type_ids["Train"]
        ]
        artifacts = {a.id: a for a in self._store.get_artifacts_by_context(context.id)}
        inputs: dict[int, Any] = {}
        outputs: dict[int, Any] = {}
        for event in self._store.get_events_by_execution_ids([e.id for e in executions]):
            target = inputs if event.type == self._pb.Event.INPUT else outputs
            if event.artifact_id in artifacts:
                target[event.execution_id] = artifacts[event.artifact_id]
        trials = [self._record(e, inputs.get(e.id), outputs.get(e.id)) for e in executions]
        study_attrs = json.loads(_get(context.properties, "study_attrs") or "{}")
        return History(experiment=name, study_attrs=study_attrs).upsert(trials)

    def load_experiment(self, name: str) -> Experiment | None:
        context = self._store.get_context_by_type_and_name(self._names["HPOExperiment"], name)
        if context is None:
            return None
        return parse_experiment(json.loads(_get(context.properties, "spec") or "{}"))

    def _record(self, execution: Any, config: Any, metrics: Any) -> TrialRecord:
        p = execution.properties
        values = json.loads(_get(metrics.properties, "values") or "null") if metrics is not None else None
        series = json.loads(_get(metrics.properties, "series") or "{}") if metrics is not None else {}
        status: TrialStatus = _get(p, "status")
        return TrialRecord(
            name=_get(p, "trial"),
            number=int(_get(p, "number")),
            parameters=json.loads(_get(config.properties, "parameters")) if config is not None else {},
            status=status,
            values=tuple(values) if values is not None else None,
            metrics=json.loads(_get(metrics.properties, "metrics") or "{}") if metrics is not None else {},
            series={k: [(point[0], float(point[1])) for point in v] for k, v in series.items()},
            started=_get(p, "started") or None,
            finished=_get(p, "finished") or None,
            reason=_get(p, "reason") or "",
            sampler_attrs=json.loads(_get(p, "sampler_attrs") or "{}"),
            origin=_get(p, "origin") or "suggest",
        )

    def experiments(self) -> list[ExperimentSummary]:
        summaries = []
        for context in self._store.get_contexts_by_type(self._names["HPOExperiment"]):
            p = context.properties
            summaries.append(
                ExperimentSummary(
                    name=context.name,
                    status=_get(p, "status") or "Running",
                    reason=_get(p, "reason") or "",
                    trials=int(_get(p, "trials") or 0),
                    best_trial=_get(p, "best_trial") or "",
                    best_objective=_get(p, "best_objective") if "best_objective" in p else None,
                    updated=_get(p, "updated") or "",
                )
            )
        return sorted(summaries, key=lambda s: s.name)

    # -- contexts and types ------------------------------------------------------------------

    def _experiment_context(self, experiment: Experiment) -> Any:
        objective = experiment.objective
        properties: dict[str, Any] = {
            "objective_metric": objective.metric,
            "objective_type": objective.type,
            "algorithm": experiment.algorithm.name,
            "max_trial_count": experiment.max_trial_count,
            "parallel_trial_count": experiment.parallel_trial_count,
            "spec": json.dumps(experiment.source or {}, default=str),
        }
        if objective.goal is not None:
            properties["goal"] = objective.goal
        if experiment.max_failed_trial_count is not None:
            properties["max_failed_trial_count"] = experiment.max_failed_trial_count
        return self._context("HPOExperiment", experiment.name, properties, _EXPERIMENT_PROPERTIES)

    def _trial_context(self, experiment: Experiment, trial: TrialRecord) -> Any:
        parent = self._experiment_context(experiment)
        existed = self._store.get_context_by_type_and_name(self._names["HPOTrial"], trial.name) is not None
        context = self._context(
            "HPOTrial",
            trial.name,
            {"experiment": experiment.name, "number": trial.number, "status": trial.status},
            _TRIAL_PROPERTIES,
        )
        if not existed:
            try:
                self._store.put_parent_contexts(
                    [self._pb.ParentContext(child_id=context.id, parent_id=parent.id)]
                )
            except Exception as error:
                if type(error).__name__ != "AlreadyExistsError":
                    raise
        return context

    def _context(self, kind: str, name: str, properties: dict[str, Any], schema: dict[str, str]) -> Any:
        context = self._store.get_context_by_type_and_name(self._names[kind], name)
        if context is None:
            context = self._pb.Context(type_id=self._type_ids[kind], name=name)
        _set(context.properties, properties, schema)
        [context.id] = self._store.put_contexts([context])
        return context

    def _run_context(self, run_id: str) -> Any:
        if not run_id:
            return None
        try:
            return self._store.get_context_by_type_and_name(_RUN_CONTEXT_TYPE, run_id)
        except Exception:  # the type exists only where KFP wrote runs
            return None

    def _register_types(self) -> dict[str, int]:
        pb = self._pb
        ids = {}
        for kind, factory, schema in (
            ("HPOExperiment", pb.ContextType, _EXPERIMENT_PROPERTIES),
            ("HPOTrial", pb.ContextType, _TRIAL_PROPERTIES),
            ("HPOConfig", pb.ArtifactType, _CONFIG_PROPERTIES),
            ("Metrics", pb.ArtifactType, _METRICS_PROPERTIES),
            ("Train", pb.ExecutionType, _TRAIN_PROPERTIES),
        ):
            declared = factory(name=self._names[kind])
            for key, value_type in schema.items():
                declared.properties[key] = getattr(pb, value_type)
            put = {
                pb.ContextType: self._store.put_context_type,
                pb.ArtifactType: self._store.put_artifact_type,
                pb.ExecutionType: self._store.put_execution_type,
            }[factory]
            ids[kind] = put(declared, can_add_fields=True, can_omit_fields=True)
        return ids


_STATE: dict[str, int] = {}


def _init_states() -> None:
    from ml_metadata.proto import metadata_store_pb2 as pb

    _STATE.update(
        {
            "Succeeded": pb.Execution.COMPLETE,
            "Failed": pb.Execution.FAILED,
            "MetricsUnavailable": pb.Execution.FAILED,
            "EarlyStopped": pb.Execution.CANCELED,
            "Pending": pb.Execution.NEW,
            "Running": pb.Execution.RUNNING,
        }
    )


def _connect(uri: str) -> Any:
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    if not _STATE:
        _init_states()
    if uri.startswith("sqlite://"):
        path = Path(uri.removeprefix("sqlite://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        config = pb.ConnectionConfig()
        config.sqlite.filename_uri = str(path)
        config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        return metadata_store.MetadataStore(config)
    if uri.startswith("grpc://"):
        host, _, port = uri.removeprefix("grpc://").rpartition(":")
        if not host or not port.isdigit():
            raise StoreInputError(f"the store address must be grpc://HOST:PORT, but got {uri!r}")
        return metadata_store.MetadataStore(pb.MetadataStoreClientConfig(host=host, port=int(port)))
    raise StoreInputError(f"the store must be sqlite:///PATH or grpc://HOST:PORT, but got {uri!r}")


def _retry(action: Callable[[], _T], attempts: int = 6) -> _T:
    # SQLite shared by parallel steps: MLMD retries aborted transactions itself, but creating
    # a new file from several processes at once, or racing to create the same node, can
    # still fail; the second attempt sees the other writer's result.
    for attempt in range(attempts):
        try:
            return action()
        except TrackingError:
            raise
        except Exception as error:
            name = type(error).__name__
            transient = name in ("AbortedError", "AlreadyExistsError", "UnavailableError", "RuntimeError")
            if not transient or attempt == attempts - 1:
                raise TrackingError(f"metadata store: {error}".splitlines()[0]) from error
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _found(lookup: Callable[[], list[Any]]) -> list[Any]:
    """The nodes a lookup returns; ML Metadata raises NotFoundError for none."""
    try:
        return lookup()
    except Exception as error:
        if type(error).__name__ == "NotFoundError":
            return []
        raise


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


def _now() -> str:
    return datetime.now(UTC).isoformat()
