"""The report page at 100 and 1000 trials: its size, the time to write it, and the time
headless Chromium takes to load it and to draw its charts.

A TPE-like history is made up in this process (6 double parameters, a 10-point series per
trial, 85% succeeded, 10% stopped early, 5% failed with a log tail, 8 lanes), the page written by
`html_page` (with its charts' data), and each page loaded `--loads` times by Debian's
Chromium (headless, driven over its DevTools protocol): the load time is the page's own Navigation Timing
(`loadEventEnd`), read in the page, so Chromium's start-up is not in it; "first view drawn"
is when the page's script has unpacked ECharts and drawn the charts in the first view (800 ×
600: none, at these sizes, the table comes first), the others drawing as they are scrolled
to; "other charts" is the time to draw all of those at once (`hpoDrawAll()`).
With `--before COMMIT`, that commit's `html_page` writes the same histories too (a worktree
on `PYTHONPATH`, in a child process).

Target (issue 29): a 1000-trial page of 6 parameters at most 1.5 MB, loaded in under a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as C

# Read in the page once it has loaded and, with ECharts' charts, drawn them: its own
# Navigation Timing (load) and the moment its script says the charts are drawn (it unpacks the
# library after the load event, then waits for the frame after the one that paints them).
_TIMING = """(function () {
  var t = performance.getEntriesByType("navigation")[0];
  if (!t || !t.loadEventEnd) { return null; }
  if (window.hpoCharts === undefined && document.getElementById("echarts-gz")) { return null; }
  return {load: t.loadEventEnd, charts: window.hpoCharts || null};
})()"""
# Then every chart still waiting for the reader to scroll to it, drawn at once: its time.
_DRAW_ALL = """(function () {
  if (!window.hpoDrawAll) { return null; }
  var started = performance.now();
  window.hpoDrawAll();
  return performance.now() - started;
})()"""

# Writes one page from a pickled (experiment, history) with whichever hpo_kfp is importable.
_WRITE = """
import pickle, sys, time
from hpo_kfp.decide import decide
from hpo_kfp.reports.pages import html_page
experiment, history = pickle.load(open(sys.argv[1], "rb"))
started = time.perf_counter()
page = html_page(experiment, history, decide(experiment, history))
seconds = time.perf_counter() - started
open(sys.argv[2], "w", encoding="utf-8").write(page)
print(seconds)
"""


def _history(trials: int) -> tuple[Any, Any]:
    from hpo_kfp.history import History, TrialRecord
    from hpo_kfp.spec import parse_experiment

    sys.path.insert(0, str(C.ROOT))
    from tests.conftest import wide_spec

    experiment = parse_experiment(wide_spec(6))
    metric = experiment.objective.metric
    rng = random.Random(trials)
    records = []
    for number in range(trials):
        status = rng.choices(["Succeeded", "EarlyStopped", "Failed"], [0.85, 0.10, 0.05])[0]
        loss = rng.random()
        records.append(
            TrialRecord(
                name=f"{experiment.name}-{number:04d}",
                number=number,
                parameters={p.name: rng.random() for p in experiment.parameters},
                status=status,
                values=(loss,) if status == "Succeeded" else None,
                metrics={metric: loss} if status == "Succeeded" else {},
                series={metric: [(None, loss + (10 - step) / 10) for step in range(10)]}
                if status != "Failed"
                else {},
                started=f"2026-01-01T00:{number // 60 % 60:02d}:{number % 60:02d}+00:00",
                finished=f"2026-01-01T01:{number // 60 % 60:02d}:{number % 60:02d}+00:00",
                reason="exit code 1" if status == "Failed" else "",
                log_tail="Traceback: out of memory" if status == "Failed" else "",
                lane=f"run-1/lane-{number % 8}",
            )
        )
    return experiment, History(experiment=experiment.name, trials=tuple(records))


def _load_ms(chromium: str, page: Path, folder: Path) -> tuple[float, float | None, float, float | None]:
    """The page's load and first-view-drawn moments (ms since navigation) in a headless Chromium
    driven over its DevTools protocol (real time: `--dump-dom` would need a virtual time
    budget to wait for the charts, and virtual time stands still while scripts run), the
    wall time from navigating to reading them, and the ms to draw every chart not in view."""
    return asyncio.run(_devtools_timing(chromium, page, folder))


async def _devtools_timing(
    chromium: str, page: Path, folder: Path
) -> tuple[float, float | None, float, float | None]:
    import aiohttp

    profile = folder / "profile"
    shutil.rmtree(profile, ignore_errors=True)
    browser = subprocess.Popen(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        for _ in range(600):
            if port_file.is_file() and port_file.read_text().strip():
                break
            await asyncio.sleep(0.05)
        port = port_file.read_text().split()[0]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                [target] = [t for t in await response.json() if t["type"] == "page"]
            async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as socket:
                calls = iter(range(1, 1_000_000))

                async def call(method: str, **params: Any) -> dict[str, Any]:
                    number = next(calls)
                    await socket.send_json({"id": number, "method": method, "params": params})
                    while True:
                        message = await socket.receive_json()
                        if message.get("id") == number:
                            return dict(message.get("result", {}))

                started = time.perf_counter()
                await call("Page.navigate", url=page.as_uri())
                while True:
                    found = await call("Runtime.evaluate", expression=_TIMING, returnByValue=True)
                    timing = found.get("result", {}).get("value")
                    if timing:
                        break
                    if time.perf_counter() - started > 120:
                        raise RuntimeError(f"{page.name}: no timing after 120 s")
                    await asyncio.sleep(0.02)
                wall = (time.perf_counter() - started) * 1000
                found = await call("Runtime.evaluate", expression=_DRAW_ALL, returnByValue=True)
                rest = found.get("result", {}).get("value")
    finally:
        browser.terminate()
        browser.wait(timeout=30)
    return float(timing["load"]), timing["charts"], wall, rest


def main() -> None:
    p = C.parser(__doc__ or "")
    p.add_argument("--trials", default="100,1000", help="history sizes (default 100,1000)")
    p.add_argument("--loads", type=int, default=5, help="Chromium loads of each page (default 5)")
    p.add_argument("--before", help="also write each page with this commit's code")
    args = p.parse_args()
    sizes = [50] if args.quick else [int(n) for n in args.trials.split(",")]
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("needs Debian's chromium (apt-get install chromium)")
    info = C.machine()
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="hpo-kfp-page-") as folder,
        (
            C.worktree(args.before, Path("/tmp/hpo-kfp-page-before"))
            if args.before
            else contextlib.nullcontext()
        ) as before,
    ):
        sides: list[tuple[str, Path | None]] = [("this checkout", None)]
        if before is not None:
            sides.append((f"before ({args.before})", before))
        for size in sizes:
            data = Path(folder) / f"history-{size}.pickle"
            data.write_bytes(pickle.dumps(_history(size)))
            for label, code in sides:
                page = Path(folder) / f"page-{size}-{len(rows)}.html"
                env = {**os.environ, "PYTHONPATH": str(code)} if code is not None else None
                C.log(f"{size} trials, {label}: writing the page")
                written = subprocess.run(
                    [sys.executable, "-c", _WRITE, str(data), str(page)],
                    capture_output=True,
                    text=True,
                    check=True,
                    env=env,
                    cwd=folder,  # not this checkout: `python -c` puts the folder it runs in first
                )
                loads = [
                    _load_ms(chromium, page, Path(folder)) for _ in range(1 if args.quick else args.loads)
                ]
                drawn = [c for _, c, _, _ in loads if c is not None]
                rest = [r for _, _, _, r in loads if r is not None]
                rows.append(
                    {
                        "trials": size,
                        "code": label,
                        "bytes": page.stat().st_size,
                        "write_seconds": float(written.stdout.strip().splitlines()[-1]),
                        "load_ms_median": statistics.median(load for load, _, _, _ in loads),
                        "load_ms_max": max(load for load, _, _, _ in loads),
                        "charts_ms_median": statistics.median(drawn) if drawn else None,
                        "chromium_wall_ms_median": statistics.median(wall for _, _, wall, _ in loads),
                        "rest_ms_median": statistics.median(rest) if rest else None,
                    }
                )
    elapsed = time.perf_counter() - started
    info["loadavg_end"] = os.getloadavg()[0]
    text = C.table(
        [
            "trials",
            "code",
            "MB",
            "write s",
            "load ms (median)",
            "load ms (max)",
            "first view drawn ms",
            "Chromium wall ms",
            "other charts ms",
        ],
        [
            [
                r["trials"],
                r["code"],
                C.fmt(r["bytes"] / 1e6),
                C.fmt(r["write_seconds"]),
                C.fmt(r["load_ms_median"]),
                C.fmt(r["load_ms_max"]),
                "" if r["charts_ms_median"] is None else C.fmt(r["charts_ms_median"]),
                C.fmt(r["chromium_wall_ms_median"]),
                "" if r["rest_ms_median"] is None else C.fmt(r["rest_ms_median"]),
            ]
            for r in rows
        ],
    )
    C.publish(args, "report_page", info, elapsed, text, rows=rows)
    if args.write:
        body = f"```\n{C.command_line()}\n```\n\n{C.machine_text(info, elapsed)}\n\n{text}"
        C.write_section("report_page", "The report page (`report_page.py`)", body)


if __name__ == "__main__":
    main()
