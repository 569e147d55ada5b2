"""The Kubernetes runner where a real cluster differs from the happy path: every way out
cleans up, trials are owned by the step's pod, pods that cannot start fail fast, silent
connections time out, and each kind's primary pod and container are found.

The emulator plays the kubelet (400 on the log of a waiting container, trimmed termination
messages), the garbage collector and the API server's validation.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hpo_kfp.claim import claim
from hpo_kfp.collectors.collect import collect_trial
from hpo_kfp.early_stopping import StopRule, trial_watch
from hpo_kfp.errors import RunnerError
from hpo_kfp.history import TrialRecord
from hpo_kfp.runners.kubernetes import KubernetesRunner, KubernetesSettings, TrialOutput
from hpo_kfp.spec import Experiment, parse_experiment
from tests.conftest import base_spec
from tests.k8s_emulator import K8sEmulator
from tests.runners.test_kubernetes import (
    _COMPLETE,
    _JOB,
    _LOG,
    _NS,
    _TRIAL,
    _created,
    _finish,
    _job_experiment,
    _leftover_in,
    _pod_for,
    _wait_until,
)

_QUICK = KubernetesSettings(
    watch_seconds=5,
    backoff_seconds=0.05,
    deadline_seconds=30,
    pod_check_seconds=0.2,
    request_timeout_seconds=5,
)
_ISTIO = "sidecar.istio.io/inject"


def _start(
    k8s: K8sEmulator,
    experiment: Experiment,
    settings: KubernetesSettings = _QUICK,
    *,
    environ: dict[str, str] | None = None,
    stop_rule: StopRule | None = None,
    trial: TrialRecord = _TRIAL,
) -> concurrent.futures.Future[TrialOutput]:
    runner = KubernetesRunner(k8s.api_client(), settings, environ=environ or {})
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(
        runner.run_object, experiment, trial, namespace=_NS, watch=trial_watch(experiment, stop_rule)
    )
    pool.shutdown(wait=False)
    return future


def _experiment(template: dict[str, Any], container: str, **fields: Any) -> Experiment:
    document = base_spec()
    trial_template = document["spec"]["trialTemplate"]
    trial_template.update(fields)
    trial_template["primaryContainerName"] = container
    trial_template["trialSpec"] = template
    return parse_experiment(document)


def _gone(k8s: K8sEmulator, address: tuple[str, str, str] = _JOB, name: str = _TRIAL.name) -> None:
    _wait_until(lambda: k8s.get(*address, _NS, name) is None)


# ---- cleanup on every way out ------------------------------------------------------------------


def test_a_403_on_the_watch_is_a_runner_error_and_the_job_is_deleted(k8s: K8sEmulator) -> None:
    k8s.fail_next(403, verb="watch", plural="jobs", message='jobs.batch is forbidden: cannot "watch"')
    future = _start(k8s, _job_experiment())
    with pytest.raises(RunnerError, match=r"HTTP 403.*cannot \"watch\""):
        future.result(timeout=20)
    assert k8s.get(*_JOB, _NS, _TRIAL.name) is None
    assert [d.name for d in k8s.requests(verb="delete", plural="jobs")] == [_TRIAL.name]


def test_an_api_error_reading_outputs_is_a_runner_error_and_the_job_is_deleted(k8s: K8sEmulator) -> None:
    k8s.fail_next(403, verb="list", plural="pods", times=None)
    future = _start(k8s, _job_experiment())
    _created(k8s, *_JOB)
    _finish(k8s, _JOB, _COMPLETE)
    with pytest.raises(RunnerError, match="HTTP 403"):
        future.result(timeout=20)
    assert k8s.get(*_JOB, _NS, _TRIAL.name) is None


def test_retain_never_keeps_a_running_object(k8s: K8sEmulator) -> None:
    experiment = _job_experiment()
    object.__setattr__(experiment.trial_template, "retain", True)
    settings = KubernetesSettings(watch_seconds=1, backoff_seconds=0.05, deadline_seconds=0.5)
    assert _start(k8s, experiment, settings).result(timeout=20).run.reason.startswith("DeadlineExceeded")
    assert k8s.get(*_JOB, _NS, _TRIAL.name) is None


# ---- ownership ---------------------------------------------------------------------------------


@pytest.mark.parametrize("with_uid", [True, False], ids=["uid-from-env", "uid-read-from-the-pod"])
def test_the_trial_is_owned_by_the_steps_pod_and_collected_with_it(k8s: K8sEmulator, with_uid: bool) -> None:
    step = k8s.create_pod(_NS, "hpo-step-pod")
    environ = {"KFP_POD_NAME": "hpo-step-pod", "POD_NAMESPACE": _NS}
    if with_uid:
        environ["KFP_POD_UID"] = step["metadata"]["uid"]
    future = _start(k8s, _job_experiment(), environ=environ)
    job = _created(k8s, *_JOB)
    assert job["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": "hpo-step-pod", "uid": step["metadata"]["uid"]}
    ]
    _pod_for(k8s, job, job["spec"]["template"]["metadata"]["labels"], "training-container", _LOG)
    k8s.wait_for_watch("jobs")
    k8s.delete("", "v1", "pods", _NS, "hpo-step-pod")  # the step's pod is evicted
    _gone(k8s)
    assert k8s.get("", "v1", "pods", _NS, f"{_TRIAL.name}-pod") is None  # and the trial's pods with it
    assert future.result(timeout=20).run.reason.startswith("Deleted")


@pytest.mark.parametrize(
    "environ",
    [{}, {"KFP_POD_NAME": "hpo-step-pod", "POD_NAMESPACE": "elsewhere", "KFP_POD_UID": "u"}],
    ids=["outside-a-pod", "pod-in-another-namespace"],
)
def test_no_owner_reference_without_a_pod_in_the_trials_namespace(
    k8s: K8sEmulator, environ: dict[str, str]
) -> None:
    future = _start(k8s, _job_experiment(), environ=environ)
    job = _created(k8s, *_JOB)
    assert "ownerReferences" not in job["metadata"]
    _finish(k8s, _JOB, _COMPLETE)
    future.result(timeout=20)


def test_sweep_deletes_the_experiments_leftovers_by_label(k8s: K8sEmulator) -> None:
    experiment = _job_experiment()
    for number in (1, 2, 3):
        _leftover_in(
            k8s,
            experiment,
            TrialRecord(name=f"demo-000{number}", number=number, parameters=dict(_TRIAL.parameters)),
        )
    k8s.create(*_JOB, _NS, {"metadata": {"name": "other", "labels": {"app": "x"}}, "spec": {}})
    runner = KubernetesRunner(k8s.api_client(), _QUICK)
    deleted = runner.sweep(
        api_version="batch/v1", kind="Job", namespace=_NS, experiment="demo", keep=["demo-0003"]
    )
    assert sorted(deleted) == ["demo-0001", "demo-0002"]
    assert sorted(j["metadata"]["name"] for j in k8s.list(*_JOB, _NS)) == ["demo-0003", "other"]


# ---- adoption ----------------------------------------------------------------------------------


def test_409_on_another_experiments_object_of_the_same_name_is_refused(k8s: K8sEmulator) -> None:
    document = base_spec()
    document["metadata"]["name"] = "other"
    other = parse_experiment(document)
    left = _leftover_in(k8s, other)
    left_labels = left["metadata"]["labels"]
    left_labels["hpo-kfp.kubeflow.org/trial"] = _TRIAL.name  # same trial name, another experiment
    k8s.patch(*_JOB, _NS, _TRIAL.name, {"metadata": {"labels": left_labels}})
    with pytest.raises(RunnerError, match="is not this trial's"):
        _start(k8s, _job_experiment()).result(timeout=20)
    assert k8s.get(*_JOB, _NS, _TRIAL.name) is not None  # not ours: left alone


def test_an_adopted_object_is_owned_by_the_new_step_pod_not_the_one_that_made_it(k8s: K8sEmulator) -> None:
    experiment = _job_experiment()
    old = k8s.create_pod(_NS, "first-attempt-pod")
    owner = {"apiVersion": "v1", "kind": "Pod", "name": "first-attempt-pod", "uid": old["metadata"]["uid"]}
    _leftover_in(k8s, experiment, ownerReferences=[owner])
    new = k8s.create_pod(_NS, "retry-pod")
    environ = {"KFP_POD_NAME": "retry-pod", "POD_NAMESPACE": _NS, "KFP_POD_UID": new["metadata"]["uid"]}
    future = _start(k8s, experiment, environ=environ)
    _wait_until(lambda: k8s.requests(verb="patch", plural="jobs"))
    job = k8s.get(*_JOB, _NS, _TRIAL.name)
    assert job["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": "retry-pod", "uid": new["metadata"]["uid"]}
    ]
    # Argo deletes the first attempt's pod: the adopted, running trial must live on.
    k8s.delete("", "v1", "pods", _NS, "first-attempt-pod")
    k8s.wait_for_watch("jobs")
    assert k8s.get(*_JOB, _NS, _TRIAL.name) is not None
    _finish(k8s, _JOB, _COMPLETE)
    assert future.result(timeout=20).run.succeeded


def test_an_adopted_objects_deadline_runs_from_its_creation_not_the_retry(k8s: K8sEmulator) -> None:
    experiment = _job_experiment()
    _leftover_in(k8s, experiment)
    k8s.backdate(*_JOB, _NS, _TRIAL.name, 3600)  # the first attempt created it an hour ago
    settings = KubernetesSettings(watch_seconds=5, backoff_seconds=0.05, deadline_seconds=600)
    output = _start(k8s, experiment, settings).result(timeout=20)
    assert output.run.reason == "DeadlineExceeded: still running after 600 s"
    assert k8s.get(*_JOB, _NS, _TRIAL.name) is None


def test_409_on_the_trials_object_being_deleted_waits_and_creates_anew(k8s: K8sEmulator) -> None:
    experiment = _job_experiment()
    left = _leftover_in(k8s, experiment, finalizers=["test/hold"])
    k8s.delete(*_JOB, _NS, _TRIAL.name)  # marked: deletionTimestamp, held by the finalizer
    future = _start(k8s, experiment)
    _wait_until(lambda: len(k8s.requests(verb="create", plural="jobs")) == 1)
    # The runner looks at the object being deleted again and again; it must not create meanwhile.
    _wait_until(lambda: len(k8s.requests(verb="get", plural="jobs")) >= 3)
    assert len(k8s.requests(verb="create", plural="jobs")) == 1
    k8s.patch(*_JOB, _NS, _TRIAL.name, {"metadata": {"finalizers": None}})
    _wait_until(lambda: len(k8s.requests(verb="create", plural="jobs")) == 2)
    job = _created(k8s, *_JOB)
    assert job["metadata"]["uid"] != left["metadata"]["uid"]
    _finish(k8s, _JOB, _COMPLETE)
    assert future.result(timeout=20).run.succeeded
    assert [r.status for r in k8s.requests(verb="create", plural="jobs")] == [409, 201]


# ---- fail fast ---------------------------------------------------------------------------------


_START_GRACE = KubernetesSettings(
    watch_seconds=5, backoff_seconds=0.05, deadline_seconds=30, pod_check_seconds=0.1, start_grace_seconds=0.5
)


@pytest.mark.parametrize(
    "reason", ["ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError", "InvalidImageName"]
)
def test_a_container_that_cannot_start_fails_the_trial_with_the_kubelets_reason(
    k8s: K8sEmulator, reason: str
) -> None:
    # An invalid name fails at once (a grace it could not outlast here); the others may pass,
    # and fail once they lasted the grace.
    fatal = reason == "InvalidImageName"
    future = _start(
        k8s, _job_experiment(), replace(_START_GRACE, start_grace_seconds=600) if fatal else _START_GRACE
    )
    job = _created(k8s, *_JOB)
    pod = f"{_TRIAL.name}-pod"
    k8s.create_pod(
        _NS,
        pod,
        labels=job["spec"]["template"]["metadata"]["labels"],
        containers=("training-container",),
        phase="Pending",
    )
    k8s.set_container_state(
        _NS, pod, "training-container", {"waiting": {"reason": reason, "message": "Back-off pulling image"}}
    )
    started = time.monotonic()
    output = future.result(timeout=20)
    assert fatal or time.monotonic() - started >= 0.45
    assert output.run.reason == f"{reason}: pod {pod}, container training-container: Back-off pulling image"
    assert output.log == ""  # the kubelet's 400 for a waiting container is "no output yet"
    assert k8s.get(*_JOB, _NS, _TRIAL.name) is None


def test_an_image_pull_that_recovers_within_the_grace_is_no_failure(k8s: K8sEmulator) -> None:
    settings = KubernetesSettings(
        watch_seconds=5,
        backoff_seconds=0.05,
        deadline_seconds=30,
        pod_check_seconds=0.05,
        start_grace_seconds=8,
    )
    future = _start(k8s, _job_experiment(), settings)
    job = _created(k8s, *_JOB)
    pod = f"{_TRIAL.name}-pod"
    labels = job["spec"]["template"]["metadata"]["labels"]
    k8s.create_pod(_NS, pod, labels=labels, containers=("training-container",), phase="Pending")
    k8s.set_container_state(_NS, pod, "training-container", {"waiting": {"reason": "ErrImagePull"}})
    _wait_until(lambda: len(k8s.requests(verb="list", plural="pods")) >= 2)  # seen stuck, more than once
    k8s.set_container_state(_NS, pod, "training-container", {"running": {}})
    k8s.set_pod_log(_NS, pod, _LOG, container="training-container")
    _finish(k8s, _JOB, _COMPLETE)
    output = future.result(timeout=20)
    assert output.run.succeeded and output.log == _LOG


def test_a_pod_unschedulable_beyond_the_grace_period_fails_the_trial(k8s: K8sEmulator) -> None:
    settings = KubernetesSettings(
        watch_seconds=5,
        backoff_seconds=0.05,
        deadline_seconds=30,
        pod_check_seconds=0.1,
        unschedulable_seconds=0.5,
    )
    future = _start(k8s, _job_experiment(), settings)
    job = _created(k8s, *_JOB)
    pod = f"{_TRIAL.name}-pod"
    k8s.create_pod(_NS, pod, labels=job["spec"]["template"]["metadata"]["labels"], phase="Pending")
    condition = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
    }
    k8s.set_status("", "v1", "pods", _NS, pod, {"conditions": [condition]})
    started = time.monotonic()
    output = future.result(timeout=20)
    assert time.monotonic() - started >= 0.4
    assert (
        output.run.reason
        == f"Unschedulable: pod {pod}: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    )
    assert k8s.get(*_JOB, _NS, _TRIAL.name) is None


def test_the_deadline_comes_from_the_objects_active_deadline_seconds(k8s: K8sEmulator) -> None:
    document = base_spec()
    document["spec"]["trialTemplate"]["trialSpec"]["spec"]["activeDeadlineSeconds"] = 1
    settings = KubernetesSettings(watch_seconds=1, backoff_seconds=0.05, deadline_grace_seconds=0.5)
    output = _start(k8s, parse_experiment(document), settings).result(timeout=20)
    assert output.run.reason.startswith("DeadlineExceeded: still running after 1.5 s")


def test_a_silent_watch_cannot_hold_the_trial_past_its_deadline(k8s: K8sEmulator) -> None:
    k8s.stall_next(verb="watch", plural="jobs", times=None)
    settings = KubernetesSettings(
        watch_seconds=1, backoff_seconds=0.05, deadline_seconds=1, request_timeout_seconds=1
    )
    output = _start(k8s, _job_experiment(), settings).result(timeout=15)
    assert output.run.reason.startswith("DeadlineExceeded")
    assert k8s.get(*_JOB, _NS, _TRIAL.name) is None


def test_a_request_that_never_answers_is_retried(k8s: K8sEmulator) -> None:
    k8s.stall_next(verb="create", plural="jobs")
    future = _start(
        k8s, _job_experiment(), KubernetesSettings(backoff_seconds=0.05, request_timeout_seconds=1)
    )
    job = _created(k8s, *_JOB)
    _pod_for(k8s, job, job["spec"]["template"]["metadata"]["labels"], "training-container", _LOG)
    _finish(k8s, _JOB, _COMPLETE)
    assert future.result(timeout=20).run.succeeded
    assert [r.status for r in k8s.requests(verb="create", plural="jobs")][-1] in (201, 409)


@pytest.mark.slow
def test_a_server_that_keeps_answering_410_is_asked_with_backoff(k8s: K8sEmulator) -> None:
    k8s.expire_next_watch("jobs", in_stream=True, times=10_000)
    settings = KubernetesSettings(watch_seconds=1, backoff_seconds=0.1, deadline_seconds=2)
    output = _start(k8s, _job_experiment(), settings).result(timeout=20)
    assert output.run.reason.startswith("DeadlineExceeded")
    assert len(k8s.requests(verb="watch", plural="jobs")) <= 8  # 0.1, 0.2, 0.4, 0.8 s ... not hundreds


@pytest.mark.slow
def test_early_stopping_waits_through_the_image_pull(k8s: K8sEmulator) -> None:
    rule = StopRule(metric="loss", median=0.5, direction="minimize", start_step=2, trials=3)
    settings = KubernetesSettings(watch_seconds=5, check_seconds=0.1, backoff_seconds=0.05)
    future = _start(k8s, _job_experiment(), settings, stop_rule=rule)
    job = _created(k8s, *_JOB)
    pod = f"{_TRIAL.name}-pod"
    k8s.create_pod(
        _NS,
        pod,
        labels=job["spec"]["template"]["metadata"]["labels"],
        containers=("training-container",),
        phase="Pending",
    )
    k8s.set_pod_log(_NS, pod, "epoch=1 loss=0.9\n", container="training-container")
    k8s.set_container_state(_NS, pod, "training-container", {"waiting": {"reason": "ContainerCreating"}})
    # The runner looks at the pod again and again, and asks no log of a container that waits.
    _wait_until(lambda: len(k8s.requests(verb="list", plural="pods")) >= 6)
    assert not future.done()
    assert not k8s.requests(path=f"/api/v1/namespaces/{_NS}/pods/{pod}/log")
    k8s.set_container_state(_NS, pod, "training-container", {"running": {}})
    k8s.append_pod_log(_NS, pod, "epoch=2 loss=0.8\n", container="training-container")
    output = future.result(timeout=20)
    assert output.run.early_stopped and output.log == "epoch=1 loss=0.9\nepoch=2 loss=0.8\n"


# ---- metrics from the termination message --------------------------------------------------------


def test_metrics_from_the_last_terminated_instance_and_a_warning_when_trimmed(k8s: K8sEmulator) -> None:
    document = base_spec()
    document["spec"]["metricsCollectorSpec"] = {"collector": {"kind": "Push"}}
    experiment = parse_experiment(document)
    future = _start(k8s, experiment)
    job = _created(k8s, *_JOB)
    pod = f"{_TRIAL.name}-pod"
    k8s.create_pod(
        _NS, pod, labels=job["spec"]["template"]["metadata"]["labels"], containers=("training-container",)
    )
    text = "".join(json.dumps({"loss": 1 / (i + 1), "step": i}) + "\n" for i in range(300))
    k8s.set_container_state(
        _NS,
        pod,
        "training-container",
        {"waiting": {"reason": "CrashLoopBackOff"}},
        last_state={"terminated": {"exitCode": 1, "message": text}},
    )
    _finish(k8s, _JOB, _COMPLETE)
    output = future.result(timeout=20)
    # Its first line was cut by the kubelet's 4096-byte tail: left out, and said so.
    assert output.metrics and text.endswith(output.metrics)
    assert all(json.loads(line) for line in output.metrics.splitlines())
    (warning,) = output.run.warnings
    assert "4096 bytes" in warning and "the first line" in warning


# ---- server messages and kinds -------------------------------------------------------------------


def test_a_422_names_the_field_the_server_refused(k8s: K8sEmulator) -> None:
    trial = TrialRecord(name="demo-" + "x" * 60, number=1, parameters=dict(_TRIAL.parameters))
    future = _start(k8s, _job_experiment(), trial=trial)
    with pytest.raises(RunnerError, match=r"HTTP 422.*metadata\.name.*must be no more than 63 characters"):
        future.result(timeout=20)


def test_a_cluster_scoped_kind_is_refused_before_anything_is_created(k8s: K8sEmulator) -> None:
    template = {
        "apiVersion": "kueue.x-k8s.io/v1beta1",
        "kind": "ClusterQueue",
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "i",
                    "command": [
                        "${trialParameters.learningRate}",
                        "${trialParameters.numberLayers}",
                        "${trialParameters.optimizer}",
                    ],
                }
            ]
        },
    }
    experiment = _experiment(template, "c", successCondition="status.done", failureCondition="status.failed")
    with pytest.raises(RunnerError, match="must be namespaced objects, but ClusterQueue"):
        _start(k8s, experiment).result(timeout=20)
    assert k8s.requests(verb="create") == []


# ---- the primary pod and container of each kind ---------------------------------------------------

_ARGS = [
    "--lr=${trialParameters.learningRate}",
    "--layers=${trialParameters.numberLayers}",
    "--opt=${trialParameters.optimizer}",
]
_SUCCEEDED = {"conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded"}]}


def _pod(
    k8s: K8sEmulator, name: str, labels: dict[str, str], container: str, log: str, **metadata: Any
) -> None:
    k8s.create_pod(_NS, name, labels=labels, containers=(container,), phase="Succeeded", **metadata)
    k8s.set_pod_log(_NS, name, log, container=container)


def test_trainjob_pods_are_found_by_the_jobsets_labels_and_index_0(k8s: K8sEmulator) -> None:
    template = {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "spec": {
            "runtimeRef": {"name": "torch-distributed"},
            "trainer": {"numNodes": 2, "image": "train:1", "command": ["python", "train.py", *_ARGS]},
        },
    }
    address = ("trainer.kubeflow.org", "v1alpha1", "trainjobs")
    future = _start(k8s, _experiment(template, "node"))
    trainjob = _created(k8s, *address)
    assert {"name": "HPO_KFP_TRIAL_NAME", "value": _TRIAL.name} in trainjob["spec"]["trainer"]["env"]
    for index, log in ((1, "loss=99\n"), (0, _LOG)):  # rank 1 first: it is the newest pod
        labels = {
            "jobset.sigs.k8s.io/jobset-name": _TRIAL.name,
            "jobset.sigs.k8s.io/replicatedjob-name": "node",
            "jobset.sigs.k8s.io/job-index": "0",
            "batch.kubernetes.io/job-completion-index": str(index),
        }
        _pod(k8s, f"{_TRIAL.name}-node-0-{index}", labels, "node", log)
    _finish(k8s, address, _COMPLETE)
    output = future.result(timeout=20)
    assert output.run.succeeded and output.log == _LOG


@pytest.mark.parametrize("runtime", ["deepspeed-distributed", "mlx-distributed"])
def test_a_trainjob_of_an_mpi_runtime_is_read_from_its_launcher_not_the_sshd_nodes(
    k8s: K8sEmulator, runtime: str
) -> None:
    template = {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "spec": {
            "runtimeRef": {"name": runtime},
            "trainer": {
                "numNodes": 2,
                "image": "train:1",
                "command": ["mpirun", "python", "train.py", *_ARGS],
            },
        },
    }
    address = ("trainer.kubeflow.org", "v1alpha1", "trainjobs")
    future = _start(k8s, _experiment(template, "node"))
    _created(k8s, *address)

    def labels(job: str) -> dict[str, str]:
        return {
            "jobset.sigs.k8s.io/jobset-name": _TRIAL.name,
            "jobset.sigs.k8s.io/replicatedjob-name": job,
            "jobset.sigs.k8s.io/job-index": "0",
            "batch.kubernetes.io/job-completion-index": "0",
        }

    # The nodes run sshd (ready first: the launcher depends on them), then the launcher runs mpirun.
    _pod(k8s, f"{_TRIAL.name}-node-0-0", labels("node"), "node", "Server listening on 0.0.0.0 port 2222.\n")
    _pod(k8s, f"{_TRIAL.name}-launcher-0-0", labels("launcher"), "node", _LOG)
    _finish(k8s, address, _COMPLETE)
    output = future.result(timeout=20)
    assert output.run.succeeded and output.log == _LOG


def test_mpijob_v2beta1_metrics_come_from_the_launcher(k8s: K8sEmulator) -> None:
    def replica(name: str, replicas: int) -> dict[str, Any]:
        container = {"name": name, "image": "mpi:1", "command": ["mpirun", "python", "train.py", *_ARGS]}
        return {"replicas": replicas, "template": {"spec": {"containers": [container]}}}

    template = {
        "apiVersion": "kubeflow.org/v2beta1",
        "kind": "MPIJob",
        "spec": {"mpiReplicaSpecs": {"Launcher": replica("mpi", 1), "Worker": replica("mpi", 2)}},
    }
    address = ("kubeflow.org", "v2beta1", "mpijobs")
    future = _start(k8s, _experiment(template, "mpi"))
    mpijob = _created(k8s, *address)
    launcher = mpijob["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]
    assert {"name": "HPO_KFP_TRIAL_NAME", "value": _TRIAL.name} in launcher["spec"]["containers"][0]["env"]
    labels = launcher["metadata"]["labels"]
    _pod(k8s, f"{_TRIAL.name}-worker-0", {**labels, "training.kubeflow.org/job-role": "worker"}, "mpi", "x\n")
    _pod(
        k8s, f"{_TRIAL.name}-launcher", {**labels, "training.kubeflow.org/job-role": "launcher"}, "mpi", _LOG
    )
    _finish(k8s, address, _SUCCEEDED)
    output = future.result(timeout=20)
    assert output.run.succeeded and output.log == _LOG


def test_argo_script_template_runs_in_the_main_container(k8s: K8sEmulator) -> None:
    template = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "spec": {
            "entrypoint": "train",
            "templates": [
                {
                    "name": "train",
                    "script": {"image": "python:3.12", "command": ["python", *_ARGS], "source": "print(1)"},
                }
            ],
        },
    }
    experiment = _experiment(
        template,
        "main",
        successCondition='status.[@this].#(phase=="Succeeded")#',
        failureCondition='status.[@this].#(phase=="Failed")#',
    )
    address = ("argoproj.io", "v1alpha1", "workflows")
    future = _start(k8s, experiment)
    workflow = _created(k8s, *address)
    script = workflow["spec"]["templates"][0]["script"]
    assert {"name": "HPO_KFP_TRIAL_NAME", "value": _TRIAL.name} in script["env"]
    assert workflow["spec"]["podMetadata"]["annotations"] == {_ISTIO: "false"}
    _pod(k8s, f"{_TRIAL.name}-train", workflow["spec"]["podMetadata"]["labels"], "main", _LOG)
    k8s.wait_for_watch("workflows")
    k8s.set_status(*address, _NS, _TRIAL.name, {"phase": "Succeeded"})
    output = future.result(timeout=20)
    assert output.run.succeeded and output.log == _LOG


@pytest.mark.parametrize("container", ["train", "step-train"])
def test_tekton_step_is_read_from_its_own_tasks_pod(k8s: K8sEmulator, container: str) -> None:
    template = {
        "apiVersion": "tekton.dev/v1",
        "kind": "PipelineRun",
        "spec": {
            "pipelineSpec": {
                "tasks": [
                    {
                        "name": "fetch",
                        "taskSpec": {"steps": [{"name": "fetch", "image": "busybox", "script": "true"}]},
                    },
                    {
                        "name": "train",
                        "runAfter": ["fetch"],
                        "taskSpec": {
                            "steps": [{"name": "train", "image": "train:1", "command": ["python", *_ARGS]}]
                        },
                    },
                ]
            }
        },
    }
    experiment = _experiment(
        template,
        container,
        successCondition='status.conditions.#(type=="Succeeded")#|#(status=="True")#',
        failureCondition='status.conditions.#(type=="Succeeded")#|#(status=="False")#',
    )
    address = ("tekton.dev", "v1", "pipelineruns")
    future = _start(k8s, experiment)
    run = _created(k8s, *address)
    assert run["metadata"]["annotations"][_ISTIO] == "false"  # Tekton copies them to its pods
    labels = run["metadata"]["labels"]
    _pod(k8s, f"{_TRIAL.name}-train-pod", labels, "step-train", _LOG)
    _pod(k8s, f"{_TRIAL.name}-fetch-pod", labels, "step-fetch", "fetched\n")  # the newest pod
    _finish(k8s, address, _SUCCEEDED)
    output = future.result(timeout=20)
    assert output.run.succeeded and output.log == _LOG


def test_a_taskrun_of_an_unnamed_step_is_read_and_kept_out_of_istio(k8s: K8sEmulator) -> None:
    template = {
        "apiVersion": "tekton.dev/v1",
        "kind": "TaskRun",
        "spec": {"taskSpec": {"steps": [{"image": "train:1", "command": ["python", *_ARGS]}]}},
    }
    experiment = _experiment(
        template,
        "step-unnamed-0",
        successCondition='status.conditions.#(type=="Succeeded")#|#(status=="True")#',
        failureCondition='status.conditions.#(type=="Succeeded")#|#(status=="False")#',
    )
    address = ("tekton.dev", "v1", "taskruns")
    future = _start(k8s, experiment)
    run = _created(k8s, *address)
    assert run["metadata"]["annotations"][_ISTIO] == "false"  # Tekton copies them to the TaskRun's pod
    _pod(k8s, f"{_TRIAL.name}-pod", run["metadata"]["labels"], "step-unnamed-0", _LOG)
    _finish(k8s, address, _SUCCEEDED)
    output = future.result(timeout=20)
    assert output.run.succeeded and output.log == _LOG


def test_an_indexed_job_reads_completion_index_0_not_the_newest_pod(k8s: K8sEmulator) -> None:
    future = _start(k8s, _job_experiment())
    job = _created(k8s, *_JOB)
    labels = job["spec"]["template"]["metadata"]["labels"]
    _pod(
        k8s,
        "demo-0001-0-abcde",
        {**labels, "batch.kubernetes.io/job-completion-index": "0"},
        "training-container",
        _LOG,
    )
    _pod(
        k8s,
        "demo-0001-1-fghij",
        {**labels, "batch.kubernetes.io/job-completion-index": "1"},
        "training-container",
        "x\n",
    )
    _finish(k8s, _JOB, _COMPLETE)
    assert future.result(timeout=20).log == _LOG


# ---- Istio ----------------------------------------------------------------------------------------


def test_istio_sidecars_are_off_unless_the_template_says_otherwise(k8s: K8sEmulator) -> None:
    future = _start(k8s, _job_experiment())
    job = _created(k8s, *_JOB)
    assert job["spec"]["template"]["metadata"]["annotations"] == {_ISTIO: "false"}
    _finish(k8s, _JOB, _COMPLETE)
    future.result(timeout=20)
    _gone(k8s)

    document = base_spec()
    document["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["metadata"] = {
        "annotations": {_ISTIO: "true"}
    }
    future = _start(k8s, parse_experiment(document))
    job = _created(k8s, *_JOB)
    assert job["spec"]["template"]["metadata"]["annotations"] == {_ISTIO: "true"}
    _finish(k8s, _JOB, _COMPLETE)
    future.result(timeout=20)


def test_file_metrics_are_refused_for_a_trainjob(k8s: K8sEmulator) -> None:
    template = {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "spec": {"trainer": {"image": "train:1", "command": ["python", *_ARGS]}},
    }
    document = base_spec()
    document["spec"]["metricsCollectorSpec"] = {"collector": {"kind": "Push"}}
    document["spec"]["trialTemplate"].update(primaryContainerName="node", trialSpec=template)
    with pytest.raises(RunnerError, match="Push collector needs the primary container's termination message"):
        _start(k8s, parse_experiment(document)).result(timeout=20)
    assert k8s.requests(verb="create") == []


def test_the_sweep_command_keeps_what_the_store_says_still_runs(
    k8s: K8sEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`hpo-kfp sweep FILE`: through a kube config, as a user runs it."""
    import yaml

    from hpo_kfp.cli import main
    from hpo_kfp.store import ExperimentKey, open_store

    experiment = _job_experiment()
    for number in (1, 2):
        _leftover_in(
            k8s,
            experiment,
            TrialRecord(name=f"demo-000{number}", number=number, parameters=dict(_TRIAL.parameters)),
        )
    spec = tmp_path / "experiment.yaml"
    spec.write_text(yaml.safe_dump(dict(experiment.source or {})))
    store = f"sqlite:///{tmp_path / 'store.sqlite'}"
    opened = open_store(store)
    key = ExperimentKey.of(experiment, _NS)
    opened.open_experiment(experiment, key)
    claimed, _ = claim(opened, experiment, key, 3, owner="a-live-run")  # demo-0000..0002 are running
    opened.record(key, replace(claimed[1], status="Failed"))  # demo-0001 ended; its object was left
    kubeconfig = k8s.write_kubeconfig(tmp_path / "kubeconfig", namespace=_NS)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert main(["sweep", str(spec), "--store", store, "--namespace", _NS]) == 0
    assert (
        capsys.readouterr().out.splitlines()[0]
        == f"demo: deleted 1 trial objects in {_NS}; kept 2 of trials still running"
    )
    assert [j["metadata"]["name"] for j in k8s.list(*_JOB, _NS)] == ["demo-0002"]
    assert main(["sweep", str(spec), "--store", store, "--all", "--namespace", _NS]) == 0
    assert k8s.list(*_JOB, _NS) == []


def test_trainjob_status_metrics_are_the_trials_metrics(k8s: K8sEmulator) -> None:
    """TrainJobStatus: what Kubeflow Trainer publishes in status.trainerStatus (KEP-2779)."""
    from hpo_kfp.collectors.collect import collect_trial

    template = {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "spec": {
            "runtimeRef": {"name": "torch-distributed"},
            "trainer": {"numNodes": 1, "image": "train:1", "command": ["python", "train.py", *_ARGS]},
        },
    }
    document = base_spec()
    document["spec"]["trialTemplate"]["primaryContainerName"] = "node"
    document["spec"]["trialTemplate"]["trialSpec"] = template
    document["spec"]["metricsCollectorSpec"] = {"collector": {"kind": "TrainJobStatus"}}
    experiment = parse_experiment(document)
    address = ("trainer.kubeflow.org", "v1alpha1", "trainjobs")
    future = _start(k8s, experiment)
    _created(k8s, *address)
    k8s.wait_for_watch(address[2])

    def report(loss: str, accuracy: str, at: str) -> dict[str, Any]:
        metrics = [{"name": "loss", "value": loss}, {"name": "accuracy", "value": accuracy}]
        return {"trainerStatus": {"progressPercentage": 50, "metrics": metrics, "lastUpdatedTime": at}}

    k8s.set_status(*address, _NS, _TRIAL.name, report("0.9", "0.5", "2026-12-01T10:00:00Z"))
    k8s.set_status(*address, _NS, _TRIAL.name, report("0.4", "0.7", "2026-12-01T10:01:00Z"))
    k8s.set_status(*address, _NS, _TRIAL.name, {**_COMPLETE, **report("0.35", "0.8", "2026-12-01T10:02:00Z")})
    output = future.result(timeout=20)
    assert output.run.succeeded
    record = collect_trial(experiment, _TRIAL, output.run, output.log, output.metrics)
    # Katib's default strategy for a minimized objective is min, for every metric.
    assert record.status == "Succeeded" and record.metrics == {"loss": 0.35, "accuracy": 0.5}
    # Each report the runner saw is a point of the series (reports between two reads of the
    # object coalesce), stamped with Trainer's time; the last one is always there.
    assert record.series["loss"][-1] == ("2026-12-01T10:02:00+00:00", 0.35)


# ---- the log, read while the trial runs ----------------------------------------------------------


@pytest.mark.slow
def test_stdout_metrics_survive_log_rotation_a_restart_and_pod_cleanup(k8s: K8sEmulator) -> None:
    settings = KubernetesSettings(
        watch_seconds=5, check_seconds=0.05, backoff_seconds=0.05, pod_check_seconds=0.2, deadline_seconds=30
    )
    experiment = _job_experiment()
    future = _start(k8s, experiment, settings)
    job = _created(k8s, *_JOB)
    pod, container = f"{_TRIAL.name}-pod", "training-container"
    k8s.create_pod(
        _NS, pod, labels=job["spec"]["template"]["metadata"]["labels"], containers=(container,), owner=job
    )
    k8s.set_container_state(_NS, pod, container, {"running": {}})
    path = f"/api/v1/namespaces/{_NS}/pods/{pod}/log"

    def read_after(text: str) -> None:
        k8s.append_pod_log(_NS, pod, text, container=container)
        asked = len(k8s.requests(path=path))
        _wait_until(lambda: len(k8s.requests(path=path)) >= asked + 2)  # one read began after it

    read_after("epoch=1 loss=0.9 accuracy=0.5\n")
    k8s.rotate_pod_log(_NS, pod, container=container)  # the kubelet no longer serves epoch 1
    k8s.append_pod_log(_NS, pod, "epoch=2 loss=0.4 accuracy=0.7\n", container=container)
    k8s.restart_container(_NS, pod, container)  # epoch 2 now only in the previous instance's log
    read_after("epoch=3 loss=0.3 accuracy=0.8\n")
    k8s.delete("", "v1", "pods", _NS, pod)  # ttlSecondsAfterFinished: 0, cleanPodPolicy: All
    _finish(k8s, _JOB, _COMPLETE)
    output = future.result(timeout=20)
    assert output.log == _LOG
    record = collect_trial(experiment, _TRIAL, output.run, output.log, output.metrics)
    assert record.status == "Succeeded" and [v for _, v in record.series["loss"]] == [0.9, 0.4, 0.3]


# ---- default conditions beyond Katib's: JobSet and RayJob --------------------------------------


def _jobset_template() -> dict[str, Any]:
    def replicated(name: str, container: str) -> dict[str, Any]:
        pod = {"spec": {"containers": [{"name": container, "image": "t:1", "command": ["python", *_ARGS]}]}}
        return {"name": name, "replicas": 1, "template": {"spec": {"parallelism": 2, "template": pod}}}

    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "spec": {"replicatedJobs": [replicated("workers", "worker"), replicated("leader", "trainer")]},
    }


@pytest.mark.parametrize(
    ("status", "condition", "reason"),
    [
        (
            {"conditions": [{"type": "Completed", "status": "True", "reason": "AllJobsCompleted"}]},
            "Succeeded",
            "",
        ),
        (
            {
                "conditions": [
                    {"type": "Failed", "status": "True", "reason": "FailedJobs", "message": "job x failed"}
                ]
            },
            "Failed",
            "FailedJobs: job x failed",
        ),
    ],
    ids=["completed", "failed"],
)
def test_jobset_ends_by_its_own_conditions_and_reads_index_0_of_the_primary_replicated_job(
    k8s: K8sEmulator, status: dict[str, Any], condition: str, reason: str
) -> None:
    experiment = _experiment(_jobset_template(), "trainer")  # no success/failure conditions given
    address = ("jobset.x-k8s.io", "v1alpha2", "jobsets")
    future = _start(k8s, experiment)
    jobset = _created(k8s, *address)
    labels = jobset["spec"]["replicatedJobs"][1]["template"]["spec"]["template"]["metadata"]["labels"]
    for rj, container, index, log in (
        ("workers", "worker", 0, "loss=7\n"),
        ("leader", "trainer", 1, "loss=8\n"),
        ("leader", "trainer", 0, _LOG),
    ):
        pod_labels = {
            **labels,
            "jobset.sigs.k8s.io/replicatedjob-name": rj,
            "jobset.sigs.k8s.io/job-index": "0",
            "batch.kubernetes.io/job-completion-index": str(index),
        }
        _pod(k8s, f"{_TRIAL.name}-{rj}-0-{index}", pod_labels, container, log)
    _finish(k8s, address, status)
    output = future.result(timeout=20)
    assert (output.run.succeeded, output.run.reason) == (condition == "Succeeded", reason)
    assert output.log == _LOG


_RAY_COMPLETE = {"jobStatus": "SUCCEEDED", "jobDeploymentStatus": "Complete"}


@pytest.mark.parametrize(
    ("statuses", "succeeded", "reason"),
    [
        ([{"jobStatus": "SUCCEEDED", "jobDeploymentStatus": "Running"}, _RAY_COMPLETE], True, ""),
        (
            [
                {"jobStatus": "FAILED", "jobDeploymentStatus": "Retrying"},  # not final: a retry follows
                {"jobStatus": "RUNNING", "jobDeploymentStatus": "Running"},
                {
                    "jobStatus": "FAILED",
                    "jobDeploymentStatus": "Failed",
                    "reason": "AppFailed",
                    "message": "exit 1",
                },
            ],
            False,
            "AppFailed: exit 1",
        ),
        (
            [{"jobStatus": "RUNNING", "jobDeploymentStatus": "Failed", "reason": "DeadlineExceeded"}],
            False,
            "DeadlineExceeded",
        ),
        ([{"jobStatus": "STOPPED", "jobDeploymentStatus": "Complete"}], False, "Failed"),
    ],
    ids=["succeeded-once-complete", "failed-after-retry", "deadline", "stopped"],
)
def test_rayjob_ends_by_its_job_and_deployment_status_and_reads_the_submitter(
    k8s: K8sEmulator, statuses: list[dict[str, Any]], succeeded: bool, reason: str
) -> None:
    head = {"name": "ray-head", "image": "rayproject/ray:2.40.0"}
    template = {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "spec": {
            "entrypoint": "python train.py --lr=${trialParameters.learningRate}",
            "rayClusterSpec": {"headGroupSpec": {"template": {"spec": {"containers": [head]}}}},
        },
    }
    document = base_spec()
    trial_template = document["spec"]["trialTemplate"]
    trial_template["trialParameters"] = [{"name": "learningRate", "reference": "lr"}]
    trial_template.update(trialSpec=template, primaryContainerName="ray-job-submitter")
    address = ("ray.io", "v1", "rayjobs")
    future = _start(k8s, parse_experiment(document))
    rayjob = _created(k8s, *address)
    assert rayjob["spec"]["entrypoint"] == "python train.py --lr=0.02"
    head_labels = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["metadata"]["labels"]
    # KubeRay's default submitter template, written in so that the trial's labels and Istio's
    # annotation reach the submitter pod (KubeRay adds the command; its Job copies the labels).
    submitter = rayjob["spec"]["submitterPodTemplate"]
    assert submitter["metadata"]["annotations"] == {_ISTIO: "false"}
    (container,) = submitter["spec"]["containers"]
    assert (container["name"], container["image"]) == ("ray-job-submitter", "rayproject/ray:2.40.0")
    assert "command" not in container and submitter["spec"]["restartPolicy"] == "Never"
    _pod(k8s, f"{_TRIAL.name}-head", head_labels, "ray-head", "loss=99\n")
    pod_labels = {**submitter["metadata"]["labels"], "job-name": _TRIAL.name}
    _pod(k8s, f"{_TRIAL.name}-submitter", pod_labels, "ray-job-submitter", _LOG)
    k8s.wait_for_watch("rayjobs")
    for status in statuses:
        k8s.set_status(*address, _NS, _TRIAL.name, status)
    output = future.result(timeout=20)
    assert (output.run.succeeded, output.run.reason) == (succeeded, reason)
    assert output.log == _LOG


def test_a_rayjobs_own_submitter_template_gets_the_trials_labels_and_no_sidecar(k8s: K8sEmulator) -> None:
    submitter = {"name": "submit", "image": "rayproject/ray:2.40.0", "command": ["ray", "job", "submit"]}
    template = {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "spec": {
            "entrypoint": "python train.py --lr=${trialParameters.learningRate}",
            "rayClusterSpec": {
                "headGroupSpec": {"template": {"spec": {"containers": [{"name": "h", "image": "x"}]}}}
            },
            "submitterPodTemplate": {"spec": {"restartPolicy": "Never", "containers": [submitter]}},
        },
    }
    document = base_spec()
    trial_template = document["spec"]["trialTemplate"]
    trial_template["trialParameters"] = [{"name": "learningRate", "reference": "lr"}]
    trial_template.update(trialSpec=template, primaryContainerName="submit")
    address = ("ray.io", "v1", "rayjobs")
    future = _start(k8s, parse_experiment(document))
    rayjob = _created(k8s, *address)
    metadata = rayjob["spec"]["submitterPodTemplate"]["metadata"]
    assert metadata["annotations"] == {_ISTIO: "false"}
    assert metadata["labels"]["hpo-kfp.kubeflow.org/trial"] == _TRIAL.name
    _pod(k8s, f"{_TRIAL.name}-submitter", {**metadata["labels"], "job-name": _TRIAL.name}, "submit", _LOG)
    k8s.wait_for_watch("rayjobs")
    k8s.set_status(*address, _NS, _TRIAL.name, {"jobStatus": "SUCCEEDED", "jobDeploymentStatus": "Complete"})
    output = future.result(timeout=20)
    assert output.run.succeeded and output.log == _LOG  # the submitter pod is found: its log read


# ---- ConfigMap templates -------------------------------------------------------------------------

_CONFIG_MAP_JOB = """\
apiVersion: batch/v1
kind: Job
spec:
  parallelism: ${trialParameters.layers}
  completions: ${trialParameters.layers}
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: training-container
          image: train:1
          command: ["python", "train.py", "--lr=${trialParameters.learningRate}"]
"""


def _configmap_experiment(namespace: str = "kubeflow") -> Experiment:
    document = base_spec()
    template = document["spec"]["trialTemplate"]
    template.pop("trialSpec")
    template["trialParameters"] = [
        {"name": "learningRate", "reference": "lr"},
        {"name": "layers", "reference": "layers"},
    ]
    template["configMap"] = {
        "configMapName": "trial-templates",
        "configMapNamespace": namespace,
        "templatePath": "job.yaml",
    }
    template["primaryContainerName"] = "training-container"
    return parse_experiment(document)


def test_configmap_template_integers_arrive_as_integers(k8s: K8sEmulator) -> None:
    k8s.create(
        "",
        "v1",
        "configmaps",
        "kubeflow",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "trial-templates"},
            "data": {"job.yaml": _CONFIG_MAP_JOB},
        },
    )
    future = _start(k8s, _configmap_experiment())
    job = _created(k8s, *_JOB)
    assert (job["spec"]["parallelism"], job["spec"]["completions"]) == (4, 4)
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][2] == "--lr=0.02"
    _finish(k8s, _JOB, _COMPLETE)
    assert future.result(timeout=20).run.succeeded


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (
            403,
            "trialTemplate.configMap: ConfigMap trial-templates in namespace kubeflow cannot be read by the "
            "step's service account: grant it `get` on configmaps in namespace kubeflow (a Role and RoleBinding there)",
        ),
        (404, "trialTemplate.configMap: ConfigMap trial-templates in namespace kubeflow does not exist"),
    ],
    ids=["forbidden", "missing"],
)
def test_an_unreadable_configmap_is_one_line_naming_it_and_what_to_grant(
    k8s: K8sEmulator, status: int, expected: str
) -> None:
    if status == 403:
        k8s.fail_next(403, verb="get", plural="configmaps", namespace="kubeflow")
    with pytest.raises(RunnerError) as error:
        _start(k8s, _configmap_experiment()).result(timeout=20)
    assert str(error.value) == expected
    assert not k8s.requests(verb="create")


# ---- offline schema validation of built-in kinds -------------------------------------------------


def test_an_invalid_job_is_refused_before_create_naming_the_field(k8s: K8sEmulator) -> None:
    pytest.importorskip("kubernetes_validate")
    document = base_spec()
    job = document["spec"]["trialTemplate"]["trialSpec"]
    job["spec"]["parallelism"] = "${trialParameters.numberLayers}"  # a string in a trialSpec, as in Katib
    with pytest.raises(RunnerError) as error:
        _start(k8s, parse_experiment(document)).result(timeout=20)
    assert str(error.value) == (
        "the trial's Job is invalid for Kubernetes 1.31: spec.parallelism: '4' is not of type 'integer', 'null'"
    )
    assert not k8s.requests(verb="create")
    # Without a stated version nothing is checked offline (the emulator then takes it as it is).
    unchecked = replace(_QUICK, kubernetes_version=None)
    future = _start(k8s, parse_experiment(document), unchecked)
    assert _created(k8s, *_JOB)["spec"]["parallelism"] == "4"
    _finish(k8s, _JOB, _COMPLETE)
    assert future.result(timeout=20).run.succeeded
