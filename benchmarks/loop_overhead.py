"""Loop overhead: 16 trials, 4 at a time, trial durations 0 s and 2 s, against the floor ⌈T/P⌉·D.

Sides, each a fresh process timed from outside (wall time, start-up included), interleaved
repeat by repeat in a rotating order, the same trial script (``_trial.py``: sleep D, print
the loss) run as a subprocess by all:

* ``hpo-kfp``        — ``hpo-kfp run FILE --local --workdir DIR --json`` (compiles the pipeline,
  runs it with kfp.local in asynchronous lanes: a ``start`` task, then P lane tasks each looping
  claim → run → collect → record in its own process, then ``decide``; every task a process
  forked from the steps' warm server; tpe);
* ``hpo-kfp cap 2``  — the same with kfp.local's cap of 2 concurrent ParallelFor iterations
  kept (``_peers.py capped``; hpo-kfp lifts it to ``parallelTrialCount``): 2 lanes at a time;
* ``ray-tune``       — Ray Tune, Optuna searcher, 4 concurrent, on a local Ray (``_peers.py ray``);
* ``optuna``         — ``study.optimize(n_jobs=4)``, TPE (``_peers.py optuna``).

``--sides`` picks some (comma- or space-separated, e.g. ``--sides hpo-kfp,optuna``: no Ray).
A side's CPU time is its whole process tree's (user + system), the processes it leaves
behind included (hpo-kfp's steps' server and the tasks it forked: see ``adopt_orphans``).

Then where the hpo-kfp runs' time goes. Their ``kfp-local.log`` gives each task's start and
end as kfp.local saw them and, from the step's own log lines, when the step's code was
reached ("Looking for component") and when it wrote its outputs. The lanes' tasks of one
kind run at once and kfp.local names them alike (slot k's tasks carry the suffix -k in every
lane), so starts and ends are matched per task name in time order: sums and means per kind
are exact whichever start belongs to which end. The step's own lines name their task's
folder (lane and slot), and the trial script logs its own start and end (``--log``), so the
gap between one trial's end and the next trial's start in the same lane is split exactly into
the steps and the hand-overs between them, and the run's start and end are measured from the
command's start to the first trial and from the last trial to the command's end. Stand-alone
measurements add the pieces: interpreter start, ``import kfp.dsl.executor_main``, ``import
hpo_kfp.steps``, a claim of one trial on an SQLite store, the lanes' steps in-process, the
store's writes, and compiling and loading the lanes pipeline.
"""

from __future__ import annotations

import importlib
import itertools
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
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C

TRIAL_SCRIPT = C.BENCH_DIR / "_trial.py"
PEERS = C.BENCH_DIR / "_peers.py"
SIDES = ("hpo-kfp", "hpo-kfp cap 2", "ray-tune", "optuna")
TRIAL_LOG = "trials.jsonl"
"""The trial script's own log of an hpo-kfp run (in the run's work folder)."""


def experiment_document(
    trials: int, parallel: int, seconds: float, log: Path | None = None
) -> dict[str, Any]:
    command = [
        "python3",
        str(TRIAL_SCRIPT),
        "--x=${trialParameters.x}",
        "--y=${trialParameters.y}",
        f"--seconds={seconds:g}",
    ]
    if log is not None:
        command.append(f"--log={log}")
    return C.experiment_document(
        "loop-overhead",
        [C.double("x", -4, 4), C.double("y", -4, 4)],
        algorithm="tpe",
        seed=0,
        max_trials=trials,
        parallel=parallel,
        command=command,
    )


def adopt_orphans() -> bool:
    """Makes this process the reaper of its descendants' orphans (Linux's child subreaper).

    A side's CPU time is its process tree's, from ``RUSAGE_CHILDREN``; that counts only
    processes that were waited for. hpo-kfp's steps' server (a multiprocessing forkserver,
    which waits for the tasks it forks) outlives the command and is nobody's to wait for, so
    without this its tasks' CPU time would be lost; with it, :func:`_reap_orphans` waits for it.
    """
    if sys.platform != "linux":
        return False
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def _reap_orphans(timeout: float = 10.0) -> int:
    """Waits for the orphans this process adopted (at most ``timeout`` s); returns how many."""
    deadline = time.monotonic() + timeout
    reaped = 0
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid:
            reaped += 1
        elif time.monotonic() > deadline:
            return reaped
        else:
            time.sleep(0.02)


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
    started_at = time.time()
    start = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, cwd=workdir, timeout=1800, check=False)
    wall = time.perf_counter() - start
    ended_at = time.time()
    orphans = _reap_orphans()
    after = os.times()
    if out.returncode != 0:
        raise RuntimeError(f"{side} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    last = out.stdout.strip().splitlines()[-1]
    result: dict[str, Any] = {
        "side": side,
        "wall_s": wall,
        "started_at": started_at,
        "ended_at": ended_at,
        "cpu_s": (after.children_user - before.children_user)
        + (after.children_system - before.children_system),
        "orphans_reaped": orphans,
        "phases": json.loads(last),
    }
    if side.startswith("hpo-kfp"):
        logs = sorted(workdir.glob("loop-overhead/*/kfp-local.log"))
        result["log"] = str(logs[-1]) if logs else None
        # More than one compiled run (a lane's slots spent) would chain kfp-local-N.log files.
        result["pipeline_runs"] = len(list(workdir.glob("loop-overhead/*/kfp-local*.log")))
    return result


# --------------------------------------------------------------------------- kfp-local.log

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ORCH = re.compile(
    r"^(\d\d:\d\d:\d\d\.\d+) - INFO - "
    r"(?:Executing task '([\w-]+)'|Task '([\w-]+)' finished|(Running pipeline))"
)
_EXEC = re.compile(
    r"^\[KFP Executor (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+) INFO\]: "
    r"(?:Looking for component `(\w+)`|Wrote executor output file to (\S+))"
)
_OUTPUT_FILE = re.compile(r'"outputFile": "([^"]+)"')
_LANE = re.compile(r"for-loop-\d+-iteration-(\d+)")
KINDS = ("start", "suggest", "run-trial", "collect-metrics", "decide")
"""The loop's task kinds; others found in the log (e.g. a report step) are listed after them."""


def _time_of_day(stamp: str) -> float:
    h, m, s = stamp.replace(",", ".").split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def _kind(name: str) -> str:
    name = name.replace("_", "-")
    for kind in KINDS:
        if name == kind or name.startswith(kind + "-"):
            return kind
    return name


def _lane(path: str) -> int | None:
    """The lane (1..P, the ParallelFor iteration + 1) of a task folder's path."""
    m = _LANE.search(path)
    return int(m.group(1)) + 1 if m else None


def parse_log(path: str | Path, day: float | None = None) -> dict[str, Any]:
    """Per-kind task timings (and per-round phases, for synchronous rounds) from a run's kfp-local.log.

    Times are wall-clock seconds (epoch): the step's lines carry their date, kfp.local's own
    lines only the time of day, counted from ``day`` (local midnight; by default that of the
    first step line).
    """
    raw_events: list[tuple[str, str, str, str | None, int | None]] = []  # (stamp, what, name, day, lane)
    pending: int | None = None  # index of a "Looking for component" event awaiting its task's folder
    for raw in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        line = _ANSI.sub("", raw)
        m = _ORCH.match(line)
        if m:
            if m.group(4):
                raw_events.append((m.group(1), "pipeline", "", None, None))
            else:
                what = "start" if m.group(2) else "end"
                raw_events.append((m.group(1), what, m.group(2) or m.group(3), None, None))
            continue
        m = _EXEC.match(line)
        if m:
            date, stamp = m.group(1).split(" ")
            if m.group(2):
                # The task's folder (its name and lane) is in the step's executor input, next.
                raw_events.append((stamp, "looking", m.group(2).replace("_", "-"), date, None))
                pending = len(raw_events) - 1
            else:
                folder = Path(m.group(3).rstrip(".")).parent
                raw_events.append((stamp, "wrote", folder.name, date, _lane(str(folder))))
            continue
        if pending is not None:
            m = _OUTPUT_FILE.search(line)
            if m:
                stamp, what, _, date, _ = raw_events[pending]
                folder = Path(m.group(1)).parent
                raw_events[pending] = (stamp, what, folder.name, date, _lane(str(folder)))
                pending = None
    if not raw_events:
        return {}
    if day is None:
        first_date = next((d for _, _, _, d, _ in raw_events if d), None)
        when = datetime.strptime(first_date, "%Y-%m-%d") if first_date else datetime.now()
        day = when.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    # Epoch seconds. kfp.local's lines have no date: count days from `day`, a new one each
    # time the time of day falls back by half a day (a run across midnight).
    events: list[tuple[float, str, str, int | None]] = []
    offset, last = 0.0, None
    for stamp, what, name, date, lane in raw_events:
        if date:
            t = datetime.strptime(f"{date} {stamp.replace(',', '.')}", "%Y-%m-%d %H:%M:%S.%f").timestamp()
        else:
            tod = _time_of_day(stamp)
            if last is not None and tod < last - 43200:
                offset += 86400
            last = tod
            t = day + offset + tod
        events.append((t, what, name, lane))
    lanes = any(w == "start" and n == "start" for _, w, n, _ in events)
    tasks = [(t, w, n) for t, w, n, _ in events if w != "pipeline"]
    if lanes:
        # One segment: slot k's tasks are named alike in every lane (suffix -k), so chains are
        # matched per task name in time order.
        segments = [(float("-inf"), float("inf"))]
        starts: list[float] = []
    else:
        # Synchronous rounds reuse the task names each round: suggest and decide run alone,
        # once per round, so a round runs from one suggest's start to the next's.
        starts = sorted(t for t, w, n in tasks if _kind(n) == "suggest" and w == "start")
        bounds = [*starts[1:], float("inf")]
        segments = list(zip([float("-inf"), *bounds[:-1]], bounds, strict=True))
    chains: dict[str, list[dict[str, float]]] = {}
    names = sorted({n for _, _, n in tasks})
    for lo, hi in segments:
        for name in names:
            mine = [(t, w) for t, w, n in tasks if n == name and lo <= t < hi]
            chains.setdefault(_kind(name), []).extend(_chains(mine))
    found = sorted(set(chains) - set(KINDS))
    kinds: dict[str, dict[str, Any]] = {}
    for kind in [*KINDS, *found]:
        mine = [c for c in chains.get(kind, []) if "start" in c]
        if not mine:
            continue

        def mean(a: str, b: str, mine: list[dict[str, float]] = mine) -> float | None:
            got = [c[b] - c[a] for c in mine if a in c and b in c]
            return sum(got) / len(got) if got else None

        kinds[kind] = {
            "tasks": len(mine),
            "ends_seen": sum(1 for c in mine if "end" in c),
            "task_s": mean("start", "end"),
            "process_start_s": mean("start", "looking"),
            "component_s": mean("looking", "wrote"),
            "after_s": mean("wrote", "end"),
        }
    rounds = []
    if not lanes:
        suggest_end = sorted(t for t, w, n in tasks if _kind(n) == "suggest" and w == "end")
        decide_start = sorted(t for t, w, n in tasks if _kind(n) == "decide" and w == "start")
        decide_end = sorted(t for t, w, n in tasks if _kind(n) == "decide" and w == "end")
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
    # The steps' own lines, each naming its task's lane and folder: exact per task.
    steps: dict[tuple[int, str], dict[str, Any]] = {}
    for t, w, n, lane in events:
        if w in ("looking", "wrote") and lane is not None:
            steps.setdefault((lane, n), {"lane": lane, "name": n})[w] = t
    first = min(t for t, _, _, _ in events)
    end = max(t for t, _, _, _ in events)
    pipeline = [t for t, w, _, _ in events if w == "pipeline"]
    start_end = [t for t, w, n, _ in events if w == "end" and n == "start"]
    return {
        "shape": "lanes" if lanes else "rounds",
        "span_s": end - first,
        "pipeline_start": pipeline[0] if pipeline else first,
        "start_done": start_end[0] if start_end else None,
        "pipeline_end": end,
        "kinds": kinds,
        "rounds": rounds,
        "tasks": sum(k["tasks"] for k in kinds.values()),
        "steps": list(steps.values()),
    }


def _chains(events: list[tuple[float, str]]) -> list[dict[str, float]]:
    """Each task's start -> component found -> outputs written -> end, matched first come first served.

    kfp.local's log names parallel iterations alike and sometimes loses a line of one of them
    (several threads print to it at once), so the chains of one task name are matched in time
    order; a missing line leaves a gap in its chain instead of shifting the others.
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


# --------------------------------------------------------------------------- lanes

GAP_PARTS = (
    ("trial ends → run-trial wrote its outputs", ("trial_end", None), ("wrote", "run-trial", 0)),
    ("→ collect-metrics' code reached", ("wrote", "run-trial", 0), ("looking", "collect-metrics", 0)),
    (
        "collect-metrics' code (record the trial)",
        ("looking", "collect-metrics", 0),
        ("wrote", "collect-metrics", 0),
    ),
    ("→ next suggest's code reached", ("wrote", "collect-metrics", 0), ("looking", "suggest", 1)),
    ("suggest's code (claim the next trial)", ("looking", "suggest", 1), ("wrote", "suggest", 1)),
    ("→ next run-trial's code reached", ("wrote", "suggest", 1), ("looking", "run-trial", 1)),
    ("run-trial's code → the trial starts", ("looking", "run-trial", 1), ("trial_start", None)),
)
"""The gap between a lane's trial (slot k) and its next (slot k+1), split at the steps' own
log lines: (label, from, to), each point (step line, task kind, 0 for the first trial's slot
or 1 for the next one's) or a trial time.
The "→" parts are hand-overs: the task's end, kfp.local starting the next task, and the
forked process reaching the step's code."""


def _slot(task: str) -> int:
    """Slot k of a lane's task name (``run-trial`` is slot 1, ``run-trial-k`` slot k)."""
    m = re.search(r"-(\d+)$", task)
    return int(m.group(1)) if m else 1


def _task(kind: str, slot: int) -> str:
    return kind if slot == 1 else f"{kind}-{slot}"


def _point(
    point: tuple[Any, ...],
    steps: dict[tuple[int, str], dict[str, Any]],
    lane: int,
    slots: tuple[int, int],
    before: dict[str, Any],
    after: dict[str, Any],
) -> float | None:
    """When a point of :data:`GAP_PARTS` was, between trial ``before`` (in slot ``slots[0]``)
    and trial ``after`` (in slot ``slots[1]``) of ``lane``."""
    if point[0] == "trial_end":
        return float(before["end"])
    if point[0] == "trial_start":
        return float(after["start"])
    what, kind, ahead = point
    value = steps.get((lane, _task(kind, slots[1] if ahead else slots[0])), {}).get(what)
    return float(value) if value is not None else None


def lane_analysis(
    log: str | Path, breakdown: dict[str, Any], trial_log: Path, run: dict[str, Any]
) -> dict[str, Any]:
    """Per-lane gaps between trials, and the run's start and end, from the trial script's own
    log and the run's task folders (``run-trial*``'s output names its trial)."""
    if not trial_log.exists() or not breakdown:
        return {}
    trials = {}
    for line in trial_log.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            trials[record["name"]] = record
    where: dict[str, tuple[int, int]] = {}
    for output in Path(log).parent.glob("artifacts/*/for-loop-*-iteration-*/run-trial*/executor_output.json"):
        lane = _lane(str(output))
        try:
            result = json.loads(json.loads(output.read_text(encoding="utf-8"))["parameterValues"]["Output"])
            name = result["trial"]["name"]
        except (KeyError, ValueError, TypeError):
            continue
        if lane is not None:
            where[name] = (lane, _slot(output.parent.name))
    steps = {(s["lane"], s["name"]): s for s in breakdown.get("steps", [])}
    per_lane: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    for name, (lane, slot) in where.items():
        if name in trials:
            per_lane.setdefault(lane, []).append((slot, trials[name]))
    lanes, parts = [], []
    for lane in sorted(per_lane):
        ran = sorted(per_lane[lane], key=lambda x: x[1]["start"])
        gaps = []
        for (slot, a), (next_slot, b) in itertools.pairwise(ran):
            gaps.append(b["start"] - a["end"])
            split: dict[str, Any] = {}
            for label, frm, to in GAP_PARTS:
                x = _point(frm, steps, lane, (slot, next_slot), a, b)
                y = _point(to, steps, lane, (slot, next_slot), a, b)
                split[label] = y - x if x is not None and y is not None else None
            split["slots"] = (slot, next_slot)
            parts.append(split)
        lanes.append({"lane": lane, "trials": len(ran), "gaps": gaps})
    placed = [r for name, r in trials.items() if name in where]
    if not placed:
        return {}
    first_start = min(r["start"] for r in placed)
    last_end = max(r["end"] for r in placed)
    pipeline_start = breakdown["pipeline_start"]
    start_done = breakdown.get("start_done")
    return {
        "trials_logged": len(trials),
        "trials_placed": len(placed),
        "lanes": lanes,
        "gap_parts": parts,
        "to_first_trial_s": first_start - run["started_at"],
        "after_last_trial_s": run["ended_at"] - last_end,
        "trial_span_s": last_end - first_start,
        "edges": {
            "command starts → kfp.local starts the pipeline": pipeline_start - run["started_at"],
            "→ `start` task done": (start_done - pipeline_start) if start_done else None,
            "→ first trial starts": (first_start - start_done) if start_done else None,
            "last trial ends → last task done (`decide`)": breakdown["pipeline_end"] - last_end,
            "→ command ends (report, summary)": run["ended_at"] - breakdown["pipeline_end"],
        },
    }


# --------------------------------------------------------------------------- pieces


def time_command(argv: list[str], repeats: int, env: dict[str, str] | None = None) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, cwd=C.ROOT, env={**os.environ, **(env or {})})
        samples.append(time.perf_counter() - start)
    return C.median(samples)


def _timed(repeats: int, call: Any) -> float:
    samples = []
    for i in range(repeats):
        start = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - start)
    return C.median(samples)


def _forked(repeats: int, call: Any) -> float:
    """Median time of ``call(i)``, each call in a process forked from this one."""
    samples = []
    for i in range(repeats):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: time the call, report it, leave without cleaning up
            os.close(read)
            code = 1
            try:
                start = time.perf_counter()
                call(i)
                os.write(write, repr(time.perf_counter() - start).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        with os.fdopen(read) as stream:
            text = stream.read()
        _, status = os.waitpid(pid, 0)
        if status or not text:
            raise RuntimeError(f"a forked piece failed (status {status})")
        samples.append(float(text))
    return C.median(samples)


def pieces(trials: int, parallel: int, repeats: int) -> dict[str, float]:
    """Stand-alone timings of what one step is made of."""
    from hpo_kfp.claim import claim
    from hpo_kfp.compat import load_pipeline_file
    from hpo_kfp.decide import decide
    from hpo_kfp.pipeline.lanes import build_lanes_pipeline
    from hpo_kfp.pipeline.local import warm_modules
    from hpo_kfp.pipeline.tasks import compile_pipeline
    from hpo_kfp.spec import parse_experiment
    from hpo_kfp.steps.lanes import finish_step, next_trial, read_run_document, start_step
    from hpo_kfp.steps.settings import StepSettings
    from hpo_kfp.store import open_store

    py = sys.executable
    out: dict[str, float] = {}
    out["python -c pass"] = time_command([py, "-c", "pass"], repeats)
    # A step's process (forked from the warm server, or `_KFP_RUNTIME=true python3 -m
    # kfp.dsl.executor_main` without it) imports kfp in its runtime mode: no compiler, no client.
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
    # The store's experiment has room for every claim below (the benchmark's may be tiny).
    spec = json.dumps(experiment_document(max(trials, 100), parallel, 0.0))
    experiment = parse_experiment(spec)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = f"sqlite:///{folder / 'store.sqlite'}"
        # What the steps' warm server imports ahead: the timings below are then a step's own.
        for module in warm_modules(url):
            importlib.import_module(module)
        settings = StepSettings(store=url, trial_cwd=tmp)
        key = settings.experiment_key(experiment)
        document = folder / "run.json"

        def finished(trial: Any) -> Any:
            loss = float(sum(v * v for v in trial.parameters.values()))
            return replace(trial, status="Succeeded", values=(loss,), metrics={"loss": loss})

        def history_of_four(_: int) -> None:
            # A history of 4 finished trials, as a lane's claim in the middle of a run reads it.
            store = open_store(url)
            created, _ = claim(store, experiment, key, 4, owner="bench")
            for trial in created:
                store.record(key, finished(trial), run_id="bench")

        # First each step's code in a process forked from this one, as the steps' server forks a
        # task (imports done, nothing run yet); this process touches the store only after.
        out["open store (create) + open_experiment, in a fresh fork"] = _forked(
            1, lambda i: open_store(url).open_experiment(experiment, key)
        )
        _forked(1, history_of_four)
        out["start step in a fresh fork (start_step: open the experiment, write the run document)"] = _forked(
            repeats, lambda i: start_step(spec, settings.to_json(), "bench", str(document))
        )

        def lane_claim(_: int) -> None:
            # What a lane does before each trial: read the run document once, open the store, claim.
            run = read_run_document(str(document))
            next_trial(open_store(url), experiment, settings, run, owner="bench/lane-1/")

        out["a lane's claim in a fresh fork (read the run document, open store, next_trial)"] = _forked(
            repeats, lane_claim
        )
        out["decide step in a fresh fork (finish_step: history, decide, save_decision)"] = _forked(
            repeats,
            lambda i: finish_step(str(document), str(folder / "history.json"), str(folder / "decision.json")),
        )
        # Then the same code again in this process (caches warm: what is left of it is the work).
        claimed: list[Any] = []
        out["open store + claim 1 trial (history: 4+ finished, some pending; tpe), in-process"] = _timed(
            repeats, lambda i: claimed.append(claim(open_store(url), experiment, key, 1, owner="bench")[0][0])
        )
        out["open store + record (collect_metrics' write), in-process"] = _timed(
            repeats, lambda i: open_store(url).record(key, finished(claimed[i]), run_id="bench")
        )
        out["a lane's claim in-process (next_trial)"] = _timed(repeats, lane_claim)
        out["decide step in-process (finish_step)"] = _timed(
            repeats,
            lambda i: finish_step(str(document), str(folder / "history.json"), str(folder / "decision.json")),
        )
        history = open_store(url).history(key)
        out["open store + save_decision (decide's write), in-process"] = _timed(
            repeats,
            lambda i: open_store(url).save_decision(key, decide(experiment, history), history.study_attrs),
        )
        # The pipeline `hpo-kfp run --local` compiles for the benchmark's experiment.
        compiled_experiment = parse_experiment(json.dumps(experiment_document(trials, parallel, 0.0)))
        pipeline = folder / "pipeline.yaml"
        compile_s = _timed(
            repeats,
            lambda i: compile_pipeline(
                build_lanes_pipeline(compiled_experiment, settings=settings, report=False), pipeline
            ),
        )
        size = pipeline.stat().st_size / 1000
        lanes = compiled_experiment.parallel_trial_count
        out[f"compile the lanes pipeline ({lanes} lanes, {size:.0f} KB; warm imports)"] = compile_s
        out["load it (load_pipeline_file)"] = _timed(repeats, lambda i: load_pipeline_file(pipeline))
    return out


# --------------------------------------------------------------------------- main


def _sides(chosen: list[str]) -> list[str]:
    """Side names from ``--sides`` (comma- or space-separated; ``hpo-kfp-cap-2`` for ``hpo-kfp cap 2``)."""

    def norm(name: str) -> str:
        return name.strip().lower().replace("-", " ").replace("_", " ")

    known = {norm(side): side for side in SIDES}
    picked = []
    for item in chosen:
        for name in item.split(","):
            if not name.strip():
                continue
            if norm(name) not in known:
                raise SystemExit(f"--sides: unknown side {name!r}; choose from {', '.join(SIDES)}")
            picked.append(known[norm(name)])
    return list(dict.fromkeys(picked))


def main() -> int:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--parallel", type=int, default=4)
    p.add_argument("--durations", nargs="+", type=float, default=[0.0, 2.0])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument(
        "--sides",
        nargs="+",
        default=list(SIDES),
        help=f"sides to run, comma- or space-separated (default: all of {', '.join(SIDES)})",
    )
    p.add_argument("--keep", action="store_true", help="keep the run folders (printed)")
    args = p.parse_args()
    all_sides = args.sides == list(SIDES)
    args.sides = _sides(args.sides)
    if args.quick:
        args.trials, args.parallel, args.repeats = 4, 2, 1
        args.durations = [0.0]
        if all_sides:
            args.sides = ["hpo-kfp", "optuna"]
    info = C.machine()
    info["cpu_of_orphans_counted"] = adopt_orphans()
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
                    side_spec = spec_file
                    if side.startswith("hpo-kfp"):
                        # The run's own spec: its trials log their start and end to its folder.
                        workdir.mkdir(parents=True)
                        side_spec = workdir / "experiment.yaml"
                        logged = experiment_document(args.trials, args.parallel, seconds, workdir / TRIAL_LOG)
                        side_spec.write_text(json.dumps(logged), encoding="utf-8")
                    C.log(f"D={seconds:g} s, repeat {rep + 1}/{args.repeats}: {side}")
                    r = run_side(side, side_spec, workdir, args, seconds)
                    r.update({"seconds": seconds, "repeat": rep})
                    if r.get("log"):
                        day = datetime.fromtimestamp(r["started_at"]).replace(
                            hour=0, minute=0, second=0, microsecond=0
                        )
                        r["breakdown"] = parse_log(r["log"], day.timestamp())
                        r["lanes"] = lane_analysis(r["log"], r["breakdown"], workdir / TRIAL_LOG, r)
                    C.log(f"  {r['wall_s']:.1f} s")
                    results.append(r)
        C.log("stand-alone pieces")
        piece_times = pieces(args.trials, args.parallel, 2 if args.quick else 5)
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


def _median_of(values: list[Any]) -> float | None:
    got = [v for v in values if v is not None]
    return C.median(got) if got else None


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
            if mine:
                out.extend(_breakdown(side, seconds, mine, summary))
    out.append("\n### Stand-alone pieces (medians)\n")
    out.append(C.table(["piece", "s"], [[k, v] for k, v in piece_times.items()]))
    return "\n".join(out), summary


def _breakdown(side: str, seconds: float, mine: list[dict[str, Any]], summary: dict[str, Any]) -> list[str]:
    """The tables of where one side's time goes at one trial duration."""
    out = []
    b = [r["breakdown"] for r in mine]
    wall = C.median([r["wall_s"] for r in mine])
    span = C.median([x["span_s"] for x in b])
    shape = b[0]["shape"]
    out.append(f"\n### Where the time of `{side}` goes, D = {seconds:g} s (medians over {len(mine)} runs)\n")
    chained = max(r.get("pipeline_runs", 1) for r in mine)
    out.append(
        f"Process wall {wall:.1f} s = pipeline span in kfp.local {span:.1f} s + "
        f"{wall - span:.1f} s before and after it (CLI start-up and imports, opening the store, "
        "starting the steps' warm server, compiling and loading the pipeline; the run's report "
        f"and summary). {b[0]['tasks']} tasks"
        + (
            " (one `start`; per lane a `suggest` per trial plus one that claims nothing, a `run-trial` "
            "and a `collect-metrics` per trial; one `decide`)"
            if shape == "lanes"
            else " (synchronous rounds)"
        )
        + (f"; {chained} compiled runs chained, only the first one's log is read" if chained > 1 else "")
        + ". Per kind: kfp.local's task time (Executing → finished), split at the step's own lines.\n"
    )
    krows = []
    for kind in dict.fromkeys(k for x in b for k in x["kinds"]):
        vals = [x["kinds"][kind] for x in b if kind in x["kinds"]]

        def m(key: str, vals: list[dict[str, Any]] = vals) -> float | None:
            return _median_of([v[key] for v in vals])

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
    if shape == "rounds":
        nrounds = len(b[0]["rounds"])
        rrows = []
        for i in range(nrounds):

            def rm(key: str, i: int = i) -> float | None:
                return _median_of([x["rounds"][i][key] for x in b if i < len(x["rounds"])])

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
        return out
    lanes = [r["lanes"] for r in mine if r.get("lanes")]
    if not lanes:
        out.append("\n(no trial log: lanes not analysed)")
        return out
    # Per lane: the gaps between one trial's end and the next trial's start.
    out.append(
        "\nPer lane (from the trial script's own start and end times): the gap between a trial's end "
        "and the next trial's start in the same lane; per run the mean and the largest, then medians "
        "over runs.\n"
    )
    lrows = []
    numbers = sorted({lane["lane"] for x in lanes for lane in x["lanes"]})
    for number in [*numbers, None]:
        per_run = []
        for x in lanes:
            chosen = [lane for lane in x["lanes"] if number is None or lane["lane"] == number]
            gaps = [g for lane in chosen for g in lane["gaps"]]
            per_run.append((sum(lane["trials"] for lane in chosen), gaps))
        gapped = [(n, g) for n, g in per_run if g]
        lrows.append(
            [
                "all" if number is None else number,
                _median_of([n for n, _ in per_run]),
                _median_of([len(g) for _, g in per_run]),
                _median_of([sum(g) / len(g) for _, g in gapped]),
                _median_of([max(g) for _, g in gapped]),
            ]
        )
    out.append(C.table(["lane", "trials", "gaps", "mean gap s", "max gap s"], lrows))
    # The gap split at the steps' lines.
    prows = []
    for label, _, _ in GAP_PARTS:
        means, maxes = [], []
        for x in lanes:
            got = [p[label] for p in x["gap_parts"] if p.get(label) is not None]
            if got:
                means.append(sum(got) / len(got))
                maxes.append(max(got))
        prows.append([label, _median_of(means), _median_of(maxes)])
    sums = []
    for x in lanes:
        whole = [
            sum(p[label] for label, _, _ in GAP_PARTS)
            for p in x["gap_parts"]
            if all(p.get(label) is not None for label, _, _ in GAP_PARTS)
        ]
        if whole:
            sums.append(sum(whole) / len(whole))
    prows.append(["= the gap (trial end → next trial start)", _median_of(sums), None])
    out.append(
        "\nA gap split at the steps' own log lines (slot k's trial → slot k+1's, same lane; means "
        "over the gaps of a run, medians over runs):\n"
    )
    out.append(C.table(["part of the gap", "mean s", "max s"], prows))
    # The run's start and end.
    erows = []
    keys = list(lanes[0]["edges"])
    for key in keys[:3]:
        erows.append([key, _median_of([x["edges"][key] for x in lanes])])
    erows.append(["= command start → first trial starts", _median_of([x["to_first_trial_s"] for x in lanes])])
    erows.append(["first trial starts → last trial ends", _median_of([x["trial_span_s"] for x in lanes])])
    for key in keys[3:]:
        erows.append([key, _median_of([x["edges"][key] for x in lanes])])
    erows.append(["= last trial ends → command ends", _median_of([x["after_last_trial_s"] for x in lanes])])
    out.append("\nThe run's start and end (wall clock; medians over runs):\n")
    out.append(C.table(["span", "s"], erows))
    summary.setdefault("lanes", {})[f"{side} D={seconds:g}"] = {
        "mean_gap_s": lrows[-1][3],
        "max_gap_s": lrows[-1][4],
        "to_first_trial_s": erows[3][1],
        "after_last_trial_s": erows[-1][1],
    }
    return out


if __name__ == "__main__":
    sys.exit(main())
