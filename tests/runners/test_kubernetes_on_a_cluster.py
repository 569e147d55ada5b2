"""The Kubernetes runner on an emulated cluster that moves by itself: the Job controller makes
the pods, the kubelet takes them from Pending (no container statuses) through
ContainerCreating to Running and ends them, deleted pods stay Terminating for a while,
admission webhooks inject Istio's sidecar or deny, and CRDs prune what their schema does not
know. No test here plays a controller."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from dataclasses import replace

import pytest

from hpo_kfp.errors import RunnerError
from hpo_kfp.runners.kubernetes import KubernetesRunner, TrialOutput
from hpo_kfp.spec import Experiment, parse_experiment
from tests.conftest import base_spec
from tests.k8s_emulator import Cluster, Denial, K8sEmulator, Program
from tests.runners.test_kubernetes import (
    _JOB,
    _LOG,
    _NS,
    _TRIAL,
    _job_experiment,
    _leftover_in,
    _tfjob_experiment,
    _wait_until,
)
from tests.runners.test_kubernetes_cluster import _QUICK, _experiment

_IMAGE = "python:3.11"  # the base experiment's training image
_COMMAND = [
    "train",
    "--lr=${trialParameters.learningRate}",
    "--layers=${trialParameters.numberLayers}",
    "--optimizer=${trialParameters.optimizer}",
]


class _Fed:
    """An early-stopping watch that keeps what the runner fed it and never stops the trial."""

    reads_log = True

    def __init__(self) -> None:
        self.text = ""

    def feed(self, log_text: str = "", metrics_text: str = "") -> str | None:
        self.text += log_text
        return None


def _run(
    k8s: K8sEmulator, experiment: Experiment, watch: _Fed | None = None
) -> concurrent.futures.Future[TrialOutput]:
    runner = KubernetesRunner(k8s.api_client(), _QUICK, environ={})
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(runner.run_object, experiment, _TRIAL, namespace=_NS, watch=watch)
    pool.shutdown(wait=False)
    return future


@pytest.fixture
def istio_cluster() -> Iterator[K8sEmulator]:
    """Trials' namespace labelled for Istio's injection; a pod takes 0.9 s to start (the
    runner's first look finds it Pending with no container statuses), then training prints
    ``_LOG`` and ends a second later."""
    programs = {_IMAGE: Program(log=_LOG, seconds=1.0), "train:1": Program(log=_LOG, seconds=1.0)}
    cluster = Cluster(programs=programs, istio_namespaces=frozenset({_NS}), step_seconds=0.3)
    with K8sEmulator(cluster=cluster) as k8s:
        yield k8s


def test_a_job_trial_runs_through_every_pod_phase_to_its_end(istio_cluster: K8sEmulator) -> None:
    """The pod is listed first with no container statuses, then waiting in ContainerCreating,
    then running: the log is read whole, with nothing reported missing. In a namespace with
    Istio's injection the runner's annotation keeps the sidecar out, so the Job can complete."""
    fed = _Fed()
    output = _run(istio_cluster, _job_experiment(), fed).result(timeout=30)
    assert (output.run.exit_code, output.run.reason, output.run.warnings) == (0, "", ())
    assert output.log == _LOG
    assert _LOG.startswith(fed.text)
    # What the pod went through (the runner deleted the Job at the end: Terminating, then gone).
    (pod_name,) = {
        r.name for r in istio_cluster.requests(verb="get", plural="pods") if r.subresource == "log"
    }
    stages = [
        (
            p["status"].get("phase"),
            [next(iter(s["state"])) for s in p["status"].get("containerStatuses") or []],
        )
        for p in istio_cluster.history("", "v1", "pods", _NS, pod_name)
        if p is not None
    ]
    assert stages[:4] == [
        ("Pending", []),
        ("Pending", []),
        ("Pending", ["waiting"]),
        ("Running", ["running"]),
    ]
    assert ("Succeeded", ["terminated"]) in stages


def test_a_template_that_asks_for_the_sidecar_gets_it_and_never_completes(istio_cluster: K8sEmulator) -> None:
    """The emulated webhook honours the template's own choice (Istio's label wins over the
    annotation): the sidecar keeps the pod running, and the trial ends at its deadline."""
    document_template = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {
            "template": {
                "metadata": {
                    "labels": {"sidecar.istio.io/inject": "true"},
                    "annotations": {"sidecar.istio.io/inject": "false"},
                },
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "training-container", "image": _IMAGE, "command": _COMMAND}],
                },
            },
        },
    }
    experiment = _experiment(document_template, "training-container")
    runner = KubernetesRunner(istio_cluster.api_client(), replace(_QUICK, deadline_seconds=2), environ={})
    output = runner.run_object(experiment, _TRIAL, namespace=_NS)
    assert output.run.reason.startswith("DeadlineExceeded")
    assert output.log == _LOG  # the training container did finish
    (pod_name,) = {
        r.name for r in istio_cluster.requests(verb="get", plural="pods") if r.subresource == "log"
    }
    first = istio_cluster.history("", "v1", "pods", _NS, pod_name)[0]
    assert first is not None
    assert [c["name"] for c in first["spec"]["containers"]] == ["training-container", "istio-proxy"]


# ---- a previous attempt's pods -----------------------------------------------------------------


def test_a_recreated_trial_ignores_the_previous_attempts_terminating_pod() -> None:
    """A retried step recreates the trial's Job while the first Job's pod is still Terminating
    (the garbage collector deleted it with the step's pod; its grace period is 30 s), with the
    same labels and a log of its own. Until the new Job's pod exists, that old pod must not be
    taken for the trial's: its lines are not the trial's output."""
    old_log = "epoch=7 loss=99 accuracy=0.01 (the previous attempt)\n"
    programs = {_IMAGE: Program(log=_LOG, seconds=0.4), "old:1": Program(log=old_log, exit_code=None)}
    with K8sEmulator(cluster=Cluster(programs=programs, job_sync_seconds=2.5, grace_seconds=30)) as k8s:
        experiment = _job_experiment()
        first_attempt = base_spec()
        trial_spec = first_attempt["spec"]["trialTemplate"]["trialSpec"]
        trial_spec["spec"]["template"]["spec"]["containers"][0]["image"] = "old:1"
        _leftover_in(k8s, parse_experiment(first_attempt))
        old_pod = _wait_until_running(k8s)
        k8s.backdate("", "v1", "pods", _NS, old_pod, 60)  # made a minute ago
        k8s.delete(*_JOB, _NS, _TRIAL.name)  # Background: the Job goes, its pod terminates
        assert (k8s.get("", "v1", "pods", _NS, old_pod) or {}).get("metadata", {}).get("deletionTimestamp")

        fed = _Fed()
        output = _run(k8s, experiment, fed).result(timeout=30)
        assert output.run.exit_code == 0
        assert output.log == _LOG
        assert "previous attempt" not in fed.text
        assert old_pod not in {r.name for r in k8s.requests(verb="get", plural="pods")}


def _wait_until_running(k8s: K8sEmulator) -> str:
    def running() -> str | None:
        for pod in k8s.list("", "v1", "pods", _NS):
            if pod["status"].get("phase") == "Running":
                return str(pod["metadata"]["name"])
        return None

    _wait_until(lambda: running() is not None)
    name = running()
    assert name is not None
    return name


# ---- admission -----------------------------------------------------------------------------------


def test_a_webhooks_denial_over_several_lines_is_one_line_naming_each_policy() -> None:
    """Gatekeeper joins its violations with newlines; the step's error must stay one line."""
    denial = Denial(
        "validation.gatekeeper.sh",
        "[require-limits] container <training-container> has no resource limits\n"
        '[require-team] you must provide labels: {"team"}',
        plural="jobs",
        code=403,
    )
    with K8sEmulator(cluster=Cluster(denials=(denial,))) as k8s:
        with pytest.raises(RunnerError) as raised:
            _run(k8s, _job_experiment()).result(timeout=30)
        message = str(raised.value)
        assert "\n" not in message
        assert 'admission webhook "validation.gatekeeper.sh" denied the request' in message
        assert "no resource limits; [require-team] you must provide labels" in message
        assert k8s.list(*_JOB, _NS) == []


# ---- CRD pruning ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["TFJob", "RayJob"])
def test_what_the_runner_writes_into_a_custom_resource_survives_its_schema(
    k8s: K8sEmulator, kind: str
) -> None:
    """The emulated CRDs prune as the real ones do (pod template metadata knows labels,
    annotations, finalizers, name and namespace only): the identity labels, the Istio
    annotation and KubeRay's submitter template written by the runner are all kept."""
    experiment = _tfjob_experiment() if kind == "TFJob" else _rayjob_experiment()
    plural = {"TFJob": ("kubeflow.org", "v1", "tfjobs"), "RayJob": ("ray.io", "v1", "rayjobs")}[kind]
    future = _run(k8s, experiment)
    _wait_until(lambda: k8s.get(*plural, _NS, _TRIAL.name) is not None)
    (create,) = k8s.requests(verb="create", plural=plural[2])
    stored = k8s.get(*plural, _NS, _TRIAL.name)
    assert stored is not None
    assert stored["spec"] == create.body["spec"]
    assert "sidecar.istio.io/inject" in str(stored["spec"])
    k8s.delete(*plural, _NS, _TRIAL.name)
    assert future.result(timeout=30).run.reason.startswith("Deleted")


def _rayjob_experiment() -> Experiment:
    head = {"containers": [{"name": "ray-head", "image": "rayproject/ray:2.46.0"}]}
    worker = {"containers": [{"name": "ray-worker", "image": "rayproject/ray:2.46.0"}]}
    template = {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "spec": {
            "entrypoint": " ".join(_COMMAND),
            "rayClusterSpec": {
                "headGroupSpec": {"rayStartParams": {}, "template": {"spec": head}},
                "workerGroupSpecs": [{"groupName": "w", "replicas": 1, "template": {"spec": worker}}],
            },
        },
    }
    return _experiment(template, "ray-job-submitter")
