"""Self-tests of the Kubernetes API emulator: the real ``kubernetes`` client over HTTP, no patching."""

from __future__ import annotations

import asyncio
import datetime
import json
import socket
import threading
import time
from typing import Any

import pytest
import urllib3
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tests import k8s_emulator
from tests.k8s_emulator import K8sEmulator, match_field_selector, match_label_selector, merge_patch
from tests.waiting import wait_for

k8s = k8s_emulator.k8s  # the fixture (redundant once tests/conftest.py imports it)

NS = "hpo"

KINDS = [
    ("batch/v1", "Job", "batch", "v1", "jobs"),
    ("kubeflow.org/v1", "TFJob", "kubeflow.org", "v1", "tfjobs"),
    ("kubeflow.org/v1", "PyTorchJob", "kubeflow.org", "v1", "pytorchjobs"),
    ("argoproj.io/v1alpha1", "Workflow", "argoproj.io", "v1alpha1", "workflows"),
    ("trainer.kubeflow.org/v1alpha1", "TrainJob", "trainer.kubeflow.org", "v1alpha1", "trainjobs"),
]


def _body(api_version: str, kind: str, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"note": "emulated"},
    }


def _job(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    body = _body("batch/v1", "Job", name, labels)
    body["spec"] = {
        "template": {
            "spec": {"restartPolicy": "Never", "containers": [{"name": "trainer", "image": "python:3.11"}]},
        },
    }
    return body


# ---- discovery & CRUD ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind_info", KINDS, ids=[kind for _, kind, *_ in KINDS])
def test_dynamic_client_create_get_delete(
    k8s: K8sEmulator, kind_info: tuple[str, str, str, str, str]
) -> None:
    api_version, kind, group, version, plural = kind_info
    dyn = k8s.dynamic_client()
    res = dyn.resources.get(api_version=api_version, kind=kind)
    assert res.namespaced

    created = res.create(body=_body(api_version, kind, "t1", {"trial": "1"}), namespace=NS)
    assert created.metadata.uid
    assert created.metadata.namespace == NS
    assert int(created.metadata.resourceVersion) > 0

    fetched = res.get(name="t1", namespace=NS)
    assert fetched.metadata.uid == created.metadata.uid
    assert fetched.spec == created.spec
    assert k8s.get(group, version, plural, NS, "t1") is not None

    res.delete(name="t1", namespace=NS)
    assert k8s.get(group, version, plural, NS, "t1") is None
    with pytest.raises(ApiException) as exc:
        res.get(name="t1", namespace=NS)
    assert exc.value.status == 404
    assert [r.verb for r in k8s.requests(plural=plural)] == ["create", "get", "delete", "get"]


def test_discovery_serves_builtins(k8s: K8sEmulator) -> None:
    dyn = k8s.dynamic_client()
    for api_version, kind in [("v1", "Pod"), ("v1", "ConfigMap"), ("batch/v1", "Job")]:
        assert dyn.resources.get(api_version=api_version, kind=kind).kind == kind


def test_uid_and_resource_versions_increase(k8s: K8sEmulator) -> None:
    batch = client.BatchV1Api(k8s.api_client())
    a = batch.create_namespaced_job(NS, _job("a"))
    b = batch.create_namespaced_job(NS, _job("b"))
    assert a.metadata.uid != b.metadata.uid
    assert int(b.metadata.resource_version) > int(a.metadata.resource_version)

    updated = k8s.set_status("batch", "v1", "jobs", NS, "a", {"active": 1})
    assert int(updated["metadata"]["resourceVersion"]) > int(b.metadata.resource_version)
    unchanged = k8s.set_status("batch", "v1", "jobs", NS, "a", {"active": 1})  # no-op: no new version
    assert unchanged["metadata"]["resourceVersion"] == updated["metadata"]["resourceVersion"]

    listed = batch.list_namespaced_job(NS)
    assert listed.metadata.resource_version == k8s.resource_version == updated["metadata"]["resourceVersion"]
    assert {j.metadata.name for j in listed.items} == {"a", "b"}


def test_conflict_on_create_of_existing_name(k8s: K8sEmulator) -> None:
    batch = client.BatchV1Api(k8s.api_client())
    batch.create_namespaced_job(NS, _job("dup"))
    with pytest.raises(ApiException) as exc:
        batch.create_namespaced_job(NS, _job("dup"))
    assert exc.value.status == 409
    assert "AlreadyExists" in str(exc.value.body)


def test_500_then_success_on_create_stores_nothing_first(k8s: K8sEmulator) -> None:
    fault = k8s.fail_next(500, verb="create", plural="tfjobs")
    custom = client.CustomObjectsApi(k8s.api_client())
    body = _body("kubeflow.org/v1", "TFJob", "flaky")
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object("kubeflow.org", "v1", NS, "tfjobs", body)
    assert exc.value.status == 500
    assert fault.hits == 1
    assert k8s.get("kubeflow.org", "v1", "tfjobs", NS, "flaky") is None

    created = custom.create_namespaced_custom_object("kubeflow.org", "v1", NS, "tfjobs", body)
    assert created["metadata"]["name"] == "flaky"
    assert [r.status for r in k8s.requests(verb="create")] == [500, 201]


def test_status_subresource_replace_and_patch(k8s: K8sEmulator) -> None:
    batch = client.BatchV1Api(k8s.api_client())
    job = batch.create_namespaced_job(NS, _job("s"))

    # The main endpoint ignores status changes of kinds with a status subresource; /status takes them.
    batch.patch_namespaced_job("s", NS, {"metadata": {"labels": {"x": "1"}}, "status": {"active": 5}})
    assert k8s.get("batch", "v1", "jobs", NS, "s")["metadata"]["labels"] == {"x": "1"}
    assert "status" not in k8s.get("batch", "v1", "jobs", NS, "s")
    batch.patch_namespaced_job_status("s", NS, {"status": {"active": 2}})
    assert k8s.get("batch", "v1", "jobs", NS, "s")["status"] == {"active": 2}
    k8s.patch("batch", "v1", "jobs", NS, "s", {"status": {"active": None, "failed": 1}})  # harness: anything
    assert k8s.get("batch", "v1", "jobs", NS, "s")["status"] == {"failed": 1}

    # JSON patch (list body) and merge patch with null deletion.
    batch.patch_namespaced_job("s", NS, [{"op": "add", "path": "/metadata/labels/y", "value": "2"}])
    batch.patch_namespaced_job("s", NS, {"metadata": {"labels": {"x": None}}})
    assert k8s.get("batch", "v1", "jobs", NS, "s")["metadata"]["labels"] == {"y": "2"}

    # PUT with a stale resourceVersion conflicts; with the current one it replaces.
    stale = client.ApiClient().sanitize_for_serialization(job)
    with pytest.raises(ApiException) as exc:
        batch.replace_namespaced_job("s", NS, stale)
    assert exc.value.status == 409
    current = k8s.get("batch", "v1", "jobs", NS, "s")
    current["spec"]["parallelism"] = 2
    replaced = batch.replace_namespaced_job("s", NS, current)
    assert replaced.metadata.uid == job.metadata.uid
    assert replaced.metadata.generation == 2


def test_finalizers_defer_deletion(k8s: K8sEmulator) -> None:
    body = _body("argoproj.io/v1alpha1", "Workflow", "wf")
    body["metadata"]["finalizers"] = ["example.com/cleanup"]
    k8s.create("argoproj.io", "v1alpha1", "workflows", NS, body)
    custom = client.CustomObjectsApi(k8s.api_client())
    custom.delete_namespaced_custom_object("argoproj.io", "v1alpha1", NS, "workflows", "wf")
    pending = k8s.get("argoproj.io", "v1alpha1", "workflows", NS, "wf")
    assert pending is not None and pending["metadata"]["deletionTimestamp"]
    k8s.patch("argoproj.io", "v1alpha1", "workflows", NS, "wf", {"metadata": {"finalizers": None}})
    assert k8s.get("argoproj.io", "v1alpha1", "workflows", NS, "wf") is None


# ---- watches ---------------------------------------------------------------------------------------


def test_watch_with_label_selector_gets_modified_after_set_status(k8s: K8sEmulator) -> None:
    dyn = k8s.dynamic_client()
    jobs = dyn.resources.get(api_version="batch/v1", kind="Job")
    jobs.create(body=_job("mine", {"trial": "t1"}), namespace=NS)
    jobs.create(body=_job("other", {"trial": "t2"}), namespace=NS)

    seen: list[tuple[str, str, Any]] = []
    for event in jobs.watch(namespace=NS, label_selector="trial=t1", timeout=5):
        obj = event["raw_object"]
        seen.append((event["type"], obj["metadata"]["name"], obj.get("status")))
        if len(seen) == 1:  # the synthetic ADDED of the existing object; now act as the controller
            k8s.set_status("batch", "v1", "jobs", NS, "other", {"failed": 1})
            k8s.set_status("batch", "v1", "jobs", NS, "mine", {"succeeded": 1})
        if len(seen) == 2:
            break
    assert seen == [("ADDED", "mine", None), ("MODIFIED", "mine", {"succeeded": 1})]
    watch_req = k8s.requests(verb="watch")[0]
    assert watch_req.query["labelSelector"] == "trial=t1"
    assert watch_req.query["watch"] == "True"


def test_watch_from_a_controller_thread(k8s: K8sEmulator) -> None:
    """A runner-like consumer in a thread; the test thread plays the Job controller."""
    batch = client.BatchV1Api(k8s.api_client())
    listed = batch.list_namespaced_job(NS, label_selector="trial=t9")
    batch.create_namespaced_job(NS, _job("t9", {"trial": "t9"}))
    events: list[tuple[str, Any]] = []

    def consume() -> None:
        w = watch.Watch()
        for event in w.stream(
            batch.list_namespaced_job,
            NS,
            label_selector="trial=t9",
            resource_version=listed.metadata.resource_version,
            timeout_seconds=5,
        ):
            status = event["object"].status
            events.append((event["type"], status.succeeded if status else None))
            if event["type"] == "MODIFIED":
                w.stop()

    thread = threading.Thread(target=consume)
    thread.start()
    k8s.wait_for_watch("jobs")
    k8s.set_status("batch", "v1", "jobs", NS, "t9", {"succeeded": 1})
    thread.join(5)
    assert not thread.is_alive()
    assert events == [("ADDED", None), ("MODIFIED", 1)]


def test_watch_starting_from_resource_version(k8s: K8sEmulator) -> None:
    custom = client.CustomObjectsApi(k8s.api_client())
    custom.create_namespaced_custom_object(
        "kubeflow.org", "v1", NS, "tfjobs", _body("kubeflow.org/v1", "TFJob", "tf")
    )
    first = k8s.set_status("kubeflow.org", "v1", "tfjobs", NS, "tf", {"phase": "Running"})
    second = k8s.set_status("kubeflow.org", "v1", "tfjobs", NS, "tf", {"phase": "Succeeded"})

    events = list(
        watch.Watch().stream(
            custom.list_namespaced_custom_object,
            "kubeflow.org",
            "v1",
            NS,
            "tfjobs",
            resource_version=first["metadata"]["resourceVersion"],
            timeout_seconds=0.3,
        )
    )
    assert [(e["type"], e["object"]["metadata"]["resourceVersion"]) for e in events] == [
        ("MODIFIED", second["metadata"]["resourceVersion"]),
    ]


def test_watch_reclassifies_objects_leaving_the_selector(k8s: K8sEmulator) -> None:
    k8s.create("batch", "v1", "jobs", NS, _job("j", {"phase": "a"}))
    rv = k8s.resource_version
    k8s.patch("batch", "v1", "jobs", NS, "j", {"metadata": {"labels": {"phase": "b"}}})
    k8s.patch("batch", "v1", "jobs", NS, "j", {"metadata": {"labels": {"phase": "a"}}})
    batch = client.BatchV1Api(k8s.api_client())
    events = list(
        watch.Watch().stream(
            batch.list_namespaced_job, NS, label_selector="phase=a", resource_version=rv, timeout_seconds=0.3
        )
    )
    assert [e["type"] for e in events] == ["DELETED", "ADDED"]


def test_watch_with_field_selector_by_name(k8s: K8sEmulator) -> None:
    dyn = k8s.dynamic_client()
    jobs = dyn.resources.get(api_version="batch/v1", kind="Job")
    jobs.create(body=_job("n1"), namespace=NS)
    jobs.create(body=_job("n2"), namespace=NS)
    names = [e["object"].metadata.name for e in jobs.watch(namespace=NS, name="n2", timeout=0.3)]
    assert names == ["n2"]
    assert k8s.requests(verb="watch")[0].query["fieldSelector"] == "metadata.name=n2"


def test_dropped_watch_is_resumed_by_the_client(k8s: K8sEmulator) -> None:
    custom = client.CustomObjectsApi(k8s.api_client())
    custom.create_namespaced_custom_object(
        "kubeflow.org", "v1", NS, "tfjobs", _body("kubeflow.org/v1", "TFJob", "tf")
    )
    start = k8s.resource_version
    k8s.set_status("kubeflow.org", "v1", "tfjobs", NS, "tf", {"phase": "Running"})
    last = k8s.set_status("kubeflow.org", "v1", "tfjobs", NS, "tf", {"phase": "Succeeded"})
    drop = k8s.drop_watches(after_events=1, plural="tfjobs")

    w = watch.Watch()
    phases = []
    for event in w.stream(
        custom.list_namespaced_custom_object, "kubeflow.org", "v1", NS, "tfjobs", resource_version=start
    ):
        phases.append(event["object"]["status"]["phase"])
        if len(phases) == 2:
            w.stop()
    assert phases == ["Running", "Succeeded"]
    assert drop.hits == 1
    watches = k8s.requests(verb="watch")
    assert len(watches) == 2  # the client re-watched from the last seen resourceVersion
    assert watches[1].query["resourceVersion"] == str(int(last["metadata"]["resourceVersion"]) - 1)


def test_aborted_watch_breaks_the_client(k8s: K8sEmulator) -> None:
    k8s.create("batch", "v1", "jobs", NS, _job("j"))
    k8s.create("batch", "v1", "jobs", NS, _job("k"))
    k8s.drop_watches(after_events=1, abort=True)
    batch = client.BatchV1Api(k8s.api_client())
    received = []
    with pytest.raises(urllib3.exceptions.ProtocolError):
        for event in watch.Watch().stream(batch.list_namespaced_job, NS, timeout_seconds=5):
            received.append(event["type"])
    assert received == ["ADDED"]


def test_close_watches_ends_open_streams(k8s: K8sEmulator) -> None:
    batch = client.BatchV1Api(k8s.api_client())
    done = threading.Event()

    def consume() -> None:
        for _ in watch.Watch().stream(batch.list_namespaced_job, NS, timeout_seconds=30):
            pass
        done.set()

    thread = threading.Thread(target=consume)
    thread.start()
    k8s.wait_for_watch("jobs")
    assert k8s.close_watches() == 1
    thread.join(5)
    assert done.is_set()


def test_410_gone_injected_in_the_watch_stream(k8s: K8sEmulator) -> None:
    dyn = k8s.dynamic_client()
    jobs = dyn.resources.get(api_version="batch/v1", kind="Job")
    jobs.create(body=_job("g"), namespace=NS)

    # As the API server does: HTTP 200, then an ERROR event with a 410 Status.
    k8s.expire_next_watch("jobs")
    with pytest.raises(ApiException) as exc:
        list(jobs.watch(namespace=NS, timeout=1))  # a timeout disables the client's own 410 retry
    assert exc.value.status == 410

    # Without a timeout, kubernetes.watch.Watch retries once after a 410 and then succeeds.
    k8s.expire_next_watch("jobs")
    batch = client.BatchV1Api(k8s.api_client())
    w = watch.Watch()
    for event in w.stream(batch.list_namespaced_job, NS, resource_version="0"):
        assert event["type"] == "ADDED"
        w.stop()
    assert [r.status for r in k8s.requests(verb="watch")] == [200, 200, 200]


def test_410_gone_as_http_status_and_after_compaction(k8s: K8sEmulator) -> None:
    batch = client.BatchV1Api(k8s.api_client())
    k8s.expire_next_watch("jobs", in_stream=False)
    with pytest.raises(ApiException) as exc:
        list(watch.Watch().stream(batch.list_namespaced_job, NS, timeout_seconds=1))
    assert exc.value.status == 410

    batch.create_namespaced_job(NS, _job("c"))
    old = k8s.resource_version
    k8s.set_status("batch", "v1", "jobs", NS, "c", {"active": 1})
    k8s.compact()
    with pytest.raises(ApiException) as exc:
        list(watch.Watch().stream(batch.list_namespaced_job, NS, resource_version=old, timeout_seconds=1))
    assert exc.value.status == 410
    assert "too old resource version" in str(exc.value.reason)


# ---- pods, logs, recording ---------------------------------------------------------------------------


def test_pods_by_label_and_logs_by_container(k8s: K8sEmulator) -> None:
    job = k8s.create("batch", "v1", "jobs", NS, _job("trial-7"))
    k8s.create_pod(
        NS, "trial-7-abcde", labels={"job-name": "trial-7"}, containers=("trainer", "sidecar"), owner=job
    )
    k8s.create_pod(NS, "unrelated", labels={"job-name": "other"})
    k8s.set_pod_log(NS, "trial-7-abcde", "epoch 1\nloss=0.5\n", container="trainer")
    k8s.set_pod_log(NS, "trial-7-abcde", "sidecar noise\n", container="sidecar")
    k8s.append_pod_log(NS, "trial-7-abcde", "loss=0.25\n", container="trainer")

    core = client.CoreV1Api(k8s.api_client())
    pods = core.list_namespaced_pod(NS, label_selector="job-name=trial-7").items
    assert [p.metadata.name for p in pods] == ["trial-7-abcde"]
    assert pods[0].metadata.owner_references[0].uid == job["metadata"]["uid"]

    text = core.read_namespaced_pod_log("trial-7-abcde", NS, container="trainer")
    assert text == "epoch 1\nloss=0.5\nloss=0.25\n"
    assert (
        core.read_namespaced_pod_log("trial-7-abcde", NS, container="trainer", tail_lines=1) == "loss=0.25\n"
    )
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_pod_log("trial-7-abcde", NS)  # two containers: the name is required
    assert exc.value.status == 400
    log_req = k8s.requests(path=f"/api/v1/namespaces/{NS}/pods/trial-7-abcde/log")[0]
    assert log_req.query["container"] == "trainer"
    assert log_req.subresource == "log"


def test_request_recording_shows_delete_with_propagation_policy(k8s: K8sEmulator) -> None:
    batch = client.BatchV1Api(k8s.api_client())
    batch.create_namespaced_job(NS, _job("d1"))
    batch.create_namespaced_job(NS, _job("d2"))
    batch.delete_namespaced_job("d1", NS, body=client.V1DeleteOptions(propagation_policy="Background"))
    dyn = k8s.dynamic_client()
    dyn.resources.get(api_version="batch/v1", kind="Job").delete(
        name="d2", namespace=NS, propagation_policy="Foreground"
    )
    deletes = k8s.requests(method="DELETE")
    assert [(r.name, r.propagation_policy, r.status) for r in deletes] == [
        ("d1", "Background", 200),
        ("d2", "Foreground", 200),
    ]
    assert deletes[0].body["propagationPolicy"] == "Background"
    assert deletes[1].query["propagationPolicy"] == "Foreground"
    assert k8s.list("batch", "v1", "jobs", NS) == []


@pytest.mark.asyncio
async def test_usable_from_async_tests(k8s: K8sEmulator) -> None:
    """The emulator has its own loop; the sync client runs in a worker thread, never in either loop."""
    core = client.CoreV1Api(k8s.api_client())
    k8s.create_pod(NS, "p", labels={"a": "b"})
    k8s.set_pod_log(NS, "p", "ready\n")
    k8s.fail_next(503, verb="get", subresource="log")
    with pytest.raises(ApiException) as exc:
        await asyncio.to_thread(core.read_namespaced_pod_log, "p", NS)
    assert exc.value.status == 503
    assert await asyncio.to_thread(core.read_namespaced_pod_log, "p", NS) == "ready\n"


# ---- harness lifecycle & pure helpers --------------------------------------------------------------


def test_stop_releases_thread_and_port() -> None:
    with K8sEmulator() as emu:
        port = emu.port
        batch = client.BatchV1Api(emu.api_client())
        batch.create_namespaced_job(NS, _job("x"))
        thread = threading.Thread(
            target=lambda: list(watch.Watch().stream(batch.list_namespaced_job, NS, timeout_seconds=30)),
            daemon=True,
        )
        thread.start()
        emu.wait_for_watch("jobs")
    thread.join(5)
    assert not thread.is_alive()
    assert not any(t.name == "k8s-emulator" for t in threading.enumerate())
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("", True),
        ("app=x", True),
        ("app==x,tier=a", True),
        ("app!=x", False),
        ("app", True),
        ("!app", False),
        ("app in (x, y),tier notin (b)", True),
        ("app in (y)", False),
        ("missing!=z", True),
    ],
)
def test_label_selector(selector: str, expected: bool) -> None:
    assert match_label_selector(selector, {"app": "x", "tier": "a"}) is expected


def test_field_selector_and_merge_patch() -> None:
    obj = {"metadata": {"name": "n", "namespace": "ns"}, "status": {"phase": "Running"}}
    assert match_field_selector("metadata.name=n,status.phase!=Failed", obj)
    assert not match_field_selector("metadata.namespace=other", obj)
    assert merge_patch({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"b": None, "d": 3}, "l": [2]}) == {
        "a": {"c": 2, "d": 3},
        "l": [2],
    }


# ---- kubelet and API-server behaviours the runner depends on ---------------------------------------


def _pod_log_error(core: client.CoreV1Api, pod: str, container: str) -> str | None:
    try:
        core.read_namespaced_pod_log(pod, NS, container=container)
    except ApiException as error:
        assert error.status == 400
        return str(error.body)
    return None


def test_pod_log_answers_400_while_the_container_waits(k8s: K8sEmulator) -> None:
    core = client.CoreV1Api(k8s.api_client())
    k8s.create_pod(NS, "p", containers=("main",), phase="Pending")
    k8s.set_pod_log(NS, "p", "hello\n", container="main")
    assert "is waiting to start: ContainerCreating" in str(_pod_log_error(core, "p", "main"))
    k8s.set_container_state(NS, "p", "main", {"waiting": {"reason": "ImagePullBackOff"}})
    assert "trying and failing to pull image" in str(_pod_log_error(core, "p", "main"))
    k8s.set_container_state(NS, "p", "main", {"running": {"startedAt": "2026-01-01T00:00:00Z"}})
    assert _pod_log_error(core, "p", "main") is None
    assert core.read_namespaced_pod_log("p", NS, container="main") == "hello\n"
    # Waiting again after a crash: the previous instance's log is served.
    k8s.set_container_state(
        NS,
        "p",
        "main",
        {"waiting": {"reason": "CrashLoopBackOff"}},
        last_state={"terminated": {"exitCode": 1}},
    )
    assert _pod_log_error(core, "p", "main") is None


def test_status_sent_on_create_is_dropped_for_kinds_with_a_status_subresource(k8s: K8sEmulator) -> None:
    custom = client.CustomObjectsApi(k8s.api_client())
    job = {**_job("j"), "status": {"succeeded": 1}}
    client.BatchV1Api(k8s.api_client()).create_namespaced_job(NS, job)
    assert "status" not in (k8s.get("batch", "v1", "jobs", NS, "j") or {})
    workflow = {**_body("argoproj.io/v1alpha1", "Workflow", "w"), "status": {"phase": "Succeeded"}}
    custom.create_namespaced_custom_object("argoproj.io", "v1alpha1", NS, "workflows", workflow)
    assert (k8s.get("argoproj.io", "v1alpha1", "workflows", NS, "w") or {})["status"] == {
        "phase": "Succeeded"
    }


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        ({"name": "Upper_Case"}, "metadata.name"),
        ({"name": "j" * 64}, "metadata.name"),
        ({"name": "ok", "labels": {"trial": "v" * 64}}, "metadata.labels"),
        ({"name": "ok", "labels": {"bad key!": "v"}}, "metadata.labels"),
        ({"name": "ok", "annotations": {"-x": "v"}}, "metadata.annotations"),
        (
            {"name": "ok", "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p"}]},
            "metadata.ownerReferences[0].uid",
        ),
    ],
    ids=[
        "name-not-dns",
        "job-name-over-63",
        "label-value-over-63",
        "label-key",
        "annotation-key",
        "owner-uid",
    ],
)
def test_invalid_metadata_is_422_with_causes(k8s: K8sEmulator, metadata: dict[str, Any], field: str) -> None:
    body = {**_job("x"), "metadata": metadata}
    with pytest.raises(ApiException) as exc:
        client.BatchV1Api(k8s.api_client()).create_namespaced_job(NS, body)
    assert exc.value.status == 422
    status = json.loads(exc.value.body)
    assert status["reason"] == "Invalid" and field in status["message"]
    assert [c["field"] for c in status["details"]["causes"]] == [field]


def test_field_selectors_are_limited_to_what_a_server_supports(k8s: K8sEmulator) -> None:
    core = client.CoreV1Api(k8s.api_client())
    k8s.create_pod(NS, "p", phase="Running")
    assert [
        p.metadata.name for p in core.list_namespaced_pod(NS, field_selector="status.phase=Running").items
    ] == ["p"]
    with pytest.raises(ApiException) as exc:
        client.BatchV1Api(k8s.api_client()).list_namespaced_job(NS, field_selector="status.succeeded=1")
    assert exc.value.status == 400 and "field label not supported" in str(exc.value.body)


@pytest.mark.slow
def test_a_stalled_watch_outlives_its_timeout_until_the_client_gives_up(k8s: K8sEmulator) -> None:
    k8s.stall_next(verb="watch", plural="jobs")
    batch = client.BatchV1Api(k8s.api_client())
    started = time.monotonic()
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        for _ in watch.Watch().stream(
            batch.list_namespaced_job, NS, timeout_seconds=1, _request_timeout=(2, 2.5)
        ):
            pass
    assert time.monotonic() - started >= 2.4  # not ended by the server at timeoutSeconds=1


def test_termination_messages_are_trimmed_as_the_kubelet_does(k8s: K8sEmulator) -> None:
    k8s.create_pod(NS, "p", containers=("a", "b", "c", "d"))
    text = "".join(f"line {i:05d}\n" for i in range(600))  # 6600 bytes
    k8s.set_container_state(NS, "p", "a", {"terminated": {"exitCode": 0, "message": text}})
    k8s.set_container_state(NS, "p", "b", {"waiting": {}}, last_state={"terminated": {"message": text}})
    statuses = {
        s["name"]: s for s in (k8s.get("", "v1", "pods", NS, "p") or {})["status"]["containerStatuses"]
    }
    kept = text.encode()[-4096:][: 12 * 1024 // 4].decode()
    assert statuses["a"]["state"]["terminated"]["message"] == kept
    assert statuses["b"]["lastState"]["terminated"]["message"] == kept
    assert not kept.endswith("line 00599\n")  # four containers: the final lines are lost


def _owned_pod(k8s: K8sEmulator, name: str, owner: dict[str, Any]) -> None:
    k8s.create_pod(NS, name, owner=owner)


@pytest.mark.parametrize("policy", ["Background", "Foreground"])
def test_deleting_an_owner_collects_its_dependents(k8s: K8sEmulator, policy: str) -> None:
    batch = client.BatchV1Api(k8s.api_client())
    batch.create_namespaced_job(NS, _job("owner"))
    _owned_pod(k8s, "owned", k8s.get("batch", "v1", "jobs", NS, "owner") or {})
    k8s.create_pod(NS, "free")
    batch.delete_namespaced_job("owner", NS, body=client.V1DeleteOptions(propagation_policy=policy))
    wait_for(
        lambda: k8s.get("batch", "v1", "jobs", NS, "owner") is None, seconds=5, what="the owner's deletion"
    )
    assert k8s.get("", "v1", "pods", NS, "owned") is None
    assert k8s.get("", "v1", "pods", NS, "free") is not None
    if policy == "Foreground":  # the owner was marked while its dependents went
        marks = [v for v in k8s.history("batch", "v1", "jobs", NS, "owner") if v is not None]
        assert "foregroundDeletion" in marks[-1]["metadata"].get("finalizers", [])


def test_a_job_deleted_without_a_policy_orphans_its_pods(k8s: K8sEmulator) -> None:
    batch = client.BatchV1Api(k8s.api_client())
    batch.create_namespaced_job(NS, _job("owner"))
    _owned_pod(k8s, "owned", k8s.get("batch", "v1", "jobs", NS, "owner") or {})
    batch.delete_namespaced_job("owner", NS)
    pod = k8s.get("", "v1", "pods", NS, "owned")
    assert pod is not None and "ownerReferences" not in pod["metadata"]


def test_an_object_whose_owner_does_not_exist_is_collected(k8s: K8sEmulator) -> None:
    ghost = {"apiVersion": "v1", "kind": "Pod", "name": "gone", "uid": "no-such-uid"}
    body = _job("orphan")
    body["metadata"]["ownerReferences"] = [ghost]
    client.BatchV1Api(k8s.api_client()).create_namespaced_job(NS, body)
    wait_for(
        lambda: k8s.get("batch", "v1", "jobs", NS, "orphan") is None,
        seconds=5,
        what="the orphan's collection",
    )


def _log(k8s: K8sEmulator, pod: str, **query: str) -> tuple[int, str]:
    """``pods/{pod}/log`` with a raw query (the generated client has no ``sinceTime``)."""
    response = urllib3.PoolManager().request(
        "GET", f"{k8s.base_url}/api/v1/namespaces/{NS}/pods/{pod}/log", fields=query
    )
    return response.status, response.data.decode()


_T0 = datetime.datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=datetime.UTC)


def test_pod_log_query_parameters_behave_like_the_kubelets(k8s: K8sEmulator) -> None:
    k8s.create_pod(NS, "p", containers=("main",))
    k8s.append_pod_log(NS, "p", "one\n", container="main", at=_T0)
    k8s.append_pod_log(NS, "p", "two\n", container="main", at=_T0 + datetime.timedelta(milliseconds=500))
    k8s.append_pod_log(NS, "p", "three\n", container="main", at=_T0 + datetime.timedelta(seconds=2))
    assert _log(k8s, "p", timestamps="true") == (
        200,
        "2026-03-01T12:00:00.250000000Z one\n2026-03-01T12:00:00.750000000Z two\n"
        "2026-03-01T12:00:02.250000000Z three\n",
    )
    # sinceTime reaches the kubelet in whole seconds: the whole second of "two" comes back.
    assert _log(k8s, "p", sinceTime="2026-03-01T12:00:00.700000000Z") == (200, "one\ntwo\nthree\n")
    assert _log(k8s, "p", sinceTime="2026-03-01T12:00:01Z") == (200, "three\n")
    assert _log(k8s, "p", sinceSeconds="1") == (200, "")  # all written long ago
    assert _log(k8s, "p", limitBytes="6") == (200, "one\ntw")  # cut mid-line
    assert _log(k8s, "p", tailLines="2", sinceTime="2026-03-01T12:00:02Z") == (200, "three\n")
    status, body = _log(k8s, "p", sinceSeconds="5", sinceTime="2026-03-01T12:00:00Z")
    assert status == 422 and "at most one of `sinceTime` or `sinceSeconds`" in body
    for bad in ({"limitBytes": "0"}, {"tailLines": "-1"}, {"sinceSeconds": "0"}):
        status, body = _log(k8s, "p", **bad)
        assert status == 422 and next(iter(bad)) in json.loads(body)["details"]["causes"][0]["field"]
    assert _log(k8s, "p", sinceTime="yesterday")[0] == 400


def test_pod_log_of_a_restarted_container_and_after_rotation(k8s: K8sEmulator) -> None:
    k8s.create_pod(NS, "p", containers=("main",))
    k8s.set_container_state(NS, "p", "main", {"running": {}})
    k8s.append_pod_log(NS, "p", "first life\n", container="main")
    status, body = _log(k8s, "p", previous="true")
    assert status == 400
    assert json.loads(body)["message"] == 'previous terminated container "main" in pod "p" not found'
    pod = k8s.restart_container(NS, "p", "main", running=False)
    entry = pod["status"]["containerStatuses"][0]
    assert (
        entry["restartCount"] == 1 and entry["lastState"]["terminated"]["containerID"] == entry["containerID"]
    )
    # Waiting in back-off: the last terminated instance's log, with or without previous=true.
    assert _log(k8s, "p") == _log(k8s, "p", previous="true") == (200, "first life\n")
    pod = k8s.restart_container(NS, "p", "main")
    assert pod["status"]["containerStatuses"][0]["containerID"].endswith("-2")
    k8s.append_pod_log(NS, "p", "third life\n", container="main")
    assert _log(k8s, "p") == (200, "third life\n")
    assert _log(k8s, "p", previous="true") == (200, "")  # the second life printed nothing
    k8s.rotate_pod_log(NS, "p", container="main")
    k8s.append_pod_log(NS, "p", "after rotation\n", container="main")
    assert _log(k8s, "p") == (200, "after rotation\n")
