"""Katib's stop rules, in Katib's order, and the best trial."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hpo_kfp.decide import decide, pareto_front
from hpo_kfp.history import History, TrialRecord
from hpo_kfp.spec import Experiment, parse_experiment
from tests.conftest import base_spec, with_field


def _experiment(**fields: object) -> Experiment:
    document = base_spec()  # minimize loss, goal 0.001, maxTrialCount 8, maxFailedTrialCount 3
    for path, value in fields.items():
        with_field(document, path.replace("__", "."), value)
    return parse_experiment(document)


def _trial(number: int, status: str = "Succeeded", value: float | None = None) -> TrialRecord:
    values = (value,) if value is not None else None
    return TrialRecord(
        name=f"demo-{number:04d}",
        number=number,
        parameters={"lr": 0.01, "layers": 2, "optimizer": "sgd"},
        status=status,
        values=values,
    )  # type: ignore[arg-type]


def _history(*trials: TrialRecord) -> History:
    return History(experiment="demo", trials=trials)


def test_running_experiment_reports_best_so_far() -> None:
    decision = decide(
        _experiment(), _history(_trial(0, value=0.5), _trial(1, value=0.2), _trial(2, "Pending"))
    )
    assert (decision.done, decision.status, decision.reason) == (False, "Running", None)
    assert decision.best is not None and decision.best.name == "demo-0001"
    assert decision.counts["active"] == 1


def test_goal_reached() -> None:
    decision = decide(_experiment(), _history(_trial(0, value=0.5), _trial(1, value=0.0005)))
    assert (decision.done, decision.status, decision.reason) == (True, "Succeeded", "GoalReached")


def test_goal_for_maximize_is_at_least() -> None:
    experiment = _experiment(spec__objective__type="maximize", spec__objective__goal=0.9)
    assert decide(experiment, _history(_trial(0, value=0.9))).reason == "GoalReached"
    assert decide(experiment, _history(_trial(0, value=0.89))).reason is None


def test_max_trials_counts_every_finished_trial() -> None:
    trials = [_trial(i, value=0.5) for i in range(5)] + [
        _trial(5, "Failed"),
        _trial(6, "MetricsUnavailable"),
        _trial(7, "EarlyStopped"),
    ]
    decision = decide(_experiment(), _history(*trials))
    assert (decision.status, decision.reason) == ("Succeeded", "MaxTrialsReached")
    assert decision.counts == {
        "succeeded": 5,
        "failed": 1,
        "metricsUnavailable": 1,
        "earlyStopped": 1,
        "active": 0,
        "total": 8,
        "imported": 0,
    }


def test_active_trials_do_not_count_towards_max_trials() -> None:
    trials = [_trial(i, value=0.5) for i in range(7)] + [_trial(7, "Running")]
    assert not decide(_experiment(), _history(*trials)).done


def test_failed_and_unavailable_count_towards_max_failed() -> None:
    trials = [_trial(0, "Failed"), _trial(1, "MetricsUnavailable"), _trial(2, "Failed"), _trial(3, value=0.3)]
    decision = decide(_experiment(), _history(*trials))
    assert (decision.status, decision.reason) == ("Failed", "MaxFailedTrialsReached")
    assert decision.best is not None and decision.best.objective == 0.3


def test_goal_is_checked_before_failures() -> None:
    trials = [_trial(0, "Failed"), _trial(1, "Failed"), _trial(2, "Failed"), _trial(3, value=0.0001)]
    assert decide(_experiment(), _history(*trials)).reason == "GoalReached"


def test_zero_max_failed_stops_at_the_first_failure_and_unset_never() -> None:
    assert (
        decide(_experiment(spec__maxFailedTrialCount=0), _history(_trial(0, "Failed"))).reason
        == "MaxFailedTrialsReached"
    )
    assert decide(_experiment(spec__maxFailedTrialCount=0), _history(_trial(0, value=1.0))).reason is None
    unset = _experiment(spec__maxFailedTrialCount=...)
    assert not decide(unset, _history(*[_trial(i, "Failed") for i in range(7)])).done


def test_grid_exhausted_is_suggestion_end() -> None:
    experiment = _experiment(
        spec__algorithm__algorithmName="grid",
        spec__maxTrialCount=8,
        spec__parameters__0__feasibleSpace__step="0.04",
    )  # 2 x 4 x 3 = 24 points
    experiment = replace(experiment, max_trial_count=30)  # as if the budget were larger than the grid
    trials = [_trial(i, value=0.5) for i in range(24)]
    assert decide(experiment, _history(*trials)).reason == "SuggestionEndReached"


@pytest.mark.parametrize("status", ["Failed", "EarlyStopped", "Pending"])
def test_only_succeeded_trials_can_be_best(status: str) -> None:
    trial = replace(_trial(1, status, 0.1), values=(0.1,))
    decision = decide(_experiment(), _history(_trial(0, value=0.5), trial))
    assert decision.best is not None and decision.best.number == 0


def test_pareto_front_and_best_for_several_objectives() -> None:
    experiment = _experiment(
        spec__objective__additionalObjectives=[{"metricName": "latency", "type": "minimize"}],
        spec__algorithm__algorithmName="nsga2",
    )
    trials = [
        replace(_trial(i), values=v)
        for i, v in enumerate([(0.5, 10.0), (0.4, 20.0), (0.6, 5.0), (0.6, 30.0)])
    ]
    front = pareto_front(experiment.objective, trials)
    assert [t.number for t in front] == [0, 1, 2]
    decision = decide(experiment, _history(*trials))
    assert [t.number for t in decision.pareto] == [0, 1, 2]
    assert decision.best is not None and decision.best.number == 1
