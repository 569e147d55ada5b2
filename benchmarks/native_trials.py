"""``tune()`` with a KFP component as the trial, on kfp.local: before and after component trials.

The same pipeline (``tune()`` of a 2-parameter experiment, 4 at a time, an instant
``-> float`` component taking a pipeline-parameter argument) is built and run by this
checkout and by the commit given with ``--before`` (default: the last commit whose lanes
unrolled a component trial into slots: per trial a claim task, an unpacking task, the
author's task and a record task), each in a fresh process of its own (``git worktree``),
interleaved repeat by repeat. Wall time of the run as the process measures it (the pipeline
call), per trial.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C

BEFORE = "a4cd27a"
"""The last commit whose tune() unrolled a component trial into slots."""

_SCRIPT = """
import json, sys, tempfile, time
from pathlib import Path

from kfp import dsl, local

import hpo_kfp
from hpo_kfp.compat import kfp_local_fixes


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def train(lr: float, layers: int, data: str) -> float:
    return (lr - 0.03) ** 2 + layers + len(data)


trials = int(sys.argv[1])
experiment = hpo_kfp.experiment(
    "native",
    objective=hpo_kfp.objective("loss", "minimize"),
    parameters=[hpo_kfp.double("lr", 0.01, 0.1), hpo_kfp.integer("layers", 1, 5)],
    max_trials=trials,
    parallel=4,
)
folder = Path(tempfile.mkdtemp())


@dsl.pipeline(name="native")
def pipeline(data: str = "d") -> float:
    settings = hpo_kfp.StepSettings(store=f"sqlite:///{folder}/store.sqlite")
    return hpo_kfp.tune(experiment, trial=train, trial_arguments={"data": data}, settings=settings).outputs[
        "best_objective"
    ]


local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(folder / "root"))
begun = time.perf_counter()
with kfp_local_fixes(4):
    best = pipeline().output
seconds = time.perf_counter() - begun
store = hpo_kfp.store.open_store(f"sqlite:///{folder}/store.sqlite")
[summary] = store.experiments()
print(json.dumps({"seconds": seconds, "best": best, "trials": summary.trials}))
"""


def run(tree: Path, folder: Path, trials: int) -> dict[str, Any]:
    """One run of the pipeline built by the checkout at ``tree``, in a process of its own."""
    script = folder / "native_pipeline.py"
    script.write_text(_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(trials)],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = C.parser(__doc__ or "")
    parser.add_argument("--before", default=BEFORE, help=f"the commit to compare with (default: {BEFORE})")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    trials, repeats = (8, 1) if args.quick else (args.trials, args.repeats)
    info = C.machine()
    begun = time.perf_counter()
    sides: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="hpo-native-") as name:
        folder = Path(name)
        with C.worktree(args.before, folder / "before") as old:
            trees = {f"before ({args.before}: slots)": old, "after (component trials)": C.ROOT}
            for repeat in range(repeats):
                order = list(trees) if repeat % 2 == 0 else list(reversed(trees))
                for label in order:
                    C.log(f"{label}, repeat {repeat + 1}")
                    sides.setdefault(label, []).append(run(trees[label], folder, trials))
    rows = []
    for label, runs in sides.items():
        seconds = [r["seconds"] for r in runs]
        rows.append(
            [
                label,
                runs[0]["trials"],
                f"{C.median(seconds):.1f}",
                f"{min(seconds):.1f}–{max(seconds):.1f}",
                f"{C.median(seconds) / trials:.2f}",
            ]
        )
    text = C.table(["side", "trials recorded", "run s (median)", "range", "s per trial"], rows)
    elapsed = time.perf_counter() - begun
    C.publish(args, "native_trials", info, elapsed, text, sides=sides, trials=trials)
    if args.write:
        C.write_section(
            "native_trials",
            f"tune() with a component trial on kfp.local: {trials} instant trials, 4 at a time",
            f"`{C.command_line()}`\n\n{C.machine_text(info, elapsed)}\n\n{text}",
        )


if __name__ == "__main__":
    main()
