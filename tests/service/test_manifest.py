"""manifests/service.yaml: valid Kubernetes objects, arguments the CLI accepts, no credentials."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hpo_kfp.cli._main import build_parser
from hpo_kfp.store import check_store_url

_MANIFEST = Path(__file__).resolve().parents[2] / "manifests" / "service.yaml"


def _objects() -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in yaml.safe_load_all(_MANIFEST.read_text()) if d}


def test_the_manifest_is_valid_for_kubernetes() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    objects = _objects()
    assert set(objects) == {"Deployment", "Service"}
    for document in objects.values():
        kubernetes_validate.validate(document, "1.31", strict=True)


def test_the_container_runs_serve_with_a_token_and_its_secrets_as_files() -> None:
    deployment = _objects()["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = build_parser().parse_args([*container["command"][1:], *container["args"]])
    assert (args.host, args.port, args.grpc_port, args.insecure) == ("0.0.0.0", 8085, 6789, False)
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    secret = next(v for v in pod["volumes"] if "secret" in v)
    assert args.token_file.startswith(mounts[secret["name"]] + "/")
    env = {e["name"]: e for e in container["env"]}
    assert env["HPO_KFP_STORE_PASSWORD_FILE"]["value"].startswith(mounts[secret["name"]] + "/")
    check_store_url(env["HPO_KFP_STORE"]["value"])  # refuses a password in the URL
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container["livenessProbe"]["grpc"]["service"] == "manager.v1beta1.Suggestion"
    service_ports = {p["name"]: p["port"] for p in _objects()["Service"]["spec"]["ports"]}
    assert service_ports == {"http": 8085, "grpc": 6789}
