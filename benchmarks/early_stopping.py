"""Trial-seconds saved by median stopping and by Hyperband, against plain TPE on one task.

Every side runs the same task through `hpo-kfp run --local` (the compiled pipeline on
kfp.local, trials as processes): `_epochs_trial.py`, whose loss falls with each 0.1-second
epoch towards a value set by `lr` and `momentum`. Each side runs 22 trials, 9 at a time
(the size of Hyperband's schedule for R = 9 epochs, eta = 3):

- `tpe`: every trial trains the full 9 epochs;
- `tpe+medianstop`: the same, with Katib's median stopping (min_trials_required 3,
  start_step 3);
- `hyperband`: the published schedule, epochs as the resource (rungs 9@1, 3@3, 1@9, 5@3,
  1@9, 3@9).

Trial-seconds are the trials' own durations, summed (from the metadata store); the best is
the best final loss of a trial that trained 9 epochs, so the sides compare like with like.
Medians over seeds; the three sides run interleaved, seed by seed.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

from hpo_kfp.store import ExperimentKey, open_store

_SIDES = ("tpe", "tpe+medianstop", "hyperband")


def _document(side: str, seed: int) -> dict[str, Any]:
    epochs = {"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "9", "max": "9"}}
    algorithm: dict[str, Any] = {
        "algorithmName": "tpe",
        "algorithmSettings": [{"name": "random_state", "value": str(seed)}],
    }
    if side == "hyperband":
        epochs["feasibleSpace"] = {"min": "1", "max": "9"}
        algorithm = {
            "algorithmName": "hyperband",
            "algorithmSettings": [
                {"name": "resource_name", "value": "epochs"},
                {"name": "r_l", "value": "9"},
                {"name": "eta", "value": "3"},
                {"name": "random_state", "value": str(seed)},
            ],
        }
    spec: dict[str, Any] = {
        "objective": {
            "type": "minimize",
            "objectiveMetricName": "loss",
            "metricStrategies": [{"name": "loss", "value": "latest"}],
        },
        "algorithm": algorithm,
        "parallelTrialCount": 9,
        "maxTrialCount": 22,
        "parameters": [
            {
                "name": "lr",
                "parameterType": "double",
                "feasibleSpace": {"min": "0.0001", "max": "1", "distribution": "logUniform"},
            },
            {"name": "momentum", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}},
            epochs,
        ],
        "trialTemplate": {
            "primaryContainerName": "main",
            "trialParameters": [{"name": n, "reference": n} for n in ("lr", "momentum", "epochs")],
            "trialSpec": {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [
                                {
                                    "name": "main",
                                    "command": [
                                        "python3",
                                        "_epochs_trial.py",
                                        "--lr=${trialParameters.lr}",
                                        "--momentum=${trialParameters.momentum}",
                                        "--epochs=${trialParameters.epochs}",
                                    ],
                                }
                            ],
                        }
                    }
                },
            },
        },
    }
    if side == "tpe+medianstop":
        spec["earlyStopping"] = {
            "algorithmName": "medianstop",
            "algorithmSettings": [
                {"name": "min_trials_required", "value": "3"},
                {"name": "start_step", "value": "3"},
            ],
        }
    name = f"es-{side.replace('+', '-')}-{seed}"
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": spec,
    }


def _run(side: str, seed: int, workdir: Path) -> dict[str, Any]:
    document = _document(side, seed)
    spec = _common.BENCH_DIR / f"_{document['metadata']['name']}.yaml"  # beside the trial script
    spec.write_text(yaml.safe_dump(document))
    started = time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "hpo_kfp", "run", str(spec), "--local", "--workdir", str(workdir)],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        spec.unlink()
    wall = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"{side} seed {seed} failed:\n{result.stdout}\n{result.stderr}")
    history = open_store(f"sqlite:///{workdir / 'hpo-kfp.sqlite'}").history(
        ExperimentKey("", document["metadata"]["name"])
    )
    full = [
        t.objective for t in history.trials if t.objective is not None and t.parameters.get("epochs") == 9
    ]
    return {
        "side": side,
        "seed": seed,
        "trials": len(history.trials),
        "early_stopped": history.count("EarlyStopped"),
        "trial_seconds": sum(t.duration or 0.0 for t in history.trials),
        "best_full": min(full) if full else float("nan"),
        "wall": wall,
    }


def main() -> None:
    args_parser = _common.parser(__doc__.splitlines()[0])
    args_parser.add_argument("--seeds", type=int, default=3)
    args = args_parser.parse_args()
    seeds = 1 if args.quick else args.seeds
    info = _common.machine()
    began = time.monotonic()
    runs = []
    with tempfile.TemporaryDirectory(prefix="hpo-kfp-es-") as folder:
        for seed in range(seeds):
            for side in _SIDES:
                _common.log(f"{side}, seed {seed}")
                runs.append(_run(side, seed, Path(folder)))
    elapsed = time.monotonic() - began
    baseline = statistics.median(r["trial_seconds"] for r in runs if r["side"] == "tpe")
    rows, summary = [], {}
    for side in _SIDES:
        mine = [r for r in runs if r["side"] == side]
        seconds = statistics.median(r["trial_seconds"] for r in mine)
        summary[side] = {
            "trials": statistics.median(r["trials"] for r in mine),
            "early_stopped": statistics.median(r["early_stopped"] for r in mine),
            "trial_seconds": seconds,
            "saved": 1 - seconds / baseline,
            "best_full": statistics.median(r["best_full"] for r in mine),
            "wall": statistics.median(r["wall"] for r in mine),
        }
        s = summary[side]
        rows.append(
            [
                side,
                len(mine),
                s["trials"],
                s["early_stopped"],
                s["trial_seconds"],
                f"{100 * s['saved']:.0f}%",
                s["best_full"],
                s["wall"],
            ]
        )
    text = _common.table(
        [
            "side",
            "seeds",
            "trials",
            "early-stopped",
            "trial-seconds",
            "saved vs tpe",
            "best (9 epochs)",
            "wall s",
        ],
        rows,
    )
    _common.emit(args, {"runs": runs, "summary": summary, "machine": info}, text)
    if args.write:
        info["loadavg_end"] = _common.machine()["loadavg_start"]
        body = (
            f"Command: `{_common.command_line()}`\n\n{_common.machine_text(info, elapsed)}\n\n"
            f"{__doc__.split(chr(10), 1)[1].strip()}\n\nMedians over {seeds} seeds:\n\n{text}\n"
        )
        _common.write_section("early_stopping", "Early stopping and Hyperband (`early_stopping.py`)", body)


if __name__ == "__main__":
    main()
