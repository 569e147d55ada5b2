"""Store throughput: trials claimed and recorded per second by 1, 4 and 16 processes at once.

Each process loops: claim one trial (read the history, suggest with ``random``, write the new
trial under the next number; a lost race reads and suggests again), then record it
``Succeeded``, until the experiment's budget is spent. Side by side in one run: SQLite (a
file) and PostgreSQL (this machine's server, a fresh database per case). A claim reads the
whole history, so the rate falls as the experiment grows: the table gives the rate over
``--trials`` trials from an empty experiment.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import _common as C

_WORKER = """
import json, sys
from dataclasses import replace
from hpo_kfp.claim import claim
from hpo_kfp.spec import parse_experiment
from hpo_kfp.store import ExperimentKey, open_store

url, spec, owner = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
experiment = parse_experiment(spec, trial_template=None)
store = open_store(url)
key = ExperimentKey("", experiment.name)
store.open_experiment(experiment, key)
print("ready", flush=True)
sys.stdin.readline()  # all processes start claiming together
done = 0
while True:
    claimed, _ = claim(store, experiment, key, 1, owner=owner)
    if not claimed:
        break
    for trial in claimed:
        loss = float(trial.number)
        store.record(key, replace(trial, status="Succeeded", values=(loss,), metrics={"loss": loss}))
        done += 1
print(done, flush=True)
"""


def _postgres() -> tuple[Any, str]:
    import sqlalchemy as sa

    name = f"hpo_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(
        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as db:
        db.execute(sa.text(f"CREATE DATABASE {name}"))
    return (admin, name), f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def _drop(handle: tuple[Any, str]) -> None:
    import sqlalchemy as sa

    admin, name = handle
    with admin.connect() as db:
        db.execute(sa.text(f"DROP DATABASE {name} WITH (FORCE)"))


def run_case(url: str, processes: int, trials: int) -> dict[str, Any]:
    spec = C.experiment_document(
        "throughput",
        [C.double("x", 0, 1), C.double("y", 0, 1)],
        algorithm="random",
        max_trials=trials,
        parallel=1,
    )
    spec["spec"].pop("trialTemplate", None)
    spec["spec"]["maxFailedTrialCount"] = trials
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, url, json.dumps(spec), f"worker-{index}"],
            cwd=C.ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(processes)
    ]
    for worker in workers:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
    start = time.perf_counter()
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    counts = []
    for worker in workers:
        out, err = worker.communicate(timeout=1800)
        if worker.returncode != 0:
            raise RuntimeError(err)
        counts.append(int(out.strip().splitlines()[-1]))
    elapsed = time.perf_counter() - start
    assert sum(counts) == trials, counts
    return {"processes": processes, "trials": trials, "seconds": elapsed, "per_second": trials / elapsed}


def main() -> None:
    p = C.parser(__doc__ or "")
    p.add_argument("--trials", type=int, default=200, help="trials per case (default 200)")
    p.add_argument("--processes", default="1,4,16", help="process counts (default 1,4,16)")
    args = p.parse_args()
    trials = 24 if args.quick else args.trials
    counts = [int(n) for n in args.processes.split(",")]
    info = C.machine()
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for processes in counts:  # interleaved: each count on both backends before the next
        with tempfile.TemporaryDirectory() as folder:
            C.log(f"sqlite, {processes} processes")
            rows.append(
                {"backend": "SQLite", **run_case(f"sqlite:///{Path(folder) / 's.sqlite'}", processes, trials)}
            )
        handle, url = _postgres()
        try:
            C.log(f"postgresql, {processes} processes")
            rows.append({"backend": "PostgreSQL", **run_case(url, processes, trials)})
        finally:
            _drop(handle)
    elapsed = time.perf_counter() - started
    info["loadavg_end"] = C.machine()["loadavg_start"]
    text = C.table(
        ["backend", "processes", "trials", "seconds", "claims+records / s"],
        [
            [r["backend"], r["processes"], r["trials"], C.fmt(r["seconds"]), C.fmt(r["per_second"])]
            for r in rows
        ],
    )
    C.publish(args, "store_throughput", info, elapsed, text, rows=rows)
    if args.write:
        body = f"```\n{C.command_line()}\n```\n\n{C.machine_text(info, elapsed)}\n\n{text}"
        C.write_section("store_throughput", "Store throughput (claims + records per second)", body)


if __name__ == "__main__":
    main()
