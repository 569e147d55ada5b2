"""``hpo-kfp dashboard``: optuna-dashboard on loopback, following the store while a run goes on."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hpo_kfp.claim import claim
from hpo_kfp.cli import main
from hpo_kfp.spec import parse_experiment
from hpo_kfp.store import ExperimentKey, open_store
from tests.conftest import base_spec
from tests.waiting import wait_for

pytest.importorskip("optuna_dashboard", reason="the dashboard extra is not installed")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


def _until(check: Any, deadline: float, what: str) -> Any:
    """Asks ``check`` until it returns something truthy (a refused connection: not yet)."""

    def answered() -> Any:
        try:
            return check()
        except (urllib.error.URLError, ConnectionError):
            return None

    return wait_for(answered, seconds=max(deadline - time.monotonic(), 0.0), what=what)


@pytest.mark.slow
def test_the_dashboard_shows_trials_as_they_finish(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    store = open_store(url)
    experiment = parse_experiment(base_spec())
    key = ExperimentKey("kubeflow", "demo")
    store.open_experiment(experiment, key)
    claimed, _ = claim(store, experiment, key, 2, owner="run-1")
    store.record(key, replace(claimed[0], status="Succeeded", values=(0.3,), metrics={"loss": 0.3}))
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hpo_kfp",
            "dashboard",
            "demo",
            "--store",
            url,
            "--port",
            str(port),
            "--refresh",
            "0.2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        studies = _until(lambda: _get(f"http://127.0.0.1:{port}/api/studies"), deadline, "the dashboard")
        [study] = studies["study_summaries"]
        assert study["study_name"] == "kubeflow/demo"
        detail = f"http://127.0.0.1:{port}/api/studies/{study['study_id']}"
        first, running = _get(detail)["trials"]  # the running trial too, as running
        assert {"key": "name", "value": "demo-0000"} in first["user_attrs"]
        assert {"key": "name", "value": "demo-0001"} in running["user_attrs"]
        assert (first["state"], running["state"]) == ("Complete", "Running")
        # The run goes on: the second trial finishes and the dashboard shows it.
        store.record(key, replace(claimed[1], status="Failed", reason="exit code 3"))
        trials = _until(
            lambda: (found := _get(detail)["trials"]) and found[1]["state"] != "Running" and found,
            deadline,
            "the second trial",
        )
        assert [t["state"] for t in trials] == ["Complete", "Fail"]
        # Read-only (issue 29): its buttons that would change the in-memory copy are refused.
        for method, path, body in [
            ("POST", "/api/studies", {"study_name": "mine", "directions": ["minimize"]}),
            ("DELETE", f"/api/studies/{study['study_id']}", None),
            ("PUT", f"/api/studies/{study['study_id']}/note", {"version": 1, "body": "mine"}),
            ("POST", f"/api/trials/{first['trial_id']}/tell", {"state": "Fail"}),
        ]:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}{path}",
                method=method,
                data=json.dumps(body).encode() if body else None,
            )
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=5)
            assert refused.value.code == 403
            assert "read-only" in json.loads(refused.value.read())["reason"]
        assert [s["study_name"] for s in _get(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]] == [
            "kubeflow/demo"
        ]
        assert [t["state"] for t in _get(detail)["trials"]] == ["Complete", "Fail"]
    finally:
        server.terminate()
        server.communicate(timeout=10)


def test_the_dashboard_refuses_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dashboard", "demo", "--port", "0"]) == 2
    assert capsys.readouterr().err == "--port: must be between 1 and 65535, but got 0\n"


def test_the_dashboards_trials_are_the_experiments_by_number_running_ones_included(tmp_path: Path) -> None:
    """Trials were added as they finished, so the dashboard's numbers were finish order (its
    trial 12 was live-0014) and a running trial was not shown at all."""
    from hpo_kfp.cli._dashboard import LiveStudy

    store = open_store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    experiment = parse_experiment(base_spec())
    key = ExperimentKey("kubeflow", "demo")
    store.open_experiment(experiment, key)
    claimed, _ = claim(store, experiment, key, 3, owner="run-1")
    store.record(key, replace(claimed[1], status="Succeeded", values=(0.3,), metrics={"loss": 0.3}))
    live = LiveStudy(store, experiment, key)

    def shown() -> list[tuple[int, str, str]]:
        trials = live.storage.get_all_trials(live.storage.get_study_id_from_name("kubeflow/demo"))
        return [(t.number, t.user_attrs["name"], t.state.name) for t in trials]

    assert shown() == [(0, "demo-0000", "RUNNING"), (1, "demo-0001", "COMPLETE"), (2, "demo-0002", "RUNNING")]
    store.record(key, replace(claimed[2], status="Failed", reason="exit code 3"))
    store.record(key, replace(claimed[0], status="Succeeded", values=(0.1,), metrics={"loss": 0.1}))
    assert live.refresh() == 2
    assert shown() == [(0, "demo-0000", "COMPLETE"), (1, "demo-0001", "COMPLETE"), (2, "demo-0002", "FAIL")]
    study_id = live.storage.get_study_id_from_name("kubeflow/demo")
    assert live.storage.get_best_trial(study_id).user_attrs["name"] == "demo-0000"
    assert live.refresh() == 0


@pytest.mark.slow
def test_the_dashboard_started_before_the_run_waits_for_the_experiment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'later.sqlite'}"
    port = _free_port()
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "hpo_kfp", "dashboard", "demo", "--store", url),
            *("--port", str(port), "--refresh", "0.2"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline() == f"demo: waiting for it to appear in {url}\n"
        store = open_store(url)  # the run starts: first the store, then the experiment
        experiment = parse_experiment(base_spec())
        key = ExperimentKey("kubeflow", "demo")
        store.open_experiment(experiment, key)
        claim(store, experiment, key, 1, owner="run-1")
        deadline = time.monotonic() + 60
        studies = _until(lambda: _get(f"http://127.0.0.1:{port}/api/studies"), deadline, "the dashboard")
        [study] = studies["study_summaries"]
        assert study["study_name"] == "kubeflow/demo"
        [running] = _get(f"http://127.0.0.1:{port}/api/studies/{study['study_id']}")["trials"]
        assert running["state"] == "Running"
    finally:
        server.terminate()
        server.communicate(timeout=10)
