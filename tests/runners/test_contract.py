"""One contract, every runner in the registry (:data:`hpo_kfp.runners.RUNNERS`).

Each runner gets a driver that plays the world's part: for the local runner the trial is a
real process; for the Kubernetes runner the emulator is the API server and the test plays
the Job controller (a pod with the trial's log, then the Job's end). The same cases run over
both: a trial that succeeds, one that fails (a result, not an exception), one the early-
stopping watch stops, an experiment the runner refuses before anything runs, and nothing
the trial started left behind.
"""

from __future__ import annotations

import concurrent.futures
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from hpo_kfp.collectors.collect import collect_trial
from hpo_kfp.early_stopping import StopRule, trial_watch
from hpo_kfp.errors import InputError
from hpo_kfp.history import TrialRecord, TrialRun
from hpo_kfp.runners import RUNNERS, RunnerOptions, TrialFiles, TrialRunner, get_runner
from hpo_kfp.spec import Experiment, parse_experiment
from tests.conftest import base_spec, with_field
from tests.k8s_emulator import K8sEmulator
from tests.waiting import process_alive, wait_for

_TRIAL = TrialRecord(name="demo-0001", number=1, parameters={"lr": 0.02, "layers": 4, "optimizer": "adam"})
_LINES = {
    "succeed": ["epoch=1 loss=0.9 accuracy=0.5", "epoch=2 loss=0.4 accuracy=0.7"],
    "fail": ["epoch=1 loss=0.9 accuracy=0.5", "Traceback: out of memory"],
    "run": [
        "epoch=1 loss=0.9 accuracy=0.1",
        "epoch=2 loss=0.8 accuracy=0.1",
        "epoch=3 loss=0.7 accuracy=0.1",
    ],
}
_RULE = StopRule(metric="loss", median=0.5, direction="minimize", start_step=2, trials=3)


class Driver(Protocol):
    """Plays everything around one runner."""

    runner: TrialRunner

    def experiment(self, behaviour: str) -> Experiment:
        """An experiment whose trial does ``behaviour``: succeed, fail, or run until stopped."""
        ...

    def play(self, behaviour: str) -> None:
        """The world's part while the runner runs the trial (nothing, for a process)."""
        ...

    def refused(self) -> Experiment:
        """An experiment this runner cannot run."""
        ...

    def leftovers(self) -> list[str]:
        """What the trial started that is still there."""
        ...


class LocalDriver:
    def __init__(self, tmp_path: Path) -> None:
        self.runner = get_runner("local", RunnerOptions(trial_cwd=str(tmp_path)))
        self._pid_file = tmp_path / "trial.pid"

    def experiment(self, behaviour: str) -> Experiment:
        lines = _LINES[behaviour]
        script = textwrap.dedent(
            f"""
            import os, sys, time
            open({str(self._pid_file)!r}, "w").write(str(os.getpid()))
            for line in {lines!r}:
                print(line, flush=True)
            if {behaviour!r} == "run":
                time.sleep(120)
            sys.exit(3 if {behaviour!r} == "fail" else 0)
            """
        )
        document = base_spec()
        parameters = [
            "${trialParameters.learningRate}",
            "${trialParameters.numberLayers}",
            "${trialParameters.optimizer}",
        ]
        command = ["python", "-c", script, *parameters]
        path = "spec.trialTemplate.trialSpec.spec.template.spec.containers.0.command"
        return parse_experiment(with_field(document, path, command))

    def play(self, behaviour: str) -> None:
        return None

    def refused(self) -> Experiment:
        document = base_spec()
        template = document["spec"]["trialTemplate"]
        del template["trialSpec"]
        template["configMap"] = {"configMapName": "templates", "templatePath": "job.yaml"}
        return parse_experiment(document, trial_template=None)

    def leftovers(self) -> list[str]:
        pid = int(self._pid_file.read_text())
        return [f"process {pid}"] if process_alive(pid) else []


_NS = "team-a"
_JOB = ("batch", "v1", "jobs")


class KubernetesDriver:
    def __init__(self, k8s: K8sEmulator) -> None:
        from hpo_kfp.runners.kubernetes import KubernetesRunner, KubernetesSettings

        settings = KubernetesSettings(
            namespace=_NS, watch_seconds=5, check_seconds=0.1, backoff_seconds=0.05, deadline_seconds=30
        )
        self.runner = KubernetesRunner(k8s.api_client(), settings, environ={})
        self._k8s = k8s

    def experiment(self, behaviour: str) -> Experiment:
        return parse_experiment(base_spec())

    def play(self, behaviour: str) -> None:
        k8s = self._k8s
        job = wait_for(lambda: k8s.get(*_JOB, _NS, _TRIAL.name), what="the trial's Job")
        pod = f"{_TRIAL.name}-pod"
        labels = job["spec"]["template"]["metadata"]["labels"]
        k8s.create_pod(_NS, pod, labels=labels, containers=("training-container",), owner=job)
        k8s.set_pod_log(
            _NS, pod, "".join(line + "\n" for line in _LINES[behaviour]), container="training-container"
        )
        if behaviour == "run":
            return  # runs until the runner stops it
        k8s.wait_for_watch("jobs")
        condition = (
            {"type": "Complete", "status": "True", "reason": "Completed"}
            if behaviour == "succeed"
            else {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "exit 3"}
        )
        k8s.set_status(*_JOB, _NS, _TRIAL.name, {"conditions": [condition]})

    def refused(self) -> Experiment:
        document = base_spec()
        document["spec"]["metricsCollectorSpec"] = {
            "collector": {"kind": "TensorFlowEvent"},
            "source": {"fileSystemPath": {"path": "/tmp/tb", "kind": "Directory"}},
        }
        return parse_experiment(document)

    def leftovers(self) -> list[str]:
        return [f"Job {_TRIAL.name}"] if self._k8s.get(*_JOB, _NS, _TRIAL.name) is not None else []


@pytest.fixture(params=sorted(RUNNERS))
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Driver]:
    if request.param == "local":
        yield LocalDriver(tmp_path)
    elif request.param == "kubernetes":
        yield KubernetesDriver(request.getfixturevalue("k8s"))
    else:
        pytest.fail(f"runner {request.param!r} has no driver in the contract suite")


def _run(driver: Driver, behaviour: str, tmp_path: Path, **kwargs: Any) -> tuple[TrialRun, TrialFiles]:
    experiment = driver.experiment(behaviour)
    files = TrialFiles(log=tmp_path / "log.txt", metrics=tmp_path / "metrics.txt")
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(driver.runner.run, experiment, _TRIAL, files, **kwargs)
        driver.play(behaviour)
        return future.result(timeout=60), files


def test_every_runner_is_registered_under_its_name(driver: Driver) -> None:
    assert isinstance(driver.runner, TrialRunner)
    assert RUNNERS[driver.runner.name] is not None
    assert type(get_runner(driver.runner.name)) is type(driver.runner)


def test_a_trial_that_succeeds_leaves_its_log_and_nothing_else(driver: Driver, tmp_path: Path) -> None:
    run, files = _run(driver, "succeed", tmp_path)
    assert run.succeeded and run.reason == "" and not run.early_stopped
    assert files.log.read_text().splitlines() == _LINES["succeed"]
    experiment = driver.experiment("succeed")
    record = collect_trial(experiment, _TRIAL, run, files.log.read_text(), files.metrics.read_text())
    assert (record.status, record.values) == ("Succeeded", (0.4,))
    assert driver.leftovers() == []


def test_a_trial_that_fails_is_a_result_with_its_reason(driver: Driver, tmp_path: Path) -> None:
    run, files = _run(driver, "fail", tmp_path)
    assert not run.succeeded and not run.early_stopped
    assert "3" in run.reason  # "exit code 3", or the Job's own message
    assert files.log.read_text().splitlines() == _LINES["fail"]
    assert driver.leftovers() == []


def test_the_watch_stops_a_trial_and_nothing_is_left(driver: Driver, tmp_path: Path) -> None:
    experiment = driver.experiment("run")
    run, files = _run(driver, "run", tmp_path, watch=trial_watch(experiment, _RULE))
    assert run.early_stopped and not run.succeeded
    assert run.reason.startswith("best loss=0.8 after 2 steps")
    assert "epoch=2 loss=0.8" in files.log.read_text()
    assert driver.leftovers() == []


def test_an_experiment_the_runner_cannot_run_is_refused_before_it_runs(driver: Driver) -> None:
    driver.runner.check(driver.experiment("succeed"))
    with pytest.raises(InputError) as refused:
        driver.runner.check(driver.refused())
    assert str(refused.value).startswith("spec.")
    assert "\n" not in str(refused.value)


def test_the_suite_covers_every_registered_runner() -> None:
    assert sorted(RUNNERS) == ["kubernetes", "local"], "give a new runner a driver above"
    assert sys.modules[__name__].LocalDriver and sys.modules[__name__].KubernetesDriver


def test_a_runner_says_which_stores_its_steps_can_share(driver: Driver) -> None:
    runner = driver.runner
    assert runner.store_problem("postgresql://hpo@db/hpo") is None
    assert runner.store_problem("mysql://hpo@db/hpo") is None
    for url in ("sqlite:////runs/s.sqlite", "mlmd+sqlite:////runs/m.sqlite"):
        problem = runner.store_problem(url)
        if runner.name == "local":
            assert problem is None  # every step runs on this machine
        else:
            assert problem is not None and problem.startswith("must be ") and "\n" not in problem
