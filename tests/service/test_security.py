"""Tokens, bindings and what the server logs."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from hpo_kfp.service._proto import api_pb2, api_pb2_grpc
from tests.service.conftest import Server, assert_refused, katib_experiment, start_server

TOKEN = secrets.token_urlsafe(32)
WRONG = secrets.token_urlsafe(32)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that needs TOKEN, logging every request."""
    folder = tmp_path_factory.mktemp("guarded")
    token_file = folder / "token"
    token_file.write_text(TOKEN + "\n")
    running = start_server(
        folder, f"sqlite:///{folder / 'store.sqlite'}", "--token-file", str(token_file), "--access-log"
    )
    yield running
    running.stop()


def test_every_request_but_health_needs_the_token(guarded: Server) -> None:
    with guarded.client() as anonymous:
        assert anonymous.get("/health").status_code == 200
        for method, path in (
            ("get", "/v1/experiments"),
            ("post", "/experiment_trials"),
            ("get", "/openapi.json"),
        ):
            refused = anonymous.request(method, path)
            assert_refused(refused, 401, "Authorization")
            assert refused.headers["www-authenticate"].startswith("Bearer")
    with guarded.client(WRONG) as impostor:
        assert_refused(impostor.get("/v1/experiments"), 401, "Authorization")
        assert WRONG not in impostor.get("/v1/experiments").text
    with guarded.client(TOKEN) as member:
        assert member.post("/v1/experiments", json=katib_experiment("guarded")).status_code == 201
        assert [e["name"] for e in member.get("/v1/experiments").json()] == ["guarded"]


def test_grpc_calls_need_the_token_too(guarded: Server) -> None:
    request = api_pb2.ValidateAlgorithmSettingsRequest(
        experiment=api_pb2.Experiment(
            name="guarded",
            spec=api_pb2.ExperimentSpec(
                parameter_specs=api_pb2.ExperimentSpec.ParameterSpecs(
                    parameters=[
                        api_pb2.ParameterSpec(
                            name="x",
                            parameter_type=api_pb2.DOUBLE,
                            feasible_space=api_pb2.FeasibleSpace(min="0", max="1"),
                        )
                    ]
                ),
                objective=api_pb2.ObjectiveSpec(type=api_pb2.MAXIMIZE, objective_metric_name="accuracy"),
                algorithm=api_pb2.AlgorithmSpec(algorithm_name="random"),
                max_trial_count=4,
                parallel_trial_count=2,
            ),
        )
    )
    with grpc.insecure_channel(guarded.grpc) as channel:
        stub = api_pb2_grpc.SuggestionStub(channel)  # type: ignore[no-untyped-call]
        for metadata in ((), (("authorization", f"Bearer {WRONG}"),), (("authorization", f"Basic {TOKEN}"),)):
            with pytest.raises(grpc.RpcError) as refused:
                stub.ValidateAlgorithmSettings(request, metadata=metadata)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # The scheme is case-insensitive, as on the REST APIs (issue 28: gRPC refused "bearer").
        for scheme in ("Bearer", "bearer", "BEARER"):
            metadata = (("authorization", f"{scheme} {TOKEN}"),)
            assert stub.ValidateAlgorithmSettings(request, metadata=metadata) is not None


def test_tokens_are_never_logged(guarded: Server) -> None:
    with guarded.client(TOKEN) as member, guarded.client(WRONG) as impostor:
        member.post("/experiment_trials", json={"operation": "EXP_DELETE", "experiment_name": "none"})
        impostor.post("/experiment_trials", json={"operation": "EXP_DELETE", "experiment_name": "none"})
        member.get("/v1/experiments/none")
    log = guarded.output()
    assert "POST /experiment_trials" in log and "401" in log  # the access log is on
    assert TOKEN not in log and WRONG not in log


def _serve(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "hpo_kfp",
            "serve",
            "--port",
            "0",
            "--store",
            f"sqlite:///{tmp_path}/s.sqlite",
            *arguments,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )


@pytest.mark.parametrize(
    ("arguments", "flag"),
    [
        pytest.param(("--host", "0.0.0.0"), "--host", id="rest"),
        pytest.param(("--grpc-port", "0", "--grpc-host", "0.0.0.0"), "--grpc-host", id="grpc"),
    ],
)
def test_a_non_loopback_address_without_a_token_is_refused(
    tmp_path: Path, arguments: tuple[str, ...], flag: str
) -> None:
    refused = _serve(tmp_path, *arguments)
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"hpo-kfp: {flag}: serving '0.0.0.0'"), refused.stderr
    assert "--insecure" in refused.stderr and "--token-file" in refused.stderr
    assert refused.stdout == ""  # nothing was served


def test_a_short_token_is_refused(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("secret")
    refused = _serve(tmp_path, "--token-file", str(tmp_path / "token"))
    assert refused.returncode == 2 and "at least 16 characters" in refused.stderr
    assert "secret" not in refused.stderr


def test_insecure_serves_a_non_loopback_address_without_a_token(tmp_path: Path) -> None:
    server = start_server(
        tmp_path, f"sqlite:///{tmp_path / 'open.sqlite'}", "--host", "0.0.0.0", "--insecure"
    )
    try:
        assert server.url.startswith("http://0.0.0.0:")
        port = server.url.rsplit(":", 1)[1]
        assert httpx.get(f"http://127.0.0.1:{port}/v1/experiments").json() == []
    finally:
        server.stop()


def test_a_loopback_server_without_a_token_answers_only_to_loopback_names(http: httpx.Client) -> None:
    """DNS rebinding: a page of another site whose name now resolves to 127.0.0.1 sends its
    own name as Host; the browser would let it read the answer (issue 28)."""
    for name in ("localhost", "127.0.0.1", "[::1]"):
        assert http.get("/v1/experiments", headers={"Host": f"{name}:8000"}).status_code == 200
    rebound = http.get("/v1/experiments", headers={"Host": "evil.example:8000"})
    assert_refused(rebound, 403, "Host")
    assert "'evil.example:8000'" in rebound.json()["error"]


def test_a_server_with_a_token_or_off_loopback_answers_to_any_name(guarded: Server, tmp_path: Path) -> None:
    with guarded.client(TOKEN) as http:
        assert http.get("/v1/experiments", headers={"Host": "hpo.example.com"}).status_code == 200
    server = start_server(
        tmp_path, f"sqlite:///{tmp_path / 'open.sqlite'}", "--host", "0.0.0.0", "--insecure"
    )
    try:
        port = server.url.rsplit(":", 1)[1]
        assert (
            httpx.get(f"http://127.0.0.1:{port}/v1/experiments", headers={"Host": "10.0.0.7"}).status_code
            == 200
        )
    finally:
        server.stop()
