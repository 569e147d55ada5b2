"""A stub of the KFP v2beta1 REST API on loopback: records requests, answers what kfp.Client needs."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

__all__ = ["KfpApiStub", "kfp_api"]


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class KfpApiStub:
    """The stub's address, what it received, and the token it demands (None: any)."""

    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    token: str | None = None
    failing: str | None = None
    """A path the stub answers with 500 (a cluster in trouble)."""
    version: str | None = "2.17.0"
    """The release the stub's healthz reports as ``tag_name``, as KFP's API server writes it
    (``backend/src/apiserver/main.go``); None leaves the field out."""
    multi_user: bool = False

    def posted(self, prefix: str) -> list[Any]:
        return [r.body for r in self.requests if r.method == "POST" and r.path.startswith(prefix)]


def _handler(stub: KfpApiStub) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            headers = {key.lower(): value for key, value in self.headers.items()}
            stub.requests.append(Recorded(self.command, self.path, headers, body))
            public = self.path.split("?")[0].endswith("/healthz")
            if (
                not public
                and stub.token is not None
                and headers.get("authorization") != f"Bearer {stub.token}"
            ):
                self._send(401, {"error": "unauthenticated", "code": 16})
                return
            path = self.path.split("?")[0]
            if path == stub.failing:
                self._send(500, {"error": "internal error", "code": 13})
            elif path.endswith("/healthz"):
                healthz: dict[str, Any] = {"commit_sha": "0123abc", "multi_user": stub.multi_user}
                if stub.version is not None:
                    healthz["tag_name"] = stub.version
                if path.startswith("/apis/v2beta1/"):
                    healthz["pipeline_store"] = "database"
                self._send(200, healthz)
            elif path == "/apis/v2beta1/experiments" and self.command == "GET":
                self._send(200, {"experiments": []})
            elif path == "/apis/v2beta1/experiments":
                self._send(200, {"experiment_id": "exp-1", "display_name": body["display_name"]})
            elif path == "/apis/v2beta1/runs":
                self._send(200, {"run_id": "run-1", "display_name": body["display_name"]})
            elif path == "/apis/v2beta1/recurringruns":
                self._send(200, {"recurring_run_id": "recurring-1", "display_name": body["display_name"]})
            else:
                self._send(404, {"error": f"no route {self.command} {path}"})

        do_GET = do_POST = do_DELETE = _answer  # noqa: N815 - http.server's method names

        def _send(self, status: int, document: Any) -> None:
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

    return Handler


@pytest.fixture
def kfp_api() -> Iterator[KfpApiStub]:
    """A KFP API stub on 127.0.0.1, stopped when the test ends."""
    stub = KfpApiStub()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
    stub.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
