"""A KFP-native trial whose objective is NaN, run on kfp.local: the trial is recorded as
``MetricsUnavailable`` ("loss was NaN") and the run goes on; a bare NaN fails it, as the
README says."""

# No `from __future__ import annotations`: KFP reads the components' annotations.
import json
from pathlib import Path

import pytest
from google.protobuf.json_format import SerializeToJsonError
from kfp import dsl, local
from kfp.dsl import Metrics, Output

import hpo_kfp
from hpo_kfp.pipeline.components import collect_native_metrics_op
from hpo_kfp.wire import RecordedTrial, TrialItem

_SPEC = json.dumps(
    hpo_kfp.experiment(
        "native-nan",
        objective=hpo_kfp.objective("loss", "minimize", additional_metrics=["accuracy"]),
        parameters=[hpo_kfp.double("lr", 0.01, 0.05)],
        max_trials=2,
        parallel=1,
    ).source
)
_ITEM = TrialItem(name="native-nan-0000", number=0, parameters={"lr": 0.02}).to_json()


@dsl.component(base_image="REGISTRY/hpo-kfp:0.1.0", install_kfp_package=False)
def diverging_trial(lr: float, metrics: Output[Metrics]) -> None:
    """A trial whose training diverged, reporting through hpo-kfp's helper."""
    from hpo_kfp.metrics import log_metric

    log_metric(metrics, "loss", float("nan"))
    log_metric(metrics, "accuracy", lr * 10)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def diverging_trial_without_hpo_kfp(lr: float, metrics: Output[Metrics]) -> None:
    """The same, in an image without hpo-kfp: the marker written by hand."""
    metrics.metadata["loss"] = "NaN"


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def bare_nan_trial(lr: float, metrics: Output[Metrics]) -> None:
    metrics.log_metric("loss", float("nan"))


def _pipeline(trial: object) -> object:
    @dsl.pipeline(name="native-nan")
    def recorded() -> str:
        reported = trial(lr=0.02)  # type: ignore[operator]
        collected = collect_native_metrics_op()(
            spec=_SPEC, settings="", run_id="local", trial=_ITEM, trial_metrics=reported.outputs["metrics"]
        )
        return collected.outputs["Output"]

    return recorded


@pytest.fixture
def kfp_local(tmp_path: Path) -> None:
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "root"),
        raise_on_error=True,
    )


@pytest.mark.parametrize(
    ("trial", "metrics"),
    [(diverging_trial, {"accuracy": 0.2}), (diverging_trial_without_hpo_kfp, {})],
    ids=["log_metric", "marker-by-hand"],
)
@pytest.mark.usefixtures("kfp_local")
def test_a_nan_objective_is_recorded_as_metrics_unavailable(trial: object, metrics: dict) -> None:
    run = _pipeline(trial)()  # type: ignore[operator]
    record = RecordedTrial.from_json(run.output).record
    assert (record.name, record.status, record.reason) == (
        "native-nan-0000",
        "MetricsUnavailable",
        "loss was NaN",
    )
    assert record.values is None and record.parameters == {"lr": 0.02}


@pytest.mark.usefixtures("kfp_local")
def test_a_bare_nan_in_metrics_fails_the_run_as_documented() -> None:
    """KFP itself cannot carry a NaN number: the README sends users to log_metric."""
    with pytest.raises(SerializeToJsonError, match="Fail to serialize NaN"):
        _pipeline(bare_nan_trial)()  # type: ignore[operator]
