"""Stateless suggest matches Optuna's own stateful study on the same sampler.

Both sides run the same sampler class and settings on Branin, in batches of 4 (ask 4, tell
4), for the same seeds. Being stateless must not cost quality: the stateless median best
value must fall within the stateful runs' spread (at most their upper quartile). A sampler
whose state were lost between calls (CMA-ES restarting every round, for one) fails this.
"""

from __future__ import annotations

import math
import statistics
import warnings
from dataclasses import replace
from typing import Any

import optuna
import pytest

from hpo_kfp.algorithms import build_sampler
from hpo_kfp.history import History
from hpo_kfp.space import SearchSpace
from hpo_kfp.spec import Experiment, parse_experiment
from hpo_kfp.suggest import call_seed, suggest
from tests.conftest import base_spec

_SEEDS = range(9)
_EVALUATIONS = 40
_BATCH = 4


def _branin(p: dict[str, Any]) -> float:
    x, y = p["x"], p["y"]
    return float(
        (y - 5.1 / (4 * math.pi**2) * x * x + 5 / math.pi * x - 6) ** 2
        + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x)
        + 10
        - 0.397887
    )


def _experiment(algorithm: str, seed: int) -> Experiment:
    document = base_spec()
    spec = document["spec"]
    spec["algorithm"] = {
        "algorithmName": algorithm,
        "algorithmSettings": [{"name": "random_state", "value": str(seed)}],
    }
    spec["maxTrialCount"] = _EVALUATIONS
    spec["parameters"] = [
        {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "-5", "max": "10"}},
        {"name": "y", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "15"}},
    ]
    spec["trialTemplate"]["trialParameters"] = [
        {"name": "x", "reference": "x"},
        {"name": "y", "reference": "y"},
    ]
    container = spec["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = ["train", "${trialParameters.x}", "${trialParameters.y}"]
    return parse_experiment(document)


def _stateless(experiment: Experiment) -> float:
    history = History(experiment=experiment.name)
    while len(history.trials) < _EVALUATIONS:
        created, history = suggest(experiment, history, _BATCH)
        history = history.upsert(
            replace(t, status="Succeeded", values=(_branin(t.parameters),)) for t in created
        )
    return min(t.objective for t in history.trials if t.objective is not None)


def _stateful(experiment: Experiment) -> float:
    space = SearchSpace(experiment.parameters)
    sampler = build_sampler(
        experiment.algorithm.name, experiment.algorithm.settings, seed=call_seed(experiment, 0)
    )
    study = optuna.create_study(sampler=sampler)
    while len(study.trials) < _EVALUATIONS:
        batch = [study.ask(space.distributions()) for _ in range(_BATCH)]
        for trial in batch:
            study.tell(trial, _branin(space.to_external(trial.params)))
    return float(study.best_value)


@pytest.mark.parametrize("algorithm", ["tpe", "multivariate-tpe", "cmaes", "random", "bayesianoptimization"])
def test_stateless_is_not_worse_than_the_stateful_study(algorithm: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stateless = [_stateless(_experiment(algorithm, seed)) for seed in _SEEDS]
        stateful = [_stateful(_experiment(algorithm, seed)) for seed in _SEEDS]
    upper_quartile = statistics.quantiles(stateful, n=4)[2]
    assert statistics.median(stateless) <= upper_quartile, (stateless, stateful)
