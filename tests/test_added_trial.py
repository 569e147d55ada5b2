"""Trials added to the rebuilt study: made as create_trial makes them, copied cheaply."""

from __future__ import annotations

import copy

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from hpo_kfp.added_trial import added_trial

_SPACE = {"x": FloatDistribution(0, 1), "kind": CategoricalDistribution(["sgd", "adam"])}


def _fields(trial: optuna.trial.FrozenTrial) -> dict[str, object]:
    """Everything but the times (create_trial stamps its own)."""
    return {k: v for k, v in trial.__dict__.items() if "datetime" not in k}


def test_made_as_create_trial_makes_it() -> None:
    options = {
        "params": {"x": 0.25, "kind": "adam"},
        "distributions": _SPACE,
        "values": [1.5],
        "system_attrs": {"cma:generation": 2},
        "intermediate_values": {0: 3.0},
    }
    ours = added_trial(TrialState.COMPLETE, **options)  # type: ignore[arg-type]
    theirs = optuna.trial.create_trial(state=TrialState.COMPLETE, **options)  # type: ignore[arg-type]
    assert _fields(ours) == _fields(theirs)
    assert ours.datetime_complete == ours.datetime_start is not None
    running = added_trial(TrialState.RUNNING, params={"x": 0.5}, distributions={"x": _SPACE["x"]})
    assert running.datetime_start is not None and running.datetime_complete is None
    assert _fields(added_trial(TrialState.FAIL)) == _fields(optuna.trial.create_trial(state=TrialState.FAIL))


def test_a_copy_shares_the_distributions_but_not_what_can_change() -> None:
    original = added_trial(
        TrialState.COMPLETE,
        params={"x": 0.25, "kind": "adam"},
        distributions=_SPACE,
        values=[1.5],
        system_attrs={"chunks": ["a", "b"]},
        intermediate_values={0: 3.0},
    )
    copied = copy.deepcopy(original)
    assert copied == original and isinstance(copied, optuna.trial.FrozenTrial)
    assert copied.distributions["x"] is original.distributions["x"]
    copied.params["x"] = 0.75
    copied.system_attrs["chunks"].append("c")
    copied.intermediate_values[1] = 2.0
    copied.values = [9.0]
    assert original.params["x"] == 0.25
    assert original.system_attrs["chunks"] == ["a", "b"]
    assert original.intermediate_values == {0: 3.0}
    assert original.values == [1.5]


def test_a_study_of_added_trials_samples_as_one_of_created_trials() -> None:
    def study_with(make: object) -> optuna.Study:
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=3, n_startup_trials=2))
        for i in range(6):
            options = {
                "params": {"x": i / 6},
                "distributions": {"x": _SPACE["x"]},
                "values": [(i / 6 - 0.4) ** 2],
            }
            if make is added_trial:
                study.add_trial(added_trial(TrialState.COMPLETE, **options))  # type: ignore[arg-type]
            else:
                study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, **options))  # type: ignore[arg-type]
        return study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    created, added = study_with(None), study_with(added_trial)
    space = {"x": _SPACE["x"]}
    assert [created.ask(space).params for _ in range(3)] == [added.ask(space).params for _ in range(3)]
    assert [_fields(t) for t in added.trials] == [_fields(t) for t in created.trials]
