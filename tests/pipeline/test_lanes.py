"""The asynchronous lanes' shape on a cluster: the same few tasks whatever maxTrialCount is, one
run for the whole experiment within Argo's limits (by the project's estimator), a retried lane
task, and the Experiment string given to no lane."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import pytest
import yaml

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
from hpo_kfp.pipeline.generic import CAPACITY_PARALLELISM
from hpo_kfp.pipeline.lanes import LANE_RETRIES
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


def _tasks(path: Path) -> tuple[int, int]:
    """The compiled pipeline's container tasks and DAG tasks (loops, conditions, sub-pipelines)."""
    compiled = yaml.safe_load(path.read_text())
    containers = dags = 0
    for component in [compiled["root"], *compiled["components"].values()]:
        for task in component.get("dag", {}).get("tasks", {}).values():
            name = task["componentRef"]["name"]
            if "dag" in compiled["components"][name]:
                dags += 1
            else:
                containers += 1
    return containers, dags


def _without_spec(path: Path) -> dict[str, Any]:
    """The compiled pipeline but for the Experiment it carries as the spec parameter's default."""
    compiled = yaml.safe_load(path.read_text())
    del compiled["root"]["inputDefinitions"]["parameters"]["spec"]["defaultValue"]
    compiled["pipelineInfo"].pop("description")
    return compiled


def test_the_pipeline_is_the_same_handful_of_tasks_for_100_and_10000_trials(tmp_path: Path) -> None:
    """Issue 26: the loop lives in lane tasks, not in the Argo graph."""
    plans = {n: compile_run(_example(n), _SETTINGS, tmp_path / f"{n}.yaml") for n in (100, 1000, 10_000)}
    shapes = {n: _without_spec(plan.path) for n, plan in plans.items()}
    assert shapes[100] == shapes[1000] == shapes[10_000]
    containers, dags = _tasks(plans[10_000].path)
    assert containers <= 12 and dags <= 2, (containers, dags)
    for plan in plans.values():
        assert not plan.synchronous and plan.share == 0 and not plan.continues  # one run holds it all
        assert plan.end_bytes <= BUDGET_END_BYTES and plan.depth < BUDGET_DEPTH
    assert abs(plans[10_000].end_bytes - plans[100].end_bytes) < 1024  # the spec's digits


@pytest.mark.parametrize("padding", [0, 30], ids=["1.4k-spec", "4.4k-spec"])
def test_a_run_fits_argos_limits_with_every_lane_retried(tmp_path: Path, padding: int) -> None:
    experiment = _example(1000, 10, padding)
    if padding:
        assert _large(experiment) >= LARGE_SPEC_BYTES - 200
    plan = compile_run(experiment, _SETTINGS, tmp_path / "p.yaml")
    ir = load_ir(plan.path)
    [loop] = loop_names(ir)
    estimate = estimate_run(ir, Values.for_experiment(experiment, settings=_SETTINGS), {loop: 10}, retry=True)
    assert estimate.fits(), estimate.describe()
    assert estimate.compressed_bytes < 100 * 1024, estimate.describe()


def test_the_lane_task_is_retried_when_its_pod_is_lost(tmp_path: Path) -> None:
    plan = compile_run(_example(20), _SETTINGS, tmp_path / "p.yaml")
    compiled = yaml.safe_load(plan.path.read_text())
    lanes = [
        task
        for component in compiled["components"].values()
        for task in component.get("dag", {}).get("tasks", {}).values()
        if task["taskInfo"]["name"] == "lane"
    ]
    assert len(lanes) == 1 and lanes[0]["retryPolicy"]["maxRetryCount"] == LANE_RETRIES


def test_a_share_per_run_is_only_what_is_asked_for(tmp_path: Path) -> None:
    plan = compile_run(_example(100), _SETTINGS, tmp_path / "p.yaml", trials_per_run=30)
    assert plan.share == 30 and plan.continues
    compiled = yaml.safe_load(plan.path.read_text())
    settings = compiled["root"]["inputDefinitions"]["parameters"]["settings"]["defaultValue"]
    assert StepSettings.from_json(settings).run_budget == 30


def test_only_start_and_report_receive_the_experiment_string(tmp_path: Path) -> None:
    """Issue 15: every task's string inputs are stored several times in the Workflow; the
    lanes read the spec from the run document artifact."""
    plan = compile_run(_example(50, padding=30), _SETTINGS, tmp_path / "p.yaml")
    compiled = yaml.safe_load(plan.path.read_text())
    receivers = set()
    for component in [compiled["root"], *compiled["components"].values()]:
        for name, task in component.get("dag", {}).get("tasks", {}).items():
            for argument in task.get("inputs", {}).get("parameters", {}).values():
                if argument.get("componentInputParameter") == "spec":
                    receivers.add(name)
    assert receivers == {"start", "report"}


def test_the_generic_pipeline_fits_at_its_capacity() -> None:
    ir = load_ir(_ROOT / "pipelines" / "hpo_experiment.yaml")
    [loop] = loop_names(ir)
    estimate = estimate_run(ir, default_values(LARGE_SPEC_BYTES), {loop: CAPACITY_PARALLELISM})
    assert estimate.fits(), estimate.describe()
    assert estimate.depth < BUDGET_DEPTH


def test_synchronous_rounds_are_the_same_lanes_at_any_size(tmp_path: Path) -> None:
    """Issue 26: --sync (and hyperband) no longer unroll rounds: 400 trials of a large spec
    (refused as 100 unrolled rounds before) compile to the lanes, told to run in rounds."""
    plan = compile_run(_example(400, 4, 30), _SETTINGS, tmp_path / "p.yaml", synchronous=True)
    assert plan.synchronous and plan.share == 0 and plan.end_bytes <= BUDGET_END_BYTES
    compiled = yaml.safe_load(plan.path.read_text())
    settings = StepSettings.from_json(
        compiled["root"]["inputDefinitions"]["parameters"]["settings"]["defaultValue"]
    )
    assert settings.synchronous
    assert _without_spec(plan.path) == _without_spec(
        compile_run(_example(8, 4, 30), _SETTINGS, tmp_path / "q.yaml", synchronous=True).path
    )
