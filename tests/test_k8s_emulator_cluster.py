"""Self-tests of the emulator's running cluster (``tests/k8s_emulator/cluster.py``) and CRD
pruning, through the real ``kubernetes`` client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.k8s_emulator import Cluster, Denial, K8sEmulator, Program
from tests.waiting import wait_for

NS = "hpo"
_JOBS = ("batch", "v1", "jobs")
_PODS = ("", "v1", "pods")


def _job(name: str, image: str = "train", **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": image}
    template = {"spec": {"restartPolicy": "Never", "containers": [container]}}
    return {"metadata": {"name": name}, "spec": {"template": template, **spec}}


def _condition(k8s: K8sEmulator, name: str) -> dict[str, Any] | None:
    job = k8s.get(*_JOBS, NS, name) or {}
    done = [
        c for c in (job.get("status") or {}).get("conditions") or [] if c["type"] in ("Complete", "Failed")
    ]
    return done[0] if done else None


def _pods(k8s: K8sEmulator, job: str) -> list[dict[str, Any]]:
    return [p for p in k8s.list(*_PODS, NS) if p["metadata"]["labels"].get("job-name") == job]


@pytest.fixture
def cluster() -> Iterator[K8sEmulator]:
    programs = {
        "train": Program(log="step 1\nstep 2\n", message="loss=0.1\n", seconds=0.1),
        "crash": Program(log="boom\n", exit_code=3),
        "serve": Program(exit_code=None),
        "missing": Program(pull="ErrImagePull"),
    }
    with K8sEmulator(cluster=Cluster(programs=programs, istio_namespaces=frozenset({"mesh"}))) as k8s:
        yield k8s


def test_a_job_runs_its_pod_through_each_phase_and_completes(cluster: K8sEmulator) -> None:
    cluster.create(*_JOBS, NS, _job("j"))
    condition = wait_for(lambda: _condition(cluster, "j"), what="the Job's end")
    assert condition["type"] == "Complete"
    (pod,) = _pods(cluster, "j")
    history = [p for p in cluster.history(*_PODS, NS, pod["metadata"]["name"]) if p is not None]
    first = history[0]
    assert first["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    assert "nodeName" not in first["spec"]
    assert history[1]["spec"]["nodeName"] and "containerStatuses" not in history[1]["status"]
    assert history[2]["status"]["containerStatuses"][0]["state"] == {
        "waiting": {"reason": "ContainerCreating"}
    }
    assert history[3]["status"]["phase"] == "Running"
    ended = history[-1]["status"]
    assert ended["phase"] == "Succeeded"
    terminated = ended["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"], terminated["message"]) == (
        0,
        "Completed",
        "loss=0.1\n",
    )
    log = client.CoreV1Api(cluster.api_client()).read_namespaced_pod_log(pod["metadata"]["name"], NS)
    assert log == "step 1\nstep 2\n"
    # The Job strategy's labels, and the Job's ownership of its pod.
    labels = pod["metadata"]["labels"]
    job = cluster.get(*_JOBS, NS, "j")
    assert job is not None
    uid = job["metadata"]["uid"]
    assert labels["controller-uid"] == labels["batch.kubernetes.io/controller-uid"] == uid
    assert labels["job-name"] == labels["batch.kubernetes.io/job-name"] == "j"
    assert pod["metadata"]["ownerReferences"][0]["uid"] == uid
    assert job["status"]["succeeded"] == 1


def test_a_failing_pod_is_replaced_until_the_backoff_limit(cluster: K8sEmulator) -> None:
    cluster.create(*_JOBS, NS, _job("j", "crash", backoffLimit=2))
    condition = wait_for(lambda: _condition(cluster, "j"), what="the Job's end")
    assert (condition["type"], condition["reason"]) == ("Failed", "BackoffLimitExceeded")
    pods = _pods(cluster, "j")
    assert len(pods) == 3
    assert {p["status"]["phase"] for p in pods} == {"Failed"}


def test_an_indexed_job_makes_one_pod_per_index(cluster: K8sEmulator) -> None:
    cluster.create(*_JOBS, NS, _job("j", completions=3, parallelism=3, completionMode="Indexed"))
    wait_for(lambda: _condition(cluster, "j"), what="the Job's end")
    pods = _pods(cluster, "j")
    assert sorted(p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] for p in pods) == [
        "0",
        "1",
        "2",
    ]


def test_an_image_that_cannot_be_pulled_leaves_the_container_waiting(cluster: K8sEmulator) -> None:
    cluster.create(*_JOBS, NS, _job("j", "missing"))

    def waiting() -> dict[str, Any] | None:
        pods = _pods(cluster, "j")
        statuses = (pods[0]["status"].get("containerStatuses") or []) if pods else []
        return statuses[0]["state"].get("waiting") if statuses else None

    assert wait_for(lambda: (waiting() or {}).get("reason") == "ErrImagePull")
    api = client.CoreV1Api(cluster.api_client())
    with pytest.raises(ApiException) as refused:
        api.read_namespaced_pod_log(_pods(cluster, "j")[0]["metadata"]["name"], NS)
    assert refused.value.status == 400


def test_a_running_pod_is_terminating_for_its_grace_period_then_gone(cluster: K8sEmulator) -> None:
    cluster.create(*_JOBS, NS, _job("j", "serve"))
    pod = wait_for(lambda: [p for p in _pods(cluster, "j") if p["status"].get("phase") == "Running"])[0]
    name = pod["metadata"]["name"]
    answer = client.CoreV1Api(cluster.api_client()).delete_namespaced_pod(name, NS)
    assert answer.metadata.deletion_timestamp is not None  # 200 with the object: Terminating
    still = cluster.get(*_PODS, NS, name)
    assert still is not None and still["metadata"]["deletionGracePeriodSeconds"] == 30
    # The Job controller replaces a Terminating pod at once (podReplacementPolicy TerminatingOrFailed).
    wait_for(lambda: len(_pods(cluster, "j")) == 2, what="the replacement pod")
    wait_for(lambda: cluster.get(*_PODS, NS, name) is None, what="the end of the grace period")
    last = [p for p in cluster.history(*_PODS, NS, name) if p is not None][-1]
    assert last["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 143


def test_a_pod_not_yet_scheduled_is_deleted_at_once() -> None:
    with K8sEmulator(cluster=Cluster(step_seconds=30)) as k8s:
        k8s.create(
            *_PODS, NS, {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
        )
        k8s.delete(*_PODS, NS, "p")
        assert k8s.get(*_PODS, NS, "p") is None


@pytest.mark.parametrize(
    ("namespace", "labels", "annotations", "injected"),
    [
        ("mesh", {}, {}, True),
        ("mesh", {}, {"sidecar.istio.io/inject": "false"}, False),
        ("mesh", {"sidecar.istio.io/inject": "true"}, {"sidecar.istio.io/inject": "false"}, True),
        ("mesh", {"sidecar.istio.io/inject": "false"}, {"sidecar.istio.io/inject": "true"}, False),
        (NS, {}, {}, False),
    ],
    ids=["namespace-default", "annotation-off", "label-wins-on", "label-wins-off", "namespace-without-mesh"],
)
def test_istio_injection_follows_the_namespace_then_the_label_then_the_annotation(
    cluster: K8sEmulator, namespace: str, labels: dict[str, str], annotations: dict[str, str], injected: bool
) -> None:
    body = {
        "metadata": {"name": "p", "labels": labels, "annotations": annotations},
        "spec": {"containers": [{"name": "c", "image": "train"}]},
    }
    created = client.CoreV1Api(cluster.api_client()).create_namespaced_pod(namespace, body)
    names = [c.name for c in created.spec.containers]
    assert names == (["c", "istio-proxy"] if injected else ["c"])


def test_a_webhooks_denial_is_the_api_servers_status_error() -> None:
    denial = Denial("policy.example.com", "line one\nline two", plural="jobs", code=403)
    with K8sEmulator(cluster=Cluster(denials=(denial,))) as k8s:
        with pytest.raises(ApiException) as refused:
            client.BatchV1Api(k8s.api_client()).create_namespaced_job(NS, _job("j"))
        assert refused.value.status == 403
        message = json.loads(refused.value.body)["message"]
        assert message == 'admission webhook "policy.example.com" denied the request: line one\nline two'
        assert k8s.get(*_JOBS, NS, "j") is None
        k8s.create(
            *_PODS, NS, {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
        )


def test_a_custom_resource_loses_the_fields_its_schema_does_not_know(k8s: K8sEmulator) -> None:
    template = {
        "metadata": {"labels": {"a": "b"}, "generateName": "x-", "annotations": {"k": "v"}},
        "spec": {"containers": [{"name": "pytorch", "image": "i", "anything": 1}]},
    }
    body = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": "p"},
        "spec": {"pytorchReplicaSpecs": {"Master": {"replicas": 1, "template": template}}, "extra": True},
        "top": "level",
    }
    api = client.CustomObjectsApi(k8s.api_client())
    created = api.create_namespaced_custom_object("kubeflow.org", "v1", NS, "pytorchjobs", body)
    kept = created["spec"]["pytorchReplicaSpecs"]["Master"]["template"]
    assert kept["metadata"] == {"labels": {"a": "b"}, "annotations": {"k": "v"}}  # generateName pruned
    assert kept["spec"]["containers"][0]["anything"] == 1  # the PodSpec is kept whole
    assert created["spec"]["extra"] is True  # spec keeps unknown fields
    assert "top" not in created  # the root does not
    patched = api.patch_namespaced_custom_object(
        "kubeflow.org",
        "v1",
        NS,
        "pytorchjobs",
        "p",
        {"spec": {"pytorchReplicaSpecs": {"Master": {"template": {"metadata": {"generateName": "y-"}}}}}},
    )
    assert "generateName" not in patched["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["metadata"]
