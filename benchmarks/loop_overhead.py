"""Loop overhead: 16 trials, 4 at a time, trial durations 0 s and 2 s, against the floor ⌈T/P⌉·D.

Sides, each a fresh process timed from outside (wall time, start-up included), interleaved
repeat by repeat in a rotating order, the same trial script (``_trial.py``: sleep D, print
the loss) run as a subprocess by all:

* ``hpo-kfp``        — ``hpo-kfp run FILE --local --workdir DIR --json`` (compiles the pipeline,
  runs it with kfp.local: every step is a process; tpe);
* ``hpo-kfp cap 2``  — the same with kfp.local's cap of 2 concurrent ParallelFor iterations
  kept (``_peers.py capped``; hpo-kfp lifts it to ``parallelTrialCount``);
* ``ray-tune``       — Ray Tune, Optuna searcher, 4 concurrent, on a local Ray (``_peers.py ray``);
* ``optuna``         — ``study.optimize(n_jobs=4)``, TPE (``_peers.py optuna``).

Then where the hpo-kfp run's time goes: its ``kfp-local.log`` gives each task's start and end
as kfp.local saw them and, from the step's own log lines, when the step's Python process
reached the component ("Looking for component") and when it wrote its outputs. Sums over
tasks of one kind do not depend on which start belongs to which end, so the means per kind
are exact although parallel iterations share a task name. Stand-alone measurements add the
pieces: interpreter start, ``import kfp.dsl.executor_main``, ``import hpo_kfp.steps``, one
suggest_step call, the MLMD writes of a trial and of a round, and compiling the pipeline.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C

TRIAL_SCRIPT = C.BENCH_DIR / "_trial.py"
PEERS = C.BENCH_DIR / "_peers.py"
SIDES = ("hpo-kfp", "hpo-kfp cap 2", "ray-tune", "optuna")


def experiment_document(trials: int, parallel: int, seconds: float) -> dict[str, Any]:
    return C.experiment_document(
        "loop-overhead",
        [C.double("x", -4, 4), C.double("y", -4, 4)],
        algorithm="tpe",
        seed=0,
        max_trials=trials,
        parallel=parallel,
        command=[
            "python3",
            str(TRIAL_SCRIPT),
            "--x=${trialParameters.x}",
            "--y=${trialParameters.y}",
            f"--seconds={seconds:g}",
        ],
    )


def run_side(side: str, spec_file: Path, workdir: Path, args: Any, seconds: float) -> dict[str, Any]:
    py = sys.executable
    if side == "hpo-kfp":
        argv = [
            str(Path(py).parent / "hpo-kfp"),
            "run",
            str(spec_file),
            "--local",
            "--workdir",
            str(workdir),
            "--json",
        ]
    elif side == "hpo-kfp cap 2":
        argv = [py, str(PEERS), "capped", str(spec_file), "--workdir", str(workdir)]
    elif side == "ray-tune":
        argv = [
            py,
            str(PEERS),
            "ray",
            "--trials",
            str(args.trials),
            "--parallel",
            str(args.parallel),
            "--seconds",
            str(seconds),
            "--storage",
            str(workdir),
        ]
    else:
        argv = [
            py,
            str(PEERS),
            "optuna",
            "--trials",
            str(args.trials),
            "--parallel",
            str(args.parallel),
            "--seconds",
            str(seconds),
        ]
    workdir.mkdir(parents=True, exist_ok=True)
    before = os.times()
    start = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, cwd=workdir, timeout=1800, check=False)
    wall = time.perf_counter() - start
    after = os.times()
    if out.returncode != 0:
        raise RuntimeError(f"{side} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    last = out.stdout.strip().splitlines()[-1]
    result: dict[str, Any] = {
        "side": side,
        "wall_s": wall,
        "cpu_s": (after.children_user - before.children_user)
        + (after.children_system - before.children_system),
        "phases": json.loads(last),
    }
    if side.startswith("hpo-kfp"):
        logs = sorted(workdir.glob("loop-overhead/*/kfp-local.log"))
        result["log"] = str(logs[-1]) if logs else None
        result["phases"]["trials"] = result["phases"].get("trials")
    return result


# --------------------------------------------------------------------------- kfp-local.log

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ORCH = re.compile(r"^(\d\d:\d\d:\d\d\.\d+) - INFO - (?:Executing task '([\w-]+)'|Task '([\w-]+)' finished)")
_EXEC = re.compile(
    r"^\[KFP Executor \d{4}-\d\d-\d\d (\d\d:\d\d:\d\d,\d+) INFO\]: "
    r"(?:Looking for component `(\w+)`|Wrote executor output file to (\S+))"
)
KINDS = ("suggest", "run-trial", "collect-metrics", "decide")
"""The loop's task kinds; others found in the log (e.g. a final report step) are listed after them."""


def _seconds(stamp: str) -> float:
    h, m, s = stamp.replace(",", ".").split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def _kind(name: str) -> str:
    name = name.replace("_", "-")
    for kind in KINDS:
        if name == kind or name.startswith(kind + "-"):
            return kind
    return name


def parse_log(path: str | Path) -> dict[str, Any]:
    """Per-kind task timings and per-round phases from a run's kfp-local.log."""
    events: list[tuple[float, str, str]] = []  # (time, what, kind)
    first = None
    for raw in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        line = _ANSI.sub("", raw)
        m = _ORCH.match(line)
        if m:
            what = "start" if m.group(2) else "end"
            events.append((_seconds(m.group(1)), what, _kind(m.group(2) or m.group(3))))
            continue
        m = _EXEC.match(line)
        if m:
            if m.group(2):
                events.append((_seconds(m.group(1)), "looking", _kind(m.group(2))))
            else:
                events.append((_seconds(m.group(1)), "wrote", _kind(Path(m.group(3)).parent.name)))
    # Runs across midnight.
    fixed, offset, last = [], 0.0, None
    for t, what, kind in events:
        if last is not None and t + offset < last - 43200:
            offset += 86400
        fixed.append((t + offset, what, kind))
        last = t + offset
    events = fixed
    if not events:
        return {}
    first = min(t for t, _, _ in events)
    # Round boundaries: suggest and decide run alone, once per round.
    starts = [t for t, w, k in events if k == "suggest" and w == "start"]
    bounds = [*starts[1:], float("inf")]
    segments = [(lo, hi) for lo, hi in zip([float("-inf"), *bounds[:-1]], bounds, strict=True)]
    tasks: dict[str, list[dict[str, float]]] = {}
    found = {k for _, _, k in events}
    for kind in [*KINDS, *sorted(found - set(KINDS))]:
        for lo, hi in segments:
            mine = [(t, w) for t, w, k in events if k == kind and lo <= t < hi]
            tasks.setdefault(kind, []).extend(_chains(mine))
    kinds: dict[str, dict[str, Any]] = {}
    for kind, chains in tasks.items():
        if not chains:
            continue

        def mean(a: str, b: str, chains: list[dict[str, float]] = chains) -> float | None:
            got = [c[b] - c[a] for c in chains if a in c and b in c]
            return sum(got) / len(got) if got else None

        kinds[kind] = {
            "tasks": len(chains),
            "ends_seen": sum(1 for c in chains if "end" in c),
            "task_s": mean("start", "end"),
            "process_start_s": mean("start", "looking"),
            "component_s": mean("looking", "wrote"),
            "after_s": mean("wrote", "end"),
        }
    suggest_end = [t for t, w, k in events if k == "suggest" and w == "end"]
    decide_start = [t for t, w, k in events if k == "decide" and w == "start"]
    decide_end = [t for t, w, k in events if k == "decide" and w == "end"]
    rounds = []
    for i in range(min(len(starts), len(suggest_end), len(decide_start), len(decide_end))):
        nxt = starts[i + 1] if i + 1 < len(starts) else None
        rounds.append(
            {
                "suggest_s": suggest_end[i] - starts[i],
                "loop_s": decide_start[i] - suggest_end[i],
                "decide_s": decide_end[i] - decide_start[i],
                "to_next_round_s": (nxt - decide_end[i]) if nxt is not None else None,
            }
        )
    span = max(t for t, _, _ in events) - first
    return {
        "span_s": span,
        "kinds": kinds,
        "rounds": rounds,
        "tasks": sum(k["tasks"] for k in kinds.values()),
    }


def _chains(events: list[tuple[float, str]]) -> list[dict[str, float]]:
    """Each task's start -> component found -> outputs written -> end, matched first come first served.

    kfp.local's log names parallel iterations alike and sometimes loses a line of one of them
    (several threads print to it at once), so the chains are matched in time order within
    one round; a missing line leaves a gap in its chain instead of shifting the others.
    """
    steps = ("start", "looking", "wrote", "end")
    pools = {w: sorted(t for t, w2 in events if w2 == w) for w in steps}
    chains = []
    for start in pools["start"]:
        chain = {"start": start}
        last = start
        for step in steps[1:]:
            candidates = [t for t in pools[step] if t >= last]
            if candidates:
                chain[step] = last = candidates[0]
                pools[step].remove(last)
        chains.append(chain)
    return chains


# --------------------------------------------------------------------------- pieces


def time_command(argv: list[str], repeats: int, env: dict[str, str] | None = None) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, cwd=C.ROOT, env={**os.environ, **(env or {})})
        samples.append(time.perf_counter() - start)
    return C.median(samples)


def pieces(experiment_doc: dict[str, Any], repeats: int) -> dict[str, float]:
    """Stand-alone timings of what one step is made of."""
    from hpo_kfp.decide import decide
    from hpo_kfp.history import History
    from hpo_kfp.spec import parse_experiment
    from hpo_kfp.steps import suggest_step
    from hpo_kfp.store import ExperimentKey, open_store
    from hpo_kfp.suggest import suggest

    py = sys.executable
    out: dict[str, float] = {}
    out["python -c pass"] = time_command([py, "-c", "pass"], repeats)
    # A step runs `_KFP_RUNTIME=true python3 -m kfp.dsl.executor_main`: kfp then skips its client.
    out["import kfp.dsl.executor_main (_KFP_RUNTIME=true, as a step)"] = time_command(
        [py, "-c", "import kfp.dsl.executor_main"], repeats, {"_KFP_RUNTIME": "true"}
    )
    out["import kfp.dsl.executor_main (plain: the CLI's import of kfp)"] = time_command(
        [py, "-c", "import kfp.dsl.executor_main"], repeats
    )
    out["import hpo_kfp.steps"] = time_command([py, "-c", "import hpo_kfp.steps"], repeats)
    out["import hpo_kfp.steps + optuna"] = time_command([py, "-c", "import hpo_kfp.steps, optuna"], repeats)
    out["import hpo_kfp.store.sql (SQLAlchemy)"] = time_command(
        [py, "-c", "import hpo_kfp.store.sql"], repeats
    )
    out["trial process (_trial.py --seconds 0)"] = time_command(
        [py, str(TRIAL_SCRIPT), "--x=0", "--y=0", "--seconds=0"], repeats
    )
    spec = json.dumps(experiment_doc)
    experiment = parse_experiment(spec)
    with tempfile.TemporaryDirectory() as tmp:
        # A history after one round (4 finished trials), as round 2's suggest reads it.
        created, history = suggest(experiment, History(experiment=experiment.name), 4)
        history = history.upsert(replace(t, status="Succeeded", values=(1.0,)) for t in created)
        history_in = Path(tmp) / "in.json"
        history_in.write_text(history.to_json())
        samples = []
        for i in range(repeats):
            start = time.perf_counter()
            suggest_step(spec, str(history_in), str(Path(tmp) / f"out{i}.json"), "")
            samples.append(time.perf_counter() - start)
        out["suggest_step in-process (round 2, warm)"] = C.median(samples)
        # Store writes on a fresh SQLite store.
        target = f"sqlite:///{Path(tmp) / 'store.sqlite'}"
        key = ExperimentKey("", experiment.name)
        start = time.perf_counter()
        store = open_store(target)
        store.open_experiment(experiment, key)
        out["open store (create)"] = time.perf_counter() - start
        finished = [t for t in history.trials]
        samples = []
        for t in finished:
            start = time.perf_counter()
            open_store(target).record(key, t, run_id="bench")
            samples.append(time.perf_counter() - start)
        out["open store + record (collect_metrics' write)"] = C.median(samples)
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            open_store(target).save_decision(key, decide(experiment, history), history.study_attrs)
            samples.append(time.perf_counter() - start)
        out["open store + save_decision (decide's write)"] = C.median(samples)
        from hpo_kfp.pipeline.compact import compact_file
        from hpo_kfp.pipeline.loop import build_pipeline, compile_pipeline

        start = time.perf_counter()
        compile_pipeline(build_pipeline(experiment, rounds=4), Path(tmp) / "p.yaml")
        compact_file(Path(tmp) / "p.yaml")
        out["compile + compact 4 rounds (in-process, warm imports)"] = time.perf_counter() - start
    return out


# --------------------------------------------------------------------------- main


def main() -> int:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--parallel", type=int, default=4)
    p.add_argument("--durations", nargs="+", type=float, default=[0.0, 2.0])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--sides", nargs="+", default=list(SIDES), choices=list(SIDES))
    p.add_argument("--keep", action="store_true", help="keep the run folders (printed)")
    args = p.parse_args()
    if args.quick:
        args.trials, args.parallel, args.repeats = 4, 2, 1
        args.durations = [0.0]
        if args.sides == list(SIDES):
            args.sides = ["hpo-kfp", "optuna"]
    info = C.machine()
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="hpo-kfp-loop-"))
    results: list[dict[str, Any]] = []
    try:
        for seconds in args.durations:
            document = experiment_document(args.trials, args.parallel, seconds)
            folder = root / f"d{seconds:g}"
            folder.mkdir()
            spec_file = folder / "experiment.yaml"
            spec_file.write_text(json.dumps(document), encoding="utf-8")
            for rep in range(args.repeats):
                k = rep % len(args.sides)
                order = args.sides[k:] + args.sides[:k]
                for side in order:
                    workdir = folder / f"{side.replace(' ', '-')}-{rep}"
                    C.log(f"D={seconds:g} s, repeat {rep + 1}/{args.repeats}: {side}")
                    r = run_side(side, spec_file, workdir, args, seconds)
                    r.update({"seconds": seconds, "repeat": rep})
                    if r.get("log"):
                        r["breakdown"] = parse_log(r["log"])
                    C.log(f"  {r['wall_s']:.1f} s")
                    results.append(r)
        C.log("stand-alone pieces")
        piece_times = pieces(experiment_document(args.trials, args.parallel, 0.0), 2 if args.quick else 5)
    finally:
        if args.keep:
            C.log(f"run folders kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    elapsed = time.monotonic() - started
    info["loadavg_end"] = os.getloadavg()[0]
    info["other_load"] = C.other_load()
    text, summary = render(results, piece_times, args)
    C.publish(args, "loop_overhead", info, elapsed, text, summary=summary, pieces=piece_times, runs=results)
    if args.write:
        body = (
            f"Command: `{C.command_line()}`\n\n{C.machine_text(info, elapsed)}\n\n"
            f"T = {args.trials} trials, P = {args.parallel} at a time, D = trial duration; floor = "
            f"⌈T/P⌉·D; per-trial overhead = (wall − floor) / T. Medians over {args.repeats} repeats per "
            "side, sides interleaved in a rotating order; each side is a fresh process timed from "
            "outside.\n\n" + text
        )
        C.write_section("loop_overhead", "Loop overhead (`loop_overhead.py`)", body)
    return 0


def render(
    results: list[dict[str, Any]], piece_times: dict[str, float], args: Any
) -> tuple[str, dict[str, Any]]:
    out = []
    rows = []
    summary: dict[str, Any] = {"sides": {}}
    for seconds in args.durations:
        floor = math.ceil(args.trials / args.parallel) * seconds
        for side in args.sides:
            mine = [r for r in results if r["seconds"] == seconds and r["side"] == side]
            if not mine:
                continue
            wall = C.median([r["wall_s"] for r in mine])
            cpu = C.median([r["cpu_s"] for r in mine])
            ratio = wall / floor if floor else None
            summary["sides"][f"{side} D={seconds:g}"] = {
                "wall_s": wall,
                "floor_s": floor,
                "ratio": ratio,
                "cpu_s": cpu,
            }
            rows.append(
                [
                    f"{seconds:g}",
                    side,
                    len(mine),
                    wall,
                    " / ".join(f"{r['wall_s']:.1f}" for r in mine),
                    floor,
                    f"{ratio:.2f}×" if ratio else "–",
                    (wall - floor) / args.trials,
                    cpu,
                ]
            )
    out.append(
        C.table(
            [
                "D s",
                "side",
                "runs",
                "wall s (median)",
                "runs s",
                "floor s",
                "wall/floor",
                "overhead s/trial",
                "CPU s",
            ],
            rows,
        )
    )
    # The peers' own phases (each printed by _peers.py), medians.
    prow = []
    for seconds in args.durations:
        for side in ("ray-tune", "optuna"):
            mine = [r for r in results if r["seconds"] == seconds and r["side"] == side]
            if not mine:
                continue
            keys = [k for k in mine[0]["phases"] if k.endswith("_s")]
            phases = ", ".join(f"{k[:-2]} {C.median([r['phases'][k] for r in mine]):.1f} s" for k in keys)
            prow.append([f"{seconds:g}", side, phases])
    if prow:
        out.append(
            "\nPeers' phases inside their process (medians; the rest of the wall time is the interpreter):\n"
        )
        out.append(C.table(["D s", "side", "phases"], prow))
    # Target.
    hp = summary["sides"].get("hpo-kfp D=2")
    if hp:
        met = hp["ratio"] <= 1.5
        summary["target_met"] = met
        allowed = 1.5 * hp["floor_s"]
        verdict = "MET" if met else f"MISSED by {hp['wall_s'] - allowed:.1f} s"
        out.append(
            f"\n**Target (hpo-kfp within 1.5× of the floor at D = 2 s): {verdict}** — "
            f"{hp['wall_s']:.1f} s against a floor of {hp['floor_s']:.0f} s = {hp['ratio']:.2f}× "
            f"(the target allows {allowed:.0f} s)."
        )
    # Breakdown of the hpo-kfp runs.
    for side in ("hpo-kfp", "hpo-kfp cap 2"):
        for seconds in args.durations:
            mine = [
                r for r in results if r["side"] == side and r["seconds"] == seconds and r.get("breakdown")
            ]
            if not mine:
                continue
            b = [r["breakdown"] for r in mine]
            wall = C.median([r["wall_s"] for r in mine])
            span = C.median([x["span_s"] for x in b])
            out.append(
                f"\n### Where the time of `{side}` goes, D = {seconds:g} s (medians over {len(mine)} runs)\n"
            )
            out.append(
                f"Process wall {wall:.1f} s = pipeline span in kfp.local {span:.1f} s + "
                f"{wall - span:.1f} s before and after it (CLI start-up and imports, compiling + "
                "compacting the pipeline, creating the MLMD "
                f"store, the final report). {b[0]['tasks']} tasks.\n"
            )
            krows = []
            for kind in dict.fromkeys(k for x in b for k in x["kinds"]):
                vals = [x["kinds"][kind] for x in b if kind in x["kinds"]]
                if not vals:
                    continue

                def m(key: str, vals: list[dict[str, Any]] = vals) -> float | None:
                    got = [v[key] for v in vals if v.get(key) is not None]
                    return C.median(got) if got else None

                krows.append(
                    [
                        kind,
                        f"{vals[0]['tasks']} ({min(v['ends_seen'] for v in vals)}+ ends logged)",
                        m("task_s"),
                        m("process_start_s"),
                        m("component_s"),
                        m("after_s"),
                    ]
                )
            out.append(
                C.table(
                    [
                        "task kind",
                        "tasks",
                        "mean task s",
                        "launch → component found s",
                        "component body s",
                        "outputs written → task done s",
                    ],
                    krows,
                )
            )
            nrounds = len(b[0]["rounds"])
            rrows = []
            for i in range(nrounds):

                def rm(key: str, i: int = i, b: list[dict[str, Any]] = b) -> float | None:
                    got = [
                        x["rounds"][i][key]
                        for x in b
                        if i < len(x["rounds"]) and x["rounds"][i][key] is not None
                    ]
                    return C.median(got) if got else None

                rrows.append([i + 1, rm("suggest_s"), rm("loop_s"), rm("decide_s"), rm("to_next_round_s")])
            out.append("")
            out.append(
                C.table(
                    [
                        "round",
                        "suggest task s",
                        "ParallelFor (run + collect) s",
                        "decide task s",
                        "gap to next round s",
                    ],
                    rrows,
                )
            )
    out.append("\n### Stand-alone pieces (medians)\n")
    out.append(C.table(["piece", "s"], [[k, v] for k, v in piece_times.items()]))
    return "\n".join(out), summary


if __name__ == "__main__":
    sys.exit(main())
