"""The asynchronous lanes' shape on a cluster, sized by the project's Argo estimator: a run fits
the budget at the end of its share of trials, nests a bounded depth whatever maxTrialCount is,
and no task but the first receives the Experiment as a string."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpo_kfp.errors import PipelineTooLarge
from hpo_kfp.pipeline.argo_size import (
    BUDGET_DEPTH,
    BUDGET_END_BYTES,
    LARGE_SPEC_BYTES,
    Values,
    default_values,
    estimate_run,
    load_ir,
    loop_names,
)
from hpo_kfp.pipeline.generic import CAPACITY_PARALLELISM, CAPACITY_SLOTS, CAPACITY_TRIALS
from hpo_kfp.pipeline.run_size import compile_run
from hpo_kfp.spec import Experiment, parse_experiment
from hpo_kfp.steps.settings import StepSettings

_ROOT = Path(__file__).resolve().parents[2]
_SETTINGS = StepSettings(runner="kubernetes", store="grpc://metadata-grpc-service.kubeflow:8080")


@functools.cache
def _example(max_trials: int, parallel: int = 4, padding: int = 0) -> Experiment:
    """The sklearn example with its counts changed and, with ``padding``, a trial template
    made bigger by environment variables (a PyTorchJob-sized spec)."""
    document = yaml.safe_load((_ROOT / "examples" / "sklearn-digits" / "experiment.yaml").read_text())
    document = copy.deepcopy(document)
    document["spec"]["maxTrialCount"] = max_trials
    document["spec"]["parallelTrialCount"] = parallel
    if padding:
        container = document["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][
            0
        ]
        container["env"] = [{"name": f"PAD_{i}", "value": "x" * 90} for i in range(padding)]
    return parse_experiment(document)


def _large(experiment: Experiment) -> int:
    import json

    return len(json.dumps(experiment.source, separators=(",", ":")))


def _worst_case(path: Path, experiment: Experiment, trials: int, lanes: int) -> Any:
    """The estimate of a run whose lanes each ran ``trials / lanes`` trials or more: every
    lane entering every slot is the estimator's worst case, so ``lanes`` full lanes."""
    ir = load_ir(path)
    [loop] = loop_names(ir)
    return estimate_run(ir, Values.for_experiment(experiment, settings=_SETTINGS), {loop: lanes})


@pytest.mark.parametrize("padding", [0, 30], ids=["1.4k-spec", "4.4k-spec"])
def test_a_run_of_any_experiment_fits_the_budget_and_the_depth(tmp_path: Path, padding: int) -> None:
    experiment = _example(1000, 4, padding)
    if padding:
        assert _large(experiment) >= LARGE_SPEC_BYTES - 200
    plan = compile_run(experiment, _SETTINGS, tmp_path / "p.yaml")
    assert plan.asynchronous and plan.continues and 1 <= plan.share < 1000
    assert plan.depth < BUDGET_DEPTH
    assert plan.end_bytes <= BUDGET_END_BYTES
    # Check the planner's linear model against the estimator: lanes of full slots holding
    # the share (rounded up to whole lanes, so a little over the share).
    lanes = -(-plan.share // plan.slots)
    estimate = _worst_case(plan.path, experiment, plan.share, lanes)
    assert estimate.end_bytes <= BUDGET_END_BYTES * 1.1, estimate.describe()
    assert estimate.depth == plan.depth
    # The share is written into the pipeline's default settings: a run stops claiming there.
    compiled = yaml.safe_load(plan.path.read_text())
    settings = compiled["root"]["inputDefinitions"]["parameters"]["settings"]["defaultValue"]
    assert StepSettings.from_json(settings).run_budget == plan.share


@pytest.mark.slow
def test_depth_does_not_grow_with_max_trial_count(tmp_path: Path) -> None:
    depths = {
        trials: compile_run(_example(trials), _SETTINGS, tmp_path / f"{trials}.yaml").depth
        for trials in (100, 1000, 100_000)
    }
    assert len(set(depths.values())) == 1 and max(depths.values()) < BUDGET_DEPTH


def test_a_small_experiment_runs_whole_with_room_for_uneven_lanes(tmp_path: Path) -> None:
    plan = compile_run(_example(12, 3), _SETTINGS, tmp_path / "p.yaml")
    assert plan.share == 0 and not plan.continues
    assert plan.slots == 12  # one lane could run every trial while the others run long ones


def test_only_the_first_step_receives_the_experiment_string(tmp_path: Path) -> None:
    """Issue 15: every task's string inputs are stored several times in the Workflow; the
    spec reaches the steps as the run document artifact."""
    plan = compile_run(_example(50, padding=30), _SETTINGS, tmp_path / "p.yaml")
    compiled = yaml.safe_load(plan.path.read_text())
    receivers = set()
    for component in [compiled["root"], *compiled["components"].values()]:
        for name, task in component.get("dag", {}).get("tasks", {}).items():
            for argument in task.get("inputs", {}).get("parameters", {}).values():
                if argument.get("componentInputParameter") == "spec":
                    receivers.add(name)
    assert receivers == {"start"}
    estimate = _worst_case(plan.path, _example(50, padding=30), plan.share, 1)
    assert estimate.largest_argument_bytes < 32 * 1024


def test_the_generic_pipeline_fits_at_its_capacity() -> None:
    ir = load_ir(_ROOT / "pipelines" / "hpo_experiment.yaml")
    [loop] = loop_names(ir)
    # Its share is spent by CAPACITY_TRIALS / CAPACITY_SLOTS full lanes at the most.
    lanes = -(-CAPACITY_TRIALS // CAPACITY_SLOTS)
    assert lanes <= CAPACITY_PARALLELISM
    estimate = estimate_run(ir, default_values(LARGE_SPEC_BYTES), {loop: lanes})
    assert estimate.fits(), estimate.describe()
    assert estimate.depth < BUDGET_DEPTH


@pytest.mark.slow
def test_synchronous_rounds_that_cannot_fit_are_refused_naming_the_figure(tmp_path: Path) -> None:
    with pytest.raises(PipelineTooLarge, match=r"must be at most 700 KiB, but is estimated at \d+ KiB"):
        compile_run(_example(400, 4, 30), _SETTINGS, tmp_path / "p.yaml", synchronous=True)
    plan = compile_run(
        _example(400, 4, 30), _SETTINGS, tmp_path / "p.yaml", synchronous=True, trials_per_run=12
    )
    assert plan.rounds == 3 and plan.share == 12 and plan.end_bytes <= BUDGET_END_BYTES
