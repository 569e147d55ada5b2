"""What a run costs at both ends: a done experiment, and a long one.

* **goal at trial 1**: an experiment of ``maxTrialCount: 200``, 2 at a time, whose first
  trial meets the goal — ``hpo-kfp run --local`` from start to exit (compile included), and
  the same command again once the experiment is done. Issue 15's target: at most 5 s.
* **1000 trials**: instant trials, 4 at a time — one ``hpo-kfp run --local`` (one run of 4
  lane tasks since issue 26; before it, chained runs of up to 40 trials a lane): wall time,
  runs, seconds per trial (issue 26's target: at most 0.1 s), and that the trial numbers are
  exactly 0..999.

Trials are ``_trial.py`` (sleep 0 s, print the loss).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C

TRIAL = C.BENCH_DIR / "_trial.py"


def experiment(trials: int, parallel: int, goal: float | None) -> dict[str, Any]:
    command = ["python3", str(TRIAL), "--x=${trialParameters.x}", "--y=${trialParameters.y}"]
    document = C.experiment_document(
        "run-length",
        [C.double("x", -4, 4), C.double("y", -4, 4)],
        algorithm="random",
        seed=1,
        max_trials=trials,
        parallel=parallel,
        command=command,
    )
    if goal is not None:
        document["spec"]["objective"]["goal"] = goal
    return document


def run(folder: Path, document: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    spec = folder / "experiment.yaml"
    spec.write_text(json.dumps(document))
    argv = [sys.executable, "-m", "hpo_kfp", "run", str(spec), "--local", "--json", "--workdir", str(folder)]
    started = time.perf_counter()
    done = subprocess.run(argv, check=True, capture_output=True, text=True, cwd=folder)
    return time.perf_counter() - started, json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    args = C.parser(__doc__ or "").parse_args()
    info = C.machine()
    begun = time.perf_counter()
    rows: list[list[Any]] = []
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="hpo-run-length-") as name:
        folder = Path(name)
        # Every loss is <= 4^2 + 6^2 = 52: a goal of 100 is met by the first trial to end.
        first, outcome = run(folder, experiment(200, 2, goal=100.0))
        again, _ = run(folder, experiment(200, 2, goal=100.0))
        results["goal_at_trial_1"] = {"wall_s": first, "rerun_s": again, "trials": outcome["trials"]["total"]}
        rows.append(
            ["goal met by trial 1 of 200, 2 at a time", f"{first:.1f}", outcome["trials"]["total"], ""]
        )
        rows.append(["the same, experiment already done", f"{again:.1f}", 0, ""])
    with tempfile.TemporaryDirectory(prefix="hpo-run-length-") as name:
        folder = Path(name)
        trials = 40 if args.quick else 1000
        wall, outcome = run(folder, experiment(trials, 4, goal=None))
        logs = list(folder.glob("run-length/*/kfp-local*.log"))
        from hpo_kfp.store import ExperimentKey, open_store

        numbers = [
            t.number
            for t in open_store(f"sqlite:///{folder / 'hpo-kfp.sqlite'}")
            .history(ExperimentKey("", "run-length"))
            .trials
        ]
        exact = numbers == list(range(trials))
        results["long"] = {
            "trials": trials,
            "wall_s": wall,
            "runs": len(logs),
            "numbers_exact": exact,
            "succeeded": outcome["trials"]["succeeded"],
        }
        rows.append(
            [
                f"{trials} instant trials, 4 at a time, one command",
                f"{wall:.1f}",
                outcome["trials"]["succeeded"],
                f"{len(logs)} runs, {wall / trials:.2f} s/trial, "
                f"numbers 0..{trials - 1} exactly once: {exact}",
            ]
        )
    text = C.table(["case", "wall s", "trials", "notes"], rows)
    elapsed = time.perf_counter() - begun
    C.publish(args, "run_length", info, elapsed, text, results=results)
    if args.write:
        C.write_section(
            "run_length",
            "A done experiment, and a long one",
            f"`{C.command_line()}`\n\n{C.machine_text(info, elapsed)}\n\n{text}",
        )


if __name__ == "__main__":
    main()
