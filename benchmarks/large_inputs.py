"""Large inputs: 10,000 parameters, 200,000 imported trials, the report of 1,000 parameters.

Each case runs the ``hpo-kfp`` command line in a child process on generated files: a
10,000-parameter experiment is validated; 200,000 CSV rows are imported into a new SQLite
store, then imported again (every row already there); ``report`` prints that store's
experiment; a 1,000-parameter experiment runs 4 trials locally and its HTML report is written
again with ``report --html``. With ``--before COMMIT`` each case also runs with that commit's
code (a worktree on ``PYTHONPATH``), right after this checkout's, on the same files. A case
that runs past ``--timeout`` is stopped and shown as such.
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C
import yaml

_MAIN = "import sys; from hpo_kfp.cli import main; sys.exit(main(sys.argv[1:]))"


def wide_experiment(path: Path, parameters: int, trials: int = 4) -> Path:
    """An experiment of ``parameters`` doubles whose trial prints their sum as the loss."""
    names = [f"p{i}" for i in range(parameters)]
    script = "import sys; print('loss=%s' % sum(float(a.split('=')[1]) for a in sys.argv[1:]))"
    command = ["python3", "-c", script, *(f"--{n}=${{trialParameters.{n}}}" for n in names)]
    document = C.experiment_document(
        f"wide{parameters}",
        [C.double(n, 0.0, 1.0) for n in names],
        algorithm="random",
        max_trials=trials,
        parallel=2,
        command=command,
    )
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def quadratic_rows(path: Path, rows: int) -> Path:
    """``rows`` trials of the quadratic example (x, y, optimizer and their loss) as CSV."""
    generator = random.Random(1)
    lines = ["x,y,optimizer,loss"]
    for _ in range(rows):
        x, y = generator.uniform(-4, 4), generator.uniform(-4, 4)
        lines.append(f"{x},{y},{generator.choice(['sgd', 'adam', 'rmsprop'])},{(x - 1) ** 2 + (y + 2) ** 2}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def timed(args: list[str], cwd: Path, code: Path | None, timeout: float) -> str:
    """Seconds ``hpo-kfp ARGS`` took (``code``: the checkout whose hpo_kfp runs), or what
    stopped it."""
    env = {**os.environ, "PYTHONPATH": str(code)} if code is not None else dict(os.environ)
    start = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-c", _MAIN, *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"> {timeout:g} s (stopped)"
    seconds = time.monotonic() - start
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return f"exit {done.returncode} after {seconds:.1f} s: {last[:90]}"
    return f"{seconds:.1f} s"


def main() -> int:
    parser = C.parser(__doc__.splitlines()[0])
    parser.add_argument("--before", help="also run each case with this commit's code")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds before a case is stopped")
    args = parser.parse_args()
    wide, rows, report_wide = (100, 2_000, 20) if args.quick else (10_000, 200_000, 1_000)
    info = C.machine()
    started = time.monotonic()
    checkout = (
        C.worktree(args.before, Path("/tmp/hpo-kfp-large-before"))
        if args.before
        else contextlib.nullcontext()
    )
    sides: list[tuple[str, Path | None]] = [("this checkout", None)]
    results: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="hpo-kfp-large-") as folder, checkout as before:
        work = Path(folder)
        if before is not None:
            sides.append((f"before ({args.before})", before))
        C.log("writing the inputs")
        many = wide_experiment(work / "wide.yaml", wide)
        report_experiment = wide_experiment(work / "report-wide.yaml", report_wide)
        csv = quadratic_rows(work / "rows.csv", rows)
        quadratic = C.ROOT / "examples" / "quadratic" / "experiment.yaml"
        for side, code in sides:
            results[side] = {}
            place = work / side.split(" ")[0]
            place.mkdir()
            store = f"sqlite:///{place / 'store.sqlite'}"
            cases: list[tuple[str, list[str]]] = [
                (f"validate, {wide:,} parameters", ["validate", str(many)]),
                (f"import {rows:,} rows, new store", ["import", str(quadratic), str(csv), "--store", store]),
                (f"import {rows:,} rows again", ["import", str(quadratic), str(csv), "--store", store]),
                (f"report, {rows:,} trials", ["report", "quadratic", "--store", store]),
                (
                    f"run --local, {report_wide:,} parameters, 4 trials",
                    ["run", str(report_experiment), "--local", "--store", store],
                ),
                (
                    f"report --html, {report_wide:,} parameters",
                    ["report", f"wide{report_wide}", "--store", store, "--html", str(place / "r.html")],
                ),
            ]
            for name, command in cases:
                C.log(f"{side}: {name}")
                results[side][name] = timed(command, place, code, args.timeout)
    names = list(next(iter(results.values())))
    table_rows: list[list[Any]] = [[name, *(results[side][name] for side, _ in sides)] for name in names]
    text = C.table(["case", *(side for side, _ in sides)], table_rows)
    elapsed = time.monotonic() - started
    C.publish(args, "large_inputs", info, elapsed, text, results=results)
    if args.write:
        body = (
            f"Command: `{C.command_line()}`\n\n{C.machine_text(info, elapsed)}\n\n"
            f"Wall time of each command (a child process), this checkout's first, then the other's, on "
            f"the same generated files; a case is stopped after {args.timeout:g} s.\n\n{text}\n"
        )
        C.write_section("large_inputs", "Large inputs (`large_inputs.py`)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
