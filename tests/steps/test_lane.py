"""The lane task's loop (issue 26): claim -> run -> collect -> record until nothing is left,
one line per trial, each trial's files kept, and a killed lane retried without losing or
repeating a trial."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hpo_kfp.steps.lanes import LANE_RECORDS, lane_step, start_step
from hpo_kfp.steps.settings import StepSettings
from hpo_kfp.store import ExperimentKey, open_store
from tests.conftest import base_spec, with_field
from tests.waiting import process_alive, wait_for

_TRIAL = """\
import os, sys, time
from pathlib import Path

name = os.environ["HPO_KFP_TRIAL_NAME"]
number = int(name.rsplit("-", 1)[1])
Path(f"started-{name}").write_text(str(os.getpid()))
if number == 1:
    while not Path("gate").exists():  # the test kills the lane meanwhile
        time.sleep(0.05)
if number == 2:
    print("no metric, then a crash", file=sys.stderr)
    sys.exit(3)
print(f"loss={0.5 + number / 10}")
"""


def _spec(tmp_path: Path, trials: int) -> str:
    (tmp_path / "trial.py").write_text(_TRIAL)
    document = base_spec()
    with_field(document, "spec.maxTrialCount", trials)
    with_field(document, "spec.parallelTrialCount", 1)
    with_field(document, "spec.objective.additionalMetricNames", [])
    container = document["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = [sys.executable, "trial.py", *container["command"][2:]]
    return yaml.safe_dump(document)


def _opened(tmp_path: Path, trials: int) -> tuple[Path, StepSettings]:
    settings = StepSettings(store=f"sqlite:///{tmp_path / 's.sqlite'}", trial_cwd=str(tmp_path))
    document = tmp_path / "run.json"
    lanes = start_step(_spec(tmp_path, trials), settings.to_json(), "run-1", str(document))
    assert lanes == ["1"]
    return document, settings


def test_a_lane_runs_trials_until_none_is_left_and_logs_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document, settings = _opened(tmp_path, 4)
    (tmp_path / "gate").write_text("")
    assert lane_step(str(document), "run-1", "1", str(tmp_path / "trials")) == 4
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("lane 1: demo-0000 (lr=")
    assert lines[0].endswith(": Succeeded, loss=0.5")
    assert lines[2].startswith("lane 1: demo-0002 (") and lines[2].endswith(": Failed (exit code 3)")
    assert lines[-1] == "lane 1: no trial left to claim after 4 of its own"
    assert "no metric, then a crash" in (tmp_path / "trials" / "demo-0002" / "log").read_text()
    records = [json.loads(line) for line in (tmp_path / "trials" / LANE_RECORDS.format(lane=1)).open()]
    assert [(r["name"], r["status"]) for r in records] == [
        ("demo-0000", "Succeeded"),
        ("demo-0001", "Succeeded"),
        ("demo-0002", "Failed"),
        ("demo-0003", "Succeeded"),
    ]
    assert {r["lane"] for r in records} == {"run-1/lane-1"}  # which lane ran it, for the timeline
    store = open_store(settings.store)
    assert [t.lane for t in store.history(ExperimentKey("kubeflow", "demo")).trials] == ["run-1/lane-1"] * 4
    assert [t.status for t in store.history(ExperimentKey("kubeflow", "demo")).trials] == [
        r["status"] for r in records
    ]


def test_a_killed_lane_retried_loses_no_trial_and_repeats_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document, settings = _opened(tmp_path, 3)
    code = f"from hpo_kfp.steps.lanes import lane_step; lane_step({str(document)!r}, 'run-1', '1', 'first')"
    lane = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, stdout=subprocess.DEVNULL)
    started = tmp_path / "started-demo-0001"
    try:
        wait_for(started.exists, seconds=60, what="trial demo-0001 to start")
        store = open_store(settings.store)
        key = ExperimentKey("kubeflow", "demo")
        before = store.history(key).trials[1]
    finally:
        lane.send_signal(signal.SIGKILL)  # as when the lane's pod is deleted
        lane.wait()
        if started.exists():
            orphan = int(wait_for(started.read_text, what="the trial's pid"))
            os.kill(orphan, signal.SIGKILL)  # its pod would go with the lane's
            wait_for(lambda: not process_alive(orphan), what="the orphaned trial to end")
    assert store.history(key).trials[1].status == "Pending"

    (tmp_path / "gate").write_text("")
    assert lane_step(str(document), "run-1", "1", str(tmp_path / "retried")) == 2
    out = capsys.readouterr().out
    assert out.startswith("lane 1: taking up demo-0001 again (an earlier attempt of this lane held them)\n")
    trials = store.history(key).trials
    assert [t.name for t in trials] == ["demo-0000", "demo-0001", "demo-0002"]
    assert [t.status for t in trials] == ["Succeeded", "Succeeded", "Failed"]
    assert trials[1].parameters == before.parameters


def test_a_lane_gives_back_only_its_own_earlier_attempts_trials(tmp_path: Path) -> None:
    """Lane 1 restarting must not take what lane 10 of the same run holds (a prefix of it)."""
    document, settings = _opened(tmp_path, 3)
    store = open_store(settings.store)
    key = ExperimentKey("kubeflow", "demo")
    from hpo_kfp.claim import claim
    from hpo_kfp.spec import parse_experiment
    from hpo_kfp.steps.lanes import lane_owner

    experiment = parse_experiment(_spec(tmp_path, 3))
    held = claim(store, experiment, key, 1, owner=lane_owner(settings, "run-1", "10")).trials
    (tmp_path / "gate").write_text("")
    assert lane_step(str(document), "run-1", "1", str(tmp_path / "trials")) == 2
    assert store.history(key).trials[0].name == held[0].name
    assert store.history(key).trials[0].status == "Pending"  # still lane 10's
