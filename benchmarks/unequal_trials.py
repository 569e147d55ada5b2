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
* ``optuna`` — ``study.optimize(n_jobs=P)``, TPE, each trial the same script as a subprocess,
  in a process of its own timed from outside like the others (interpreter start and imports
  included).
* ``ray``    — Ray Tune (``_peers.py ray``: a local Ray of P logical CPUs, its Optuna searcher
  behind a ``ConcurrencyLimiter(P)``), each trial the same script as a subprocess, numbered in
  the order Ray starts the trials; the whole ``python _peers.py`` process timed from outside
  (interpreter, import, ``ray.init``, ``fit``, shutdown; its phases are listed under the table).
  Scheduler: FIFO, except for "half stopped early", which runs under ASHA (``max_t`` =
  ``grace_period`` = 1 iteration). A trial reports its loss once, at its end, so ASHA has no
  earlier rung to stop it at and stops nothing: that case's early stops are the trial script's
  own (its short durations), as on the other sides; ASHA only puts its bookkeeping in the loop.

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
SIDES = ("lanes", "sync", "optuna", "ray")
PEERS = C.BENCH_DIR / "_peers.py"
RAY_PHASES: list[dict[str, Any]] = []  # the ray side's phases per case, in run order


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
    started = time.perf_counter()
    child = [sys.executable, __file__, "--optuna-child", str(trials), str(parallel), str(times), str(log)]
    subprocess.run(child, check=True, capture_output=True)
    return time.perf_counter() - started


def optuna_child(trials: int, parallel: int, times: Path, log: Path) -> None:
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

    study.optimize(objective, n_trials=trials, n_jobs=parallel)


def ray_side(folder: Path, kind: str, trials: int, parallel: int, times: Path, log: Path) -> float:
    """Ray Tune through ``_peers.py ray``, the whole process timed from outside; records its phases."""
    scheduler = "asha" if kind == "half stopped early" else "fifo"
    argv = [
        sys.executable,
        str(PEERS),
        "ray",
        f"--trials={trials}",
        f"--parallel={parallel}",
        f"--storage={folder / 'ray'}",
        f"--durations={times}",
        f"--log={log}",
        f"--scheduler={scheduler}",
    ]
    started = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, cwd=folder, timeout=900, check=False)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"ray failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    numbers = sorted(json.loads(line)["number"] for line in log.read_text().splitlines() if line.strip())
    assert numbers == list(range(trials)), numbers
    phases = json.loads(out.stdout.strip().splitlines()[-1])
    RAY_PHASES.append(
        {
            "case": kind,
            "trials": trials,
            "parallel": parallel,
            "scheduler": scheduler,
            "wall_s": wall,
            **phases,
        }
    )
    C.log("  ray: " + ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in RAY_PHASES[-1].items() if k.endswith("_s")))
    return wall


def ray_phases_text() -> str:
    """The ray side's phases per case (empty without a ray side); "rest" is interpreter start and exit."""
    if not RAY_PHASES:
        return ""
    keys = ("import_s", "init_s", "fit_s", "shutdown_s")
    rows = [
        [
            r["case"],
            f"{r['trials']}/{r['parallel']}",
            r["scheduler"],
            f"{r['wall_s']:.1f}",
            *(f"{r[k]:.1f}" for k in keys),
            f"{r['wall_s'] - sum(r[k] for k in keys):.1f}",
        ]
        for r in RAY_PHASES
    ]
    headers = ["durations", "trials/at a time", "ray scheduler", "wall s", "import s", "ray.init s", "fit s"]
    headers += ["shutdown s", "rest s"]
    return "\n\nRay Tune's phases inside its process:\n\n" + C.table(headers, rows)


def main() -> None:
    if sys.argv[1:2] == ["--optuna-child"]:
        trials, parallel, times, log = sys.argv[2:6]
        optuna_child(int(trials), int(parallel), Path(times), Path(log))
        return
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
                    elif side == "ray":
                        wall = ray_side(folder, kind, trials, parallel, times, log)
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
                if side == "ray":
                    result["phases"] = RAY_PHASES[-1]
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
    text = C.table(headers, rows) + ray_phases_text()
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
