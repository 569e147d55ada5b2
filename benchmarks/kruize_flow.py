"""Kruize's client flow through `hpo-kfp serve`: calls per second and latency, no delay.

A Kruize client drives an experiment with three calls a trial: `GET /experiment_trials`
(the trial's configuration), `POST /experiment_trials` `EXP_TRIAL_RESULT` (its value) and
`POST /experiment_trials` `EXP_TRIAL_GENERATE_SUBSEQUENT` (the next trial number), after one
`EXP_TRIAL_GENERATE_NEW`. The "trial" itself takes no time here: what is measured is the
service. One server process (`hpo-kfp serve`, no access log) on loopback; the clients are
threads of this process on the same 2 cores, each with its own keep-alive connection
(`http.client`, the lightest client the standard library has, so that the clients take as
little of the machine as they can).

Cells, on each store asked for (`--stores`, default SQLite and PostgreSQL) and for each number
of server processes (`--workers`, default 1 and 2: `hpo-kfp serve --workers`):

- `8x100`: 8 clients, each carrying its own TPE experiment (4 parameters) to 100 trials at
  once. Calls/s = every call of every client / wall time; p50/p99 over every call.
- `1x1000`: one client carrying one TPE experiment from its first trial to its 1000th;
  calls/s and p99 of the calls of trials 900 to 999 (and of 0 to 99, for the trend).

With `--before COMMIT`, the same cells run on SQLite with one process of that commit's server
too (a worktree on `PYTHONPATH`), in the same run. Beside them, `sampler alone`: the same trials suggested in this process by hpo-kfp's
`suggest()` from an in-memory history, no server, no store, no HTTP, with each trial's
result added before the next: what the sampler itself costs, given as the calls per second a
server would reach if the rest cost nothing (three calls a trial).

Targets (issue 28): `8x100` >= 250 calls/s with p99 <= 150 ms, and `1x1000` >= 100 calls/s
between trials 900 and 999, on the default SQLite store.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import tempfile
import threading
import time
import urllib.parse
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import _common as C

from hpo_kfp.history import History
from hpo_kfp.service.kruize import katib_document
from hpo_kfp.spec import parse_experiment
from hpo_kfp.suggest import suggest

_POSTGRES_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _search_space(name: str, total: int) -> dict[str, Any]:
    return {
        "experiment_name": name,
        "total_trials": total,
        "parallel_trials": 1,
        "value_type": "double",
        "hpo_algo_impl": "optuna_tpe",
        "objective_function": "response_time",
        "direction": "minimize",
        "tunables": [
            {"value_type": "double", "name": "memory", "lower_bound": 150, "upper_bound": 300, "step": 1},
            {"value_type": "integer", "name": "cpu", "lower_bound": 1, "upper_bound": 8},
            {"value_type": "double", "name": "ratio", "lower_bound": 0.0, "upper_bound": 1.0},
            {"value_type": "categorical", "name": "gc", "choices": ["G1GC", "ParallelGC", "SerialGC"]},
        ],
    }


def _value(config: dict[str, Any]) -> float:
    gc = {"G1GC": 0.0, "ParallelGC": 3.0, "SerialGC": 8.0}[config["gc"]]
    return (config["memory"] - 220) ** 2 / 100 + (config["cpu"] - 5) ** 2 + 10 * config["ratio"] + gc


class _Client:
    """One Kruize client on its own keep-alive connection, timing every call."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self._http = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)
        self.latencies: list[float] = []

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        start = time.perf_counter()
        self._http.request(method, path, body=data, headers=headers)
        reply = self._http.getresponse()
        payload = reply.read()
        self.latencies.append(time.perf_counter() - start)
        if reply.status != 200:
            raise RuntimeError(f"{method} {path}: {reply.status} {payload[:300]!r}")
        return json.loads(payload)

    def run(self, name: str, total: int) -> None:
        """Creates the experiment and carries it to ``total`` trials."""
        post = "/experiment_trials"
        number = self._call(
            "POST", post, {"operation": "EXP_TRIAL_GENERATE_NEW", "search_space": _search_space(name, total)}
        )
        for done in range(total):
            query = urllib.parse.urlencode({"experiment_name": name, "trial_number": number})
            config = {t["tunable_name"]: t["tunable_value"] for t in self._call("GET", f"{post}?{query}")}
            result = {
                "operation": "EXP_TRIAL_RESULT",
                "experiment_name": name,
                "trial_number": number,
                "trial_result": "success",
                "result_value_type": "double",
                "result_value": _value(config),
            }
            self._call("POST", post, result)
            if done + 1 < total:
                number = self._call(
                    "POST", post, {"operation": "EXP_TRIAL_GENERATE_SUBSEQUENT", "experiment_name": name}
                )

    def close(self) -> None:
        self._http.close()


def _many(url: str, clients: int, trials: int) -> dict[str, Any]:
    runners = [_Client(url) for _ in range(clients)]
    errors: list[BaseException] = []
    run = uuid.uuid4().hex[:6]

    def drive(index: int) -> None:
        try:
            runners[index].run(f"many-{run}-{index}", trials)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=drive, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    for runner in runners:
        runner.close()
    if errors:
        raise errors[0]
    calls = [latency for runner in runners for latency in runner.latencies]
    return {
        "cell": f"{clients}x{trials}",
        "calls": len(calls),
        "seconds": elapsed,
        "calls_per_second": len(calls) / elapsed,
        "p50_ms": C.percentile(calls, 50) * 1000,
        "p99_ms": C.percentile(calls, 99) * 1000,
    }


def _long(url: str, trials: int) -> dict[str, Any]:
    runner = _Client(url)
    started = time.perf_counter()
    runner.run(f"long-{uuid.uuid4().hex[:6]}", trials)
    elapsed = time.perf_counter() - started
    runner.close()
    # The NEW call, then three calls a trial (the last trial has no SUBSEQUENT).
    calls = runner.latencies[1:]

    def window(first: int, last: int) -> list[float]:
        return calls[3 * first : 3 * (last + 1)]

    early, late = window(0, 99), window(trials - 100, trials - 1)
    return {
        "cell": f"1x{trials}",
        "calls": len(runner.latencies),
        "seconds": elapsed,
        "calls_per_second": len(runner.latencies) / elapsed,
        "p50_ms": C.percentile(calls, 50) * 1000,
        "p99_ms": C.percentile(calls, 99) * 1000,
        "first_100_calls_per_second": len(early) / sum(early),
        "last_100_calls_per_second": len(late) / sum(late),
        "last_100_p99_ms": C.percentile(late, 99) * 1000,
    }


def _sampler_alone(experiments: int, trials: int) -> dict[str, Any]:
    """The suggestions of ``experiments`` experiments of ``trials`` trials, in this process."""
    seconds: list[list[float]] = []
    for index in range(experiments):
        name = f"alone-{index}"
        experiment = parse_experiment(katib_document(_search_space(name, trials)), trial_template=None)
        history = History(experiment=name)
        times = []
        for _ in range(trials):
            started = time.perf_counter()
            (trial,), history = suggest(experiment, history, 1)
            times.append(time.perf_counter() - started)
            value = _value(trial.parameters)
            done = replace(trial, status="Succeeded", values=(value,), metrics={"response_time": value})
            history = history.upsert([done])
        seconds.append(times)
    total = sum(sum(times) for times in seconds)
    row: dict[str, Any] = {
        "cell": f"{experiments}x{trials}",
        "calls_per_second": 3 * experiments * trials / total,
    }
    if experiments == 1 and trials >= 100:
        row["first_100_calls_per_second"] = 300 / sum(seconds[0][:100])
        row["last_100_calls_per_second"] = 300 / sum(seconds[0][-100:])
    return row


def _postgres_store() -> tuple[str, Any]:
    import sqlalchemy as sa

    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(_POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as db:
        db.execute(sa.text(f"CREATE DATABASE {name}"))

    def drop() -> None:
        with admin.connect() as db:
            db.execute(
                sa.text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
            )
            db.execute(sa.text(f"DROP DATABASE {name}"))
        admin.dispose()

    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", drop


def main() -> None:
    p = C.parser(__doc__ or "")
    p.add_argument(
        "--stores", default="sqlite,postgresql", help="stores to measure (default sqlite,postgresql)"
    )
    p.add_argument("--clients", type=int, default=8, help="clients of the many-experiments cell (default 8)")
    p.add_argument(
        "--trials", type=int, default=100, help="trials of each of those experiments (default 100)"
    )
    p.add_argument("--long", type=int, default=1000, help="trials of the one long experiment (default 1000)")
    p.add_argument("--workers", default="1,2", help="server processes to measure (default 1,2)")
    p.add_argument("--before", help="also measure this commit's server (SQLite, one process)")
    args = p.parse_args()
    if args.quick:
        args.clients, args.trials, args.long = 2, 5, 100
    info = C.machine()
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    C.quiet_optuna()
    C.log("the sampler alone")
    rows.append({"store": "sampler alone", "workers": "", **_sampler_alone(args.clients, args.trials)})
    rows.append({"store": "sampler alone", "workers": "", **_sampler_alone(1, args.long)})
    sides: list[tuple[str, int, Path | None]] = [
        (kind, int(workers), None) for kind in args.stores.split(",") for workers in args.workers.split(",")
    ]
    with contextlib.ExitStack() as stack:
        if args.before:
            code = stack.enter_context(C.worktree(args.before, Path("/tmp/hpo-kfp-kruize-before")))
            sides.insert(0, ("sqlite", 1, code))
        for kind, workers, code in sides:
            label = f"{kind}, before ({args.before})" if code is not None else kind
            with tempfile.TemporaryDirectory() as folder:
                drop = None
                if kind == "sqlite":
                    store = f"sqlite:///{Path(folder) / 'service.sqlite'}"
                elif kind == "postgresql":
                    store, drop = _postgres_store()
                else:
                    raise SystemExit(f"--stores: sqlite or postgresql, not {kind!r}")
                process, url = C.start_server(Path(folder), store, workers, code)
                try:
                    C.log(f"{label}, {workers} workers: {args.clients} clients x {args.trials} trials")
                    rows.append({"store": label, "workers": workers, **_many(url, args.clients, args.trials)})
                    C.log(f"{label}, {workers} workers: 1 client x {args.long} trials")
                    rows.append({"store": label, "workers": workers, **_long(url, args.long)})
                finally:
                    process.terminate()
                    process.wait(timeout=30)
                    if drop is not None:
                        drop()
    elapsed = time.perf_counter() - started
    info["loadavg_end"] = os.getloadavg()[0]
    text = C.table(
        [
            "store",
            "workers",
            "cell",
            "calls",
            "seconds",
            "calls/s",
            "p50 ms",
            "p99 ms",
            "trials 0-99 calls/s",
            "last 100: calls/s, p99 ms",
        ],
        [
            [
                r["store"],
                r["workers"],
                r["cell"],
                r.get("calls", ""),
                C.fmt(r["seconds"]) if "seconds" in r else "",
                C.fmt(r["calls_per_second"]),
                C.fmt(r["p50_ms"]) if "p50_ms" in r else "",
                C.fmt(r["p99_ms"]) if "p99_ms" in r else "",
                C.fmt(r["first_100_calls_per_second"]) if "first_100_calls_per_second" in r else "",
                ", ".join(C.fmt(r[k]) for k in ("last_100_calls_per_second", "last_100_p99_ms") if k in r),
            ]
            for r in rows
        ],
    )
    C.publish(args, "kruize_flow", info, elapsed, text, rows=rows)
    if args.write:
        body = f"```\n{C.command_line()}\n```\n\n{C.machine_text(info, elapsed)}\n\n{text}"
        C.write_section("kruize_flow", "Kruize's client flow (`kruize_flow.py`)", body)


if __name__ == "__main__":
    main()
