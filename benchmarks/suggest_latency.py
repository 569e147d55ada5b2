"""Suggest latency: one call for 4 suggestions with 10, 100 and 1000 trials of history.

Per algorithm and history size, interleaved repeat by repeat:

* ``stateless``  — ``hpo_kfp.suggest.suggest(experiment, history, 4)`` in this process (it
  rebuilds an Optuna study from the history, restores the sampler's stored state and asks 4
  times); ``rebuild`` is the part of it spent in ``rebuild_study``;
* ``live``       — 4 × ``study.ask()`` on a live Optuna study that holds the same trials (the
  study the history was made from; after each timed repeat its 4 new trials are marked failed,
  untimed, so every repeat sees the same trials to learn from);
* ``CLI``        — ``hpo-kfp suggest FILE --history H.json --count 4`` as a new process (wall
  time, including Python start and imports); ``CLI floor`` is ``hpo-kfp validate FILE`` in the
  same way: a process that reads the experiment and imports no Optuna.

The history also gives the size of the history JSON per algorithm, and how much of it is
sampler state (``sampler_attrs`` on trials — CMA-ES stores its optimizer there — and
``study_attrs``).

Histories are made by a live study: for samplers that keep no state in the study (random,
tpe, multivariate-tpe, bayesianoptimization) the trials are drawn by Optuna's RandomSampler
(TPE and GP are far too slow to make 1000 trials of their own; the latency of a call depends
on the number of trials, not on where they came from); cmaes, sobol, nsga2 and grid make their
own trials, so their stored state is real.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C

ALGORITHMS = ("random", "tpe", "multivariate-tpe", "cmaes", "sobol", "nsga2", "bayesianoptimization", "grid")
SIZES = (10, 100, 1000)
COUNT = 4
STATELESS_SAMPLERS = {"random", "tpe", "multivariate-tpe", "bayesianoptimization"}

PARAMETERS = [
    C.double("x1", 0, 1),
    C.double("x2", 0, 1),
    C.double("lr", 1e-5, 1, log_scale=True),
    C.integer("layers", 1, 12),
    C.categorical("optimizer", ["sgd", "adam", "rmsprop", "adagrad"]),
]
# For grid: steps on the doubles; 11 * 11 * 11 * 12 * 4 points, far more than 1000 + 4.
GRID_PARAMETERS = [
    C.double("x1", 0, 1, step=0.1),
    C.double("x2", 0, 1, step=0.1),
    C.double("lr", 0.0, 1, step=0.1),
    C.integer("layers", 1, 12),
    C.categorical("optimizer", ["sgd", "adam", "rmsprop", "adagrad"]),
]
_PENALTY = {"sgd": 0.3, "adam": 0.0, "rmsprop": 0.1, "adagrad": 0.2}


def objective(p: dict[str, Any]) -> float:
    lr = p["lr"] if p["lr"] > 0 else 1e-5
    return (
        (p["x1"] - 0.3) ** 2
        + (p["x2"] - 0.7) ** 2
        + (math.log10(lr) + 3) ** 2 / 10
        + ((p["layers"] - 4) / 4) ** 2
        + _PENALTY[p["optimizer"]]
    )


def experiment_document(algorithm: str) -> dict[str, Any]:
    return C.experiment_document(
        f"latency-{algorithm}"[:40],
        GRID_PARAMETERS if algorithm == "grid" else PARAMETERS,
        algorithm=algorithm,
        seed=7,
        # maxTrialCount may not exceed the grid (11 * 11 * 11 * 12 * 4 points, after steps).
        max_trials=50_000 if algorithm == "grid" else 100_000,
        parallel=COUNT,
    )


def make_history(experiment: Any, size: int) -> tuple[Any, Any, Any]:
    """A live study with ``size`` finished trials, and the same trials as an hpo-kfp History."""
    import optuna

    from hpo_kfp.algorithms import build_sampler
    from hpo_kfp.history import History, TrialRecord, jsonable
    from hpo_kfp.space import SearchSpace
    from hpo_kfp.suggest import call_seed, trial_name

    name = experiment.algorithm.name
    space = SearchSpace(experiment.parameters)
    sampler = build_sampler(
        name,
        experiment.algorithm.settings,
        seed=call_seed(experiment, 0),
        grid=space.grid() if name == "grid" else None,
    )
    maker = optuna.samplers.RandomSampler(seed=1) if name in STATELESS_SAMPLERS else sampler
    study = optuna.create_study(sampler=maker)
    distributions = space.distributions()
    while len(study.trials) < size:
        batch = [study.ask(distributions) for _ in range(min(COUNT, size - len(study.trials)))]
        for trial in batch:
            study.tell(trial, objective(space.to_external(trial.params)))
    study.sampler = sampler

    def plain(attrs: dict[str, Any]) -> dict[str, Any]:
        return json.loads(json.dumps(attrs, default=jsonable))  # type: ignore[no-any-return]

    records = [
        TrialRecord(
            name=trial_name(experiment.name, t.number),
            number=t.number,
            parameters=space.to_external(t.params),
            status="Succeeded",
            values=(float(t.value),),
            sampler_attrs=plain(t.system_attrs),
        )
        for t in study.get_trials(deepcopy=False)
    ]
    history = History(
        experiment=experiment.name,
        trials=tuple(records),
        study_attrs=plain(study._storage.get_study_system_attrs(study._study_id)),
    )
    return study, history, distributions


def live_ask(study: Any, distributions: Any) -> float:
    from optuna.trial import TrialState

    start = time.perf_counter()
    asked = [study.ask(distributions) for _ in range(COUNT)]
    elapsed = time.perf_counter() - start
    for trial in asked:
        study.tell(trial, state=TrialState.FAIL)
    return elapsed


def stateless_call(experiment: Any, history: Any) -> tuple[float, float]:
    from hpo_kfp.algorithms import OptunaSampler
    from hpo_kfp.suggest import suggest

    rebuild_time: list[float] = []
    original = OptunaSampler.rebuild_study  # what suggest calls for every Optuna-run algorithm

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            rebuild_time.append(time.perf_counter() - start)

    OptunaSampler.rebuild_study = timed  # type: ignore[method-assign]
    try:
        start = time.perf_counter()
        created, _ = suggest(experiment, history, COUNT)
        elapsed = time.perf_counter() - start
    finally:
        OptunaSampler.rebuild_study = original  # type: ignore[method-assign]
    assert len(created) == COUNT, (experiment.algorithm.name, len(created))
    return elapsed, sum(rebuild_time)


def cli(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, cwd=C.ROOT)
    return time.perf_counter() - start


def main() -> int:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS), choices=list(ALGORITHMS))
    p.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    p.add_argument("--repeats", type=int, default=7, help="in-process repeats (5 at 1000 trials)")
    p.add_argument("--cli-repeats", type=int, default=3)
    p.add_argument("--no-cli", dest="use_cli", action="store_false")
    args = p.parse_args()
    if args.quick:
        args.sizes = [10, 100] if args.sizes == list(SIZES) else args.sizes
        args.algorithms = ["tpe", "cmaes"] if args.algorithms == list(ALGORITHMS) else args.algorithms
        args.repeats, args.cli_repeats = 2, 1
    args.algorithms = C.runnable(args.algorithms)
    C.quiet_optuna()
    import warnings

    warnings.filterwarnings("ignore")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    from hpo_kfp.spec import parse_experiment
    from hpo_kfp.suggest import suggest

    info = C.machine()
    started = time.monotonic()
    hpo_kfp_bin = str(Path(sys.executable).parent / "hpo-kfp")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hpo-kfp-latency-") as tmp:
        for algorithm in args.algorithms:
            document = experiment_document(algorithm)
            experiment = parse_experiment(document)
            spec_file = Path(tmp) / f"{algorithm}.yaml"
            spec_file.write_text(json.dumps(document), encoding="utf-8")  # JSON is YAML
            for size in args.sizes:
                build_start = time.perf_counter()
                study, history, distributions = make_history(experiment, size)
                build = time.perf_counter() - build_start
                # The history as hpo-kfp writes it: what one suggest call returns (it drops
                # sampler state nobody will read, e.g. CMA-ES's older optimizer copies).
                written = suggest(experiment, history, COUNT)[1]
                text = written.to_json()
                history_file = Path(tmp) / f"{algorithm}-{size}.json"
                history_file.write_text(text, encoding="utf-8")
                sampler_bytes = sum(
                    len(json.dumps(t.sampler_attrs, separators=(",", ":"))) for t in written.trials
                )
                study_bytes = len(json.dumps(written.study_attrs, separators=(",", ":")))
                repeats = args.repeats if size < 1000 else max(2, args.repeats - 2)
                cli_repeats = args.cli_repeats
                slow = algorithm == "bayesianoptimization" and size >= 1000  # ~7 s a call
                if slow:
                    repeats, cli_repeats = 1, min(cli_repeats, 1)
                else:
                    # Warm up both sides once (imports, caches of the first call).
                    stateless_call(experiment, history)
                    live_ask(study, distributions)
                samples: dict[str, list[float]] = {
                    "stateless": [],
                    "rebuild": [],
                    "live": [],
                    "cli": [],
                    "floor": [],
                }
                for index in range(repeats):
                    # Alternate which side goes first.
                    order = ("stateless", "live") if index % 2 == 0 else ("live", "stateless")
                    for side in order:
                        if side == "stateless":
                            elapsed, rebuild = stateless_call(experiment, history)
                            samples["stateless"].append(elapsed)
                            samples["rebuild"].append(rebuild)
                        else:
                            samples["live"].append(live_ask(study, distributions))
                    if args.use_cli and index < cli_repeats:
                        samples["cli"].append(
                            cli(
                                [
                                    hpo_kfp_bin,
                                    "suggest",
                                    str(spec_file),
                                    "--history",
                                    str(history_file),
                                    "--count",
                                    str(COUNT),
                                ]
                            )
                        )
                        samples["floor"].append(cli([hpo_kfp_bin, "validate", str(spec_file)]))
                row = {
                    "algorithm": algorithm,
                    "trials": size,
                    "repeats": repeats,
                    **{f"{k}_s": C.median(v) if v else None for k, v in samples.items()},
                    "samples": samples,
                    "history_bytes": len(text.encode()),
                    "sampler_attrs_bytes": sampler_bytes,
                    "study_attrs_bytes": study_bytes,
                    "build_s": build,
                }
                row["ratio"] = row["stateless_s"] / row["live_s"] if row["live_s"] else None
                rows.append(row)
                C.log(
                    f"{algorithm} {size}: stateless {row['stateless_s'] * 1000:.1f} ms, live "
                    f"{row['live_s'] * 1000:.1f} ms, cli {row['cli_s'] or 0:.2f} s, {row['history_bytes']} B"
                )
    elapsed = time.monotonic() - started
    info["loadavg_end"] = os.getloadavg()[0]
    info["other_load"] = C.other_load()

    def ms(v: float | None) -> float | None:
        return None if v is None else v * 1000

    table_rows = [
        [
            r["algorithm"],
            r["trials"],
            ms(r["stateless_s"]),
            ms(r["rebuild_s"]),
            ms(r["live_s"]),
            f"{r['ratio']:.2f}×" if r["ratio"] else "–",
            r["cli_s"],
            r["floor_s"],
            round(r["history_bytes"] / 1024, 1),
            round(r["sampler_attrs_bytes"] / 1024, 1),
            round(r["study_attrs_bytes"] / 1024, 1),
        ]
        for r in rows
    ]
    text = C.table(
        [
            "algorithm",
            "trials",
            "stateless ms",
            "of it rebuild ms",
            "live ask ms",
            "stateless/live",
            "CLI s",
            "CLI floor s",
            "history KiB",
            "sampler_attrs KiB",
            "study_attrs KiB",
        ],
        table_rows,
    )
    targets = []
    tpe = next((r for r in rows if r["algorithm"] == "tpe" and r["trials"] == 1000), None)
    if tpe:
        t_ms, ratio = tpe["stateless_s"] * 1000, tpe["ratio"]
        targets.append(
            f"- TPE at 1000 trials in-process under 300 ms: {'MET' if t_ms < 300 else 'MISSED'} "
            f"({t_ms:.0f} ms; {t_ms / 300:.2f}× the target)"
        )
        targets.append(
            f"- TPE at 1000 trials within 1.5× of the live study: {'MET' if ratio <= 1.5 else 'MISSED'} "
            f"({ratio:.2f}×: {t_ms:.0f} ms vs {tpe['live_s'] * 1000:.0f} ms)"
        )
    big = [r for r in rows if r["trials"] == 1000]
    if big:
        worst = max(big, key=lambda r: r["history_bytes"])
        over = [
            f"{r['algorithm']} {r['history_bytes'] / 1e6:.2f} MB" for r in big if r["history_bytes"] >= 1e6
        ]
        targets.append(
            f"- history of 1000 trials under 1 MB: "
            f"{'MET' if not over else 'MISSED (' + ', '.join(over) + ')'} "
            f"(largest: {worst['algorithm']} {worst['history_bytes'] / 1e6:.3f} MB)"
        )
    text += "\n\n### Targets\n\n" + "\n".join(targets)
    C.publish(args, "suggest_latency", info, elapsed, text, rows=rows, targets=targets)
    if args.write:
        body = (
            f"Command: `{C.command_line()}`\n\n{C.machine_text(info, elapsed)}\n\n"
            f"Search space: 2 doubles, a log double, an int, a categorical (grid: steps on the doubles). "
            f"4 suggestions per call; medians over {args.repeats} in-process repeats "
            f"({max(2, args.repeats - 2)} at 1000 trials; bayesianoptimization at 1000: one call per "
            "side, ~7 s each, no warm-up call) and "
            f"{args.cli_repeats} CLI runs (1 for bayesianoptimization at 1000). "
            "KiB = 1024 bytes; the 1 MB target is 10^6 bytes.\n\n" + text
        )
        C.write_section("suggest_latency", "Suggest latency and history size (`suggest_latency.py`)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
