"""The report page at 100 and 1000 trials: its size, the time to write it, and the time
headless Chromium takes to load it.

A TPE-like history is made up in this process (6 double parameters, a 10-point series per
trial, 85% succeeded, 10% stopped early, 5% failed with a log tail), the page written by
`html_page` with Optuna's plots, and each page loaded `--loads` times by Debian's Chromium
(`--headless --dump-dom`): the load time is the page's own Navigation Timing
(`loadEventEnd`), read in the page, so Chromium's start-up is not in it. With `--before
COMMIT`, that commit's `html_page` writes the same histories too (a worktree on
`PYTHONPATH`, in a child process).

Target (issue 29): a 1000-trial page of 6 parameters at most 1.5 MB, loaded in under a second.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as C

_TIMING = """<script>window.addEventListener("load", function () { setTimeout(function () {
  var t = performance.getEntriesByType("navigation")[0], out = document.createElement("pre");
  out.id = "timing"; out.textContent = JSON.stringify({load: t.loadEventEnd});
  document.body.appendChild(out); }, 0); });</script></body>"""

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
            )
        )
    return experiment, History(experiment=experiment.name, trials=tuple(records))


def _load_ms(chromium: str, page: Path, folder: Path) -> float:
    timed = folder / f"timed-{page.name}"
    timed.write_text(page.read_text(encoding="utf-8").replace("</body>", _TIMING), encoding="utf-8")
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={folder / 'profile'}",
            "--dump-dom",
            timed.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found = re.search(r'<pre id="timing">(.*?)</pre>', result.stdout)
    if found is None:
        raise RuntimeError(result.stderr[-2000:])
    return float(json.loads(found.group(1))["load"])


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
                rows.append(
                    {
                        "trials": size,
                        "code": label,
                        "bytes": page.stat().st_size,
                        "write_seconds": float(written.stdout.strip().splitlines()[-1]),
                        "load_ms_median": statistics.median(loads),
                        "load_ms_max": max(loads),
                    }
                )
    elapsed = time.perf_counter() - started
    info["loadavg_end"] = os.getloadavg()[0]
    text = C.table(
        ["trials", "code", "MB", "write s", "load ms (median)", "load ms (max)"],
        [
            [
                r["trials"],
                r["code"],
                C.fmt(r["bytes"] / 1e6),
                C.fmt(r["write_seconds"]),
                C.fmt(r["load_ms_median"]),
                C.fmt(r["load_ms_max"]),
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
