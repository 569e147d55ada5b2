"""Copying stores: an ML Metadata store (this release's, and the previous release's layout)
into the SQL store, twice."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

try:
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb
except ImportError as error:  # the mlmd group is optional; CI installs it on Python 3.11
    from tests.store.conftest import mlmd_expected

    if mlmd_expected():
        raise
    pytest.skip(f"ml-metadata cannot be imported ({error})", allow_module_level=True)

from hpo_kfp.claim import claim
from hpo_kfp.decide import decide
from hpo_kfp.history import History, TrialRecord
from hpo_kfp.migrate import copy_store
from hpo_kfp.spec import Experiment, parse_experiment
from hpo_kfp.store import ExperimentKey, Store
from hpo_kfp.store.mlmd import MlmdStore
from hpo_kfp.store.sql import SqlStore
from tests.conftest import base_spec, with_field


def _experiment(max_trials: int = 6) -> Experiment:
    document = base_spec()
    with_field(document, "spec.maxTrialCount", max_trials)
    with_field(document, "spec.objective.goal", -1.0)  # never reached
    del document["metadata"]["namespace"]
    return parse_experiment(document)


def _succeeded(trial: TrialRecord, loss: float) -> TrialRecord:
    return replace(
        trial,
        status="Succeeded",
        values=(loss,),
        metrics={"loss": loss, "accuracy": 0.5},
        series={"loss": [(None, loss + 1), ("2024-01-01T00:00:01+00:00", loss)]},
        started="2024-01-01T00:00:00+00:00",
        finished="2024-01-01T00:00:04+00:00",
    )


def _snapshot(store: Store) -> list[tuple[Any, ...]]:
    """Everything a copy must carry: each experiment's summary, spec and history (not when
    it was updated, nor whether its active trials' claimers are alive)."""
    rows = []
    for summary in store.experiments():
        key = ExperimentKey(summary.namespace, summary.name)
        experiment = store.load_experiment(key)
        assert experiment is not None
        rows.append(
            (replace(summary, updated="", stale=0), dict(experiment.source or {}), store.history(key))
        )
    return rows


def test_an_mlmd_store_is_copied_into_an_sql_store_once(tmp_path: Path) -> None:
    source = MlmdStore(f"mlmd+sqlite:///{tmp_path}/mlmd.sqlite")
    experiment = _experiment()
    prior = _succeeded(
        TrialRecord(name="x", number=0, parameters={"lr": 0.05, "layers": 2, "optimizer": "sgd"}), 0.6
    )
    key, other = ExperimentKey("", "demo"), ExperimentKey("team-a", "demo")
    assert source.import_trials(experiment, key, [prior]) == 1
    claimed, _ = claim(source, experiment, key, 4, owner="run-1")
    source.record(key, _succeeded(claimed[0], 0.3), run_id="run-1")
    source.record(key, replace(claimed[1], status="Failed", reason="exit code 1"))
    source.record(key, replace(claimed[2], status="Running"))
    source.save_decision(key, decide(experiment, source.history(key)), {"qmc:seed": 7})
    source.open_experiment(experiment, other)  # no trials, no decision yet
    target = SqlStore(f"sqlite:///{tmp_path / 'store.sqlite'}")

    assert copy_store(source, target) == [(key, 5), (other, 0)]
    assert _snapshot(target) == _snapshot(source)
    history = target.history(key)
    assert history.study_attrs == {"qmc:seed": 7}
    assert [t.status for t in history.trials] == ["Succeeded", "Succeeded", "Failed", "Running", "Pending"]
    assert copy_store(source, target) == [(key, 0), (other, 0)]
    assert target.history(key) == history
    # The import arrived as an import: importing the same prior data again adds nothing.
    assert target.import_trials(experiment, key, [prior]) == 0
    # Active trials arrive released: the target's next claim hands them out again.
    assert target.experiments()[0].stale == 2
    again, _ = claim(target, experiment, key, 5, owner="run-2")
    assert [t.number for t in again] == [3, 4]


# --- the previous release's layout -------------------------------------------------------

_LEGACY_TYPES: dict[str, tuple[Any, dict[str, str]]] = {
    "odh.HPOExperiment": (
        pb.ContextType,
        {
            "objective_metric": "STRING",
            "objective_type": "STRING",
            "goal": "DOUBLE",
            "algorithm": "STRING",
            "max_trial_count": "INT",
            "parallel_trial_count": "INT",
            "max_failed_trial_count": "INT",
            "status": "STRING",
            "reason": "STRING",
            "best_trial": "STRING",
            "best_objective": "DOUBLE",
            "trials": "INT",
            "spec": "STRING",
            "study_attrs": "STRING",
            "updated": "STRING",
        },
    ),
    "odh.HPOTrial": (pb.ContextType, {"experiment": "STRING", "number": "INT", "status": "STRING"}),
    "odh.HPOConfig": (
        pb.ArtifactType,
        {"experiment": "STRING", "trial": "STRING", "number": "INT", "parameters": "STRING"},
    ),
    "odh.Metrics": (
        pb.ArtifactType,
        {
            "experiment": "STRING",
            "trial": "STRING",
            "objective": "DOUBLE",
            "values": "STRING",
            "metrics": "STRING",
            "series": "STRING",
        },
    ),
    "odh.Train": (
        pb.ExecutionType,
        {
            "experiment": "STRING",
            "trial": "STRING",
            "number": "INT",
            "status": "STRING",
            "reason": "STRING",
            "started": "STRING",
            "finished": "STRING",
            "duration_seconds": "DOUBLE",
            "origin": "STRING",
            "sampler_attrs": "STRING",
        },
    ),
}


def _put(target: Any, values: dict[str, Any]) -> None:
    for name, value in values.items():
        if isinstance(value, str):
            target[name].string_value = value
        elif isinstance(value, int):
            target[name].int_value = value
        else:
            target[name].double_value = value


def _write_previous_release(path: Path, experiment: Experiment, history: History) -> None:
    """An ML Metadata file laid out as the previous release's tracker wrote it (``sqlite://PATH``):
    types without a namespace, nothing on a trial context but its number and status, the
    trial's record only in its Train execution and artifacts."""
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = str(path)
    config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    mlmd = metadata_store.MetadataStore(config)
    ids = {}
    for name, (factory, schema) in _LEGACY_TYPES.items():
        declared = factory(name=name)
        for field, kind in schema.items():
            declared.properties[field] = getattr(pb, kind)
        put = {
            pb.ContextType: mlmd.put_context_type,
            pb.ArtifactType: mlmd.put_artifact_type,
            pb.ExecutionType: mlmd.put_execution_type,
        }[factory]
        ids[name] = put(declared)
    decision = decide(experiment, history)
    exp_ctx = pb.Context(type_id=ids["odh.HPOExperiment"], name=experiment.name)
    _put(
        exp_ctx.properties,
        {
            "objective_metric": experiment.objective.metric,
            "objective_type": experiment.objective.type,
            "algorithm": experiment.algorithm.name,
            "max_trial_count": experiment.max_trial_count,
            "parallel_trial_count": experiment.parallel_trial_count,
            "spec": json.dumps(experiment.source or {}, default=str),
            "status": decision.status,
            "reason": decision.reason or "",
            "best_trial": decision.best.name if decision.best else "",
            "best_objective": decision.best.objective or 0.0 if decision.best else 0.0,
            "trials": len(history.trials),
            "study_attrs": json.dumps(history.study_attrs),
            "updated": "2024-01-01T00:00:10+00:00",
        },
    )
    [exp_ctx.id] = mlmd.put_contexts([exp_ctx])
    for trial in history.trials:
        key = f"{experiment.name}/{trial.name}"
        trial_ctx = pb.Context(type_id=ids["odh.HPOTrial"], name=trial.name)
        _put(
            trial_ctx.properties,
            {"experiment": experiment.name, "number": trial.number, "status": trial.status},
        )
        [trial_ctx.id] = mlmd.put_contexts([trial_ctx])
        mlmd.put_parent_contexts([pb.ParentContext(child_id=trial_ctx.id, parent_id=exp_ctx.id)])
        config_artifact = pb.Artifact(
            type_id=ids["odh.HPOConfig"], name=f"{key}/config", external_id=f"{key}/config"
        )
        _put(
            config_artifact.properties,
            {
                "experiment": experiment.name,
                "trial": trial.name,
                "number": trial.number,
                "parameters": json.dumps(trial.parameters),
            },
        )
        metrics = pb.Artifact(type_id=ids["odh.Metrics"], name=f"{key}/metrics", external_id=f"{key}/metrics")
        _put(
            metrics.properties,
            {
                "experiment": experiment.name,
                "trial": trial.name,
                "values": json.dumps(trial.values),
                "metrics": json.dumps(trial.metrics),
                "series": json.dumps(trial.series),
            },
        )
        execution = pb.Execution(type_id=ids["odh.Train"], name=key, external_id=f"{key}/train")
        _put(
            execution.properties,
            {
                "experiment": experiment.name,
                "trial": trial.name,
                "number": trial.number,
                "status": trial.status,
                "reason": trial.reason,
                "started": trial.started or "",
                "finished": trial.finished or "",
                "duration_seconds": trial.duration or 0.0,
                "origin": trial.origin,
                "sampler_attrs": json.dumps(trial.sampler_attrs),
            },
        )
        mlmd.put_execution(
            execution,
            [(config_artifact, pb.Event(type=pb.Event.INPUT)), (metrics, pb.Event(type=pb.Event.OUTPUT))],
            [exp_ctx, trial_ctx],
            reuse_context_if_already_exist=True,
        )


def _previous_history() -> History:
    trials = [
        _succeeded(TrialRecord(name=f"demo-{n:04d}", number=n, parameters=p), loss)
        for n, p, loss in (
            (0, {"lr": 0.02, "layers": 3, "optimizer": "adam"}, 0.4),
            (1, {"lr": 0.03, "layers": 4, "optimizer": "sgd"}, 0.2),
        )
    ]
    trials.append(
        TrialRecord(
            name="demo-0002",
            number=2,
            parameters={"lr": 0.04, "layers": 2, "optimizer": "adam"},
            status="Failed",
            reason="exit code 1",
            sampler_attrs={"cma:generation": 1},
        )
    )
    return History(experiment="demo", trials=tuple(trials), study_attrs={"qmc:seed": 3})


def test_a_previous_release_store_is_read_and_copied(tmp_path: Path) -> None:
    experiment, history = _experiment(), _previous_history()
    _write_previous_release(tmp_path / "previous.sqlite", experiment, history)
    source = MlmdStore(f"mlmd+sqlite:///{tmp_path}/previous.sqlite")
    key = ExperimentKey("", "demo")
    assert source.history(key) == history
    [summary] = source.experiments()
    assert (summary.namespace, summary.name, summary.trials, summary.best_trial) == (
        "",
        "demo",
        3,
        "demo-0001",
    )
    target = SqlStore(f"sqlite:///{tmp_path / 'store.sqlite'}")

    assert copy_store(source, target) == [(key, 3)]
    assert target.history(key) == history
    assert [(s.status, s.best_trial, s.best_objective) for s in target.experiments()] == [
        ("Running", "demo-0001", 0.2)
    ]
    assert copy_store(source, target) == [(key, 0)]


def test_a_previous_release_experiment_goes_on_in_place(tmp_path: Path) -> None:
    experiment, history = _experiment(), _previous_history()
    _write_previous_release(tmp_path / "previous.sqlite", experiment, history)
    store = MlmdStore(f"mlmd+sqlite:///{tmp_path}/previous.sqlite")
    key = ExperimentKey("", "demo")
    store.open_experiment(experiment, key)
    claimed, after = claim(store, experiment, key, 2, owner="run-1")
    assert [t.name for t in claimed] == ["demo-0003", "demo-0004"]
    assert after.trials[:3] == history.trials
    assert store.history(key).trials[:3] == history.trials
