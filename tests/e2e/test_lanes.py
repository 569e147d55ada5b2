"""The asynchronous lanes on kfp.local, through ``hpo-kfp run``: a lane does not wait for
another's trial, a done experiment costs a few tasks, and runs follow one another until the
experiment is done."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hpo_kfp.store import ExperimentKey, open_store

_HERE = Path(__file__).parent
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _experiment(tmp_path: Path, **spec: object) -> Path:
    """The lanes experiment in ``tmp_path`` (its trials write a flag file beside it), with
    ``spec`` fields replaced; a ``command`` key replaces the trial's extra arguments."""
    document = yaml.safe_load((_HERE / "lanes.yaml").read_text())
    extra = spec.pop("command", None)
    document["spec"].update(spec)
    if extra is not None:
        container = document["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][
            0
        ]
        container["command"] = container["command"][:3] + list(extra)  # type: ignore[call-overload]
    shutil.copy(_HERE / "lanes_trial.py", tmp_path / "lanes_trial.py")
    path = tmp_path / "lanes.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _run(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hpo_kfp", "run", str(path), "--local", "--json", "--workdir", "runs", *args],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _tasks(log: Path) -> list[str]:
    """The tasks kfp.local ran, in the order they started."""
    # Lanes write to the log at once: a character may be cut by another lane's bytes.
    return re.findall(r"Executing task '([^']+)'", _ANSI.sub("", log.read_text(errors="replace")))


def test_a_lane_starts_its_next_trial_while_the_other_lanes_trial_runs(tmp_path: Path) -> None:
    """Trial 0 finishes only once trial 2 has run: lane 2 must run trials 1 and 2 while lane
    1 still runs trial 0 (in synchronous rounds trial 2 waits for trial 0: trial 0 fails)."""
    path = _experiment(tmp_path)
    result = _run(path)
    assert result.returncode == 0, result.stdout + result.stderr
    history = open_store(f"sqlite:///{tmp_path / 'runs' / 'hpo-kfp.sqlite'}").history(
        ExperimentKey("", "lanes")
    )
    assert [t.status for t in history.trials] == ["Succeeded"] * 4
    first, _, third = history.trials[:3]
    assert third.started is not None and first.finished is not None
    # Trial 2 started before trial 0 ended (which waited for it). Not "trial 2 ended first":
    # trial 0 may see trial 2's file and exit a few ms before trial 2's runner stamps its end
    # (seen once in a full run on a busy machine).
    assert third.started <= first.finished
    # Each record names its lane (the report's timeline draws a row per lane): 0 and 2 differ.
    assert first.lane != third.lane and {t.lane.rsplit("/", 1)[1] for t in history.trials} == {
        "lane-1",
        "lane-2",
    }


def test_a_done_experiment_costs_a_few_tasks_whatever_its_max_trial_count(tmp_path: Path) -> None:
    """Issues 15 and 26: goal met by trial 1 of a 200-trial experiment, 2 at a time: the run
    ends after the trials in flight, and a run of the done experiment is 3 tasks."""
    path = _experiment(tmp_path, maxTrialCount=200, command=["--goal-at=0"])
    result = _run(path)
    assert result.returncode == 0, result.stdout + result.stderr
    outcome = json.loads(result.stdout.splitlines()[-1])
    assert outcome["reason"] == "GoalReached" and outcome["best"]["name"] == "lanes-0000"
    assert outcome["trials"]["total"] <= 3  # trial 0, and what the other lane had started
    [log] = (tmp_path / "runs" / "lanes").glob("*/kfp-local.log")
    assert _tasks(log) == ["start", "lane", "lane", "lane-decide"]  # the trials ran inside the lanes

    again = _run(path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout.splitlines()[-1])["best"] == outcome["best"]
    logs = sorted((tmp_path / "runs" / "lanes").glob("*/kfp-local.log"))
    assert len(logs) == 2
    assert _tasks(logs[-1]) == ["start", "lane", "lane-decide"]  # the command writes the report


def test_runs_follow_one_another_until_the_experiment_is_done(tmp_path: Path) -> None:
    """``--trials-per-run 3`` of 7 trials: three runs, every trial once, numbers 0..6."""
    path = _experiment(tmp_path, maxTrialCount=7, command=[])  # loss 10: the goal (1) is never met
    result = _run(path, "--trials-per-run", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    outcome = json.loads(result.stdout.splitlines()[-1])
    assert outcome["reason"] == "MaxTrialsReached" and outcome["trials"]["succeeded"] == 7
    history = open_store(f"sqlite:///{tmp_path / 'runs' / 'hpo-kfp.sqlite'}").history(
        ExperimentKey("", "lanes")
    )
    assert [t.number for t in history.trials] == list(range(7))
    [folder] = (tmp_path / "runs" / "lanes").iterdir()
    assert sorted(p.name for p in folder.glob("kfp-local*.log")) == [
        "kfp-local-2.log",
        "kfp-local-3.log",
        "kfp-local.log",
    ]


def test_synchronous_rounds_in_the_lanes_wait_for_their_slowest_trial(tmp_path: Path) -> None:
    """Issue 26: --sync runs in the lane tasks, the store as the rounds' barrier: trials 2 and
    3 start only once trial 0 (slow) ended, though trial 1 ended long before (asynchronous
    lanes would start trial 2 right after trial 1)."""
    path = _experiment(tmp_path, maxTrialCount=6, command=["--slow-first=1.5"])
    result = _run(path, "--sync")
    assert result.returncode == 0, result.stdout + result.stderr
    trials = (
        open_store(f"sqlite:///{tmp_path / 'runs' / 'hpo-kfp.sqlite'}")
        .history(ExperimentKey("", "lanes"))
        .trials
    )
    assert [t.number for t in trials] == list(range(6)) and {t.status for t in trials} == {"Succeeded"}
    for later, earlier in ((2, 0), (3, 0), (4, 2), (5, 2)):
        assert trials[later].started is not None and trials[earlier].finished is not None
        assert trials[later].started >= trials[earlier].finished, (later, earlier)
    assert trials[1].finished is not None and trials[1].finished < trials[0].finished  # trial 1 waited
    [log] = (tmp_path / "runs" / "lanes").glob("*/kfp-local.log")
    assert _tasks(log) == ["start", "lane", "lane", "lane-decide"]
    assert "waiting for the round's other trials to end" in log.read_text(errors="replace")


def test_hyperband_runs_its_rungs_in_the_lanes(tmp_path: Path) -> None:
    """Hyperband's rungs are synchronous rounds: the lanes run them whole, one after another."""
    document = yaml.safe_load((_HERE / "lanes.yaml").read_text())
    spec = document["spec"]
    spec.update(
        maxTrialCount=9,
        parallelTrialCount=3,
        algorithm={
            "algorithmName": "hyperband",
            "algorithmSettings": [
                {"name": "resource_name", "value": "epochs"},
                {"name": "r_l", "value": "3"},
                {"name": "eta", "value": "3"},
            ],
        },
    )
    spec["parameters"].append(
        {"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "9"}}
    )
    spec["trialTemplate"]["trialParameters"].append({"name": "epochs", "reference": "epochs"})
    container = spec["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = [*container["command"][:3], "--epochs=${trialParameters.epochs}"]
    shutil.copy(_HERE / "lanes_trial.py", tmp_path / "lanes_trial.py")
    path = tmp_path / "hyperband.yaml"
    path.write_text(yaml.safe_dump(document))
    result = _run(path)
    assert result.returncode == 0, result.stdout + result.stderr
    outcome = json.loads(result.stdout.splitlines()[-1])
    assert outcome["trials"]["succeeded"] == outcome["trials"]["total"] >= 3
    trials = (
        open_store(f"sqlite:///{tmp_path / 'runs' / 'hpo-kfp.sqlite'}")
        .history(ExperimentKey("", "lanes"))
        .trials
    )
    assert [t.number for t in trials] == list(range(len(trials)))
    assert len({t.parameters["epochs"] for t in trials}) > 1  # promoted to a larger resource
    assert "lanes in synchronous rounds" in result.stdout


def test_more_trials_at_a_time_than_the_machine_runs_are_capped_with_a_notice(tmp_path: Path) -> None:
    """Issue 31: parallelTrialCount 10,000 started 10,000 lanes on 2 cores (load ~155)."""
    from hpo_kfp.pipeline.launch import local_lanes

    path = _experiment(tmp_path, maxTrialCount=10_000, parallelTrialCount=10_000, command=["--goal-at=0"])
    result = _run(path)
    assert result.returncode == 0, result.stdout + result.stderr
    cap = local_lanes()
    assert result.stdout.startswith(
        f"lanes: parallelTrialCount 10000 is more than this machine runs at once: {cap} lanes (4 per CPU) "
        "run the trials\n"
    )
    [log] = (tmp_path / "runs" / "lanes").glob("*/kfp-local.log")
    assert _tasks(log).count("lane") == cap
    outcome = json.loads(result.stdout.splitlines()[-1])
    # The run stopped at the goal, not 10,000 trials later. How many trials the other lanes
    # claimed before trial 0's result was recorded depends on the machine's load (10 of 8
    # lanes once, in a full run): a few each at most.
    assert outcome["reason"] == "GoalReached" and outcome["trials"]["total"] < 100


@pytest.mark.parametrize("flag", ["--trials-per-run=-1"])
def test_a_negative_share_is_refused(tmp_path: Path, flag: str) -> None:
    result = _run(_experiment(tmp_path), flag)
    assert result.returncode == 2
    assert result.stderr == "--trials-per-run: must be 0 (no limit) or more, but got -1\n"
