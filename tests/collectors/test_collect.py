"""A finished trial's record: what its collector read, and why it has no result when it has none."""

from __future__ import annotations

import pytest

from hpo_kfp.collectors.collect import collect_trial
from hpo_kfp.history import TrialRecord, TrialRun
from hpo_kfp.spec import parse_experiment
from tests.conftest import base_spec

_RUN = TrialRun(name="demo-0000", exit_code=0, started="2026-01-01T00:00:00+00:00", finished="", reason="")


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ("epoch=1 loss=nan accuracy=0.5\n", "loss was NaN"),
        ("loss=inf\nloss=-inf\n", "loss was infinite"),
        ("accuracy=0.5\n", "objective metric 'loss' was not found in the trial's output"),
    ],
    ids=["nan", "infinite", "missing"],
)
def test_a_stdout_trial_without_a_finite_objective_says_why(output: str, reason: str) -> None:
    experiment = parse_experiment(base_spec())  # StdOut collector, objective loss
    trial = TrialRecord(name="demo-0000", number=0, parameters={"lr": 0.02})
    record = collect_trial(experiment, trial, _RUN, output)
    assert (record.status, record.reason, record.values) == ("MetricsUnavailable", reason, None)


def test_a_nan_among_finite_values_is_left_out_and_said() -> None:
    experiment = parse_experiment(base_spec())
    trial = TrialRecord(name="demo-0000", number=0, parameters={"lr": 0.02})
    record = collect_trial(experiment, trial, _RUN, "loss=0.5\nloss=nan\n")
    assert (record.status, record.values, record.reason) == (
        "Succeeded",
        (0.5,),
        "non-finite values left out (loss: 1)",
    )
