"""Memory: peak RSS of a suggest call at 1000 trials, and of 100- and 1000-trial local runs.

* **suggest**: per algorithm, a fresh process (this script with ``--child``) reads the
  experiment and a 1000-trial history from files (as the CLI and the suggest step do), notes
  its own peak RSS (``VmHWM``; ``ru_maxrss`` too, see RESULTS.md for why it is not the
  process's own figure on Linux) once everything is imported (including what the sampler imports
  lazily: cmaes, scipy.stats.qmc, torch), calls ``suggest(experiment, history, 4)`` and notes
  them again. The histories are made as in ``suggest_latency.py`` and then written by one
  ``suggest`` call, as a suggest step leaves them (1000 finished trials and 4 running).
* **local run**: ``hpo-kfp run FILE --local`` with 100 trials, then (a fresh experiment
  and store) with 1000 trials, 4 at a time, instant trials (tpe); the 1000 do not fit one
  compiled run, so the command chains several. The parent samples the whole process tree
  from /proc every 0.1 s (peak of the summed RSS of all live processes, and of the
  ``hpo-kfp run`` process alone, with its RSS a tenth of the way in and at the end to show
  growth, and the largest ``VmHWM`` seen among its step and trial processes), and reaps it
  with ``wait4``, whose ``ru_maxrss`` is what ``getrusage(RUSAGE_CHILDREN)`` would say for
  that run alone. The command's output goes to files, not pipes: at 1000 trials its summary
  (a table row per trial, then the JSON document) is far over a pipe's 64 KiB, and a pipe
  read only after the command ended would block it in that write for ever.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C

ALGORITHMS = ("random", "tpe", "multivariate-tpe", "cmaes", "sobol", "nsga2", "bayesianoptimization")


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _hwm_mib(pid: int | str = "self") -> float | None:
    """VmHWM: the peak RSS of the process's own memory map (Linux; reset by exec)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def child(spec_file: str, history_file: str) -> int:
    """Runs in a fresh process: imports, then one suggest call; prints its RSS figures."""
    import warnings

    warnings.filterwarnings("ignore")
    import optuna  # noqa: F401

    from hpo_kfp.history import History
    from hpo_kfp.spec import load_experiment
    from hpo_kfp.suggest import suggest

    experiment = load_experiment(spec_file)
    if experiment.algorithm.name == "bayesianoptimization":
        import torch

        torch.set_num_threads(1)
    elif experiment.algorithm.name == "cmaes":
        import cmaes  # noqa: F401  (imported lazily by Optuna at the first ask)
    elif experiment.algorithm.name == "sobol":
        import scipy.stats.qmc  # noqa: F401  (likewise)
    text = Path(history_file).read_text(encoding="utf-8")
    history = History.from_json(text)
    C.quiet_optuna()
    before, before_maxrss = _hwm_mib(), _maxrss_mib()
    start = time.perf_counter()
    created, _ = suggest(experiment, history, 4)
    elapsed = time.perf_counter() - start
    after_suggest, after_maxrss = _hwm_mib(), _maxrss_mib()
    assert len(created) == 4
    print(
        json.dumps(
            {
                "imported_mib": before,
                "after_suggest_mib": after_suggest,
                "ru_maxrss_before_mib": before_maxrss,
                "ru_maxrss_after_mib": after_maxrss,
                "suggest_s": elapsed,
                "history_bytes": len(text.encode()),
            }
        )
    )
    return 0


def suggest_peaks(algorithms: list[str], size: int, tmp: Path) -> list[dict[str, Any]]:
    import suggest_latency as L

    from hpo_kfp.spec import parse_experiment
    from hpo_kfp.suggest import suggest

    rows = []
    for algorithm in algorithms:
        document = L.experiment_document(algorithm)
        experiment = parse_experiment(document)
        spec_file = tmp / f"{algorithm}.yaml"
        spec_file.write_text(json.dumps(document), encoding="utf-8")
        _, made, _ = L.make_history(experiment, size)
        history = suggest(experiment, made, L.COUNT)[1]
        history_file = tmp / f"{algorithm}-{size}.json"
        history_file.write_text(history.to_json(), encoding="utf-8")
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(spec_file), str(history_file)],
            capture_output=True,
            text=True,
            check=True,
        )
        data = json.loads(out.stdout.strip().splitlines()[-1])
        data.update({"algorithm": algorithm, "trials": size})
        rows.append(data)
        C.log(f"suggest {algorithm} at {size}: peak {data['after_suggest_mib']:.0f} MiB")
    return rows


def local_run(trials: int, parallel: int, tmp: Path) -> dict[str, Any]:
    # Each size is its own experiment in its own store: the same name in one store would
    # continue the experiment instead of starting over.
    work = tmp / f"run-{trials}"
    work.mkdir()
    document = C.experiment_document(
        "memory-run",
        [C.double("x", -4, 4), C.double("y", -4, 4)],
        algorithm="tpe",
        seed=0,
        max_trials=trials,
        parallel=parallel,
        command=[
            "python3",
            str(C.BENCH_DIR / "_trial.py"),
            "--x=${trialParameters.x}",
            "--y=${trialParameters.y}",
        ],
    )
    spec_file = work / "run.yaml"
    spec_file.write_text(json.dumps(document), encoding="utf-8")
    argv = [
        str(Path(sys.executable).parent / "hpo-kfp"),
        "run",
        str(spec_file),
        "--local",
        "--workdir",
        str(work / "runs"),
        "--json",
    ]
    # Its output goes to files, not pipes: the sampling loop reads nothing until the command
    # ends, and at the end the command writes a table row per trial and then the JSON
    # document; at 1000 trials that is past a pipe's 64 KiB and the write would block for ever.
    out_path, err_path = work / "stdout.txt", work / "stderr.txt"
    start = time.perf_counter()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=work)
    peak_tree = peak_root = 0
    peak_processes = 0
    root_samples: list[tuple[float, int]] = []
    largest_seen: list[Any] = [0.0, ""]
    try:
        while True:
            # Reaped by wait4, whose ru_maxrss covers this run alone (RUSAGE_CHILDREN would
            # carry an earlier run's peak).
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                break
            table = C.process_table()
            members = C.descendants(table, proc.pid) & set(table)
            total = sum(table[pid][1] for pid in members)
            if table.get(proc.pid, (0, 0, 0, ""))[1]:  # an exited process, not yet reaped, shows 0
                peak_root = max(peak_root, table[proc.pid][1])
                root_samples.append((time.perf_counter() - start, table[proc.pid][1]))
            peak_tree = max(peak_tree, total)
            peak_processes = max(peak_processes, len(members))
            for pid in members - {proc.pid}:
                hwm = _hwm_mib(pid)
                if hwm is not None and hwm > largest_seen[0]:
                    step = re.search(r"([\w-]+)/executor_output\.json", table[pid][3])
                    largest_seen[:] = [hwm, f"the {step.group(1)} step" if step else table[pid][3][:70]]
            time.sleep(0.1)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            proc.wait()
        raise
    wall = time.perf_counter() - start
    stdout = out_path.read_text(encoding="utf-8", errors="replace")
    stderr = err_path.read_text(encoding="utf-8", errors="replace")
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"hpo-kfp run failed ({proc.returncode}): {stdout[-2000:]} {stderr[-2000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result.pop("results", None)  # a row per trial; the counts and the best stay
    # The orchestrator's RSS a tenth of the way in vs at the end: growth over the rounds.
    early = [rss for t, rss in root_samples if t >= wall * 0.1]
    return {
        "trials": trials,
        "parallel": parallel,
        "wall_s": wall,
        "trials_done": result.get("trials", {}).get("total")
        if isinstance(result.get("trials"), dict)
        else None,
        "status": result.get("status"),
        "compiled_runs": len(list((work / "runs").glob("memory-run/*/kfp-local*.log"))),
        "output_bytes": len(stdout.encode()) + len(stderr.encode()),
        "peak_tree_mib": peak_tree / 2**20,
        "peak_root_mib": peak_root / 2**20,
        "root_early_mib": (early[0] / 2**20) if early else None,
        "root_end_mib": (root_samples[-1][1] / 2**20) if root_samples else None,
        "peak_processes": peak_processes,
        "largest_process_mib": usage.ru_maxrss / 1024,
        "largest_seen_hwm_mib": largest_seen[0],
        "largest_seen_command": largest_seen[1],
        "result": result,
    }


def run_table(run: dict[str, Any]) -> str:
    text = (
        f"### `hpo-kfp run --local`, {run['trials']} trials, {run['parallel']} at a time, instant trials\n\n"
    )
    return text + C.table(
        ["measure", "value"],
        [
            ["wall time s", run["wall_s"]],
            ["outcome", f"{run['status']}"],
            ["trials; compiled runs chained by the command", f"{run['trials_done']}; {run['compiled_runs']}"],
            ["peak RSS of the whole process tree (sum, sampled every 0.1 s) MiB", run["peak_tree_mib"]],
            ["most processes alive at once", run["peak_processes"]],
            ["largest VmHWM of a step or trial process, sampled MiB", run["largest_seen_hwm_mib"]],
            ["… that process", run["largest_seen_command"]],
            [
                "ru_maxrss of the run from wait4 (largest process; see the note) MiB",
                run["largest_process_mib"],
            ],
            ["`hpo-kfp run` process (kfp.local orchestrator) peak MiB", run["peak_root_mib"]],
            ["… its RSS a tenth of the way in MiB", run["root_early_mib"]],
            ["… its RSS at the end MiB", run["root_end_mib"]],
        ],
    )


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        return child(sys.argv[2], sys.argv[3])
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS), choices=list(ALGORITHMS))
    p.add_argument("--history-trials", type=int, default=1000)
    p.add_argument(
        "--run-trials",
        type=int,
        nargs="+",
        default=[100, 1000],
        help="one local run (its own experiment and table) per size",
    )
    p.add_argument("--parallel", type=int, default=4)
    args = p.parse_args()
    if args.quick:
        args.history_trials, args.run_trials, args.parallel = 50, [4], 2
        if args.algorithms == list(ALGORITHMS):
            args.algorithms = ["tpe", "cmaes"]
    args.algorithms = C.runnable(args.algorithms)
    C.quiet_optuna()
    import warnings

    warnings.filterwarnings("ignore")
    info = C.machine()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hpo-kfp-memory-") as name:
        tmp = Path(name)
        # The runs first, started while this script is small (ru_maxrss is kept across fork
        # and exec, and the histories below grow this script).
        runs = []
        for trials in args.run_trials:
            C.log(f"local run: {trials} trials, {args.parallel} at a time")
            runs.append(local_run(trials, args.parallel, tmp))
            C.log(
                f"local run of {trials}: tree peak {runs[-1]['peak_tree_mib']:.0f} MiB, {runs[-1]['wall_s']:.0f} s"
            )
        suggest_rows = suggest_peaks(args.algorithms, args.history_trials, tmp)
    elapsed = time.monotonic() - started
    info["loadavg_end"] = os.getloadavg()[0]
    info["other_load"] = C.other_load()
    text = f"### suggest at {args.history_trials} trials (one fresh process per algorithm)\n\n"
    text += C.table(
        [
            "algorithm",
            "history KiB",
            "peak RSS after imports + reading MiB",
            "peak RSS after suggest MiB",
            "suggest adds MiB",
            "ru_maxrss after suggest MiB",
            "suggest s",
        ],
        [
            [
                r["algorithm"],
                round(r["history_bytes"] / 1024, 1),
                r["imported_mib"],
                r["after_suggest_mib"],
                r["after_suggest_mib"] - r["imported_mib"],
                r["ru_maxrss_after_mib"],
                r["suggest_s"],
            ]
            for r in suggest_rows
        ],
    )
    for run in runs:
        text += "\n\n" + run_table(run)
    C.publish(args, "memory", info, elapsed, text, suggest=suggest_rows, local_runs=runs)
    if args.write:
        body = (
            f"Command: `{C.command_line()}`\n\n{C.machine_text(info, elapsed)}\n\n"
            "MiB = 2^20 bytes. No target was set; the figures are for sizing a step's memory request "
            "and a laptop run. Peak RSS is the process's `VmHWM` (/proc/PID/status). `ru_maxrss` is "
            "shown too but is not the process's own figure on Linux: it is kept across fork and exec, so "
            "a child started by a large parent reports at least the parent's peak (the suggest children "
            "here are started by this script after it built the histories; the steps of a run by the "
            "kfp.local orchestrator). The local runs' trials are instant, so the steps dominate.\n\n" + text
        )
        C.write_section("memory", "Memory (`memory.py`)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
