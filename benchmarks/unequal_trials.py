"""Wall time with trials of unequal length, against the scheduling floor.

Each case draws T trial durations (seconds) from a distribution, the same list for every
side; a trial sleeps the duration of its number (``_unequal_trial.py``) and logs when it ran.
The floor of a case is what an ideal asynchronous scheduler of P slots needs:
``max(sum of durations / P, longest)``, from the durations the trials themselves logged. A
side's ratio is its wall time over that floor:

* ``lanes``  — ``hpo-kfp run FILE --local`` (the asynchronous lanes), timed from outside,
  compile and start-up included; ``lanes loop`` — the same run from its first trial's start to
  its last trial's end (what the loop itself costs);
* ``sync``   — ``hpo-kfp run FILE --local --sync`` (synchronous rounds), timed the same way;
* ``optuna`` — ``study.optimize(n_jobs=P)``, TPE, each trial the same script as a subprocess.

Cases: uniform 0.5–3.5 s (issue 15's), uniform 1–3 s, lognormal σ 0.5 and σ 1 (median 2 s),
and "half stopped early" (half the trials at a quarter of a 2 s trial), 16 trials at 4 at a time
and 32 at 8. Everything runs on this machine's 2 cores, the steps' own processes included.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C

TRIAL = C.BENCH_DIR / "_unequal_trial.py"
SIDES = ("lanes", "sync", "optuna")


def durations(kind: str, count: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    if kind == "uniform 0.5-3.5":
        return [round(rng.uniform(0.5, 3.5), 3) for _ in range(count)]
    if kind == "uniform 1-3":
        return [round(rng.uniform(1, 3), 3) for _ in range(count)]
    if kind.startswith("lognormal"):
        sigma = float(kind.split("σ")[1])
        return [round(2 * rng.lognormvariate(0, sigma), 3) for _ in range(count)]
    if kind == "half stopped early":
        return [0.5 if i % 2 else 2.0 for i in range(count)]
    raise ValueError(kind)


def floor(log: Path, parallel: int) -> tuple[float, float, int]:
    """(floor, span from first start to last end, trials logged) from a trial log."""
    runs = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    spent = [r["end"] - r["start"] for r in runs]
    span = max(r["end"] for r in runs) - min(r["start"] for r in runs)
    return max(sum(spent) / parallel, *spent), span, len(runs)


def hpo_kfp(folder: Path, trials: int, parallel: int, times: Path, log: Path, sync: bool) -> float:
    command = [
        "python3",
        str(TRIAL),
        "--x=${trialParameters.x}",
        "--y=${trialParameters.y}",
        f"--durations={times}",
        f"--log={log}",
    ]
    document = C.experiment_document(
        "unequal",
        [C.double("x", -4, 4), C.double("y", -4, 4)],
        algorithm="tpe",
        seed=1,
        max_trials=trials,
        parallel=parallel,
        command=command,
    )
    spec = folder / "experiment.yaml"
    spec.write_text(json.dumps(document))
    argv = [sys.executable, "-m", "hpo_kfp", "run", str(spec), "--local", "--workdir", str(folder / "runs")]
    started = time.perf_counter()
    subprocess.run([*argv, *(["--sync"] if sync else [])], check=True, capture_output=True, cwd=folder)
    return time.perf_counter() - started


def optuna_side(trials: int, parallel: int, times: Path, log: Path) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=1, constant_liar=True))
    lock = threading.Lock()

    def objective(trial: optuna.Trial) -> float:
        x, y = trial.suggest_float("x", -4, 4), trial.suggest_float("y", -4, 4)
        with lock:
            number = trial.number
        out = subprocess.run(
            [
                sys.executable,
                str(TRIAL),
                f"--x={x}",
                f"--y={y}",
                f"--durations={times}",
                f"--log={log}",
                f"--number={number}",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return float(out.stdout.split("loss=")[-1])

    started = time.perf_counter()
    study.optimize(objective, n_trials=trials, n_jobs=parallel)
    return time.perf_counter() - started


def main() -> None:
    parser = C.parser(__doc__ or "")
    parser.add_argument("--sides", default=",".join(SIDES))
    args = parser.parse_args()
    kinds = (
        ["uniform 0.5-3.5"]
        if args.quick
        else ["uniform 0.5-3.5", "uniform 1-3", "lognormal σ0.5", "lognormal σ1", "half stopped early"]
    )
    shapes = [(16, 4)] if args.quick else [(16, 4), (32, 8)]
    sides = args.sides.split(",")
    info = C.machine()
    begun = time.perf_counter()
    rows: list[list[Any]] = []
    results: list[dict[str, Any]] = []
    for trials, parallel in shapes:
        for kind in kinds:
            if parallel == 8 and kind not in ("uniform 0.5-3.5", "lognormal σ0.5"):
                continue
            times_list = durations(kind, trials, seed=7)
            for side in sides:
                with tempfile.TemporaryDirectory(prefix="hpo-unequal-") as name:
                    folder = Path(name)
                    times = folder / "durations.json"
                    times.write_text(json.dumps(times_list))
                    log = folder / "trials.jsonl"
                    C.log(f"{kind}, {trials} trials, {parallel} at a time: {side}")
                    if side == "optuna":
                        wall = optuna_side(trials, parallel, times, log)
                    else:
                        wall = hpo_kfp(folder, trials, parallel, times, log, sync=side == "sync")
                    best, span, ran = floor(log, parallel)
                result = {
                    "case": kind,
                    "trials": trials,
                    "parallel": parallel,
                    "side": side,
                    "wall_s": wall,
                    "span_s": span,
                    "floor_s": best,
                    "ran": ran,
                }
                results.append(result)
                rows.append(
                    [
                        kind,
                        f"{trials}/{parallel}",
                        side,
                        f"{best:.1f}",
                        f"{wall:.1f}",
                        f"{wall / best:.2f}",
                        f"{span / best:.2f}",
                        ran,
                    ]
                )
    headers = [
        "durations",
        "trials/at a time",
        "side",
        "floor s",
        "wall s",
        "wall/floor",
        "trial span/floor",
        "trials run",
    ]
    text = C.table(headers, rows)
    elapsed = time.perf_counter() - begun
    info["loadavg_end"] = C.machine()["loadavg_start"]
    C.publish(args, "unequal_trials", info, elapsed, text, results=results)
    if args.write:
        C.write_section(
            "unequal_trials",
            "Wall time with unequal trials",
            f"`{C.command_line()}`\n\n{C.machine_text(info, elapsed)}\n\n{text}",
        )


if __name__ == "__main__":
    main()
