"""What the ML Metadata store writes beyond the contract: the Open Data Hub types, their links,
the KFP run attribution, its names, generations and attempts (on an embedded ML Metadata file)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

try:
    from ml_metadata.proto import metadata_store_pb2 as pb
except ImportError as error:  # the mlmd group is optional; CI installs it on Python 3.11
    from tests.store.conftest import mlmd_expected

    if mlmd_expected():
        raise
    pytest.skip(f"ml-metadata cannot be imported ({error})", allow_module_level=True)

from hpo_kfp.claim import claim
from hpo_kfp.errors import StoreInputError
from hpo_kfp.history import TrialRecord
from hpo_kfp.spec import Experiment, parse_experiment
from hpo_kfp.store import ExperimentKey, open_store
from hpo_kfp.store.mlmd import MlmdStore
from tests.conftest import base_spec

KEY = ExperimentKey("", "demo")


@pytest.fixture
def experiment() -> Experiment:
    document = base_spec()
    del document["metadata"]["namespace"]
    return parse_experiment(document)


@pytest.fixture
def store(tmp_path: Path) -> MlmdStore:
    opened = open_store(f"mlmd+sqlite:///{tmp_path}/mlmd.sqlite")
    assert isinstance(opened, MlmdStore)
    return opened


def _metadata(store: MlmdStore) -> Any:
    return store._store


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


def test_every_type_property_and_link(store: MlmdStore, experiment: Experiment) -> None:
    store.open_experiment(experiment, KEY)
    store.record(KEY, _trial(0))
    mlmd = _metadata(store)
    [exp_ctx] = mlmd.get_contexts_by_type("odh.HPOExperiment")
    [trial_ctx] = mlmd.get_contexts_by_type("odh.HPOTrial")
    assert exp_ctx.name == "demo" and trial_ctx.name == "demo-0000"
    assert exp_ctx.properties["objective_metric"].string_value == "loss"
    assert exp_ctx.properties["max_trial_count"].int_value == 8
    assert exp_ctx.properties["goal"].double_value == 0.001
    assert exp_ctx.properties["namespace"].string_value == ""
    assert trial_ctx.properties["experiment"].string_value == "demo"
    assert trial_ctx.properties["number"].int_value == 0
    assert trial_ctx.properties["status"].string_value == "Succeeded"
    # The trial context is a child of the experiment context.
    assert [c.id for c in mlmd.get_parent_contexts_by_context(trial_ctx.id)] == [exp_ctx.id]
    [train] = mlmd.get_executions_by_type("odh.Train")
    assert train.name == "demo/demo-0000" and train.external_id == "demo/demo-0000/train"
    assert train.last_known_state == pb.Execution.COMPLETE
    assert train.properties["duration_seconds"].double_value == 4.0
    assert train.properties["status"].string_value == "Succeeded"
    [config] = mlmd.get_artifacts_by_type("odh.HPOConfig")
    [metrics] = mlmd.get_artifacts_by_type("odh.Metrics")
    assert config.custom_properties["layers"].int_value == 3
    assert config.custom_properties["optimizer"].string_value == "adam"
    assert metrics.properties["objective"].double_value == 0.25
    assert metrics.custom_properties["accuracy"].double_value == 0.9
    events = {(e.artifact_id, e.type) for e in mlmd.get_events_by_execution_ids([train.id])}
    assert events == {(config.id, pb.Event.INPUT), (metrics.id, pb.Event.OUTPUT)}
    for context in (exp_ctx, trial_ctx):  # attributions and associations
        assert {a.id for a in mlmd.get_artifacts_by_context(context.id)} == {config.id, metrics.id}
        assert [e.id for e in mlmd.get_executions_by_context(context.id)] == [train.id]


def test_a_retried_write_creates_no_duplicates(store: MlmdStore, experiment: Experiment) -> None:
    store.open_experiment(experiment, KEY)
    for _ in range(3):
        store.record(KEY, _trial(0))
    mlmd = _metadata(store)
    [execution] = mlmd.get_executions()
    assert len(mlmd.get_artifacts()) == 2
    assert len(mlmd.get_contexts()) == 2
    assert len(mlmd.get_events_by_execution_ids([execution.id])) == 2


def test_a_rewrite_updates_in_place(store: MlmdStore, experiment: Experiment) -> None:
    store.open_experiment(experiment, KEY)
    store.record(KEY, _trial(0, "Failed", None))
    store.record(KEY, _trial(0, "Succeeded", 0.125))
    [train] = _metadata(store).get_executions()
    assert train.last_known_state == pb.Execution.COMPLETE
    assert store.history(KEY).trials[0].values == (0.125,)


def test_a_pending_trial_has_no_metrics_yet(store: MlmdStore, experiment: Experiment) -> None:
    store.open_experiment(experiment, KEY)
    [trial], _ = claim(store, experiment, KEY, 1, owner="run-1")
    store.record(KEY, replace(trial, status="Running"))
    mlmd = _metadata(store)
    [train] = mlmd.get_executions_by_type("odh.Train")
    assert train.last_known_state == pb.Execution.RUNNING
    assert [a.type for a in mlmd.get_artifacts()] == ["odh.HPOConfig"]


def test_trials_are_attributed_to_the_kfp_run_context(store: MlmdStore, experiment: Experiment) -> None:
    mlmd = _metadata(store)
    run_type = mlmd.put_context_type(pb.ContextType(name="system.PipelineRun"))
    [run_id] = mlmd.put_contexts([pb.Context(type_id=run_type, name="run-uuid-1")])
    store.open_experiment(experiment, KEY)
    store.record(KEY, _trial(0), run_id="run-uuid-1")
    store.record(KEY, _trial(1), run_id="run-not-in-store")
    assert [e.properties["trial"].string_value for e in mlmd.get_executions_by_context(run_id)] == [
        "demo-0000"
    ]
    assert {a.name for a in mlmd.get_artifacts_by_context(run_id)} == {
        "demo/demo-0000/config",
        "demo/demo-0000/metrics",
    }


def test_type_prefix_is_configurable(tmp_path: Path, experiment: Experiment) -> None:
    store = open_store(f"mlmd+sqlite:///{tmp_path}/m.sqlite", type_prefix="acme.")
    assert isinstance(store, MlmdStore)
    store.open_experiment(experiment, KEY)
    store.record(KEY, _trial(0))
    mlmd = _metadata(store)
    assert [t.name for t in mlmd.get_context_types()] == ["acme.HPOExperiment", "acme.HPOTrial"]
    assert sorted(t.name for t in mlmd.get_artifact_types()) == ["acme.HPOConfig", "acme.Metrics"]
    assert [t.name for t in mlmd.get_execution_types()] == ["acme.Train"]


def test_a_namespace_scopes_every_name(store: MlmdStore, experiment: Experiment) -> None:
    key = ExperimentKey("team-a", "demo")
    store.open_experiment(experiment, key)
    store.record(key, _trial(0))
    mlmd = _metadata(store)
    [exp_ctx] = mlmd.get_contexts_by_type("odh.HPOExperiment")
    [trial_ctx] = mlmd.get_contexts_by_type("odh.HPOTrial")
    assert (exp_ctx.name, exp_ctx.properties["namespace"].string_value) == ("team-a/demo", "team-a")
    assert trial_ctx.name == "team-a/demo-0000"
    assert [e.name for e in mlmd.get_executions()] == ["team-a/demo/demo-0000"]
    assert store.history(key).trials == (_trial(0),)


def test_a_deleted_experiment_stays_marked_and_comes_back_as_a_new_generation(
    store: MlmdStore, experiment: Experiment
) -> None:
    store.open_experiment(experiment, KEY)
    claim(store, experiment, KEY, 2, owner="a")
    assert store.delete(KEY) is True
    store.open_experiment(experiment, KEY)
    [trial], _ = claim(store, experiment, KEY, 1, owner="b")
    assert (trial.name, trial.number) == ("demo-0000", 0)
    mlmd = _metadata(store)
    contexts = {c.name: c for c in mlmd.get_contexts_by_type("odh.HPOExperiment")}
    assert sorted(contexts) == ["demo", "demo~1"]
    assert contexts["demo"].properties["status"].string_value == "Deleted"
    assert sorted(c.name for c in mlmd.get_contexts_by_type("odh.HPOTrial")) == [
        "demo-0000",
        "demo-0000~1",
        "demo-0001",
    ]
    assert [(s.name, s.trials) for s in store.experiments()] == [("demo", 1)]


def test_a_claimed_again_trial_runs_as_a_new_attempt(store: MlmdStore, experiment: Experiment) -> None:
    store.open_experiment(experiment, KEY)
    [trial], _ = claim(store, experiment, KEY, 1, owner="killed-run")
    store.record(KEY, replace(trial, status="Running"))
    store.release(KEY)
    assert claim(store, experiment, KEY, 1, owner="next-run")[0] == [trial]
    mlmd = _metadata(store)
    executions = {e.name: e for e in mlmd.get_executions_by_type("odh.Train")}
    assert sorted(executions) == ["demo/demo-0000", "demo/demo-0000/attempt-1"]
    assert executions["demo/demo-0000"].last_known_state == pb.Execution.CANCELED
    assert executions["demo/demo-0000/attempt-1"].custom_properties["owner"].string_value == "next-run"
    # Two claimers that read the same released trial: the second finds its attempt taken.
    assert store.release(KEY) == [trial.name]
    stale = store._read(KEY)
    assert stale is not None
    assert [t.number for t in store._take_released(stale, 1, "late-run")] == [0]
    assert store._take_released(stale, 1, "later-run") == []
    owners = {
        e.name: e.custom_properties["owner"].string_value for e in mlmd.get_executions_by_type("odh.Train")
    }
    assert owners["demo/demo-0000/attempt-2"] == "late-run"
    assert store.experiments()[0].stale == 0


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("grpc://metadata-grpc-service", r"must be grpc://HOST:PORT, but got 'grpc://metadata-grpc-service'"),
        ("mlmd+sqlite://relative.sqlite", r"must be grpc://HOST:PORT or mlmd\+sqlite:///PATH"),
    ],
    ids=["grpc-without-port", "sqlite-with-two-slashes"],
)
def test_a_malformed_url_is_refused(url: str, message: str) -> None:
    with pytest.raises(StoreInputError, match=message):
        MlmdStore(url)


def test_a_malformed_type_prefix_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreInputError, match=r"prefix must be letters, .* but got 'odh/'"):
        MlmdStore(f"mlmd+sqlite:///{tmp_path}/m.sqlite", prefix="odh/")


def test_a_key_that_cannot_be_a_name_is_refused(store: MlmdStore) -> None:
    with pytest.raises(StoreInputError, match=r"experiment name: must be a Kubernetes name .* 'a/b'"):
        store.history(ExperimentKey("", "a/b"))


def test_without_ml_metadata_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "ml_metadata", None)
    with pytest.raises(StoreInputError, match=r"pip install --no-deps 'ml-metadata>=1.17.1,<1.18'"):
        MlmdStore(f"mlmd+sqlite:///{tmp_path}/m.sqlite")
