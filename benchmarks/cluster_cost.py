"""What a tuning run costs a KFP 2.17 cluster, before and after lane tasks (issue 26).

For the sklearn example at maxTrialCount 100, 1,000 and 10,000 (4 at a time), the pipeline
``hpo-kfp compile`` writes is compiled twice in one run of this script: by this checkout
and by the commit given with ``--before`` (default: the last commit before lane tasks, whose
lanes were unrolled into slots), each in its own ``git worktree``. Both compiled pipelines
are then measured by this checkout's estimator (``hpo_kfp/pipeline/argo_size.py``, ±40 %
against a real cluster) the same way:

* container and DAG tasks in the compiled pipeline (its IR);
* KFP pods per trial: every container task is a driver pod and an executor pod, every DAG
  task a driver pod (the estimator's ``Pod`` nodes), for one lane running all its trials,
  divided by those trials -- the trial's own objects come on top in both shapes;
* the Argo Workflow: its spec, and what Argo stores at the end of a run (the node status
  gzipped past 1 MiB), with a run's worst case (every lane running every trial it can hold);
* runs: how many runs the experiment takes (a run held a share of it before).

Then the same for ``tune()`` with a KFP component as the trial (an author's pipeline, same
sizes): before, each lane unrolled its slots (at most 40) into the author's pipeline, the
component's task in each; after, the lanes run the component's container as each trial's Job.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C

from hpo_kfp.pipeline.argo_size import Values, estimate_run, load_ir, loop_names, run_status
from hpo_kfp.spec import parse_experiment
from hpo_kfp.steps.settings import StepSettings

BEFORE = "99150ef"
"""The last commit whose lanes were unrolled into slots (one per trial)."""

BEFORE_NATIVE = "a4cd27a"
"""The last commit whose tune() unrolled a component trial into slots."""

SETTINGS = StepSettings(runner="kubernetes", store="grpc://metadata-grpc-service.kubeflow:8080")
PARALLEL = 4


def _experiment(folder: Path, trials: int) -> Path:
    document = yaml.safe_load((C.ROOT / "examples" / "sklearn-digits" / "experiment.yaml").read_text())
    document["spec"]["maxTrialCount"] = trials
    document["spec"]["parallelTrialCount"] = PARALLEL
    path = folder / f"experiment-{trials}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _compile(tree: Path, spec: Path, output: Path) -> str:
    """``hpo-kfp compile`` of the checkout at ``tree``; returns what it printed."""
    environment = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-m", "hpo_kfp", "compile", str(spec), "-o", str(output)],
        cwd=tree,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


_TUNE_SCRIPT = """
import sys

from kfp import compiler, dsl

import hpo_kfp


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def train(lr: float, layers: int, data: str) -> float:
    return lr * layers


experiment = hpo_kfp.experiment(
    "native",
    objective=hpo_kfp.objective("loss", "minimize"),
    parameters=[hpo_kfp.double("lr", 0.01, 0.1), hpo_kfp.integer("layers", 1, 5)],
    max_trials=int(sys.argv[1]),
    parallel=int(sys.argv[2]),
)


@dsl.pipeline(name="tune-then-train")
def pipeline(data: str = "digits") -> float:
    settings = hpo_kfp.StepSettings(runner="kubernetes", store="postgresql://hpo@db/hpo")
    tuning = hpo_kfp.tune(experiment, trial=train, trial_arguments={"data": data}, settings=settings)
    return tuning.outputs["best_objective"]


compiler.Compiler().compile(pipeline, sys.argv[3])
"""


def _compile_tune(tree: Path, folder: Path, trials: int, output: Path) -> None:
    """A ``tune()`` pipeline with a component trial, built by the checkout at ``tree``."""
    script = folder / "tune_pipeline.py"
    script.write_text(_TUNE_SCRIPT)
    subprocess.run(
        [sys.executable, str(script), str(trials), str(PARALLEL), str(output)],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=True,
    )


def measure_tune(tree: Path, label: str, folder: Path, trials: int) -> dict[str, Any]:
    output = folder / f"tune-{label}-{trials}.yaml".replace(" ", "_")
    _compile_tune(tree, folder, trials, output)
    # The pipeline's inputs are constants; the values only size what its tasks hand on.
    values = Values.for_experiment(yaml.safe_load(_experiment(folder, trials).read_text()), settings=SETTINGS)
    # One lane runs its slots (unrolled: at most 40 a run) or its part of the experiment.
    per_lane = min(trials, 40) if label.startswith("before") else math.ceil(trials / PARALLEL)
    held = min(trials, 40 * PARALLEL) if label.startswith("before") else trials
    return _row(f"tune(), {label}", trials, output, values, per_lane, held)


def _tasks(ir: dict[str, Any]) -> tuple[int, int]:
    containers = dags = 0
    for component in [ir["root"], *ir["components"].values()]:
        for task in component.get("dag", {}).get("tasks", {}).values():
            if "dag" in ir["components"][task["componentRef"]["name"]]:
                dags += 1
            else:
                containers += 1
    return containers, dags


def _pods(ir: dict[str, Any], values: Values, loop: str, lanes: int) -> int:
    nodes = run_status(ir, values, {loop: lanes})
    return sum(1 for node in nodes.values() if node["type"] == "Pod")


def measure(tree: Path, label: str, folder: Path, trials: int) -> dict[str, Any]:
    spec = _experiment(folder, trials)
    output = folder / f"{label}-{trials}.yaml"
    printed = _compile(tree, spec, output)
    values = Values.for_experiment(parse_experiment(yaml.safe_load(spec.read_text())), settings=SETTINGS)
    slots = re.search(r"lanes of up to (\d+) trials", printed)
    share = re.search(r"one run holds (\d+) of", printed)
    held = int(share.group(1)) if share else trials
    # Trials one lane runs in a run: its slots (unrolled), or its part of the run (a lane task).
    per_lane = int(slots.group(1)) if slots else math.ceil(held / PARALLEL)
    return _row(label, trials, output, values, per_lane, held)


def _row(label: str, trials: int, output: Path, values: Values, per_lane: int, held: int) -> dict[str, Any]:
    """The measures of the compiled pipeline at ``output``: one lane runs ``per_lane`` of the
    ``held`` trials of a run."""
    ir = load_ir(output)
    loop = loop_names(ir)[0]
    lane_pods = _pods(ir, values, loop, 2) - _pods(ir, values, loop, 1)
    worst = estimate_run(ir, values, {loop: PARALLEL})
    containers, dags = _tasks(ir)
    return {
        "shape": label,
        "trials": trials,
        "container_tasks": containers,
        "dag_tasks": dags,
        "pods_per_trial": lane_pods / per_lane,
        "spec_kib": worst.spec_bytes / 1024,
        "end_kib": worst.end_bytes / 1024,
        "runs": math.ceil(trials / held),
        "pipeline_kib": output.stat().st_size / 1024,
    }


def main() -> None:
    parser = C.parser(__doc__ or "")
    parser.add_argument("--before", default=BEFORE, help=f"the commit to compare with (default: {BEFORE})")
    parser.add_argument(
        "--before-native",
        default=BEFORE_NATIVE,
        help=f"the commit to compare tune() with a component trial with (default: {BEFORE_NATIVE})",
    )
    args = parser.parse_args()
    info = C.machine()
    begun = time.perf_counter()
    sizes = (100,) if args.quick else (100, 1000, 10_000)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hpo-cluster-cost-") as name:
        folder = Path(name)
        with C.worktree(args.before, folder / "before") as old:
            for trials in sizes:
                results.append(measure(old, f"before ({args.before}: slots)", folder, trials))
                results.append(measure(C.ROOT, "after (lane tasks)", folder, trials))
        with C.worktree(args.before_native, folder / "before-native") as native:
            for trials in sizes:
                label = f"before ({args.before_native}: slots)"
                results.append(measure_tune(native, label, folder, trials))
                results.append(measure_tune(C.ROOT, "after (component trials)", folder, trials))
    rows = [
        [
            r["shape"],
            r["trials"],
            r["container_tasks"],
            r["dag_tasks"],
            f"{r['pods_per_trial']:.2f}",
            f"{r['spec_kib']:.0f}",
            f"{r['end_kib']:.0f}",
            r["runs"],
            f"{r['pipeline_kib']:.0f}",
        ]
        for r in results
    ]
    text = C.table(
        [
            "shape",
            "maxTrialCount",
            "container tasks",
            "DAG tasks",
            "KFP pods per trial",
            "Argo spec KiB",
            "Workflow KiB at the end of a run",
            "runs",
            "pipeline KiB",
        ],
        rows,
    )
    elapsed = time.perf_counter() - begun
    C.publish(args, "cluster_cost", info, elapsed, text, results=results)
    if args.write:
        C.write_section(
            "cluster_cost",
            "Cluster cost per shape: tasks, KFP pods per trial, Argo size, runs",
            f"`{C.command_line()}`\n\n{C.machine_text(info, elapsed)}\n\n{text}",
        )


if __name__ == "__main__":
    main()
