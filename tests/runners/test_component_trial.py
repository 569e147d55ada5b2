"""A KFP component run as a trial (``tune(trial=component)``): its own container with an
executor input built for the trial, through the same runners as a template's trial.

Locally the component's command runs as a process. On a cluster it is a Job on the emulator:
the test plays the kubelet by running the Job's container command itself, with the
termination-message file in a folder of its own, and posts what the executor wrote as the
container's termination message -- so the command the runner built is the one that runs.
"""

# No `from __future__ import annotations`: KFP reads the components' annotations.
import concurrent.futures
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kfp import dsl
from kfp.dsl import Metrics, Output

import hpo_kfp
from hpo_kfp.collectors.collect import collect_trial
from hpo_kfp.component_trial import OUTPUT_FILE, read_outputs, trial_experiment
from hpo_kfp.history import TrialRecord
from hpo_kfp.runners import TrialFiles
from hpo_kfp.runners.kubernetes import KubernetesRunner, KubernetesSettings
from hpo_kfp.runners.local import LocalRunner
from hpo_kfp.spec import Experiment
from hpo_kfp.wire import TrialComponent
from tests.k8s_emulator import K8sEmulator
from tests.waiting import wait_for


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def metrics_trial(lr: float, layers: int, data: str, metrics: Output[Metrics], scale: float = 2.0) -> None:
    if lr > 0.04:
        raise ValueError(f"diverged at lr={lr}")
    metrics.log_metric("loss", (lr - 0.03) ** 2 * 1000 * scale + layers + len(data))
    metrics.log_metric("accuracy", float("nan") if layers == 5 else 0.5)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def value_trial(lr: float, layers: int, data: str) -> float:
    return float("nan") if layers == 5 else lr * layers


@dsl.container_component
def shell_trial(lr: float, layers: int, data: str, metrics: Output[Metrics]) -> dsl.ContainerSpec:
    return dsl.ContainerSpec(image="alpine", command=["printf", "%s %s %s", lr, layers, data])


def _experiment() -> Experiment:
    return hpo_kfp.experiment(
        "native",
        objective=hpo_kfp.objective("loss", "minimize", additional_metrics=["accuracy"]),
        parameters=[hpo_kfp.double("lr", 0.01, 0.05), hpo_kfp.integer("layers", 1, 5)],
        max_trials=4,
        trial_template=None,
    )


def _component(trial: Any, metrics_output: str | None = None, **arguments: Any) -> TrialComponent:
    """The trial component tune() hands the lanes (built as tune() builds it)."""
    from hpo_kfp.pipeline.tune import _Plan

    component = _Plan(_experiment(), trial, dict(arguments), metrics_output).component
    assert component is not None
    return component


def _local(
    trial: Any,
    parameters: dict[str, Any],
    tmp_path: Path,
    metrics_output: str | None = None,
    **arguments: Any,
) -> TrialRecord:
    experiment = _experiment()
    record = TrialRecord(name="native-0001", number=1, parameters=parameters)
    component = _component(trial, metrics_output, **arguments)
    ran = trial_experiment(experiment, component, record, run_id="run-1")
    files = TrialFiles(log=tmp_path / "log", metrics=tmp_path / "metrics")
    run = read_outputs(component, LocalRunner().run(ran, record, files), files)
    return collect_trial(ran, record, run, files.log.read_text(), files.metrics.read_text())


def test_a_component_trial_runs_locally_with_its_parameters_and_arguments(tmp_path: Path) -> None:
    record = _local(metrics_trial, {"lr": 0.03, "layers": 2}, tmp_path, data="abc")
    assert (record.status, record.reason) == ("Succeeded", "")
    # loss = 0 * 2.0 (the default scale) + 2 layers + len("abc")
    assert record.values == (5.0,) and record.metrics["accuracy"] == 0.5


def test_a_component_that_raises_is_a_failed_trial_naming_the_exception(tmp_path: Path) -> None:
    record = _local(metrics_trial, {"lr": 0.045, "layers": 2}, tmp_path, data="abc")
    assert record.status == "Failed"
    assert record.reason == "exit code 1: ValueError: diverged at lr=0.045"


def test_a_nan_return_value_is_metrics_unavailable(tmp_path: Path) -> None:
    """A bare NaN, which KFP cannot carry, reaches the collector as JSON writes it."""
    nan = _local(value_trial, {"lr": 0.02, "layers": 5}, tmp_path / "nan", data="x")
    assert (nan.status, nan.reason) == ("MetricsUnavailable", "loss was NaN")
    value = _local(value_trial, {"lr": 0.02, "layers": 2}, tmp_path / "value", data="x")
    assert value.status == "Succeeded" and math.isclose(value.objective or 0, 0.04)


def test_a_nan_other_metric_is_left_out_with_a_reason(tmp_path: Path) -> None:
    record = _local(metrics_trial, {"lr": 0.03, "layers": 5}, tmp_path, data="")
    assert record.status == "Succeeded" and record.values == (5.0,)
    assert "accuracy" in record.reason


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def two_metrics_trial(
    lr: float, layers: int, data: str, train: Output[Metrics], validation: Output[Metrics]
) -> None:
    train.log_metric("loss", 0.1)
    validation.log_metric("loss", lr * layers)


def test_with_several_metrics_outputs_the_named_one_is_read(tmp_path: Path) -> None:
    """The other output's loss (written after it, so read last) is left out."""
    record = _local(two_metrics_trial, {"lr": 0.02, "layers": 3}, tmp_path, "train", data="x")
    assert record.status == "Succeeded" and record.values == (0.1,)


def test_the_command_holds_values_only_inside_the_executor_input(tmp_path: Path) -> None:
    """A hostile string argument stays one value: the command is a list, run without a shell."""
    hostile = '"; touch pwned; echo "'
    record = _local(metrics_trial, {"lr": 0.03, "layers": 1}, tmp_path, data=hostile)
    assert record.values == (1.0 + len(hostile),)
    assert not (Path.cwd() / "pwned").exists()
    ran = trial_experiment(
        _experiment(),
        _component(shell_trial, data=hostile),
        TrialRecord(name="t", number=0, parameters={"lr": 0.5, "layers": 3}),
        run_id="r",
    )
    assert ran.template.trial_spec is not None
    command = ran.template.trial_spec["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command == ["printf", "%s %s %s", "0.5", "3", hostile]


_NS = "team-a"


def test_a_component_trial_on_a_cluster_reads_the_executor_output_from_the_termination_message(
    k8s: K8sEmulator, tmp_path: Path
) -> None:
    experiment = _experiment()
    record = TrialRecord(name="native-0002", number=2, parameters={"lr": 0.02, "layers": 3})
    ran = trial_experiment(experiment, _component(metrics_trial, data="ab"), record, run_id="run-1")
    runner = KubernetesRunner(k8s.api_client(), KubernetesSettings(watch_seconds=5, backoff_seconds=0.05))
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(runner.run_object, ran, record, namespace=_NS)
        job = wait_for(lambda: k8s.get("batch", "v1", "jobs", _NS, record.name), what="the trial's Job")
        pod_spec = job["spec"]["template"]["spec"]
        [container] = pod_spec["containers"]
        assert (container["image"], pod_spec["restartPolicy"]) == ("python:3.11", "Never")
        assert container["terminationMessagePath"] == OUTPUT_FILE
        # The kubelet's part: run the container's command, its termination-message file (and
        # the outputs beside it) in a folder of its own.
        message_file = tmp_path / "executor_output.json"
        command = [part.replace(OUTPUT_FILE, str(message_file)) for part in container["command"]]
        env = {**os.environ, "PATH": os.pathsep.join((os.path.dirname(sys.executable), os.environ["PATH"]))}
        finished = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=120)
        assert finished.returncode == 0, finished.stderr
        labels = job["spec"]["template"]["metadata"]["labels"]
        pod = f"{record.name}-pod"
        k8s.create_pod(_NS, pod, labels=labels, containers=(container["name"],), owner=job)
        k8s.set_pod_log(_NS, pod, finished.stdout + finished.stderr, container=container["name"])
        terminated = {"exitCode": 0, "message": message_file.read_text()}
        k8s.set_status(
            "",
            "v1",
            "pods",
            _NS,
            pod,
            {"containerStatuses": [{"name": "main", "state": {"terminated": terminated}}]},
        )
        k8s.wait_for_watch("jobs")
        k8s.set_status(
            "batch", "v1", "jobs", _NS, record.name, {"conditions": [{"type": "Complete", "status": "True"}]}
        )
        output = future.result(timeout=30)
    trial = collect_trial(ran, record, output.run, output.log, output.metrics)
    assert trial.status == "Succeeded"
    assert trial.values is not None and math.isclose(trial.values[0], (0.02 - 0.03) ** 2 * 2000 + 3 + 2)
    assert json.loads(output.metrics)["artifacts"]["metrics"]["artifacts"][0]["metadata"]["accuracy"] == 0.5
    assert k8s.get("batch", "v1", "jobs", _NS, record.name) is None  # nothing left behind


def test_a_pipeline_or_an_artifact_input_is_refused_when_the_pipeline_is_built() -> None:
    from hpo_kfp.errors import BuildError

    @dsl.pipeline
    def two_steps(lr: float, layers: int, data: str) -> float:
        return value_trial(lr=lr, layers=layers, data=data).output

    with pytest.raises(BuildError, match=r"trial: 'two-steps' is a pipeline, but a trial runs one container"):
        _component(two_steps, data="x")

    @dsl.component(base_image="python:3.11", install_kfp_package=False)
    def with_dataset(lr: float, layers: int, data: dsl.Input[dsl.Dataset]) -> float:
        return lr

    with pytest.raises(
        BuildError,
        match=r"trial_arguments: input 'data' of trial component 'with-dataset' is an artifact "
        r"\(system.Dataset@0.0.1\), which a trial's process or pod cannot be handed; make it a str input",
    ):
        _component(with_dataset)
