"""Trials added to the rebuilt study: a deep copy that shares only what cannot change."""

from __future__ import annotations

import copy

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from hpo_kfp.added_trial import added_trial


def _trial() -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(
        state=TrialState.COMPLETE,
        params={"x": 0.25, "kind": "adam"},
        distributions={"x": FloatDistribution(0, 1), "kind": CategoricalDistribution(["sgd", "adam"])},
        values=[1.5],
        system_attrs={"cma:generation": 2, "chunks": ["a", "b"]},
        intermediate_values={0: 3.0},
    )


def test_copy_equals_the_trial_and_shares_the_distributions() -> None:
    made = _trial()
    original = added_trial(made)
    copied = copy.deepcopy(original)
    assert copied == original == made
    assert isinstance(copied, optuna.trial.FrozenTrial)
    assert copied.distributions["x"] is original.distributions["x"]


def test_changes_to_a_copy_do_not_reach_the_original() -> None:
    original = added_trial(_trial())
    copied = copy.deepcopy(original)
    copied.params["x"] = 0.75
    copied.system_attrs["chunks"].append("c")
    copied.intermediate_values[1] = 2.0
    copied.values = [9.0]
    assert original.params["x"] == 0.25
    assert original.system_attrs["chunks"] == ["a", "b"]
    assert original.intermediate_values == {0: 3.0}
    assert original.values == [1.5]


def test_a_study_built_from_added_trials_samples_as_from_plain_ones() -> None:
    def study_with(wrap: bool) -> optuna.Study:
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=3, n_startup_trials=2))
        for i in range(6):
            trial = optuna.trial.create_trial(
                state=TrialState.COMPLETE,
                params={"x": i / 6},
                distributions={"x": FloatDistribution(0, 1)},
                values=[(i / 6 - 0.4) ** 2],
            )
            study.add_trial(added_trial(trial) if wrap else trial)
        return study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    plain, added = study_with(False), study_with(True)
    asked = [
        (plain.ask({"x": FloatDistribution(0, 1)}).params, added.ask({"x": FloatDistribution(0, 1)}).params)
    ]
    assert asked[0][0] == asked[0][1]
    assert [(t.params, t.values, t.state) for t in added.trials] == [
        (t.params, t.values, t.state) for t in plain.trials
    ]
