"""The peers of loop_overhead.py, each run as its own process (so every side pays its own start-up).

    python benchmarks/_peers.py optuna --trials 16 --parallel 4 --seconds 2
    python benchmarks/_peers.py ray    --trials 16 --parallel 4 --seconds 2 --storage DIR
    python benchmarks/_peers.py ray    --trials 16 --parallel 4 --storage DIR \
        --durations TIMES.json --log TRIALS.jsonl [--scheduler asha]
    python benchmarks/_peers.py capped EXPERIMENT.yaml --workdir DIR

``optuna``: ``study.optimize(objective, n_trials, n_jobs)`` with the TPE sampler, the objective
running ``_trial.py`` as a subprocess. ``ray``: a Ray Tune ``Tuner`` on a local single-node
Ray (``ray.init(num_cpus=P)``: P logical CPUs so that P trials run at once on a smaller
machine), its Optuna searcher behind a ``ConcurrencyLimiter(max_concurrent=P)``, the trainable
running ``_trial.py`` as a subprocess (with ``--durations``/``--log``, unequal_trials.py's
``_unequal_trial.py`` instead, its ``--number=`` the 0-based order in which Ray started the
trial, counted under a file lock beside the log; ``--scheduler asha`` puts Ray's ASHA scheduler
in the loop). ``capped``: ``hpo-kfp run --local`` exactly as the CLI
runs it, except that kfp.local's cap of 2 concurrent ParallelFor iterations is kept (hpo-kfp
lifts it; its other fix, for the non-thread-safe indented print, stays).

Each prints one JSON line with its phases as the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

START = time.perf_counter()
TRIAL = str(Path(__file__).resolve().parent / "_trial.py")
UNEQUAL_TRIAL = str(Path(__file__).resolve().parent / "_unequal_trial.py")
_LOSS = re.compile(r"loss=([-+0-9.eE]+)")


def run_trial(x: float, y: float, seconds: float) -> float:
    out = subprocess.run(
        [sys.executable, TRIAL, f"--x={x}", f"--y={y}", f"--seconds={seconds}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(_LOSS.findall(out.stdout)[-1])


def claim_number(counter: str) -> int:
    """The next 0-based trial number, shared by every Ray worker process: one line per claim."""
    import fcntl

    with open(counter, "a+", encoding="utf-8") as stream:
        fcntl.flock(stream, fcntl.LOCK_EX)  # released when the file is closed
        stream.seek(0)
        number = len(stream.read().splitlines())
        stream.write(f"{number}\n")
        return number


def run_unequal_trial(x: float, y: float, durations: str, log: str) -> float:
    number = claim_number(log + ".counter")
    out = subprocess.run(
        [
            sys.executable,
            UNEQUAL_TRIAL,
            f"--x={x}",
            f"--y={y}",
            f"--durations={durations}",
            f"--log={log}",
            f"--number={number}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(_LOSS.findall(out.stdout)[-1])


def optuna_side(args: argparse.Namespace) -> dict[str, float]:
    import optuna

    imported = time.perf_counter()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=args.seed, constant_liar=True))

    def objective(trial: optuna.Trial) -> float:
        return run_trial(trial.suggest_float("x", -4, 4), trial.suggest_float("y", -4, 4), args.seconds)

    study.optimize(objective, n_trials=args.trials, n_jobs=args.parallel)
    done = time.perf_counter()
    assert len(study.trials) == args.trials
    return {"import_s": imported - START, "optimize_s": done - imported, "best": study.best_value}


def ray_side(args: argparse.Namespace) -> dict[str, float]:
    import os
    import warnings

    # Without this, Ray hangs when any ancestor of this process is `uv run` (`uv run --no-sync
    # --group bench python benchmarks/...`, as the benchmarks are run) and the current directory
    # is in the project: Ray then copies the `uv run` to its workers, i.e. it packs the current
    # directory as the runtime env's working_dir and starts each worker as `cd <unpacked copy> &&
    # uv run --no-sync --group bench --python 3.11.7 python default_worker.py`. The copy holds
    # pyproject.toml but no `.venv` (git-ignored, so not packed): uv creates an empty one there
    # and, --no-sync, installs nothing, so every worker dies with "ModuleNotFoundError: No module
    # named 'ray'" (raylet.err), no trial actor ever starts and Tuner.fit waits forever. (From a
    # directory outside the project, as loop_overhead.py runs it, uv falls back to the active
    # .venv and it works, a `uv run` per worker slower.) Off, the workers run this interpreter,
    # as under a plain `python`. Ray reads it when imported, so it is set before.
    os.environ["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] = "0"
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    warnings.filterwarnings("ignore")
    import ray
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    imported = time.perf_counter()
    ray.init(num_cpus=args.parallel, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    initialised = time.perf_counter()
    seconds = args.seconds
    durations = str(Path(args.durations).resolve()) if args.durations else None
    log = str(Path(args.log).resolve()) if args.log else ""

    def trainable(config: dict[str, float]) -> None:
        if durations:
            loss = run_unequal_trial(config["x"], config["y"], durations, log)
        else:
            loss = run_trial(config["x"], config["y"], seconds)
        tune.report({"loss": loss})

    scheduler = None
    if args.scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        # Each trial reports once, at its end: grace_period = max_t = 1 iteration.
        scheduler = ASHAScheduler(max_t=1, grace_period=1)

    tuner = tune.Tuner(
        trainable,
        param_space={"x": tune.uniform(-4, 4), "y": tune.uniform(-4, 4)},
        tune_config=tune.TuneConfig(
            metric="loss",
            mode="min",
            search_alg=ConcurrencyLimiter(OptunaSearch(seed=args.seed), max_concurrent=args.parallel),
            scheduler=scheduler,
            num_samples=args.trials,
            max_concurrent_trials=args.parallel,
        ),
        run_config=tune.RunConfig(storage_path=str(Path(args.storage).resolve()), verbose=0, name="bench"),
    )
    results = tuner.fit()
    fitted = time.perf_counter()
    assert len(results) == args.trials and not results.errors, results.errors
    best = results.get_best_result().metrics["loss"]
    ray.shutdown()
    return {
        "import_s": imported - START,
        "init_s": initialised - imported,
        "fit_s": fitted - initialised,
        "shutdown_s": time.perf_counter() - fitted,
        "best": best,
    }


def capped_side(args: argparse.Namespace) -> int:
    import contextlib

    from hpo_kfp.pipeline import local

    original = local.kfp_local_fixes

    @contextlib.contextmanager
    def cap_of_two(max_parallelism: int):  # type: ignore[no-untyped-def]
        # kfp.local's own ParallelExecutor caps at min(max_workers, 2); keep that cap.
        with original(min(max_parallelism, 2)):
            yield

    local.kfp_local_fixes = cap_of_two
    from hpo_kfp.cli import main

    return main(["run", args.file, "--local", "--workdir", args.workdir, "--json"])


def main() -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="side", required=True)
    for name in ("optuna", "ray"):
        s = sub.add_parser(name)
        s.add_argument("--trials", type=int, default=16)
        s.add_argument("--parallel", type=int, default=4)
        s.add_argument("--seconds", type=float, default=0.0)
        s.add_argument("--seed", type=int, default=0)
        if name == "ray":
            s.add_argument("--storage", required=True)
            s.add_argument("--durations", help="run _unequal_trial.py with this durations file")
            s.add_argument("--log", help="_unequal_trial.py's log (with --durations)")
            s.add_argument("--scheduler", choices=("fifo", "asha"), default="fifo")
    c = sub.add_parser("capped")
    c.add_argument("file")
    c.add_argument("--workdir", required=True)
    args = p.parse_args()
    if args.side == "capped":
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        return capped_side(args)
    result = optuna_side(args) if args.side == "optuna" else ray_side(args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
