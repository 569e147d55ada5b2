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
    ir = load_ir(output)
    [loop] = loop_names(ir)
    values = Values.for_experiment(parse_experiment(yaml.safe_load(spec.read_text())), settings=SETTINGS)
    slots = re.search(r"lanes of up to (\d+) trials", printed)
    share = re.search(r"one run holds (\d+) of", printed)
    held = int(share.group(1)) if share else trials
    # Trials one lane runs in a run: its slots (unrolled), or its part of the run (a lane task).
    per_lane = int(slots.group(1)) if slots else math.ceil(held / PARALLEL)
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
    args = parser.parse_args()
    info = C.machine()
    begun = time.perf_counter()
    sizes = (100,) if args.quick else (100, 1000, 10_000)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hpo-cluster-cost-") as name:
        folder = Path(name)
        old = folder / "before"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(old), args.before],
            cwd=C.ROOT,
            check=True,
            capture_output=True,
        )
        try:
            for trials in sizes:
                results.append(measure(old, f"before ({args.before}: slots)", folder, trials))
                results.append(measure(C.ROOT, "after (lane tasks)", folder, trials))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=C.ROOT, check=False)
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
