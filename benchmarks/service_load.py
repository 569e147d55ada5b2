"""Service load: suggest + complete calls per second, and their latency, through `hpo-kfp serve`.

One server process (`hpo-kfp serve`, SQLite store, no access log) on loopback. For each
history size T (100, 1000 finished trials, imported before the cell starts) and each number
of concurrent clients C (1, 8, 32), a fresh TPE experiment gets N suggest + complete pairs
through the /v1 REST API: each client asks for one trial (its own client id), completes it
with a loss, and asks again, until the N pairs are done. Calls per second = 2N / wall time;
latencies are per call (a suggest or a complete), from the client's side, over HTTP with
keep-alive. The clients are threads of this process, on the same 2 cores as the server.

Target (issue 17): at 8 clients and 100 trials, >= 50 calls/s with p99 < 300 ms.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import _common as C
import httpx

from hpo_kfp.history import TrialRecord
from hpo_kfp.spec import parse_experiment
from hpo_kfp.store import ExperimentKey, open_store

_PARAMETERS = [
    C.double("lr", 1e-4, 1e-1, log_scale=True),
    C.integer("layers", 1, 8),
    C.double("dropout", 0.0, 0.5),
    C.categorical("optimizer", ["sgd", "adam", "rmsprop"]),
]


def _loss(parameters: dict[str, Any]) -> float:
    optimizer = {"sgd": 0.3, "adam": 0.0, "rmsprop": 0.1}[parameters["optimizer"]]
    return (
        (math.log10(parameters["lr"]) + 2.5) ** 2
        + (parameters["layers"] - 4) ** 2 / 10
        + parameters["dropout"]
        + optimizer
    )


def _prefill(store_url: str, name: str, trials: int, seed: int) -> None:
    """A TPE experiment holding ``trials`` finished trials (imported: they inform TPE and
    spend none of the budget)."""
    document = C.experiment_document(name, _PARAMETERS, algorithm="tpe", max_trials=1_000_000, parallel=32)
    experiment = parse_experiment(document, trial_template=None)
    store = open_store(store_url)
    key = ExperimentKey("", name)
    store.open_experiment(experiment, key)
    rng = random.Random(seed)
    records = []
    for number in range(trials):
        parameters = {
            "lr": 10 ** rng.uniform(-4, -1),
            "layers": rng.randint(1, 8),
            "dropout": rng.uniform(0, 0.5),
            "optimizer": rng.choice(["sgd", "adam", "rmsprop"]),
        }
        loss = _loss(parameters)
        records.append(
            TrialRecord(
                name=f"{name}-{number:04d}",
                number=number,
                parameters=parameters,
                status="Succeeded",
                values=(loss,),
                metrics={"loss": loss},
            )
        )
    store.import_trials(experiment, key, records)
    # The import leaves its writes in SQLite's write-ahead log; the first commit of the
    # measured load would copy them into the database (a checkpoint: ~0.7 s here, stalling one
    # whole batch of suggestions). That is the set-up's cost, not the service's: pay it now.
    with contextlib.closing(sqlite3.connect(store_url.removeprefix("sqlite:///"))) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _cell(url: str, name: str, clients: int, pairs: int) -> dict[str, Any]:
    left = [pairs]
    guard = threading.Lock()
    suggest_ms: list[float] = []
    complete_ms: list[float] = []
    errors: list[str] = []

    def take() -> bool:
        with guard:
            if left[0] <= 0:
                return False
            left[0] -= 1
            return True

    def client(index: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            while take():
                start = time.perf_counter()
                reply = http.post(
                    f"/v1/experiments/{name}/suggestions", json={"count": 1, "client_id": f"c{index}"}
                )
                middle = time.perf_counter()
                if reply.status_code != 200 or not reply.json()["trials"]:
                    errors.append(reply.text)
                    return
                (trial,) = reply.json()["trials"]
                done = http.post(
                    f"/v1/experiments/{name}/trials/{trial['number']}/complete",
                    json={"metrics": {"loss": _loss(trial["parameters"])}},
                )
                end = time.perf_counter()
                if done.status_code != 200:
                    errors.append(done.text)
                    return
                suggest_ms.append((middle - start) * 1000)
                complete_ms.append((end - middle) * 1000)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(errors[0])
    calls = suggest_ms + complete_ms
    return {
        "clients": clients,
        "pairs": len(suggest_ms),
        "seconds": elapsed,
        "calls_per_second": len(calls) / elapsed,
        "p50_ms": C.percentile(calls, 50),
        "p99_ms": C.percentile(calls, 99),
        "suggest_p50_ms": C.percentile(suggest_ms, 50),
        "suggest_p99_ms": C.percentile(suggest_ms, 99),
        "complete_p50_ms": C.percentile(complete_ms, 50),
    }


def main() -> None:
    p = C.parser(__doc__ or "")
    p.add_argument("--trials", default="100,1000", help="history sizes (default 100,1000)")
    p.add_argument("--clients", default="1,8,32", help="concurrent clients (default 1,8,32)")
    p.add_argument("--workers", type=int, default=1, help="server processes (hpo-kfp serve --workers)")
    p.add_argument(
        "--pairs", type=int, default=120, help="suggest+complete pairs per cell, at least 4 per client"
    )
    args = p.parse_args()
    sizes = [20] if args.quick else [int(n) for n in args.trials.split(",")]
    counts = [1, 4] if args.quick else [int(n) for n in args.clients.split(",")]
    info = C.machine()
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        store = f"sqlite:///{Path(folder) / 'service.sqlite'}"
        open_store(store)
        process, url = C.start_server(Path(folder), store, args.workers)
        try:
            for size in sizes:
                for clients in counts:
                    name = f"load-{size}-{clients}"
                    pairs = 10 if args.quick else max(args.pairs, 4 * clients)
                    C.log(f"{name}: importing {size} trials")
                    _prefill(store, name, size, seed=size)
                    C.log(f"{name}: {clients} clients, {pairs} pairs")
                    rows.append({"trials": size, "workers": args.workers, **_cell(url, name, clients, pairs)})
        finally:
            process.terminate()
            process.wait(timeout=30)
    elapsed = time.perf_counter() - started
    info["loadavg_end"] = os.getloadavg()[0]
    text = C.table(
        [
            "trials",
            "clients",
            "pairs",
            "seconds",
            "calls/s",
            "p50 ms",
            "p99 ms",
            "suggest p50/p99 ms",
            "complete p50 ms",
        ],
        [
            [
                r["trials"],
                r["clients"],
                r["pairs"],
                C.fmt(r["seconds"]),
                C.fmt(r["calls_per_second"]),
                C.fmt(r["p50_ms"]),
                C.fmt(r["p99_ms"]),
                f"{C.fmt(r['suggest_p50_ms'])} / {C.fmt(r['suggest_p99_ms'])}",
                C.fmt(r["complete_p50_ms"]),
            ]
            for r in rows
        ],
    )
    C.publish(args, "service_load", info, elapsed, text, rows=rows)
    if args.write:
        body = f"```\n{C.command_line()}\n```\n\n{C.machine_text(info, elapsed)}\n\n{text}"
        C.write_section("service_load", "Service load (`service_load.py`)", body)


if __name__ == "__main__":
    main()
