"""Each pipeline step, called as the components call it, on real files and a real store."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from hpo_kfp.errors import HpoKfpError
from hpo_kfp.history import History, TrialRecord
from hpo_kfp.spec import parse_experiment
from hpo_kfp.steps import SKIP, StepSettings, collect_metrics_step, decide_step, run_trial_step, suggest_step
from hpo_kfp.tracking import open_tracker
from tests.conftest import base_spec

_SPEC = yaml.safe_dump(base_spec())  # parallelTrialCount 2, maxTrialCount 8, minimize loss, goal 0.001


def _history(path: Path) -> History:
    return History.from_json(path.read_text())


def test_first_round_proposes_parallel_trials(tmp_path: Path) -> None:
    items = suggest_step(_SPEC, None, str(tmp_path / "h.json"))
    trials = [json.loads(item) for item in items]
    assert [t["name"] for t in trials] == ["demo-0000", "demo-0001"]
    assert isinstance(trials[0]["parameters"]["layers"], int)
    assert [t.status for t in _history(tmp_path / "h.json").trials] == ["Pending", "Pending"]


def test_budget_limits_the_last_round(tmp_path: Path) -> None:
    experiment = parse_experiment(_SPEC)
    records = [
        TrialRecord(
            name=f"demo-{i:04d}",
            number=i,
            parameters={"lr": 0.02, "layers": 3, "optimizer": "sgd"},
            status="Succeeded",
            values=(0.5 + i,),
        )
        for i in range(7)
    ]
    (tmp_path / "in.json").write_text(History(experiment=experiment.name, trials=tuple(records)).to_json())
    assert len(suggest_step(_SPEC, str(tmp_path / "in.json"), str(tmp_path / "out.json"))) == 1


def test_a_done_experiment_gets_one_skip_item(tmp_path: Path) -> None:
    done = TrialRecord(
        name="demo-0000",
        number=0,
        parameters={"lr": 0.02, "layers": 3, "optimizer": "sgd"},
        status="Succeeded",
        values=(0.0001,),
    )
    (tmp_path / "in.json").write_text(History(experiment="demo", trials=(done,)).to_json())
    assert suggest_step(_SPEC, str(tmp_path / "in.json"), str(tmp_path / "out.json")) == [SKIP]
    assert _history(tmp_path / "out.json").trials == (done,)


def test_first_round_warm_starts_from_the_store(tmp_path: Path) -> None:
    settings = StepSettings(tracking=f"sqlite://{tmp_path}/mlmd.sqlite")
    tracker = settings.tracker()
    assert tracker is not None
    prior = TrialRecord(
        name="demo-0000",
        number=0,
        parameters={"lr": 0.02, "layers": 3, "optimizer": "sgd"},
        status="Succeeded",
        values=(0.5,),
    )
    tracker.save_trial(parse_experiment(_SPEC), prior)
    items = suggest_step(_SPEC, None, str(tmp_path / "h.json"), settings.to_json())
    assert [json.loads(i)["name"] for i in items] == ["demo-0001", "demo-0002"]
    assert _history(tmp_path / "h.json").trials[0] == prior


def test_run_collect_decide_for_one_local_trial(tmp_path: Path) -> None:
    document = base_spec()
    container = document["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = [
        "python3",
        "-c",
        "import sys; print('loss=0.25 accuracy=0.9', sys.argv[1:])",
        "${trialParameters.learningRate}",
        "${trialParameters.numberLayers}",
        "${trialParameters.optimizer}",
    ]
    spec = yaml.safe_dump(document)
    settings = StepSettings(tracking=f"sqlite://{tmp_path}/mlmd.sqlite", trial_cwd=str(tmp_path)).to_json()
    items = suggest_step(spec, None, str(tmp_path / "h1.json"), settings)
    log, metrics = tmp_path / "log", tmp_path / "metrics"
    result = run_trial_step(spec, items[0], str(log), str(metrics), settings)
    assert json.loads(result)["run"]["exit_code"] == 0
    record, shown = collect_metrics_step(spec, result, str(log), str(metrics), settings, "run-1")
    assert json.loads(record)["status"] == "Succeeded"
    assert shown == {"loss": 0.25, "accuracy": 0.9, "trial-number": 0.0}
    done = decide_step(
        spec,
        str(tmp_path / "h1.json"),
        [record, SKIP],
        str(tmp_path / "h2.json"),
        settings,
        str(tmp_path / "d"),
    )
    decision = json.loads((tmp_path / "d").read_text())
    assert done is False and decision["done"] is False and decision["best"]["name"] == "demo-0000"
    assert [t.status for t in _history(tmp_path / "h2.json").trials] == ["Succeeded", "Pending"]
    tracker = StepSettings.from_json(settings).tracker()
    assert tracker is not None
    [summary] = tracker.experiments()
    assert (summary.best_trial, summary.trials) == ("demo-0000", 2)


def test_skip_items_pass_through_run_and_collect(tmp_path: Path) -> None:
    log, metrics = tmp_path / "log", tmp_path / "metrics"
    assert run_trial_step(_SPEC, SKIP, str(log), str(metrics)) == SKIP
    assert log.read_text() == "" and metrics.read_text() == ""
    assert collect_metrics_step(_SPEC, SKIP, str(log), str(metrics)) == (SKIP, {})


def test_decide_reports_the_goal(tmp_path: Path) -> None:
    pending = TrialRecord(
        name="demo-0000", number=0, parameters={"lr": 0.02, "layers": 3, "optimizer": "sgd"}
    )
    (tmp_path / "in.json").write_text(History(experiment="demo", trials=(pending,)).to_json())
    record = json.dumps(
        replace(pending, status="Succeeded", values=(0.0005,), metrics={"loss": 0.0005}).to_dict()
    )
    done = decide_step(
        _SPEC, str(tmp_path / "in.json"), [record], str(tmp_path / "out.json"), "", str(tmp_path / "d")
    )
    decision = json.loads((tmp_path / "d").read_text())
    assert done is True
    assert (decision["done"], decision["status"], decision["reason"]) == (True, "Succeeded", "GoalReached")
    assert decision["trials"]["succeeded"] == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"runer": "local"}', r"settings: unknown keys \['runer'\]"),
        ('{"runner": "docker"}', r"settings.runner: must be local or kubernetes, but got 'docker'"),
    ],
    ids=["unknown-key", "bad-runner"],
)
def test_settings_are_checked(text: str, message: str) -> None:
    with pytest.raises(HpoKfpError, match=message):
        StepSettings.from_json(text)


def test_settings_round_trip() -> None:
    settings = StepSettings(runner="kubernetes", tracking="grpc://m:8080", namespace="ns")
    assert StepSettings.from_json(settings.to_json()) == settings
    assert StepSettings.from_json("").tracker() is None
    assert open_tracker is not None


def test_sampler_state_survives_a_round_of_steps(tmp_path: Path) -> None:
    """CMA-ES keeps its optimizer on trials: run_trial, collect and decide must carry it."""
    document = base_spec()
    document["spec"]["algorithm"] = {"algorithmName": "cmaes"}
    document["spec"]["parameters"] = [
        {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.01", "max": "0.05"}},
        {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": "2", "max": "5"}},
        {"name": "optimizer", "parameterType": "categorical", "feasibleSpace": {"list": ["sgd", "adam"]}},
    ]
    container = document["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = [
        "python3",
        "-c",
        "print('loss=0.5')",
        "${trialParameters.learningRate}",
        "${trialParameters.numberLayers}",
        "${trialParameters.optimizer}",
    ]
    spec = yaml.safe_dump(document)
    settings = StepSettings(tracking=f"sqlite://{tmp_path}/mlmd.sqlite", trial_cwd=str(tmp_path)).to_json()
    previous = None
    for round_index in range(2):  # CMA-ES samples its first trial at random: look at round 2
        proposed_path, decided_path = tmp_path / f"p{round_index}.json", tmp_path / f"d{round_index}.json"
        items = suggest_step(spec, previous, str(proposed_path), settings)
        records = []
        for index, item in enumerate(items):
            log, metrics = tmp_path / f"log{round_index}{index}", tmp_path / f"metrics{round_index}{index}"
            result = run_trial_step(spec, item, str(log), str(metrics), settings)
            records.append(collect_metrics_step(spec, result, str(log), str(metrics), settings)[0])
        decide_step(spec, str(proposed_path), records, str(decided_path), settings, str(tmp_path / "d"))
        previous = str(decided_path)
    proposed = _history(proposed_path).trials
    decided = _history(decided_path).trials
    assert all("cma:generation" in t.sampler_attrs for t in proposed[2:])
    assert [t.sampler_attrs for t in decided] == [t.sampler_attrs for t in proposed]
    tracker = StepSettings.from_json(settings).tracker()
    assert tracker is not None
    stored = tracker.load_history("demo").trials
    assert [t.sampler_attrs for t in stored] == [t.sampler_attrs for t in proposed]
