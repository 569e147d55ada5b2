"""KFP-native trials that raise or report a NaN, run by tune() on kfp.local: each is a failed
(or MetricsUnavailable) trial with its reason, the tuning goes on, and maxFailedTrialCount
holds -- the author's pipeline never fails for one trial."""

# No `from __future__ import annotations`: KFP reads the components' annotations.
import json
from pathlib import Path
from typing import Any

import pytest
from kfp import dsl, local
from kfp.dsl import Metrics, Output

import hpo_kfp
from hpo_kfp.compat import kfp_local_fixes


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def fragile_trial(x: int, metrics: Output[Metrics]) -> None:
    """Raises for x <= 0, reports a bare NaN for x=1 (which KFP itself cannot carry), trains otherwise."""
    if x <= 0:
        raise RuntimeError("out of memory")
    metrics.log_metric("loss", float("nan") if x == 1 else float(x))


def _pipeline(store: str, max_failed: int, values: list[int]) -> Any:
    experiment = hpo_kfp.experiment(
        "fragile",
        objective=hpo_kfp.objective("loss", "minimize"),
        algorithm=hpo_kfp.algorithm("grid"),
        parameters=[hpo_kfp.discrete("x", values)],
        max_trials=len(values),
        max_failed=max_failed,
        parallel=2,
    )

    @dsl.pipeline(name="fragile")
    def fragile() -> str:
        tuning = hpo_kfp.tune(experiment, trial=fragile_trial, settings=hpo_kfp.StepSettings(store=store))
        return tuning.outputs["decision"]

    return fragile


@pytest.fixture
def kfp_local(tmp_path: Path) -> None:
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "root"),
        raise_on_error=True,
    )


@pytest.mark.usefixtures("kfp_local")
def test_failing_trials_are_trials_and_the_tuning_goes_on(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'tune.sqlite'}"
    with kfp_local_fixes(2):
        decision = json.loads(_pipeline(store, 3, [0, 1, 2, 3])().output)
    assert (decision["status"], decision["best"]["parameters"]) == ("Succeeded", {"x": 2})
    history = hpo_kfp.store.open_store(store).history(hpo_kfp.store.ExperimentKey("", "fragile"))
    outcomes = {t.parameters["x"]: (t.status, t.reason) for t in history.trials}
    assert outcomes == {
        0: ("Failed", "exit code 1: RuntimeError: out of memory"),
        1: ("MetricsUnavailable", "loss was NaN"),
        2: ("Succeeded", ""),
        3: ("Succeeded", ""),
    }


@pytest.mark.usefixtures("kfp_local")
def test_max_failed_trial_count_ends_the_experiment(tmp_path: Path) -> None:
    """Every trial fails, maxFailedTrialCount 1: the lanes stop claiming once it is reached,
    the experiment fails (Katib's rule) and, with no best to hand on, so does tune()'s best
    step -- after the tuning, not at the first failing trial."""
    store = f"sqlite:///{tmp_path / 'tune.sqlite'}"
    with kfp_local_fixes(2), pytest.raises(RuntimeError, match="best"):
        _pipeline(store, 1, [-4, -3, -2, -1, 0, 1])()
    opened = hpo_kfp.store.open_store(store)
    [summary] = opened.experiments()
    assert (summary.status, summary.reason) == ("Failed", "MaxFailedTrialsReached")
    trials = opened.history(hpo_kfp.store.ExperimentKey("", "fragile")).trials
    assert 1 <= len(trials) <= 3  # at most one more per lane once the first failure is recorded
    assert all(t.status in ("Failed", "MetricsUnavailable") for t in trials)
