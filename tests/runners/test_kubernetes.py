"""The Kubernetes runner against a loopback API server emulator, through the real client.

The test plays the job controller: once the runner has created the trial's object, the
test creates its pod (with the labels the template gave it), sets the pod's log and then
the object's status, which reaches the runner's watch as MODIFIED events.
"""

from __future__ import annotations

import concurrent.futures
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpo_kfp.collectors.collect import collect_trial
from hpo_kfp.errors import RunnerError
from hpo_kfp.history import TrialRecord
from hpo_kfp.runners.kubernetes import KubernetesRunner, KubernetesSettings, TrialOutput, _termination_message
from hpo_kfp.spec import Experiment, parse_experiment
from tests.conftest import base_spec
from tests.k8s_emulator import K8sEmulator
from tests.k8s_emulator.kubelet import trim_termination_messages
from tests.waiting import wait_for

_NS = "team-a"
_TRIAL = TrialRecord(name="demo-0001", number=1, parameters={"lr": 0.02, "layers": 4, "optimizer": "adam"})
_LOG = "epoch=1 loss=0.9 accuracy=0.5\nepoch=2 loss=0.4 accuracy=0.7\nepoch=3 loss=0.3 accuracy=0.8\n"
_JOB = ("batch", "v1", "jobs")
_FAST = KubernetesSettings(watch_seconds=5, backoff_seconds=0.05, deadline_seconds=30)


def _job_experiment(**spec: Any) -> Experiment:
    document = base_spec()
    document["spec"].update(spec)
    return parse_experiment(document)


def _tfjob_experiment() -> Experiment:
    document = base_spec()
    document["spec"]["trialTemplate"]["primaryContainerName"] = "tensorflow"
    container = {
        "name": "tensorflow",
        "image": "train:1",
        "command": [
            "python",
            "train.py",
            "--lr=${trialParameters.learningRate}",
            "--layers=${trialParameters.numberLayers}",
            "--opt=${trialParameters.optimizer}",
        ],
    }
    replica = {"replicas": 1, "restartPolicy": "OnFailure", "template": {"spec": {"containers": [container]}}}
    document["spec"]["trialTemplate"]["trialSpec"] = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "TFJob",
        "spec": {"tfReplicaSpecs": {"Chief": replica, "Worker": {**replica, "replicas": 2}}},
    }
    return parse_experiment(document)


def _workflow_experiment() -> Experiment:
    document = base_spec()
    template = document["spec"]["trialTemplate"]
    template["primaryContainerName"] = "main"
    template["successCondition"] = 'status.[@this].#(phase=="Succeeded")#'
    template["failureCondition"] = 'status.[@this].#(phase=="Failed")#'
    template["trialSpec"] = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "spec": {
            "entrypoint": "train",
            "templates": [
                {
                    "name": "train",
                    "container": {
                        "image": "train:1",
                        "command": [
                            "python",
                            "train.py",
                            "${trialParameters.learningRate}",
                            "${trialParameters.numberLayers}",
                            "${trialParameters.optimizer}",
                        ],
                    },
                }
            ],
        },
    }
    return parse_experiment(document)


def _start(
    k8s: K8sEmulator,
    experiment: Experiment,
    settings: KubernetesSettings = _FAST,
    trial: TrialRecord = _TRIAL,
) -> concurrent.futures.Future[TrialOutput]:
    runner = KubernetesRunner(k8s.api_client(), settings)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(runner.run_object, experiment, trial, namespace=_NS)
    pool.shutdown(wait=False)
    return future


def _created(
    k8s: K8sEmulator, group: str, version: str, plural: str, name: str = _TRIAL.name
) -> dict[str, Any]:
    found: dict[str, Any] = wait_for(
        lambda: k8s.get(group, version, plural, _NS, name), what=f"{plural}/{name}"
    )
    return found


def _pod_for(
    k8s: K8sEmulator,
    owner: dict[str, Any],
    labels: dict[str, str],
    container: str,
    log: str,
    message: str | None = None,
) -> None:
    """Plays the job controller's part: a pod with the template's labels, its log, its end."""
    pod = f"{owner['metadata']['name']}-pod"
    k8s.create_pod(_NS, pod, labels=labels, containers=(container,), owner=owner)
    k8s.set_pod_log(_NS, pod, log, container=container)
    if message is not None:
        k8s.set_status(
            "",
            "v1",
            "pods",
            _NS,
            pod,
            {
                "containerStatuses": [
                    {"name": container, "state": {"terminated": {"exitCode": 0, "message": message}}}
                ]
            },
        )


def _finish(k8s: K8sEmulator, address: tuple[str, str, str], status: dict[str, Any]) -> None:
    k8s.wait_for_watch(address[2])
    k8s.set_status(*address, _NS, _TRIAL.name, status)


_COMPLETE = {"conditions": [{"type": "Complete", "status": "True", "reason": "Completed"}]}
_FAILED = {
    "conditions": [
        {
            "type": "Failed",
            "status": "True",
            "reason": "BackoffLimitExceeded",
            "message": "Job has reached the specified backoff limit",
        }
    ]
}


def test_job_success_reads_metrics_from_a_multi_line_log_and_deletes(k8s: K8sEmulator) -> None:
    experiment = _job_experiment()
    future = _start(k8s, experiment)
    job = _created(k8s, *_JOB)
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    assert pod_labels == {
        "hpo-kfp.kubeflow.org/experiment": "demo",
        "hpo-kfp.kubeflow.org/trial": "demo-0001",
    }
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[2:] == ["--lr=0.02", "--num-layers=4", "--optimizer=adam"]
    _pod_for(k8s, job, pod_labels, "training-container", _LOG)
    _finish(k8s, _JOB, _COMPLETE)
    output = future.result(timeout=20)
    assert output.run.succeeded and output.log == _LOG
    record = collect_trial(experiment, _TRIAL, output.run, output.log, output.metrics)
    assert (record.status, record.values, record.metrics) == (
        "Succeeded",
        (0.3,),
        {"loss": 0.3, "accuracy": 0.5},
    )
    assert len(record.series["loss"]) == 3
    deletes = k8s.requests(verb="delete", plural="jobs")
    assert [d.name for d in deletes] == ["demo-0001"] and deletes[0].propagation_policy == "Background"
    assert k8s.get(*_JOB, _NS, _TRIAL.name) is None


def test_job_failure_is_a_failed_trial_with_katib_reason(k8s: K8sEmulator) -> None:
    future = _start(k8s, _job_experiment())
    job = _created(k8s, *_JOB)
    _pod_for(k8s, job, job["spec"]["template"]["metadata"]["labels"], "training-container", "loss=0.9\n")
    _finish(k8s, _JOB, _FAILED)
    output = future.result(timeout=20)
    assert output.run.exit_code is None
    assert output.run.reason == "BackoffLimitExceeded: Job has reached the specified backoff limit"


def test_tfjob_primary_pod_is_found_by_primary_pod_labels(k8s: K8sEmulator) -> None:
    experiment = _tfjob_experiment()
    address = ("kubeflow.org", "v1", "tfjobs")
    future = _start(k8s, experiment)
    tfjob = _created(k8s, *address)
    chief = tfjob["spec"]["tfReplicaSpecs"]["Chief"]["template"]["metadata"]["labels"]
    worker_log = "loss=99\n"
    # A worker pod and the chief (master) pod: the metrics must come from the master.
    k8s.create_pod(
        _NS,
        "demo-0001-worker-0",
        labels={**chief, "training.kubeflow.org/job-role": "worker"},
        containers=("tensorflow",),
    )
    k8s.set_pod_log(_NS, "demo-0001-worker-0", worker_log, container="tensorflow")
    _pod_for(k8s, tfjob, {**chief, "training.kubeflow.org/job-role": "master"}, "tensorflow", _LOG)
    _finish(
        k8s,
        address,
        {
            "conditions": [
                {"type": "Running", "status": "False"},
                {"type": "Succeeded", "status": "True", "reason": "TFJobSucceeded"},
            ]
        },
    )
    output = future.result(timeout=20)
    assert output.run.succeeded and output.log == _LOG


def test_argo_workflow_with_phase_conditions(k8s: K8sEmulator) -> None:
    experiment = _workflow_experiment()
    address = ("argoproj.io", "v1alpha1", "workflows")
    future = _start(k8s, experiment)
    workflow = _created(k8s, *address)
    labels = workflow["spec"]["podMetadata"]["labels"]
    _pod_for(k8s, workflow, labels, "main", _LOG)
    k8s.wait_for_watch("workflows")
    k8s.set_status(*address, _NS, _TRIAL.name, {"phase": "Running"})
    k8s.set_status(*address, _NS, _TRIAL.name, {"phase": "Succeeded"})
    assert future.result(timeout=20).run.succeeded


def test_deadline_exceeded_fails_and_deletes(k8s: K8sEmulator) -> None:
    settings = KubernetesSettings(watch_seconds=1, backoff_seconds=0.05, deadline_seconds=1.5)
    future = _start(k8s, _job_experiment(), settings)
    _created(k8s, *_JOB)
    output = future.result(timeout=20)
    assert output.run.reason.startswith("DeadlineExceeded: still running after 1.5 s")
    assert k8s.get(*_JOB, _NS, _TRIAL.name) is None


@pytest.mark.parametrize("abort", [False, True], ids=["clean-end", "connection-reset"])
def test_watch_dropped_midway_is_resumed(k8s: K8sEmulator, abort: bool) -> None:
    k8s.drop_watches(after_events=1, plural="jobs", abort=abort)
    future = _start(k8s, _job_experiment())
    job = _created(k8s, *_JOB)
    _pod_for(k8s, job, job["spec"]["template"]["metadata"]["labels"], "training-container", _LOG)
    k8s.wait_for_watch("jobs")
    k8s.set_status(*_JOB, _NS, _TRIAL.name, {"active": 1})  # the stream breaks after this event
    _wait_until(lambda: len(k8s.requests(verb="watch", plural="jobs")) >= 2)
    k8s.wait_for_watch("jobs")
    k8s.set_status(*_JOB, _NS, _TRIAL.name, _COMPLETE)
    assert future.result(timeout=20).run.succeeded


def _wait_until(condition: Any, seconds: float = 10) -> None:
    wait_for(condition, seconds=seconds)


def test_gone_410_restarts_from_a_fresh_read(k8s: K8sEmulator) -> None:
    k8s.expire_next_watch("jobs", in_stream=True)
    future = _start(k8s, _job_experiment())
    job = _created(k8s, *_JOB)
    _pod_for(k8s, job, job["spec"]["template"]["metadata"]["labels"], "training-container", _LOG)
    _finish(k8s, _JOB, _COMPLETE)
    assert future.result(timeout=20).run.succeeded
    assert len(k8s.requests(verb="watch", plural="jobs")) >= 2


def test_500_then_success_creates_once(k8s: K8sEmulator) -> None:
    fault = k8s.fail_next(500, verb="create", plural="jobs", times=2)
    future = _start(k8s, _job_experiment())
    job = _created(k8s, *_JOB)
    _pod_for(k8s, job, job["spec"]["template"]["metadata"]["labels"], "training-container", _LOG)
    _finish(k8s, _JOB, _COMPLETE)
    assert future.result(timeout=20).run.succeeded
    assert fault.hits == 2
    assert [r.status for r in k8s.requests(verb="create", plural="jobs")] == [500, 500, 201]


def _leftover_in(
    k8s: K8sEmulator,
    experiment: Experiment,
    trial: TrialRecord = _TRIAL,
    address: tuple[str, str, str] = _JOB,
    **metadata: Any,
) -> dict[str, Any]:
    """The object a first attempt of the step created and left behind (as a retry finds it)."""
    from hpo_kfp.render import render
    from hpo_kfp.runners._k8s_manifest import assignment_digest, identity_labels, prepare_manifest

    assert experiment.template.trial_spec is not None
    manifest = render(
        experiment.template.trial_spec,
        experiment.template.references,
        trial.parameters,
        name=trial.name,
        namespace=_NS,
        labels=identity_labels(experiment.name, trial.name),
    )
    manifest = prepare_manifest(experiment, manifest, trial.name, assignment_digest(trial.parameters))
    manifest["metadata"].update(metadata)
    return k8s.create(*address, _NS, manifest)


def test_409_adopts_the_trials_own_object(k8s: K8sEmulator) -> None:
    experiment = _job_experiment()
    left = _leftover_in(k8s, experiment)
    retry = _start(k8s, experiment)
    _wait_until(lambda: len(k8s.requests(verb="create", plural="jobs")) == 1)
    _pod_for(k8s, left, left["spec"]["template"]["metadata"]["labels"], "training-container", _LOG)
    _finish(k8s, _JOB, _COMPLETE)
    assert retry.result(timeout=20).run.succeeded
    assert [r.status for r in k8s.requests(verb="create", plural="jobs")] == [409]


def test_409_on_a_foreign_object_is_refused(k8s: K8sEmulator) -> None:
    k8s.create(
        *_JOB,
        _NS,
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": _TRIAL.name, "labels": {"app": "someone-else"}},
            "spec": {"template": {"spec": {"containers": []}}},
        },
    )
    future = _start(k8s, _job_experiment())
    with pytest.raises(
        RunnerError, match=r"a Job named demo-0001 already exists in team-a and is not this trial's"
    ):
        future.result(timeout=20)


def test_retain_keeps_the_object(k8s: K8sEmulator) -> None:
    experiment = _job_experiment()
    object.__setattr__(experiment.trial_template, "retain", True)
    future = _start(k8s, experiment)
    job = _created(k8s, *_JOB)
    _pod_for(k8s, job, job["spec"]["template"]["metadata"]["labels"], "training-container", _LOG)
    _finish(k8s, _JOB, _COMPLETE)
    assert future.result(timeout=20).run.succeeded
    assert k8s.get(*_JOB, _NS, _TRIAL.name) is not None
    assert k8s.requests(verb="delete", plural="jobs") == []


def test_file_metrics_arrive_through_the_termination_message(k8s: K8sEmulator) -> None:
    document = base_spec()
    document["spec"]["metricsCollectorSpec"] = {
        "collector": {"kind": "File"},
        "source": {
            "fileSystemPath": {"path": "/var/log/katib/metrics.log", "kind": "File", "format": "TEXT"}
        },
    }
    experiment = parse_experiment(document)
    future = _start(k8s, experiment)
    job = _created(k8s, *_JOB)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["terminationMessagePath"] == "/var/log/katib/metrics.log"
    assert {"name": "HPO_KFP_METRICS_FILE", "value": "/var/log/katib/metrics.log"} in container["env"]
    _pod_for(
        k8s,
        job,
        job["spec"]["template"]["metadata"]["labels"],
        "training-container",
        "no metrics here\n",
        message="loss=0.5\nloss=0.25\n",
    )
    _finish(k8s, _JOB, _COMPLETE)
    output = future.result(timeout=20)
    record = collect_trial(experiment, _TRIAL, output.run, output.log, output.metrics)
    assert (record.status, record.values) == ("Succeeded", (0.25,))


def _file_collector_experiment(strategy: str) -> Experiment:
    document = base_spec()
    document["spec"]["objective"]["metricStrategies"] = [{"name": "loss", "value": strategy}]
    document["spec"]["metricsCollectorSpec"] = {
        "collector": {"kind": "File"},
        "source": {
            "fileSystemPath": {"path": "/var/log/katib/metrics.log", "kind": "File", "format": "TEXT"}
        },
    }
    return parse_experiment(document)


def test_a_metrics_file_the_kubelet_trimmed_loses_its_cut_line_not_its_objective(k8s: K8sEmulator) -> None:
    # The kubelet keeps the file's last 4096 bytes: the first line kept starts inside
    # "val_loss=0.001" and would read as loss=0.001, below every real value (0.9).
    experiment = _file_collector_experiment("min")
    cut = "loss=0.001 loss=0.9\n"  # what is left of "epoch=000 val_loss=0.001 loss=0.9"
    lines = "".join(f"epoch={i:03d} val_loss=0.001 loss=0.9\n" for i in range(1, 100))
    filler = "-" * (4096 - len(cut) - len(lines) - 1) + "\n"  # no metrics; lands the cut exactly
    text = "epoch=000 val_" + cut + filler + lines
    assert len(text.encode()) - 4096 == len("epoch=000 val_")
    future = _start(k8s, experiment)
    job = _created(k8s, *_JOB)
    _pod_for(k8s, job, job["spec"]["template"]["metadata"]["labels"], "training-container", "", message=text)
    _finish(k8s, _JOB, _COMPLETE)
    output = future.result(timeout=20)
    record = collect_trial(experiment, _TRIAL, output.run, output.log, output.metrics)
    assert (record.status, record.values) == ("Succeeded", (0.9,))
    assert "left out" in record.reason and "the first line" in record.reason


def test_a_pod_of_four_containers_loses_the_last_line_the_status_budget_cut() -> None:
    # 12 KiB / 4 containers = 3072 bytes of each message: the last line kept is cut mid-number.
    text = "".join(f"loss=0.{i:06d}\n" for i in range(400))  # 5600 bytes
    pod = {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": f"c{i}"} for i in range(4)]},
        "status": {"containerStatuses": [{"name": "c0", "state": {"terminated": {"message": text}}}]},
    }
    trim_termination_messages(pod)  # the emulator's kubelet: the file's tail, then the budget
    kept = pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"]
    assert len(kept) == 3072 and not kept.endswith("\n")
    message, (warning,) = _termination_message(pod, "c0")
    assert message in kept and message.endswith("\n")
    assert message.splitlines()[0] == kept.splitlines()[1]  # the file's tail cut the first line too
    assert "the first line" in warning and "the last line" in warning and "first 3072" in warning


_LOG_READS = KubernetesSettings(
    watch_seconds=5, backoff_seconds=0.01, deadline_seconds=30, check_seconds=0.05, max_retries=2
)


def _running_pod_with_log(k8s: K8sEmulator, job: dict[str, Any]) -> str:
    pod = f"{job['metadata']['name']}-pod"
    k8s.create_pod(
        _NS,
        pod,
        labels=job["spec"]["template"]["metadata"]["labels"],
        containers=("training-container",),
        owner=job,
    )
    k8s.set_pod_log(_NS, pod, _LOG, container="training-container")
    k8s.set_container_state(_NS, pod, "training-container", {"running": {}})
    return pod


def _log_reads(k8s: K8sEmulator) -> list[Any]:
    return [r for r in k8s.requests(verb="get") if r.path.endswith("/log")]


def test_a_success_is_kept_when_the_last_log_read_fails(k8s: K8sEmulator) -> None:
    future = _start(k8s, _job_experiment(), _LOG_READS)
    job = _created(k8s, *_JOB)
    _running_pod_with_log(k8s, job)
    wait_for(lambda: _log_reads(k8s), what="a log read")  # read while it ran
    # The kubelet's proxy breaks (HTTP 500) just as the Job completes.
    k8s.fail_next(
        500, verb="get", subresource="log", times=None, message="dial tcp 10.0.0.7:10250: i/o timeout"
    )
    _finish(k8s, _JOB, _COMPLETE)
    output = future.result(timeout=20)
    assert output.run.succeeded
    assert output.log == _LOG
    (warning,) = output.run.warnings
    assert "the end of the primary container's log could not be read" in warning and "10250" in warning
    record = collect_trial(_job_experiment(), _TRIAL, output.run, output.log, output.metrics)
    assert (record.status, record.values) == ("Succeeded", (0.3,)) and "could not be read" in record.reason


def test_a_log_that_stays_unreadable_fails_the_trial_naming_the_call(k8s: K8sEmulator) -> None:
    future = _start(k8s, _job_experiment(), _LOG_READS)
    job = _created(k8s, *_JOB)
    k8s.fail_next(
        500, verb="get", subresource="log", times=None, message="dial tcp 10.0.0.7:10250: i/o timeout"
    )
    _running_pod_with_log(k8s, job)
    output = future.result(timeout=20)  # the Job never ends: only the bound ends the wait
    assert not output.run.succeeded
    assert (
        output.run.reason.startswith("reading the log of the pods ")
        and "gave up after 3 failed reads" in output.run.reason
    )
    assert "HTTP 500" in output.run.reason and "10250" in output.run.reason
    wait_for(lambda: k8s.get(*_JOB, _NS, _TRIAL.name) is None, what="the Job deleted")  # not left behind


def test_a_log_request_the_kubelet_calls_wrong_is_an_error_not_a_wait(k8s: K8sEmulator) -> None:
    future = _start(k8s, _job_experiment(), _LOG_READS)
    job = _created(k8s, *_JOB)
    k8s.fail_next(
        400, verb="get", subresource="log", message="container training-container is not valid for pod x"
    )
    _running_pod_with_log(k8s, job)
    with pytest.raises(RunnerError, match=r"reading the log of the pods .*HTTP 400.*is not valid for pod x"):
        future.result(timeout=20)
    assert k8s.get(*_JOB, _NS, _TRIAL.name) is None


def test_a_trial_with_no_pod_running_its_primary_container_says_so(k8s: K8sEmulator) -> None:
    future = _start(k8s, _job_experiment())
    _created(k8s, *_JOB)
    _finish(k8s, _JOB, _COMPLETE)
    output = future.result(timeout=20)
    record = collect_trial(_job_experiment(), _TRIAL, output.run, output.log, output.metrics)
    assert record.status == "MetricsUnavailable"
    assert "ran the primary container training-container: the trial has no log" in record.reason


def test_an_idle_trial_is_watched_from_the_last_version_seen_not_read_again(k8s: K8sEmulator) -> None:
    settings = KubernetesSettings(watch_seconds=1, backoff_seconds=0.05, deadline_seconds=30)
    future = _start(k8s, _job_experiment(), settings)
    job = _created(k8s, *_JOB)
    _running_pod_with_log(k8s, job)
    wait_for(lambda: len(k8s.requests(verb="watch", plural="jobs")) >= 3, what="three watch windows")
    _finish(k8s, _JOB, _COMPLETE)
    assert future.result(timeout=20).run.succeeded
    assert len(k8s.requests(verb="get", plural="jobs")) == 1  # the first read; every window resumes
    assert all(w.query.get("resourceVersion") for w in k8s.requests(verb="watch", plural="jobs"))


def test_looks_at_an_idle_trial_back_off_and_come_back_when_it_speaks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hpo_kfp.runners import kubernetes

    clock = [1000.0]
    monkeypatch.setattr(kubernetes.time, "monotonic", lambda: clock[0])
    pod = {"metadata": {"name": "p", "resourceVersion": "7"}, "spec": {"containers": [{"name": "c"}]}}
    lines: list[list[str]] = []

    class Runner:
        _settings = KubernetesSettings(check_seconds=2, pod_check_seconds=10, idle_check_seconds=30)

        def _list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
            return [pod]

    class Follower:
        def poll(self, found: Any) -> list[str]:
            return lines.pop() if lines else []

    pods = kubernetes._Pods(selector="t=1", trial_selector="t=1", container="c")
    looks = kubernetes._Looks(Runner(), "ns", pods, Follower(), None)  # type: ignore[arg-type]
    waits = []
    for step in range(8):
        if step == 6:
            lines.append(["loss=0.5"])  # it speaks again
        clock[0] += looks.until_due()
        assert looks.look() is None
        waits.append(looks.until_due())
    # The first look sees the pod for the first time: a change. Then nothing new: 4, 8, ... 30 s.
    assert waits == [2, 4, 8, 16, 30, 30, 2, 4]


def test_a_429_is_retried_after_the_seconds_the_server_asks(k8s: K8sEmulator) -> None:
    k8s.fail_next(429, verb="create", plural="jobs", reason="TooManyRequests", retry_after=1)
    started = time.monotonic()
    future = _start(k8s, _job_experiment())  # backoff_seconds=0.05: its own pause would be shorter
    _created(k8s, *_JOB)
    assert time.monotonic() - started >= 1.0
    assert [r.status for r in k8s.requests(verb="create", plural="jobs")] == [429, 201]
    _finish(k8s, _JOB, _COMPLETE)
    assert future.result(timeout=20).run.succeeded


def test_an_object_gone_between_two_watch_windows_is_a_deleted_trial(k8s: K8sEmulator) -> None:
    # The GET that starts each window finds nothing: someone deleted the Job meanwhile.
    k8s.fail_next(404, verb="get", plural="jobs", name=_TRIAL.name, reason="NotFound")
    output = _start(k8s, _job_experiment()).result(timeout=20)
    assert (output.run.succeeded, output.run.reason) == (
        False,
        "Deleted: the trial's object was deleted before it ended",
    )


def test_an_object_gone_between_a_409_and_the_get_is_created_again(k8s: K8sEmulator) -> None:
    k8s.fail_next(409, verb="create", plural="jobs", reason="AlreadyExists")
    k8s.fail_next(404, verb="get", plural="jobs", name=_TRIAL.name, reason="NotFound")
    future = _start(k8s, _job_experiment())
    job = _created(k8s, *_JOB)
    _pod_for(k8s, job, job["spec"]["template"]["metadata"]["labels"], "training-container", _LOG)
    _finish(k8s, _JOB, _COMPLETE)
    assert future.result(timeout=20).run.succeeded
    assert len(k8s.requests(verb="create", plural="jobs")) == 2


def _runner_process(k8s: K8sEmulator, tmp_path: Path, settings: str) -> subprocess.Popen[bytes]:
    """A process running the trial's object with ``KubernetesSettings`` given as Python source."""
    spec_path = tmp_path / "experiment.yaml"
    spec_path.write_text(yaml.safe_dump(base_spec()))
    script = (
        "import sys\n"
        "from kubernetes import client\n"
        "from hpo_kfp.history import TrialRecord\n"
        "from hpo_kfp.runners.kubernetes import KubernetesRunner, KubernetesSettings\n"
        "from hpo_kfp.spec import load_experiment\n"
        "configuration = client.Configuration(); configuration.host = sys.argv[1]\n"
        f"runner = KubernetesRunner(client.ApiClient(configuration), {settings})\n"
        f"trial = TrialRecord.from_dict({_TRIAL.to_dict()!r})\n"
        f"runner.run_object(load_experiment(sys.argv[2]), trial, namespace={_NS!r})\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", script, k8s.base_url, str(spec_path)], cwd=Path(__file__).parents[2]
    )


def _terminated_once_ready(k8s: K8sEmulator, process: subprocess.Popen[bytes], ready: Any) -> None:
    """Sends SIGTERM once ``ready()`` holds; the process must exit 143, its Job deleted once."""
    try:
        _created(k8s, *_JOB)
        wait_for(ready, what="the moment to send SIGTERM")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 143
    finally:
        process.kill()
    assert k8s.get(*_JOB, _NS, _TRIAL.name) is None
    assert [d.name for d in k8s.requests(verb="delete", plural="jobs")] == ["demo-0001"]


def test_sigterm_deletes_the_trial_object_before_exiting(k8s: K8sEmulator, tmp_path: Path) -> None:
    process = _runner_process(k8s, tmp_path, "KubernetesSettings(watch_seconds=2)")
    _terminated_once_ready(k8s, process, lambda: k8s.open_watches("jobs"))


def test_run_object_gives_sigterm_back_when_it_returns(k8s: K8sEmulator) -> None:
    before = signal.getsignal(signal.SIGTERM)
    runner = KubernetesRunner(k8s.api_client(), _FAST)
    k8s.fail_next(404, verb="get", plural="jobs", name=_TRIAL.name)  # ends the trial at once
    assert not runner.run_object(_job_experiment(), _TRIAL, namespace=_NS).run.succeeded
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_after_a_create_stored_but_answered_504_still_deletes_it(
    k8s: K8sEmulator, tmp_path: Path
) -> None:
    # The server stores the Job, but its answer is a 504; the runner backs off 30 s to retry.
    k8s.fail_next(504, verb="create", plural="jobs", after_store=True, reason="Timeout")
    process = _runner_process(k8s, tmp_path, "KubernetesSettings(watch_seconds=2, backoff_seconds=30)")
    # SIGTERM once the 504 is answered: the runner is then in its backoff, not mid-request.
    answered = lambda: [r.status for r in k8s.requests(verb="create", plural="jobs")] == [504]  # noqa: E731
    _terminated_once_ready(k8s, process, answered)


@pytest.mark.slow
def test_early_stopping_reads_the_log_while_it_runs_and_deletes(k8s: K8sEmulator) -> None:
    from hpo_kfp.early_stopping import StopRule, trial_watch

    experiment = _job_experiment()
    rule = StopRule(metric="loss", median=0.5, direction="minimize", start_step=2, trials=3)
    runner = KubernetesRunner(
        k8s.api_client(), KubernetesSettings(watch_seconds=5, check_seconds=0.2, backoff_seconds=0.05)
    )
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(
        runner.run_object, experiment, _TRIAL, namespace=_NS, watch=trial_watch(experiment, rule)
    )
    pool.shutdown(wait=False)
    job = _created(k8s, *_JOB)
    _pod_for(
        k8s, job, job["spec"]["template"]["metadata"]["labels"], "training-container", "epoch=1 loss=0.9\n"
    )
    log_path = f"/api/v1/namespaces/{_NS}/pods/demo-0001-pod/log"
    _wait_until(lambda: len(k8s.requests(path=log_path)) >= 3)
    assert not future.done()  # one step reported: the rule does not apply yet
    k8s.append_pod_log(_NS, "demo-0001-pod", "epoch=2 loss=0.8\n", container="training-container")
    output = future.result(timeout=20)
    assert output.run.early_stopped and output.run.reason.startswith("best loss=0.8 after 2 steps")
    assert k8s.get(*_JOB, _NS, _TRIAL.name) is None
    record = collect_trial(experiment, _TRIAL, output.run, output.log, output.metrics)
    assert record.status == "EarlyStopped" and [v for _, v in record.series["loss"]] == [0.9, 0.8]
