"""Servers under test: ``hpo-kfp serve`` in subprocesses, reached over loopback sockets.

A server binds port 0 for REST and gRPC and prints the ports it got; a test waits for that
line, then polls ``GET /health`` until it answers 200, each against a deadline. The server's
standard output and error go to files, read back by the tests that check what it logs.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.waiting import wait_for

_STARTUP = 60.0
"""Seconds a server gets to start: imports take ~3 s on this machine's 2 cores, far more when
the tests of other modules run beside."""


@dataclass
class Server:
    """One ``hpo-kfp serve`` process."""

    process: subprocess.Popen[str]
    log: Path
    url: str = ""
    grpc: str = ""
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    printed: list[str] = field(default_factory=list)

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def wait_ready(self, deadline: float) -> None:
        """Waits for the announced ports, then for ``/health`` to answer 200."""
        while not (self.url and self.grpc):
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"the server announced no ports in time:\n{self.output()}") from None
            if match := re.search(r"REST on (http://\S+)", line):
                self.url = match.group(1)
            if match := re.search(r"gRPC on (\S+)", line):
                self.grpc = match.group(1)
            if self.process.poll() is not None and self.lines.empty():
                raise AssertionError(f"the server exited ({self.process.returncode}):\n{self.output()}")

        def healthy() -> bool:
            assert self.process.poll() is None, f"the server exited:\n{self.output()}"
            try:
                return httpx.get(f"{self.url}/health", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, seconds=max(deadline - time.monotonic(), 0.0), what=f"/health:\n{self.output()}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def output(self) -> str:
        """What the server printed so far: its standard error (the log), then its standard
        output (the announced ports and uvicorn's access log)."""
        log = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return log + "".join(self.printed)


def start_server(
    tmp_path: Path, store: str, *extra: str, wait: bool = True, env: dict[str, str] | None = None
) -> Server:
    """Starts ``hpo-kfp serve`` on free loopback ports over ``store``."""
    log = tmp_path / f"server-{time.monotonic_ns()}.log"
    arguments = [
        sys.executable,
        "-m",
        "hpo_kfp",
        "serve",
        "--port",
        "0",
        "--grpc-port",
        "0",
        "--store",
        store,
    ]
    process = subprocess.Popen(
        [*arguments, *extra],
        stdout=subprocess.PIPE,
        stderr=log.open("w", encoding="utf-8"),
        text=True,
        env={**os.environ, **(env or {})},
        cwd=tmp_path,
    )
    server = Server(process=process, log=log)

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            server.printed.append(line)
            server.lines.put(line)
        server.lines.put("")

    threading.Thread(target=pump, daemon=True).start()
    if wait:
        try:
            server.wait_ready(time.monotonic() + _STARTUP)
        except BaseException:
            server.stop()
            raise
    return server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server on an SQLite store, without a token, shared by the tests of the APIs."""
    folder = tmp_path_factory.mktemp("shared-server")
    running = start_server(folder, f"sqlite:///{folder / 'store.sqlite'}")
    yield running
    running.stop()


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def katib_experiment(name: str, **spec: Any) -> dict[str, Any]:
    """A Katib Experiment with two parameters and no trial template; ``spec`` overrides."""
    document: dict[str, Any] = {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "tpe"},
            "parallelTrialCount": 2,
            "maxTrialCount": 6,
            "parameters": [
                {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.001", "max": "0.1"}},
                {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "4"}},
            ],
        },
    }
    document["spec"].update(spec)
    return document


def assert_refused(response: httpx.Response, status: int, field: str) -> None:
    """A 4xx with a one-line JSON error naming ``field``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "\n" not in response.text
    body = response.json()
    assert set(body) == {"error", "field"}
    assert body["field"] == field, body
    assert body["error"].startswith(field), body
