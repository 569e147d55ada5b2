"""Several server processes on one store, and a restart: state lives in the store alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hpo_kfp.store import open_store
from tests.service.conftest import Server, katib_experiment, start_server
from tests.store.conftest import server_database

_CLIENTS = 8
_TRIALS_EACH = 10
_BUDGET = _CLIENTS * _TRIALS_EACH


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty store that two server processes can share, its tables made.

    The tables are made here, before the servers start: two processes creating them at once
    on MariaDB were seen to wait on each other's metadata locks (once in a few runs).
    """
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
        open_store(url)
        yield url
        return
    for url in server_database(request.param):
        open_store(url)
        yield url


def _loss(parameters: dict[str, Any]) -> float:
    return (parameters["lr"] - 0.05) ** 2 + parameters["layers"] / 100


def _client(url: str, client_id: str, got: list[dict[str, Any]], errors: list[str], ends: list[str]) -> None:
    """Asks for trials and completes them until the server has none to give."""
    try:
        with httpx.Client(base_url=url, timeout=120) as http:
            while True:
                reply = http.post(
                    "/v1/experiments/crowd/suggestions", json={"count": 1, "client_id": client_id}
                ).json()
                if not reply["trials"]:
                    ends.append(
                        f"{client_id} after {len([g for g in got if g['client'] == client_id])}: {reply}"
                    )
                    return
                (trial,) = reply["trials"]
                loss = _loss(trial["parameters"])
                done = http.post(
                    f"/v1/experiments/crowd/trials/{trial['number']}/complete",
                    json={"metrics": {"loss": loss}},
                )
                done.raise_for_status()
                got.append({"number": trial["number"], "loss": loss, "client": client_id})
    except Exception as error:
        errors.append(f"{client_id}: {error!r}")


@pytest.mark.slow
def test_two_servers_on_one_store_hand_out_the_budget_exactly_once(tmp_path: Path, shared_store: str) -> None:
    servers: list[Server] = []
    try:
        servers = [start_server(tmp_path, shared_store, wait=False) for _ in range(2)]
        for server in servers:
            server.wait_ready(time.monotonic() + 60)
        document = katib_experiment("crowd", maxTrialCount=_BUDGET, parallelTrialCount=_CLIENTS)
        with servers[0].client() as http:
            http.post("/v1/experiments", json=document).raise_for_status()
        got: list[dict[str, Any]] = []
        errors: list[str] = []
        ends: list[str] = []
        threads = [
            threading.Thread(target=_client, args=(servers[i % 2].url, f"client-{i}", got, errors, ends))
            for i in range(_CLIENTS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert errors == [], [server.output()[-3000:] for server in servers]
        assert sorted(item["number"] for item in got) == list(range(_BUDGET))  # distinct, none over budget
        # Not asserted: that every client got trials. The store's claims are optimistic, and one
        # server claiming back to back can starve the other until the budget is spent (seen
        # about once in six runs on PostgreSQL); the budget and the numbers stay exact.
        assert ends and all("done': True" in end or "active" in end for end in ends), ends
        with servers[1].client() as http:
            trials = http.get("/v1/experiments/crowd/trials").json()
            assert [t["number"] for t in trials] == list(range(_BUDGET))
            recorded = {t["number"]: t["values"] for t in trials if t["status"] == "Succeeded"}
            assert recorded == {item["number"]: [item["loss"]] for item in got}  # nothing lost
            after = http.post("/v1/experiments/crowd/suggestions", json={"count": 1}).json()
            assert after["done"] and after["trials"] == []
            best = http.get("/v1/experiments/crowd/best").json()
            assert best["best"]["values"] == [min(item["loss"] for item in got)]
    finally:
        for server in servers:
            server.stop()


@pytest.mark.slow
def test_a_restarted_server_keeps_every_experiment(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'store.sqlite'}"
    space = {
        "experiment_name": "survivor",
        "total_trials": 5,
        "parallel_trials": 2,
        "objective_function": "latency",
        "direction": "minimize",
        "tunables": [{"name": "threads", "value_type": "integer", "lower_bound": 1, "upper_bound": 64}],
    }
    first = start_server(tmp_path, store)
    try:
        with first.client() as http:
            assert (
                http.post(
                    "/experiment_trials", json={"operation": "EXP_TRIAL_GENERATE_NEW", "search_space": space}
                ).json()
                == 0
            )
            before = http.get(
                "/experiment_trials", params={"experiment_name": "survivor", "trial_number": 0}
            ).json()
            result = {"operation": "EXP_TRIAL_RESULT", "experiment_name": "survivor", "trial_number": 0}
            http.post("/experiment_trials", json={**result, "trial_result": "success", "result_value": 12.5})
            assert (
                http.post(
                    "/experiment_trials",
                    json={"operation": "EXP_TRIAL_GENERATE_SUBSEQUENT", "experiment_name": "survivor"},
                ).json()
                == 1
            )
    finally:
        first.stop()

    second = start_server(tmp_path, store)
    try:
        with second.client() as http:
            after = http.get(
                "/experiment_trials", params={"experiment_name": "survivor", "trial_number": 0}
            ).json()
            assert after == before
            trials = http.get("/v1/experiments/survivor/trials").json()
            assert [(t["number"], t["status"], t["values"]) for t in trials] == [
                (0, "Succeeded", [12.5]),
                (1, "Running", None),
            ]
            assert (
                http.post(
                    "/experiment_trials",
                    json={"operation": "EXP_TRIAL_GENERATE_SUBSEQUENT", "experiment_name": "survivor"},
                ).json()
                == 2
            )
    finally:
        second.stop()
    # The same experiment as the command line (and the pipelines) see it.
    report = subprocess.run(
        [sys.executable, "-m", "hpo_kfp", "report", "survivor", "--store", store, "--json"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert report.returncode == 0, report.stderr
    summary = json.loads(report.stdout.strip().splitlines()[-1])
    assert summary["experiment"] == "survivor" and summary["trials"]["succeeded"] == 1
    assert summary["trials"]["total"] == 3


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


@pytest.mark.slow
def test_workers_share_the_port_and_end_with_the_server(tmp_path: Path) -> None:
    server = start_server(tmp_path, f"sqlite:///{tmp_path / 'store.sqlite'}", "--workers", "2")
    try:
        (worker,) = _children(server.process.pid)
        with server.client() as http:
            http.post("/v1/experiments", json=katib_experiment("shared", maxTrialCount=8)).raise_for_status()
        numbers = []
        for _ in range(8):  # new connections: the kernel hands them to either process
            with server.client() as http:
                reply = http.post("/v1/experiments/shared/suggestions", json={"count": 1}).json()
                numbers += [t["number"] for t in reply["trials"]]
        assert sorted(numbers) == list(range(8))
    finally:
        server.stop()
    orphaned = Path(f"/proc/{worker}").exists()
    if orphaned:
        os.kill(worker, signal.SIGKILL)
    assert not orphaned  # stopped and reaped by the server


@pytest.mark.slow
def test_of_simultaneous_creates_exactly_one_creates(tmp_path: Path, shared_store: str) -> None:
    """Eight clients create one experiment at once, through two servers (issue 28): one is
    told it created it (201 on /v1; Kruize's API: its first trial), the others that it exists
    (/v1's create is idempotent: 200; Kruize's refuses a duplicate NEW: 400)."""
    servers: list[Server] = []
    try:
        servers = [start_server(tmp_path, shared_store, wait=False) for _ in range(2)]
        for server in servers:
            server.wait_ready(time.monotonic() + 60)
        document = katib_experiment("contested", maxTrialCount=4, parallelTrialCount=2)
        space = {
            "experiment_name": "contested-kruize",
            "total_trials": 4,
            "parallel_trials": 1,
            "objective_function": "latency",
            "direction": "minimize",
            "tunables": [{"name": "threads", "value_type": "integer", "lower_bound": 1, "upper_bound": 64}],
        }
        requests: list[tuple[str, dict[str, Any]]] = [
            ("/v1/experiments", document),
            ("/experiment_trials", {"operation": "EXP_TRIAL_GENERATE_NEW", "search_space": space}),
        ]
        for path, body in requests:
            start = threading.Barrier(_CLIENTS)
            statuses: list[int] = []

            def create(
                index: int,
                path: str = path,
                body: dict[str, Any] = body,
                start: Any = start,
                got: Any = statuses,
            ) -> None:
                with httpx.Client(base_url=servers[index % 2].url, timeout=60) as http:
                    start.wait()
                    got.append(http.post(path, json=body).status_code)

            threads = [threading.Thread(target=create, args=(i,)) for i in range(_CLIENTS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
            created, refused = (201, 200) if path.startswith("/v1") else (200, 400)
            assert sorted(statuses) == sorted([created] + [refused] * (_CLIENTS - 1)), (path, statuses)
    finally:
        for server in servers:
            server.stop()


@pytest.mark.slow
def test_a_store_gone_mid_request_is_a_503_naming_nothing_of_the_store(tmp_path: Path) -> None:
    """Issue 28: the 503 named the store's user, host and database to any client; the
    server's log keeps them for its operator."""
    import sqlalchemy as sa

    from tests.store.conftest import _SERVERS

    for url in server_database("postgresql"):
        server = start_server(tmp_path, url)
        where = sa.engine.make_url(url)
        try:
            with server.client() as http:
                http.post(
                    "/v1/experiments", json=katib_experiment("gone", maxTrialCount=3)
                ).raise_for_status()
                admin = sa.create_engine(_SERVERS["postgresql"][0], isolation_level="AUTOCOMMIT")
                with admin.connect() as db:  # the database takes no one any more, and drops its sessions
                    db.execute(sa.text(f"ALTER DATABASE {where.database} ALLOW_CONNECTIONS false"))
                    db.execute(
                        sa.text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            f"WHERE datname = '{where.database}'"
                        )
                    )
                admin.dispose()
                reply = http.post("/v1/experiments/gone/suggestions", json={"count": 1})
            assert reply.status_code == 503 and reply.json()["field"] == "store", reply.text
            for detail in (str(where.database), str(where.host), str(where.port)):
                assert detail not in reply.text
            assert str(where.database) in server.output()
        finally:
            server.stop()


def _long_request() -> Any:
    """A GetSuggestions of 1000 TPE trials over a history of 3000: about a minute of CPU here."""
    import random

    from hpo_kfp.service._proto import api_pb2

    def space(name: str) -> api_pb2.ParameterSpec:
        return api_pb2.ParameterSpec(
            name=name, parameter_type=api_pb2.DOUBLE, feasible_space=api_pb2.FeasibleSpace(min="0", max="1")
        )

    def trial(index: int) -> api_pb2.Trial:
        values = [api_pb2.ParameterAssignment(name=n, value=repr(random.random())) for n in ("x", "y")]
        return api_pb2.Trial(
            name=f"t{index}",
            spec=api_pb2.TrialSpec(
                parameter_assignments=api_pb2.TrialSpec.ParameterAssignments(assignments=values)
            ),
            status=api_pb2.TrialStatus(
                condition=api_pb2.TrialStatus.SUCCEEDED,
                observation=api_pb2.Observation(
                    metrics=[api_pb2.Metric(name="loss", value=repr(random.random()))]
                ),
            ),
        )

    experiment = api_pb2.Experiment(
        name="long",
        spec=api_pb2.ExperimentSpec(
            parameter_specs=api_pb2.ExperimentSpec.ParameterSpecs(parameters=[space("x"), space("y")]),
            objective=api_pb2.ObjectiveSpec(type=api_pb2.MINIMIZE, objective_metric_name="loss"),
            algorithm=api_pb2.AlgorithmSpec(algorithm_name="tpe"),
            max_trial_count=5000,
            parallel_trial_count=1000,
        ),
    )
    return api_pb2.GetSuggestionsRequest(
        experiment=experiment, trials=[trial(i) for i in range(3000)], current_request_number=1000
    )


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.slow
def test_sigterm_ends_the_server_while_a_long_request_computes(tmp_path: Path) -> None:
    """Issue 31: a GetSuggestions of 1000 TPE trials over 3000 (~a minute of CPU here) kept the
    process alive after SIGTERM until it was done: gRPC's pool threads are joined at exit."""
    import grpc

    from hpo_kfp.service._proto import api_pb2_grpc

    request = _long_request()
    server = start_server(tmp_path, f"sqlite:///{tmp_path / 'store.sqlite'}")
    channel = grpc.insecure_channel(server.grpc)
    try:
        before = _cpu_seconds(server.process.pid)
        pending = api_pb2_grpc.SuggestionStub(channel).GetSuggestions.future(request, timeout=600)  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + 60
        while _cpu_seconds(server.process.pid) - before < 3 and time.monotonic() < deadline:
            time.sleep(0.2)  # until the request has computed for a while
        assert not pending.done(), "the request ended before the test could stop the server"
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=20)  # the shutdown's own bounds: 5 s for REST, 2 s for gRPC
    finally:
        channel.close()
        server.stop()


@pytest.mark.slow
def test_a_call_past_its_deadline_stops_its_work(tmp_path: Path) -> None:
    """Issue 31: gRPC cannot stop a thread; the servicer looks between chunks of suggestions
    whether its call is still wanted, so a request whose deadline passed stops computing."""
    import grpc

    from hpo_kfp.service._proto import api_pb2_grpc

    server = start_server(tmp_path, f"sqlite:///{tmp_path / 'store.sqlite'}")
    try:
        with grpc.insecure_channel(server.grpc) as channel:
            with pytest.raises(grpc.RpcError) as ended:
                api_pb2_grpc.SuggestionStub(channel).GetSuggestions(_long_request(), timeout=3)  # type: ignore[no-untyped-call]
            assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        pid = server.process.pid

        def idle() -> bool:
            before = _cpu_seconds(pid)
            time.sleep(1)
            return _cpu_seconds(pid) - before < 0.3

        deadline = time.monotonic() + 15
        while not idle():
            assert time.monotonic() < deadline, "the server kept computing the abandoned call"
    finally:
        server.stop()
