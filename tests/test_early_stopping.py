"""Median stopping: the rule from succeeded trials, and when it stops a running trial."""

from __future__ import annotations

import pytest

from hpo_kfp.early_stopping import StopRule, StopWatch, stop_rule
from hpo_kfp.history import History, TrialRecord
from hpo_kfp.metrics import MetricLog
from hpo_kfp.spec import parse_experiment
from tests.conftest import base_spec, with_field


def _experiment(direction: str = "minimize") -> object:
    document = with_field(
        base_spec(),
        "spec.earlyStopping",
        {
            "algorithmName": "medianstop",
            "algorithmSettings": [
                {"name": "min_trials_required", "value": "3"},
                {"name": "start_step", "value": "2"},
            ],
        },
    )
    with_field(document, "spec.objective.type", direction)
    return parse_experiment(document)


def _trial(number: int, losses: list[float], status: str = "Succeeded") -> TrialRecord:
    return TrialRecord(
        name=f"t{number}",
        number=number,
        parameters={},
        status=status,  # type: ignore[arg-type]
        values=(losses[-1],),
        series={"loss": [(None, v) for v in losses]},
    )


def test_no_rule_until_enough_trials_succeeded() -> None:
    experiment = _experiment()
    history = History(
        experiment="demo", trials=(_trial(0, [4, 2]), _trial(1, [6, 3]), _trial(2, [9], "Failed"))
    )
    assert stop_rule(experiment, history) is None  # type: ignore[arg-type]


def test_rule_is_the_median_of_first_start_step_averages() -> None:
    experiment = _experiment()
    trials = (_trial(0, [4, 2, 0.1]), _trial(1, [6, 4, 0.1]), _trial(2, [10, 8]), _trial(3, [1], "Failed"))
    rule = stop_rule(experiment, History(experiment="demo", trials=trials))  # type: ignore[arg-type]
    # averages over the first 2 values: 3, 5, 9 -> median 5 (Katib's mean would be 5.67)
    assert rule == StopRule(metric="loss", median=5.0, direction="minimize", start_step=2, trials=3)


@pytest.mark.parametrize(
    ("direction", "values", "stops_at"),
    [
        ("minimize", [9, 8, 7, 6], 2),
        ("minimize", [9, 4, 7, 6], None),
        ("minimize", [4, 9, 9], None),
        ("maximize", [1, 2, 3], 2),
        ("maximize", [1, 6, 2], None),
        ("minimize", [float("nan"), 9, 8], 3),
    ],
    ids=[
        "worse-stops-at-start-step",
        "better-runs-on",
        "best-so-far-counts",
        "maximize-worse",
        "maximize-better",
        "nan-is-no-step",
    ],
)
def test_stop_watch(direction: str, values: list[float], stops_at: int | None) -> None:
    watch = StopWatch(StopRule(metric="loss", median=5.0, direction=direction, start_step=2, trials=3))  # type: ignore[arg-type]
    stopped = None
    for step, value in enumerate(values, start=1):
        if watch.feed([MetricLog("accuracy", 0.1), MetricLog("loss", value)]):
            stopped = step
            break
    assert stopped == stops_at
    if stops_at is not None:
        assert watch.reason.startswith("best loss=") and "than the median 5 of 3" in watch.reason
