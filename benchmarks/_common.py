"""Helpers shared by the benchmark scripts: experiments, machine facts, tables, RESULTS.md.

Nothing here is part of hpo-kfp; the scripts import it as ``_common`` (they put their own
folder on ``sys.path``).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as _dt
import importlib.util
import json
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS = BENCH_DIR / "RESULTS.md"

# Order of the sections in RESULTS.md (a section not yet written is simply absent).
SECTION_ORDER = ["quality", "suggest_latency", "loop_overhead", "memory", "store_throughput"]

_PACKAGES = (
    "optuna",
    "kfp",
    "ml-metadata",
    "numpy",
    "scipy",
    "cmaes",
    "torch",
    "hyperopt",
    "ray",
)

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# --------------------------------------------------------------------------- arguments


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a tiny run that only validates the script")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout instead of tables")
    p.add_argument("--write", action="store_true", help="(re)write this script's section of RESULTS.md")
    return p


@contextlib.contextmanager
def worktree(commit: str, path: Path) -> Iterator[Path]:
    """The project at ``commit``, checked out at ``path`` (a ``git worktree``) for the block:
    a "before" side run next to this checkout."""
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(path), commit], cwd=ROOT, check=True, capture_output=True
    )
    try:
        yield path
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=False)


def command_line() -> str:
    """The command that ran this script, as it would be typed from the project root."""
    script = Path(sys.argv[0]).resolve()
    try:
        shown = str(script.relative_to(ROOT))
    except ValueError:
        shown = str(script)
    args = " ".join(shlex.quote(a) for a in sys.argv[1:])
    return f"uv run --no-sync --group bench python {shown} {args}".rstrip()


def log(message: str) -> None:
    """Progress on stderr (stdout is reserved for the table or the JSON document)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def runnable(algorithms: list[str]) -> list[str]:
    """``algorithms`` without bayesianoptimization when torch (optional) is not installed."""
    if "bayesianoptimization" in algorithms and importlib.util.find_spec("torch") is None:
        log(
            "torch is not installed: bayesianoptimization is left out (benchmarks/README.md says how to add it)"
        )
        return [a for a in algorithms if a != "bayesianoptimization"]
    return algorithms


# --------------------------------------------------------------------------- machine


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    commit = ""
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "hpo_kfp", "pipelines", "components"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if dirty:
            commit += " (library has uncommitted changes)"
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": ram,
        "python": platform.python_version(),
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "commit": commit,
        "packages": versions,
        "loadavg_start": os.getloadavg()[0],
        "bytecode": bytecode_state(),
    }


def bytecode_state() -> str:
    """Whether the libraries' bytecode is cached: with ``PYTHONDONTWRITEBYTECODE`` set (this
    machine kind sets it) and nothing compiled at install, every interpreter compiles kfp,
    kubernetes, optuna... from source, ~3 s more per command (``uv sync --compile-bytecode``)."""
    import importlib.util

    cached = []
    for name in ("kfp", "optuna", "sqlalchemy", "hpo_kfp"):
        spec = importlib.util.find_spec(name)
        if spec and spec.origin:
            cached.append(Path(importlib.util.cache_from_source(spec.origin)).exists())
    state = "cached" if cached and all(cached) else "NOT cached (compiled from source at every start)"
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        state += ", PYTHONDONTWRITEBYTECODE set"
    return state


def process_table() -> dict[int, tuple[int, int, int, str]]:
    """Every process from /proc: pid -> (parent pid, RSS bytes, CPU ticks, command line)."""
    page = os.sysconf("SC_PAGE_SIZE")
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            rss_pages = int((entry / "statm").read_text().split()[1])
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError, IndexError):
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), rss_pages * page, int(fields[11]) + int(fields[12]), cmd)
    return table


def descendants(table: dict[int, tuple[int, int, int, str]], root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, *_rest) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def other_load() -> str:
    """The busiest processes not started by this benchmark (a hint of disturbance)."""
    with contextlib.suppress(Exception):
        ticks = os.sysconf("SC_CLK_TCK")
        first = process_table()
        time.sleep(1.0)
        second = process_table()
        mine = descendants(second, os.getpid()) | descendants(first, os.getpid())
        rows = []
        for pid, (_, _, cpu, cmd) in second.items():
            if pid in mine or pid not in first:
                continue
            share = (cpu - first[pid][2]) / ticks * 100
            if share >= 20:
                rows.append(f"{share:.0f}% {cmd[:80]}")
        return "; ".join(rows)
    return ""


# --------------------------------------------------------------------------- statistics


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (NaN for no values)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    if len(values) < 2:
        v = values[0] if values else float("nan")
        return v, v
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


@contextlib.contextmanager
def timer() -> Iterator[list[float]]:
    box: list[float] = []
    start = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - start)


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:  # NaN
            return "–"
        if value == 0:
            return "0"
        if 1000 <= abs(value) < 1e7:
            return f"{value:.0f}"
        if abs(value) >= 1e7 or abs(value) < 1e-3:
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}g}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (also readable as plain text)."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    return "\n".join(lines)


# --------------------------------------------------------------------------- output


def emit(args: argparse.Namespace, document: dict[str, Any], text: str) -> None:
    if args.json:
        print(json.dumps(document, default=str, indent=1))
    else:
        print(text)


def publish(
    args: argparse.Namespace, benchmark: str, info: dict[str, Any], elapsed: float, text: str, **data: Any
) -> None:
    """Prints the run: the table (`text`), or with --json one document holding `data`."""
    document = {
        "benchmark": benchmark,
        "command": command_line(),
        "machine": info,
        "elapsed_seconds": elapsed,
        **data,
    }
    emit(args, document, text + f"\n\n({elapsed:.0f} s)")


def machine_text(info: dict[str, Any], elapsed: float | None = None) -> str:
    pkgs = ", ".join(f"{k} {v}" for k, v in info["packages"].items())
    lines = [
        f"- machine: {info['nproc']} cores ({info['cpu']}), {info['ram_gib']} GiB RAM, "
        f"Python {info['python']}",
        f"- date: {info['date']}; hpo-kfp commit {info['commit']}",
        f"- packages: {pkgs}",
        f"- bytecode of the libraries and hpo_kfp: {info.get('bytecode', 'not recorded')}",
    ]
    load = f"- load average (1 min) at start {info['loadavg_start']:.2f}"
    if "loadavg_end" in info:
        load += f", at end {info['loadavg_end']:.2f}"
    if info.get("other_load"):
        load += f"; other busy processes seen: {info['other_load']}"
    lines.append(load)
    if elapsed is not None:
        lines.append(f"- wall time of the whole script: {elapsed:.0f} s")
    return "\n".join(lines)


def write_section(key: str, title: str, body: str) -> None:
    """Replaces (or adds) the section ``key`` of RESULTS.md, keeping the others."""
    begin, end = f"<!-- BEGIN {key} -->", f"<!-- END {key} -->"
    block = f"{begin}\n## {title}\n\n{body.strip()}\n{end}"
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
    sections = dict(re.findall(r"<!-- BEGIN (\S+) -->\n(.*?)\n<!-- END \1 -->", text, flags=re.S))
    # Hand-written analysis between the NOTES markers survives a rewrite of the numbers.
    notes = re.search(r"<!-- NOTES -->\n.*?<!-- /NOTES -->", sections.get(key, ""), flags=re.S)
    if notes:
        block = f"{begin}\n## {title}\n\n{body.strip()}\n\n{notes.group(0)}\n{end}"
    header = text.split("<!-- BEGIN", 1)[0].strip() or _RESULTS_HEADER.strip()
    sections[key] = block[len(begin) + 1 : -len(end) - 1]
    ordered = [k for k in SECTION_ORDER if k in sections] + [k for k in sections if k not in SECTION_ORDER]
    parts = [header] + [f"<!-- BEGIN {k} -->\n{sections[k]}\n<!-- END {k} -->" for k in ordered]
    RESULTS.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    log(f"wrote section {key!r} of {RESULTS}")


_RESULTS_HEADER = """
# Benchmark results

Each section below is (re)written by one script in this folder with `--write`; it records
the exact command, the machine, the date and the package versions. See
[README.md](README.md) for what each script measures. The machine is shared (2 cores, another
engineer's test runs may be active): compare the columns of one table — they ran
interleaved in the same process — rather than numbers across sections or dates.
"""


# --------------------------------------------------------------------------- the service


def start_server(
    folder: Path, store: str, workers: int = 1, code: Path | None = None
) -> tuple[subprocess.Popen[str], str]:
    """``hpo-kfp serve`` on a free loopback port with ``store`` (its log in ``folder``), once
    it answers ``/health``; with ``code``, that checkout's hpo-kfp (on ``PYTHONPATH``).
    Returns the process and the REST base URL."""
    import queue
    import threading
    import urllib.error
    import urllib.request

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hpo_kfp",
            "serve",
            "--port",
            "0",
            "--store",
            store,
            "--workers",
            str(workers),
        ],
        stdout=subprocess.PIPE,
        stderr=(folder / "server.log").open("w"),
        text=True,
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(code)} if code is not None else None,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout or ()], daemon=True).start()
    deadline = time.monotonic() + 120
    url = ""
    while not url:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            raise RuntimeError((folder / "server.log").read_text()) from None
        if "REST on " in line:
            url = line.split("REST on ", 1)[1].strip()
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
                if answer.status == 200:
                    return process, url
        except (urllib.error.URLError, ConnectionError):
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError((folder / "server.log").read_text())
        time.sleep(0.05)


# --------------------------------------------------------------------------- experiments


def experiment_document(
    name: str,
    parameters: list[dict[str, Any]],
    *,
    algorithm: str,
    seed: int | None = None,
    settings: dict[str, Any] | None = None,
    max_trials: int = 100,
    parallel: int = 4,
    objective: str = "minimize",
    metric: str = "loss",
    command: list[str] | None = None,
    metric_strategy: str | None = None,
) -> dict[str, Any]:
    """A Katib Experiment document for ``parameters`` (Katib's own parameter dicts)."""
    algorithm_settings = [{"name": k, "value": str(v)} for k, v in (settings or {}).items()]
    if seed is not None:
        algorithm_settings.append({"name": "random_state", "value": str(seed)})
    trial_parameters = [{"name": p["name"], "reference": p["name"]} for p in parameters]
    if command is None:
        command = ["python3", "trial.py"] + [
            f"--{p['name']}=${{trialParameters.{p['name']}}}" for p in parameters
        ]
    spec: dict[str, Any] = {
        "objective": {"type": objective, "objectiveMetricName": metric},
        "algorithm": {"algorithmName": algorithm, "algorithmSettings": algorithm_settings},
        "parallelTrialCount": parallel,
        "maxTrialCount": max_trials,
        "maxFailedTrialCount": max_trials,
        "parameters": copy.deepcopy(parameters),
        "trialTemplate": {
            "primaryContainerName": "main",
            "trialParameters": trial_parameters,
            "trialSpec": {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [{"name": "main", "image": "python:3.11", "command": command}],
                            "restartPolicy": "Never",
                        }
                    }
                },
            },
        },
    }
    if metric_strategy:
        spec["objective"]["metricStrategies"] = [{"name": metric, "value": metric_strategy}]
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": spec,
    }


def double(name: str, low: float, high: float, *, log_scale: bool = False, step: float | None = None) -> dict:
    space: dict[str, Any] = {"min": str(low), "max": str(high)}
    if log_scale:
        space["distribution"] = "logUniform"
    if step is not None:
        space["step"] = str(step)
    return {"name": name, "parameterType": "double", "feasibleSpace": space}


def integer(name: str, low: int, high: int) -> dict:
    return {"name": name, "parameterType": "int", "feasibleSpace": {"min": str(low), "max": str(high)}}


def categorical(name: str, values: Sequence[str]) -> dict:
    return {"name": name, "parameterType": "categorical", "feasibleSpace": {"list": list(values)}}


def quiet_optuna() -> None:
    import logging
    import warnings

    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=".*independent sampl.*")
    warnings.filterwarnings("ignore", category=UserWarning, module="optuna")
