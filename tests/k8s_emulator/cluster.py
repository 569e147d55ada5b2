"""What a running cluster does on its own, for tests that ask for one
(``K8sEmulator(cluster=Cluster(...))``; ``README.md`` beside this file says where upstream does
each): the Job controller makes a Job's pods and writes its status; the scheduler and the
kubelet take every pod from Pending through ContainerCreating to Running, run each container's
:class:`Program` and end the pod; pods are deleted gracefully (Terminating first); admission
webhooks inject Istio's sidecar and deny creates.

Without a cluster the test plays these parts itself through the harness, as before.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import datetime
import random
import string
from collections.abc import Mapping
from typing import Any

from tests.k8s_emulator.api import _PODS, Resource, _error, _now, _Obj

_JOBS = Resource("batch", "v1", "jobs")
_NODE = "emulated-node"
_ISTIO_INJECT = "sidecar.istio.io/inject"
_COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
_TERMINAL = ("Succeeded", "Failed")


@dataclasses.dataclass(frozen=True)
class Program:
    """What a container does once it runs: writes ``log``, then after ``seconds`` exits with
    ``exit_code``, its termination message file holding ``message``. ``exit_code=None``: it
    runs until its pod is deleted. ``pull``: the image cannot be pulled (the container waits
    with that reason, e.g. ``ErrImagePull``, and never runs)."""

    log: str = ""
    exit_code: int | None = 0
    message: str | None = None
    seconds: float = 0.0
    pull: str | None = None


SIDECAR = Program(exit_code=None)
"""Istio's proxy: it runs until its pod is deleted."""


@dataclasses.dataclass(frozen=True)
class Denial:
    """A validating admission webhook that refuses creates of ``plural`` (every kind if None),
    answering ``code`` with ``message`` (which may span lines, as Gatekeeper's do)."""

    webhook: str
    message: str
    plural: str | None = None
    code: int = 400


@dataclasses.dataclass(frozen=True)
class Cluster:
    """How the emulated cluster behaves; times are real seconds, scaled down from a real
    cluster's."""

    programs: Mapping[str, Program] = dataclasses.field(default_factory=dict)
    """What each container image does; an image not named here exits 0 at once."""
    step_seconds: float = 0.05
    """Each stage of a pod's start: scheduled, containers created, running."""
    grace_seconds: float = 0.3
    """How long a deleted pod stays Terminating (its ``terminationGracePeriodSeconds``)."""
    job_sync_seconds: float = 0.0
    """How long the Job controller takes to make a new Job's pods."""
    istio_namespaces: frozenset[str] = frozenset()
    """Namespaces labelled ``istio-injection=enabled``."""
    denials: tuple[Denial, ...] = ()


def _suffix() -> str:
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=5))


def _controller_uid(meta: Mapping[str, Any]) -> str | None:
    return next((r.get("uid") for r in meta.get("ownerReferences") or [] if r.get("controller")), None)


class ClusterMixin:
    """The Job controller, the scheduler, the kubelet's pod lifecycle and admission webhooks."""

    cluster: Cluster | None = None

    # ---- admission (inside create, before the object is stored) ---------------------------------

    def _admit(self, res: Resource, namespace: str | None, obj: _Obj) -> None:
        """Admission for a create: denials, then mutation (sidecar injection, a pod's initial
        status, a Job's selector and pod labels)."""
        cluster = self.cluster
        if cluster is None:
            return
        for denial in cluster.denials:
            if denial.plural in (None, res.plural):
                # ToStatusErr in apiserver/pkg/admission/plugin/webhook/errors/statuserror.go
                raise _error(
                    max(denial.code, 400),
                    f'admission webhook "{denial.webhook}" denied the request: {denial.message}',
                )
        if res == _PODS:
            self._admit_pod(cluster, namespace, obj)
        elif res == _JOBS:
            _admit_job(obj)

    @staticmethod
    def _admit_pod(cluster: Cluster, namespace: str | None, pod: _Obj) -> None:
        meta, spec = pod["metadata"], pod.setdefault("spec", {})
        # Istio's injectRequired (pkg/kube/inject/inject.go): the label wins over the annotation.
        choice = (meta.get("annotations") or {}).get(_ISTIO_INJECT, "")
        choice = (meta.get("labels") or {}).get(_ISTIO_INJECT, choice)
        wanted = choice == "true" or (choice != "false" and namespace in cluster.istio_namespaces)
        if wanted and not spec.get("hostNetwork") and namespace in cluster.istio_namespaces:
            containers = spec.setdefault("containers", [])
            if not any(c.get("name") == "istio-proxy" for c in containers):
                containers.append({"name": "istio-proxy", "image": "docker.io/istio/proxyv2"})
        if not pod.get("status"):  # pod strategy's PrepareForCreate
            pod["status"] = {"phase": "Pending", "qosClass": "BestEffort"}

    # ---- reactions to what was stored ----------------------------------------------------------

    def _react(self, res: Resource, event_type: str, obj: _Obj, old: _Obj | None) -> None:
        """Runs after every commit (soon, not inside it)."""
        if self.cluster is None:
            return
        meta = obj["metadata"]
        namespace, name, uid = meta.get("namespace"), meta["name"], str(meta.get("uid"))
        loop = asyncio.get_running_loop()
        if res == _JOBS and event_type == "ADDED":
            loop.call_later(self.cluster.job_sync_seconds, self._sync_job, namespace, name)
        if res != _PODS:
            return
        phase = (obj.get("status") or {}).get("phase")
        if event_type == "ADDED" and phase == "Pending" and not (obj.get("spec") or {}).get("nodeName"):
            loop.call_later(self.cluster.step_seconds, self._schedule, namespace, name, uid)
        job_uid = _controller_uid(meta)
        terminal = phase in _TERMINAL and ((old or {}).get("status") or {}).get("phase") not in _TERMINAL
        going = bool(meta.get("deletionTimestamp")) and not (old or {}).get("metadata", {}).get(
            "deletionTimestamp"
        )
        if job_uid and (event_type == "DELETED" or terminal or going):
            job = self._owner_job(namespace, job_uid)
            if job is not None:
                loop.call_soon(self._sync_job, namespace, job)

    def _owner_job(self, namespace: str | None, uid: str) -> str | None:
        for (res, key_ns, key_name), stored in self.objects.items():
            if (
                (res, key_ns) == (_JOBS, namespace)
                and not stored.deleted
                and stored.raw["metadata"].get("uid") == uid
            ):
                return key_name
        return None

    def _pod(self, namespace: str | None, name: str, uid: str) -> _Obj | None:
        pod = self._live((_PODS, namespace, name))
        return pod if pod is not None and pod["metadata"].get("uid") == uid else None

    def _change_pod(self, namespace: str | None, name: str, change: Any) -> None:
        self.update_object(_PODS, namespace, name, change, scope="all")

    # ---- the scheduler and the kubelet ---------------------------------------------------------

    def _schedule(self, namespace: str | None, name: str, uid: str) -> None:
        if self._pod(namespace, name, uid) is None or self.cluster is None:
            return

        def bind(pod: _Obj) -> _Obj:
            pod["spec"]["nodeName"] = _NODE
            pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "True"}]
            return pod

        self._change_pod(namespace, name, bind)
        asyncio.get_running_loop().call_later(
            self.cluster.step_seconds, self._create_containers, namespace, name, uid
        )

    def _create_containers(self, namespace: str | None, name: str, uid: str) -> None:
        if self._pod(namespace, name, uid) is None or self.cluster is None:
            return

        def creating(pod: _Obj) -> _Obj:
            pod["status"]["containerStatuses"] = [
                {
                    "name": c["name"],
                    "image": c.get("image") or "",
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": {"waiting": {"reason": "ContainerCreating"}},
                }
                for c in pod["spec"].get("containers") or []
            ]
            return pod

        self._change_pod(namespace, name, creating)
        asyncio.get_running_loop().call_later(
            self.cluster.step_seconds, self._start_containers, namespace, name, uid
        )

    def _program(self, pod: _Obj, container: str) -> Program:
        assert self.cluster is not None
        spec = next(c for c in pod["spec"].get("containers") or [] if c.get("name") == container)
        image = str(spec.get("image") or "")
        if image == "docker.io/istio/proxyv2":
            return SIDECAR
        return self.cluster.programs.get(image, Program())

    def _start_containers(self, namespace: str | None, name: str, uid: str) -> None:
        pod = self._pod(namespace, name, uid)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return
        started = _now()
        programs = {c["name"]: self._program(pod, c["name"]) for c in pod["spec"].get("containers") or []}

        def run(pod: _Obj) -> _Obj:
            for entry in pod["status"].get("containerStatuses") or []:
                program = programs[entry["name"]]
                if program.pull is not None:
                    image = entry.get("image")
                    entry["state"] = {
                        "waiting": {"reason": program.pull, "message": f'Back-off pulling image "{image}"'}
                    }
                else:
                    entry["state"] = {"running": {"startedAt": started}}
                    entry["containerID"] = f"containerd://{uid}-{entry['name']}"
                    entry["imageID"] = f"{entry['image']}@sha256:{uid.replace('-', '')}"
                    entry["ready"] = True
            if any("running" in e["state"] for e in pod["status"]["containerStatuses"]):
                pod["status"]["phase"] = "Running"
                pod["status"]["startTime"] = started
            return pod

        self._change_pod(namespace, name, run)
        loop = asyncio.get_running_loop()
        for container, program in programs.items():
            if program.pull is not None:
                continue
            if program.log:
                self.set_log(str(namespace), name, container, program.log, True)
            if program.exit_code is not None:
                loop.call_later(program.seconds, self._exit, namespace, name, uid, container, program)

    def _exit(self, namespace: str | None, name: str, uid: str, container: str, program: Program) -> None:
        if self._pod(namespace, name, uid) is None:
            return
        self._terminate(namespace, name, {container: (program.exit_code or 0, program.message)})

    def _terminate(
        self, namespace: str | None, name: str, ends: Mapping[str, tuple[int, str | None]]
    ) -> None:
        """Containers end (name -> exit code, termination message); once none runs, the pod
        ends (restartPolicy Never: Succeeded if every container exited 0)."""
        finished = _now()

        def end(pod: _Obj) -> _Obj:
            entries = pod["status"].get("containerStatuses") or []
            for entry in entries:
                if entry["name"] not in ends or "terminated" in entry["state"]:
                    continue
                code, message = ends[entry["name"]]
                terminated: _Obj = {
                    "exitCode": code,
                    "reason": "Completed" if code == 0 else "Error",
                    "startedAt": (entry["state"].get("running") or {}).get("startedAt", finished),
                    "finishedAt": finished,
                    "containerID": entry.get("containerID"),
                }
                if message is not None:
                    terminated["message"] = message
                entry["state"], entry["ready"] = {"terminated": terminated}, False
            if entries and all("terminated" in e["state"] for e in entries):
                codes = [e["state"]["terminated"]["exitCode"] for e in entries]
                pod["status"]["phase"] = "Succeeded" if not any(codes) else "Failed"
            return pod

        self._change_pod(namespace, name, end)

    # ---- graceful deletion ----------------------------------------------------------------------

    def _delete_gracefully(self, old: _Obj) -> _Obj | None:
        """A pod on a node that has not ended is marked (Terminating) and removed once its
        containers are stopped; None when it goes at once (not scheduled, or ended: the pod
        strategy's CheckGracefulDelete)."""
        if self.cluster is None:
            return None
        spec, status = old.get("spec") or {}, old.get("status") or {}
        if not spec.get("nodeName") or status.get("phase") in _TERMINAL:
            return None
        meta = old["metadata"]
        grace = int(spec.get("terminationGracePeriodSeconds", 30))
        marked = copy.deepcopy(old)
        at = datetime.datetime.now(tz=datetime.UTC) + datetime.timedelta(seconds=grace)
        marked["metadata"]["deletionTimestamp"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        marked["metadata"]["deletionGracePeriodSeconds"] = grace
        marked = self._commit(_PODS, "MODIFIED", marked, old)
        asyncio.get_running_loop().call_later(
            self.cluster.grace_seconds, self._kill, meta.get("namespace"), meta["name"], str(meta.get("uid"))
        )
        return marked

    def _kill(self, namespace: str | None, name: str, uid: str) -> None:
        """The end of the grace period: running containers stop (SIGTERM: exit 143), then the
        kubelet deletes the pod for good."""
        pod = self._pod(namespace, name, uid)
        if pod is None:
            return
        running = [e["name"] for e in pod["status"].get("containerStatuses") or [] if "running" in e["state"]]
        if running:
            self._terminate(namespace, name, {c: (143, None) for c in running})
        pod = self._pod(namespace, name, uid)
        if pod is not None and not pod["metadata"].get("finalizers"):
            deleted = self._commit(_PODS, "DELETED", pod, pod)
            self._collect_dependents(deleted, "Background")

    # ---- the Job controller ---------------------------------------------------------------------

    def _sync_job(self, namespace: str | None, name: str) -> None:
        """One sync of pkg/controller/job/job_controller.go: count the Job's pods, finish it
        or make the pods it lacks (a pod that fails or is being deleted is replaced until
        ``backoffLimit`` failures)."""
        job = self._live((_JOBS, namespace, name))
        if job is None or job["metadata"].get("deletionTimestamp") or self.cluster is None:
            return
        status = job.get("status") or {}
        if any(c.get("status") == "True" for c in status.get("conditions") or []):
            return
        uid = job["metadata"]["uid"]
        pods = [
            stored.raw
            for (res, key_ns, _), stored in self.objects.items()
            if res == _PODS
            and key_ns == namespace
            and not stored.deleted
            and _controller_uid(stored.raw["metadata"]) == uid
        ]
        spec = job.get("spec") or {}
        completions = int(spec.get("completions") or 1)
        parallelism = int(spec.get("parallelism") or 1)
        indexed = spec.get("completionMode") == "Indexed"
        phase = [(p.get("status") or {}).get("phase") for p in pods]
        succeeded, failed = phase.count("Succeeded"), phase.count("Failed")
        active = [
            p
            for p, ph in zip(pods, phase, strict=True)
            if ph not in _TERMINAL and not p["metadata"].get("deletionTimestamp")
        ]
        now = _now()
        new_status: _Obj = {"startTime": status.get("startTime", now), "active": len(active)}
        new_status.update({"succeeded": succeeded, "failed": failed})
        if succeeded >= completions:
            new_status["completionTime"] = now
            new_status["conditions"] = [
                {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now},
                {"type": "Complete", "status": "True", "lastTransitionTime": now},
            ]
        elif failed > int(spec.get("backoffLimit", 6)):
            message = "Job has reached the specified backoff limit"
            new_status["conditions"] = [
                {
                    "type": "FailureTarget",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": message,
                },
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": message},
            ]
            for pod in active:
                self.delete_object(_PODS, namespace, pod["metadata"]["name"])
        else:
            done = {_index(p) for p, ph in zip(pods, phase, strict=True) if ph == "Succeeded"}
            busy = {_index(p) for p in active}
            missing = min(parallelism, completions - succeeded) - len(active)
            free = [i for i in range(completions) if i not in done and i not in busy] if indexed else []
            for n in range(max(missing, 0)):
                self._make_pod(job, free[n] if indexed and n < len(free) else None)
            new_status["active"] = len(active) + max(missing, 0)

        def write(old: _Obj) -> _Obj:
            old["status"] = {**(old.get("status") or {}), **new_status}
            return old

        self.update_object(_JOBS, namespace, name, write, scope="status")

    def _make_pod(self, job: _Obj, index: int | None) -> None:
        meta = job["metadata"]
        template = copy.deepcopy((job.get("spec") or {}).get("template") or {})
        pod_meta = template.get("metadata") or {}
        labels = dict(pod_meta.get("labels") or {})
        annotations = dict(pod_meta.get("annotations") or {})
        prefix = meta["name"] if index is None else f"{meta['name']}-{index}"
        if index is not None:
            labels[_COMPLETION_INDEX] = annotations[_COMPLETION_INDEX] = str(index)
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{prefix}-{_suffix()}",
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": template.get("spec") or {},
        }
        self.create_object(_PODS, meta.get("namespace"), body, from_client=True)


def _admit_job(job: _Obj) -> None:
    """The Job strategy's generateSelector (pkg/registry/batch/job/strategy.go): the pod
    template gets ``controller-uid`` and ``job-name`` labels, both plain and
    ``batch.kubernetes.io/``-prefixed, and the Job a selector on the uid. The uid is assigned
    just before; it is set here from the object being created."""
    meta = job["metadata"]
    spec = job.setdefault("spec", {})
    template_meta = spec.setdefault("template", {}).setdefault("metadata", {})
    labels = template_meta.setdefault("labels", {})
    uid = meta["uid"]
    for prefix in ("", "batch.kubernetes.io/"):
        labels[f"{prefix}controller-uid"] = uid
        labels[f"{prefix}job-name"] = meta["name"]
    spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})


def _index(pod: Mapping[str, Any]) -> int | None:
    value = ((pod.get("metadata") or {}).get("labels") or {}).get(_COMPLETION_INDEX)
    return int(value) if value is not None and str(value).isdigit() else None
