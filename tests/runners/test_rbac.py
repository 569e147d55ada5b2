"""The Role in manifests/rbac.yaml allows every request the runner makes, and no more.

Every trial kind the Role names is run (and swept), in the trials' namespace, by a step whose
pod is found by name only (so its uid is read); the ConfigMap template sits in another
namespace, which the Role cannot reach (the README says so).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hpo_kfp.runners.kubernetes import KubernetesRunner
from hpo_kfp.spec import Experiment, parse_experiment
from tests.conftest import base_spec
from tests.k8s_emulator import K8sEmulator
from tests.runners.test_kubernetes import (
    _COMPLETE,
    _JOB,
    _LOG,
    _NS,
    _created,
    _finish,
    _leftover_in,
    _pod_for,
)
from tests.runners.test_kubernetes_cluster import _ARGS, _QUICK, _SUCCEEDED, _experiment, _start, _wait_until

_MANIFESTS = list(yaml.safe_load_all((Path(__file__).parents[2] / "manifests/rbac.yaml").read_text()))
_ROLE = next(d for d in _MANIFESTS if d["kind"] == "Role")
_BINDING = next(d for d in _MANIFESTS if d["kind"] == "RoleBinding")
_TRIAL_VERBS = {"create", "get", "watch", "delete", "list", "patch"}
_TEMPLATES_NAMESPACE = "templates"


def _allowed(group: str, resource: str, verb: str) -> bool:
    return any(
        group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]
        for rule in _ROLE["rules"]
    )


def _container(name: str) -> dict[str, Any]:
    return {"name": name, "image": "train:1", "command": ["python", "train.py", *_ARGS]}


def _replicas(*roles: str, container: str) -> dict[str, Any]:
    return {
        role: {"replicas": 1, "template": {"spec": {"containers": [_container(container)]}}} for role in roles
    }


_PHASE = {
    "successCondition": 'status.[@this].#(phase=="Succeeded")#',
    "failureCondition": 'status.[@this].#(phase=="Failed")#',
}
_TEKTON = {
    "successCondition": 'status.conditions.#(type=="Succeeded")#|#(status=="True")#',
    "failureCondition": 'status.conditions.#(type=="Succeeded")#|#(status=="False")#',
}
# (apiVersion, kind, plural, spec, primary container, template fields, finished status)
_KINDS: list[tuple[str, str, str, dict[str, Any], str, dict[str, str], dict[str, Any]]] = [
    (
        "kubeflow.org/v1",
        "TFJob",
        "tfjobs",
        {"tfReplicaSpecs": _replicas("Chief", "Worker", container="tensorflow")},
        "tensorflow",
        {},
        _SUCCEEDED,
    ),
    (
        "kubeflow.org/v1",
        "PyTorchJob",
        "pytorchjobs",
        {"pytorchReplicaSpecs": _replicas("Master", container="pytorch")},
        "pytorch",
        {},
        _SUCCEEDED,
    ),
    (
        "kubeflow.org/v1",
        "XGBoostJob",
        "xgboostjobs",
        {"xgbReplicaSpecs": _replicas("Master", container="xgboost")},
        "xgboost",
        {},
        _SUCCEEDED,
    ),
    (
        "kubeflow.org/v2beta1",
        "MPIJob",
        "mpijobs",
        {"mpiReplicaSpecs": _replicas("Launcher", "Worker", container="mpi")},
        "mpi",
        {},
        _SUCCEEDED,
    ),
    (
        "trainer.kubeflow.org/v1alpha1",
        "TrainJob",
        "trainjobs",
        {"trainer": {"image": "t:1", "command": _ARGS}},
        "node",
        {},
        _COMPLETE,
    ),
    (
        "argoproj.io/v1alpha1",
        "Workflow",
        "workflows",
        {"entrypoint": "t", "templates": [{"name": "t", "container": _container("main")}]},
        "main",
        _PHASE,
        {"phase": "Succeeded"},
    ),
    (
        "tekton.dev/v1",
        "PipelineRun",
        "pipelineruns",
        {"pipelineSpec": {"tasks": [{"name": "t", "taskSpec": {"steps": [_container("train")]}}]}},
        "train",
        _TEKTON,
        _SUCCEEDED,
    ),
    (
        "tekton.dev/v1",
        "TaskRun",
        "taskruns",
        {"taskSpec": {"steps": [_container("train")]}},
        "train",
        _TEKTON,
        _SUCCEEDED,
    ),
    (
        "jobset.x-k8s.io/v1alpha2",
        "JobSet",
        "jobsets",
        {
            "replicatedJobs": [
                {
                    "name": "leader",
                    "replicas": 1,
                    "template": {"spec": {"template": {"spec": {"containers": [_container("trainer")]}}}},
                }
            ]
        },
        "trainer",
        {},
        {"conditions": [{"type": "Completed", "status": "True", "reason": "AllJobsCompleted"}]},
    ),
    (
        "ray.io/v1",
        "RayJob",
        "rayjobs",
        {
            "entrypoint": " ".join(["python", "train.py", *_ARGS]),
            "rayClusterSpec": {
                "headGroupSpec": {
                    "template": {
                        "spec": {"containers": [{"name": "ray-head", "image": "rayproject/ray:2.40.0"}]}
                    }
                }
            },
        },
        "ray-job-submitter",
        {},
        {"jobStatus": "SUCCEEDED", "jobDeploymentStatus": "Complete"},
    ),
]


def _configmap_experiment(k8s: K8sEmulator) -> Experiment:
    document = base_spec()
    template = document["spec"]["trialTemplate"]
    k8s.create(
        "",
        "v1",
        "configmaps",
        _TEMPLATES_NAMESPACE,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "trial-templates", "namespace": _TEMPLATES_NAMESPACE},
            "data": {"job.yaml": yaml.safe_dump(template.pop("trialSpec"))},
        },
    )
    template["configMap"] = {
        "configMapName": "trial-templates",
        "configMapNamespace": _TEMPLATES_NAMESPACE,
        "templatePath": "job.yaml",
    }
    return parse_experiment(document)


def _run_every_kind(k8s: K8sEmulator) -> None:
    k8s.create_pod(_NS, "step-pod")
    environ = {"KFP_POD_NAME": "step-pod", "POD_NAMESPACE": _NS}  # no uid: the runner reads the pod
    first = k8s.create_pod(_NS, "first-attempt-pod")
    owner = {"apiVersion": "v1", "kind": "Pod", "name": "first-attempt-pod", "uid": first["metadata"]["uid"]}
    runner = KubernetesRunner(k8s.api_client(), _QUICK)
    future = _start(k8s, _configmap_experiment(k8s), environ=environ)
    job = _created(k8s, *_JOB)
    _pod_for(k8s, job, job["spec"]["template"]["metadata"]["labels"], "training-container", _LOG)
    _finish(k8s, _JOB, _COMPLETE)
    assert future.result(timeout=20).run.succeeded and "--lr=0.02" in str(job["spec"])
    runner.sweep(api_version="batch/v1", kind="Job", namespace=_NS, experiment="demo")
    # A first attempt of the step left its object: the retry adopts it, and becomes its owner (patch).
    _leftover_in(k8s, parse_experiment(base_spec()), ownerReferences=[owner])
    future = _start(k8s, parse_experiment(base_spec()), environ=environ)
    _wait_until(lambda: k8s.requests(verb="patch", plural="jobs"))
    _finish(k8s, _JOB, _COMPLETE)
    assert future.result(timeout=20).run.succeeded
    for api_version, kind, plural, spec, container, fields, status in _KINDS:
        template = {"apiVersion": api_version, "kind": kind, "spec": spec}
        experiment = _experiment(template, container, **fields)
        address = (api_version.rpartition("/")[0], api_version.rpartition("/")[2], plural)
        _leftover_in(k8s, experiment, address=address, ownerReferences=[owner])  # adopted, as above
        future = _start(k8s, experiment, environ=environ)
        _wait_until(lambda address=address: k8s.requests(verb="patch", plural=address[2]))
        _finish(k8s, address, status)
        assert future.result(timeout=20).run.succeeded, kind
        runner.sweep(api_version=api_version, kind=kind, namespace=_NS, experiment="demo")


@pytest.fixture
def used(k8s: K8sEmulator) -> set[tuple[str, str, str, str]]:
    _run_every_kind(k8s)
    found = set()
    for request in k8s.requests():
        if request.verb is None:  # discovery: every authenticated user may read it
            continue
        resource = str(request.plural) + (f"/{request.subresource}" if request.subresource else "")
        found.add((str(request.namespace), request.group or "", resource, request.verb))
    return found


def test_every_request_is_allowed_and_every_rule_is_needed(used: set[tuple[str, str, str, str]]) -> None:
    for _, group, resource, verb in used:
        assert _allowed(group, resource, verb), f"the Role does not allow {verb} {group}/{resource}"
    granted = {
        (g, r, v)
        for rule in _ROLE["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    assert granted == {(g, r, v) for _, g, r, v in used}  # every rule exercised, none more
    for group, resource in {(g, r) for g, r, _ in granted if g}:
        assert {v for _, g, r, v in used if (g, r) == (group, resource)} == _TRIAL_VERBS, resource
    assert not any(v in ("update", "*") for _, _, v in granted)


def test_every_request_is_in_the_trials_namespace_but_the_template_configmap(
    used: set[tuple[str, str, str, str]],
) -> None:
    outside = {(ns, g, r, v) for ns, g, r, v in used if ns != _NS}
    assert outside == {(_TEMPLATES_NAMESPACE, "", "configmaps", "get")}


def _binds(applied_in: str, namespace: str, service_account: str) -> bool:
    """Whether the RoleBinding, applied in ``applied_in``, grants the Role to that service
    account, as Kubernetes' RBAC authorizer decides: a ServiceAccount subject without a
    namespace means the binding's own (``appliesToUser`` in ``rbac/subject_locator``)."""
    return (
        any(
            subject["kind"] == "ServiceAccount"
            and subject["name"] == service_account
            and subject.get("namespace", applied_in) == namespace
            for subject in _BINDING["subjects"]
        )
        and namespace == applied_in
    )


@pytest.mark.parametrize(
    ("namespace", "service_account"),
    [("kubeflow", "pipeline-runner"), ("team-a", "default-editor")],
    ids=["standalone-kfp", "multi-user-kfp"],
)
def test_the_binding_grants_the_role_to_the_account_kfp_runs_steps_as(
    namespace: str, service_account: str
) -> None:
    assert _BINDING["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": _ROLE["metadata"]["name"],
    }
    assert _binds(namespace, namespace, service_account)
    # Applied in one namespace, it grants nothing to the accounts of another.
    assert not _binds(namespace, "elsewhere", service_account)


def test_the_binding_names_only_service_accounts_kfp_runs_steps_as() -> None:
    subjects = {(s["kind"], s["name"], s.get("namespace")) for s in _BINDING["subjects"]}
    assert subjects == {
        ("ServiceAccount", "pipeline-runner", None),
        ("ServiceAccount", "default-editor", None),
    }
