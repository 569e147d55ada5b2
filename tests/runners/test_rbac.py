"""The Role in manifests/rbac.yaml allows every request the runner makes, and no more."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hpo_kfp.spec import parse_experiment
from tests.conftest import base_spec
from tests.k8s_emulator import K8sEmulator
from tests.runners.test_kubernetes import (
    _COMPLETE,
    _JOB,
    _LOG,
    _NS,
    _created,
    _finish,
    _pod_for,
    _start,
    _tfjob_experiment,
    _workflow_experiment,
)

_ROLE = next(
    d
    for d in yaml.safe_load_all((Path(__file__).parents[2] / "manifests/rbac.yaml").read_text())
    if d["kind"] == "Role"
)
_TRIAL_VERBS = {"create", "get", "watch", "delete"}


def _allowed(group: str, resource: str, verb: str) -> bool:
    return any(
        group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]
        for rule in _ROLE["rules"]
    )


def _used(k8s: K8sEmulator) -> set[tuple[str, str, str]]:
    used = set()
    for request in k8s.requests():
        if request.verb is None:  # discovery: every authenticated user may read it
            continue
        resource = request.plural + (f"/{request.subresource}" if request.subresource else "")
        used.add((request.group or "", str(resource), request.verb))
    return used


def _run_job_with_configmap_template(k8s: K8sEmulator) -> None:
    document = base_spec()
    template = document["spec"]["trialTemplate"]
    k8s.create(
        "",
        "v1",
        "configmaps",
        "templates",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "trial-templates", "namespace": "templates"},
            "data": {"job.yaml": yaml.safe_dump(template.pop("trialSpec"))},
        },
    )
    template["configMap"] = {
        "configMapName": "trial-templates",
        "configMapNamespace": "templates",
        "templatePath": "job.yaml",
    }
    future = _start(k8s, parse_experiment(document))
    job = _created(k8s, *_JOB)
    _pod_for(k8s, job, job["spec"]["template"]["metadata"]["labels"], "training-container", _LOG)
    _finish(k8s, _JOB, _COMPLETE)
    output = future.result(timeout=20)
    assert (
        output.run.succeeded and "--lr=0.02" in job["spec"]["template"]["spec"]["containers"][0]["command"][2]
    )


def _run(
    k8s: K8sEmulator,
    experiment: Any,
    address: tuple[str, str, str],
    status: dict[str, Any],
    labels_at: list[str],
    container: str,
) -> None:
    future = _start(k8s, experiment)
    obj = _created(k8s, *address)
    labels: Any = obj
    for key in labels_at:
        labels = labels[key]
    _pod_for(k8s, obj, labels, container, _LOG)
    _finish(k8s, address, status)
    assert future.result(timeout=20).run.succeeded


def test_every_request_is_allowed_and_every_rule_is_needed(k8s: K8sEmulator) -> None:
    _run_job_with_configmap_template(k8s)
    k8s.delete("", "v1", "pods", _NS, "demo-0001-pod")  # the emulator has no garbage collector
    _run(
        k8s,
        _tfjob_experiment(),
        ("kubeflow.org", "v1", "tfjobs"),
        {"conditions": [{"type": "Succeeded", "status": "True"}]},
        ["spec", "tfReplicaSpecs", "Chief", "template", "metadata", "labels"],
        "tensorflow",
    )
    k8s.delete("", "v1", "pods", _NS, "demo-0001-pod")
    _run(
        k8s,
        _workflow_experiment(),
        ("argoproj.io", "v1alpha1", "workflows"),
        {"phase": "Succeeded"},
        ["spec", "podMetadata", "labels"],
        "main",
    )
    used = _used(k8s)
    for group, resource, verb in used:
        assert _allowed(group, resource, verb), f"the Role does not allow {verb} {group}/{resource}"
    # Trial kinds need exactly create/get/watch/delete; the rest exactly what was used.
    for kind in (("batch", "jobs"), ("kubeflow.org", "tfjobs"), ("argoproj.io", "workflows")):
        assert {verb for g, r, verb in used if (g, r) == kind} == _TRIAL_VERBS
    granted = {
        (g, r, v)
        for rule in _ROLE["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    others = {(g, r, v) for g, r, v in granted if v not in _TRIAL_VERBS or g == ""}
    assert others == {g for g in used if g[0] == ""}
    assert not any(v in ("update", "patch", "list", "*") for g, r, v in granted if g != "")
