"""The ML Metadata tracker against a real SQLite-backed store (ml-metadata on protobuf 6)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ml_metadata.proto import metadata_store_pb2 as pb

from hpo_kfp.decide import decide
from hpo_kfp.errors import TrackingError
from hpo_kfp.history import History, TrialRecord
from hpo_kfp.spec import Experiment, parse_experiment
from hpo_kfp.tracking import open_tracker, resolve_target
from hpo_kfp.tracking.mlmd import MlmdTracker
from tests.conftest import base_spec


@pytest.fixture
def experiment() -> Experiment:
    return parse_experiment(base_spec())


@pytest.fixture
def tracker(tmp_path: Path) -> MlmdTracker:
    store = open_tracker(resolve_target(str(tmp_path / "mlmd.sqlite")))
    assert isinstance(store, MlmdTracker)
    return store


def _trial(number: int, status: str = "Succeeded", value: float | None = 0.25) -> TrialRecord:
    return TrialRecord(
        name=f"demo-{number:04d}",
        number=number,
        parameters={"lr": 0.02, "layers": 3, "optimizer": "adam"},
        status=status,  # type: ignore[arg-type]
        values=(value,) if value is not None else None,
        metrics={"loss": value, "accuracy": 0.9} if value is not None else {},
        series={"loss": [(None, 0.5), ("2024-01-01T00:00:01+00:00", value)]} if value is not None else {},
        started="2024-01-01T00:00:00+00:00",
        finished="2024-01-01T00:00:04+00:00",
        reason="" if status == "Succeeded" else "exit code 1",
        sampler_attrs={"cma:generation": 2},
    )


def test_every_type_property_and_link(tracker: MlmdTracker, experiment: Experiment) -> None:
    tracker.save_trial(experiment, _trial(0))
    store = tracker._store
    [exp_ctx] = store.get_contexts_by_type("odh.HPOExperiment")
    [trial_ctx] = store.get_contexts_by_type("odh.HPOTrial")
    assert exp_ctx.name == "demo" and trial_ctx.name == "demo-0000"
    assert exp_ctx.properties["objective_metric"].string_value == "loss"
    assert exp_ctx.properties["max_trial_count"].int_value == 8
    assert exp_ctx.properties["goal"].double_value == 0.001
    # The trial context is a child of the experiment context.
    assert [c.id for c in store.get_parent_contexts_by_context(trial_ctx.id)] == [exp_ctx.id]
    [train] = store.get_executions_by_type("odh.Train")
    assert train.last_known_state == pb.Execution.COMPLETE
    assert train.properties["duration_seconds"].double_value == 4.0
    assert train.properties["status"].string_value == "Succeeded"
    [config] = store.get_artifacts_by_type("odh.HPOConfig")
    [metrics] = store.get_artifacts_by_type("odh.Metrics")
    assert config.custom_properties["layers"].int_value == 3
    assert config.custom_properties["optimizer"].string_value == "adam"
    assert metrics.properties["objective"].double_value == 0.25
    assert metrics.custom_properties["accuracy"].double_value == 0.9
    events = {(e.artifact_id, e.type) for e in store.get_events_by_execution_ids([train.id])}
    assert events == {(config.id, pb.Event.INPUT), (metrics.id, pb.Event.OUTPUT)}
    for context in (exp_ctx, trial_ctx):  # attributions and associations
        assert {a.id for a in store.get_artifacts_by_context(context.id)} == {config.id, metrics.id}
        assert [e.id for e in store.get_executions_by_context(context.id)] == [train.id]


def test_a_retried_write_creates_no_duplicates(tracker: MlmdTracker, experiment: Experiment) -> None:
    trial = _trial(0)
    for _ in range(3):
        tracker.save_trial(experiment, trial)
    store = tracker._store
    assert len(store.get_executions()) == 1
    assert len(store.get_artifacts()) == 2
    assert len(store.get_contexts()) == 2
    assert len(store.get_events_by_execution_ids([store.get_executions()[0].id])) == 2


def test_a_rewrite_updates_in_place(tracker: MlmdTracker, experiment: Experiment) -> None:
    tracker.save_trial(experiment, _trial(0, "Failed", None))
    tracker.save_trial(experiment, _trial(0, "Succeeded", 0.125))
    [train] = tracker._store.get_executions()
    assert train.last_known_state == pb.Execution.COMPLETE
    assert tracker.load_history("demo").trials[0].values == (0.125,)


def test_history_round_trips_through_the_store(tracker: MlmdTracker, experiment: Experiment) -> None:
    trials = [
        _trial(0),
        _trial(1, "Failed", None),
        _trial(2, "MetricsUnavailable", None),
        _trial(3, value=0.125),
    ]
    for trial in trials:
        tracker.save_trial(experiment, trial)
    history = History(experiment="demo", trials=tuple(trials), study_attrs={"qmc:abc": 7})
    tracker.save_experiment(experiment, history, decide(experiment, history))
    loaded = tracker.load_history("demo")
    assert loaded == history
    states = {e.properties["trial"].string_value: e.last_known_state for e in tracker._store.get_executions()}
    assert states["demo-0001"] == pb.Execution.FAILED
    [summary] = tracker.experiments()
    assert (summary.name, summary.trials, summary.best_trial, summary.best_objective) == (
        "demo",
        4,
        "demo-0003",
        0.125,
    )


def test_unknown_experiment_has_an_empty_history(tracker: MlmdTracker) -> None:
    assert tracker.load_history("nothing-here") == History(experiment="nothing-here")


def test_trials_are_attributed_to_the_kfp_run_context(tracker: MlmdTracker, experiment: Experiment) -> None:
    store = tracker._store
    run_type = store.put_context_type(pb.ContextType(name="system.PipelineRun"))
    [run_id] = store.put_contexts([pb.Context(type_id=run_type, name="run-uuid-1")])
    tracker.save_trial(experiment, _trial(0), run_id="run-uuid-1")
    tracker.save_trial(experiment, _trial(1), run_id="run-not-in-store")
    assert [e.properties["trial"].string_value for e in store.get_executions_by_context(run_id)] == [
        "demo-0000"
    ]


def test_type_prefix_is_configurable(tmp_path: Path, experiment: Experiment) -> None:
    tracker = open_tracker(resolve_target(str(tmp_path / "m.sqlite")), prefix="acme.")
    tracker.save_trial(experiment, _trial(0))
    assert isinstance(tracker, MlmdTracker)
    assert [t.name for t in tracker._store.get_context_types()] == ["acme.HPOExperiment", "acme.HPOTrial"]


def test_target_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HPO_KFP_MLMD_HOST", raising=False)
    assert resolve_target().uri == ""
    assert resolve_target(str(tmp_path / "a.sqlite")).uri == f"sqlite://{tmp_path}/a.sqlite"
    assert (
        resolve_target(host="metadata-grpc-service.kubeflow").uri
        == "grpc://metadata-grpc-service.kubeflow:8080"
    )
    monkeypatch.setenv("HPO_KFP_MLMD_HOST", "mlmd.example")
    monkeypatch.setenv("HPO_KFP_MLMD_PORT", "9090")
    assert resolve_target().uri == "grpc://mlmd.example:9090"
    with pytest.raises(TrackingError, match=r"no metadata store configured"):
        open_tracker("")
    with pytest.raises(TrackingError, match=r"must be sqlite:///PATH or grpc://HOST:PORT"):
        open_tracker("mysql://x")
