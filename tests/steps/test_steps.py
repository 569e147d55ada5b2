"""Each pipeline step, called as the components call it, on real files and a real store."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpo_kfp.collectors import EXECUTOR_OUTPUT
from hpo_kfp.collectors.collect import collect_trial
from hpo_kfp.collectors.kinds import executor_output
from hpo_kfp.errors import WireError
from hpo_kfp.history import History, TrialRecord, TrialRun, now
from hpo_kfp.spec import parse_experiment
from hpo_kfp.steps import StepSettings, collect_metrics_step, decide_step, run_trial_step, suggest_step
from hpo_kfp.store import ExperimentKey
from hpo_kfp.wire import DecisionDocument, NoTrial, RecordedTrial, RunResult, TrialItem, read
from tests.conftest import base_spec

_SPEC = yaml.safe_dump(base_spec())  # parallelTrialCount 2, maxTrialCount 8, minimize loss, goal 0.001


def _history(path: Path) -> History:
    return History.from_json(path.read_text())


def test_first_round_proposes_parallel_trials(tmp_path: Path) -> None:
    items = suggest_step(_SPEC, None, str(tmp_path / "h.json"))
    trials = [TrialItem.from_json(item) for item in items]
    assert [t.name for t in trials] == ["demo-0000", "demo-0001"]
    assert isinstance(trials[0].parameters["layers"], int)
    assert all(t.stop_rule is None for t in trials)
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


def test_a_done_experiment_gets_one_no_trial_item(tmp_path: Path) -> None:
    done = TrialRecord(
        name="demo-0000",
        number=0,
        parameters={"lr": 0.02, "layers": 3, "optimizer": "sgd"},
        status="Succeeded",
        values=(0.0001,),
    )
    (tmp_path / "in.json").write_text(History(experiment="demo", trials=(done,)).to_json())
    items = suggest_step(_SPEC, str(tmp_path / "in.json"), str(tmp_path / "out.json"))
    assert [read(item, TrialItem) for item in items] == [NoTrial()]
    assert _history(tmp_path / "out.json").trials == (done,)


def test_first_round_warm_starts_from_the_store(tmp_path: Path) -> None:
    settings = StepSettings(store=f"sqlite:///{tmp_path}/store.sqlite")
    store = settings.open_store()
    assert store is not None
    prior = TrialRecord(
        name="demo-0000",
        number=0,
        parameters={"lr": 0.02, "layers": 3, "optimizer": "sgd"},
        status="Succeeded",
        values=(0.5,),
    )
    experiment = parse_experiment(_SPEC)
    key = settings.experiment_key(experiment)
    store.open_experiment(experiment, key)
    store.record(key, prior)
    items = suggest_step(_SPEC, None, str(tmp_path / "h.json"), settings.to_json())
    assert [TrialItem.from_json(i).name for i in items] == ["demo-0001", "demo-0002"]
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
    settings = StepSettings(store=f"sqlite:///{tmp_path}/store.sqlite", trial_cwd=str(tmp_path)).to_json()
    items = suggest_step(spec, None, str(tmp_path / "h1.json"), settings)
    log, metrics = tmp_path / "log", tmp_path / "metrics"
    result = run_trial_step(spec, items[0], str(log), str(metrics), settings)
    assert RunResult.from_json(result).run.exit_code == 0
    record, shown = collect_metrics_step(spec, result, str(log), str(metrics), settings, "run-1")
    assert RecordedTrial.from_json(record).record.status == "Succeeded"
    assert shown == {"loss": 0.25, "accuracy": 0.9, "trial-number": 0.0}
    done = decide_step(
        spec,
        str(tmp_path / "h1.json"),
        [record, NoTrial().to_json()],
        str(tmp_path / "h2.json"),
        settings,
        str(tmp_path / "d"),
    )
    decision = json.loads((tmp_path / "d").read_text())  # a pipeline output: people read its keys
    assert done is False and decision["done"] is False and decision["best"]["name"] == "demo-0000"
    assert DecisionDocument.from_json((tmp_path / "d").read_text()).best is not None
    assert [t.status for t in _history(tmp_path / "h2.json").trials] == ["Succeeded", "Pending"]
    store = StepSettings.from_json(settings).open_store()
    assert store is not None
    [summary] = store.experiments()
    assert (summary.best_trial, summary.trials) == ("demo-0000", 2)


def test_the_no_trial_item_passes_through_run_and_collect(tmp_path: Path) -> None:
    log, metrics = tmp_path / "log", tmp_path / "metrics"
    result = run_trial_step(_SPEC, NoTrial().to_json(), str(log), str(metrics))
    assert read(result, RunResult) == NoTrial()
    assert log.read_text() == "" and metrics.read_text() == ""
    record, shown = collect_metrics_step(_SPEC, result, str(log), str(metrics))
    assert (read(record, RecordedTrial), shown) == (NoTrial(), {})


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (lambda p, text: run_trial_step(_SPEC, text, str(p / "log"), str(p / "m")), "trial-item version 9"),
        (
            lambda p, text: collect_metrics_step(_SPEC, text, str(p / "log"), str(p / "m")),
            "run-result version 9",
        ),
        (
            lambda p, text: decide_step(_SPEC, str(p / "in.json"), [text], str(p / "out.json")),
            "trial-record version 9",
        ),
    ],
    ids=["run_trial", "collect_metrics", "decide"],
)
def test_a_step_refuses_a_message_of_an_unknown_version(tmp_path: Path, step: Any, message: str) -> None:
    (tmp_path / "in.json").write_text(History(experiment="demo").to_json())
    kind = message.split(maxsplit=1)[0]
    text = json.dumps({"kind": kind, "version": 9})
    with pytest.raises(WireError, match=f"^{message}: this release of hpo-kfp reads version 1;"):
        step(tmp_path, text)


def test_run_trial_refuses_a_hand_built_item(tmp_path: Path) -> None:
    """An item of a release before the wire format (no kind, no version) is refused, not misread."""
    text = json.dumps({"name": "demo-0000", "number": 0, "parameters": {"lr": 0.02}})
    with pytest.raises(WireError, match=r"^trial-item: must be a JSON object with a kind and a version"):
        run_trial_step(_SPEC, text, str(tmp_path / "log"), str(tmp_path / "m"))


def _component_trial(
    item: str, metrics: dict[str, Any] | None = None, value: float | None = None
) -> TrialRecord:
    """The record of a KFP component trial whose executor output holds ``metrics`` (a
    Metrics output's metadata) and ``value`` (its float return)."""
    trial = TrialItem.from_json(item).record()
    run = TrialRun(name=trial.name, exit_code=0, started=now(), finished=now(), reason="")
    outputs = executor_output(metrics, value)
    return collect_trial(parse_experiment(_SPEC), trial, run, "", outputs, collector=EXECUTOR_OUTPUT)


def test_a_component_trial_records_the_reported_metrics(tmp_path: Path) -> None:
    [item] = suggest_step(_SPEC, None, str(tmp_path / "h.json"))[:1]
    recorded = _component_trial(item, metrics={"loss": 0.25, "accuracy": 0.9, "other": 1.0})
    assert (recorded.name, recorded.status, recorded.values) == ("demo-0000", "Succeeded", (0.25,))
    assert recorded.parameters == TrialItem.from_json(item).parameters
    assert recorded.metrics == {"loss": 0.25, "accuracy": 0.9}
    assert _component_trial(item, value=float("nan")).status == "MetricsUnavailable"


@pytest.mark.parametrize(
    ("reported", "reason"),
    [
        ({"loss": "NaN", "accuracy": 0.5}, "loss was NaN"),
        ({"loss": "-Infinity"}, "loss was infinite"),
        ({"loss": float("nan")}, "loss was NaN"),
        ({"accuracy": 0.5}, "objective metric 'loss' was not found in the trial's output"),
    ],
    ids=["nan-marker", "infinity-marker", "bare-nan", "missing"],
)
def test_a_component_trial_reads_non_finite_metrics(
    tmp_path: Path, reported: dict[str, Any], reason: str
) -> None:
    """What hpo_kfp.metrics.log_metric writes for NaN and ±inf, and a bare NaN as kfp's
    executor writes it (JSON's NaN), are recorded as such, not as missing."""
    [item] = suggest_step(_SPEC, None, str(tmp_path / "h.json"))[:1]
    recorded = _component_trial(item, metrics=reported)
    assert (recorded.status, recorded.reason, recorded.values) == ("MetricsUnavailable", reason, None)


def test_decide_reports_the_goal(tmp_path: Path) -> None:
    pending = TrialRecord(
        name="demo-0000", number=0, parameters={"lr": 0.02, "layers": 3, "optimizer": "sgd"}
    )
    (tmp_path / "in.json").write_text(History(experiment="demo", trials=(pending,)).to_json())
    record = RecordedTrial(
        record=replace(pending, status="Succeeded", values=(0.0005,), metrics={"loss": 0.0005})
    ).to_json()
    done = decide_step(
        _SPEC, str(tmp_path / "in.json"), [record], str(tmp_path / "out.json"), "", str(tmp_path / "d")
    )
    decision = json.loads((tmp_path / "d").read_text())
    assert done is True
    assert (decision["done"], decision["status"], decision["reason"]) == (True, "Succeeded", "GoalReached")
    assert decision["trials"]["succeeded"] == 1


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
    settings = StepSettings(store=f"sqlite:///{tmp_path}/store.sqlite", trial_cwd=str(tmp_path)).to_json()
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
    store = StepSettings.from_json(settings).open_store()
    assert store is not None
    stored = store.history(ExperimentKey("kubeflow", "demo")).trials
    assert [t.sampler_attrs for t in stored] == [t.sampler_attrs for t in proposed]


def test_a_runs_first_round_hands_out_trials_whose_claimer_went_quiet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = StepSettings(store=f"sqlite:///{tmp_path}/store.sqlite", stale_seconds=600).to_json()
    first = suggest_step(_SPEC, None, str(tmp_path / "h1.json"), settings, run_id="run-1")
    lost = [TrialItem.from_json(item) for item in first]
    # run-1 is gone (its pods evicted): a later run starts within the grace period...
    soon = suggest_step(_SPEC, None, str(tmp_path / "h2.json"), settings, run_id="run-2")
    assert [TrialItem.from_json(item).number for item in soon] == [2, 3]
    # ...and one an hour on, when run-1's trials have sent no heartbeat for that long.
    later = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: later)
    again = suggest_step(_SPEC, None, str(tmp_path / "h3.json"), settings, run_id="run-3")
    assert [(i.name, i.parameters) for i in map(TrialItem.from_json, again)] == [
        (i.name, i.parameters) for i in lost
    ]


def test_a_running_trial_sends_heartbeats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    document = base_spec()
    container = document["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = [
        "python3",
        "-c",
        "print('loss=0.25')",
        "${trialParameters.learningRate}",
        "${trialParameters.numberLayers}",
        "${trialParameters.optimizer}",
    ]
    spec = yaml.safe_dump(document)
    settings = StepSettings(store=f"sqlite:///{tmp_path}/store.sqlite", trial_cwd=str(tmp_path)).to_json()
    running, waiting = suggest_step(spec, None, str(tmp_path / "h.json"), settings, run_id="run-1")
    later = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: later)  # the trial runs an hour after its claim
    run_trial_step(spec, running, str(tmp_path / "log"), str(tmp_path / "metrics"), settings)
    store = StepSettings.from_json(settings).open_store()
    assert store is not None
    # Only the trial that never ran has gone quiet for the grace period.
    assert store.release(ExperimentKey("kubeflow", "demo"), older_than=600) == [
        TrialItem.from_json(waiting).name
    ]
