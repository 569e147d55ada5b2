"""Stateless suggest: right values, deterministic, no repeats, and samplers that keep learning."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest

from hpo_kfp.history import History, TrialRecord
from hpo_kfp.spec import Experiment, parse_experiment
from hpo_kfp.suggest import suggest
from tests.conftest import base_spec, with_field

_ALGORITHMS = ["random", "grid", "tpe", "multivariate-tpe", "cmaes", "sobol", "nsga2", "bayesianoptimization"]


def _experiment(
    algorithm: str, *, max_trials: int = 100, parameters: list[dict[str, Any]] | None = None
) -> Experiment:
    document = base_spec()
    document["spec"]["algorithm"] = {"algorithmName": algorithm}
    document["spec"]["maxTrialCount"] = max_trials
    document["spec"]["parameters"] = parameters or [
        {
            "name": "lr",
            "parameterType": "double",
            "feasibleSpace": {"min": "0.001", "max": "0.1", "distribution": "logUniform"},
        },
        {
            "name": "momentum",
            "parameterType": "double",
            "feasibleSpace": {"min": "0.5", "max": "0.9", "step": "0.05"},
        },
        {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": "2", "max": "10", "step": "2"}},
        {"name": "batch", "parameterType": "discrete", "feasibleSpace": {"list": ["16", "32", "64"]}},
        {"name": "optimizer", "parameterType": "categorical", "feasibleSpace": {"list": ["sgd", "adam"]}},
    ]
    if algorithm == "grid" and parameters is None:
        # grid needs a step on every double; 5 x 9 x 5 x 3 x 2 = 1350 points
        document["spec"]["parameters"][0]["feasibleSpace"] = {"min": "0.01", "max": "0.05", "step": "0.01"}
    references = [{"name": p["name"], "reference": p["name"]} for p in document["spec"]["parameters"]]
    document["spec"]["trialTemplate"]["trialParameters"] = references
    container = document["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = ["python3", "train.py"] + [
        f"--{r['name']}=${{trialParameters.{r['name']}}}" for r in references
    ]
    return parse_experiment(document)


def _loss(parameters: dict[str, Any]) -> float:
    lr = parameters.get("lr", 0.01)
    return (math.log10(lr) + 2) ** 2 + (parameters.get("momentum", 0.7) - 0.7) ** 2


def _run(experiment: Experiment, rounds: int, batch: int, loss: Any = _loss) -> History:
    history = History(experiment=experiment.name)
    for _ in range(rounds):
        created, history = suggest(experiment, history, batch)
        history = history.upsert(
            replace(t, status="Succeeded", values=(loss(t.parameters),)) for t in created
        )
    return history


@pytest.mark.parametrize("algorithm", _ALGORITHMS)
def test_values_are_in_bounds_on_the_step_grid_and_typed(algorithm: str) -> None:
    history = _run(_experiment(algorithm), rounds=6, batch=4)
    assert len(history.trials) == 24
    for trial in history.trials:
        p = trial.parameters
        assert isinstance(p["lr"], float) and 0.001 <= p["lr"] <= 0.1
        assert isinstance(p["momentum"], float) and 0.5 <= p["momentum"] <= 0.9
        assert round((p["momentum"] - 0.5) / 0.05, 9).is_integer()
        assert p["momentum"] == round(p["momentum"], 2)
        assert type(p["layers"]) is int and p["layers"] in (2, 4, 6, 8, 10)
        assert type(p["batch"]) is int and p["batch"] in (16, 32, 64)
        assert p["optimizer"] in ("sgd", "adam")


@pytest.mark.parametrize("algorithm", _ALGORITHMS)
def test_same_history_gives_same_suggestions(algorithm: str) -> None:
    experiment = _experiment(algorithm)
    history = _run(experiment, rounds=3, batch=4)
    first, _ = suggest(experiment, history, 4)
    again, _ = suggest(experiment, History.from_json(history.to_json()), 4)
    assert [t.parameters for t in first] == [t.parameters for t in again]
    assert [t.name for t in first] == ["demo-0012", "demo-0013", "demo-0014", "demo-0015"]


@pytest.mark.parametrize("algorithm", _ALGORITHMS)
def test_no_repeated_configuration_over_25_rounds_of_4(algorithm: str) -> None:
    parameters = [
        {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "-5", "max": "5"}},
        {"name": "y", "parameterType": "double", "feasibleSpace": {"min": "-5", "max": "5"}},
    ]
    if algorithm == "grid":
        for p in parameters:
            p["feasibleSpace"]["step"] = "0.5"  # 21 x 21 = 441 points
    experiment = _experiment(algorithm, parameters=parameters)
    history = History(experiment=experiment.name)
    for _ in range(25):
        created, history = suggest(experiment, history, 4)
        history = history.upsert(
            replace(t, status="Succeeded", values=(t.parameters["x"] ** 2 + t.parameters["y"] ** 2,))
            for t in created
        )
    points = [tuple(t.parameters.values()) for t in history.trials]
    assert len(points) == 100
    assert len(set(points)) == 100


def test_a_different_seed_gives_different_suggestions() -> None:
    experiment = _experiment("tpe")
    seeded = replace(experiment, algorithm=replace(experiment.algorithm, seed=7))
    a, _ = suggest(experiment, History(experiment="demo"), 4)
    b, _ = suggest(seeded, History(experiment="demo"), 4)
    assert [t.parameters for t in a] != [t.parameters for t in b]


def test_cmaes_keeps_learning_across_calls() -> None:
    experiment = _experiment(
        "cmaes",
        parameters=[
            {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "-5", "max": "5"}},
            {"name": "y", "parameterType": "double", "feasibleSpace": {"min": "-5", "max": "5"}},
        ],
    )
    history = _run(experiment, rounds=15, batch=4, loss=lambda p: (p["x"] - 1.5) ** 2 + (p["y"] + 0.5) ** 2)
    generations = [t.sampler_attrs.get("cma:generation") for t in history.trials]
    # Each call restores the optimizer from the history, so generations advance...
    assert max(g for g in generations if g is not None) >= 5
    holders = [t for t in history.trials if any(k.startswith("cma:optimizer") for k in t.sampler_attrs)]
    assert len(holders) == 1  # the one copy CMA-ES can read; older ones are dropped
    # ...and the search closes in: the last batches beat the first ones.
    values = [t.objective for t in history.trials if t.objective is not None]
    assert sorted(values[-12:])[6] < sorted(values[:12])[6] / 5


def test_sobol_continues_its_sequence_across_calls() -> None:
    experiment = _experiment("sobol")
    history = _run(experiment, rounds=4, batch=4)
    counters = [v for k, v in history.study_attrs.items() if k.startswith("qmc:")]
    assert counters and counters[0] >= 14
    sampled = sorted(round(t.parameters["momentum"], 2) for t in history.trials[1:])
    # A continued Sobol sequence covers the range instead of replaying its first points.
    assert len(set(sampled)) >= 6


def test_grid_never_repeats_a_pending_point_and_stops_at_the_end() -> None:
    experiment = _experiment(
        "grid",
        max_trials=12,
        parameters=[
            {"name": "x", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "4"}},
            {"name": "y", "parameterType": "categorical", "feasibleSpace": {"list": ["a", "b", "c"]}},
        ],
    )
    history = History(experiment=experiment.name)
    for _ in range(3):  # three batches left pending
        _, history = suggest(experiment, history, 4)
    assert len({tuple(t.parameters.values()) for t in history.trials}) == 12
    more, _ = suggest(experiment, history, 4)
    assert more == []


def test_pending_trials_steer_a_batch_away() -> None:
    experiment = _experiment(
        "tpe",
        parameters=[
            {
                "name": "lr",
                "parameterType": "double",
                "feasibleSpace": {"min": "0.001", "max": "0.1", "distribution": "logUniform"},
            }
        ],
    )
    finished = _run(experiment, rounds=5, batch=4)
    best = min(finished.trials, key=lambda t: t.objective or math.inf).parameters["lr"]
    pending = [TrialRecord(name=f"p{i}", number=100 + i, parameters={"lr": best}) for i in range(10)]
    without, _ = suggest(experiment, finished, 4)
    with_pending, _ = suggest(experiment, finished.upsert(pending), 4)

    def distance(trials: list[TrialRecord]) -> float:
        return sorted(abs(math.log10(t.parameters["lr"] / best)) for t in trials)[2]

    # Running trials count as bad (constant liar): the batch moves off the busy spot.
    assert distance(with_pending) > distance(without)


def test_multi_objective_suggests_with_nsga2() -> None:
    document = with_field(
        base_spec(), "spec.objective.additionalObjectives", [{"metricName": "accuracy", "type": "maximize"}]
    )
    with_field(document, "spec.algorithm.algorithmName", "nsga2")
    with_field(document, "spec.maxTrialCount", 100)
    experiment = parse_experiment(document)
    history = History(experiment="demo")
    for _ in range(5):
        created, history = suggest(experiment, history, 8)
        history = history.upsert(
            replace(t, status="Succeeded", values=(t.parameters["lr"], t.parameters["layers"] / 10))
            for t in created
        )
    assert len(history.trials) == 40
    assert any(k == "NSGAIISampler:generation" for t in history.trials for k in t.sampler_attrs)


def test_failed_and_out_of_space_trials_do_not_break_suggest() -> None:
    experiment = _experiment("tpe")
    history = _run(experiment, rounds=3, batch=4)
    odd = TrialRecord(
        name="imported", number=50, parameters={"lr": 5.0}, status="Succeeded", values=(0.1,), origin="import"
    )
    failed = replace(history.trials[0], name="f", number=51, status="Failed", values=None)
    created, _ = suggest(experiment, history.upsert([odd, failed]), 4)
    assert len(created) == 4
    assert created[0].number == 52


def test_sobol_random_state_chooses_the_sequence() -> None:
    experiment = _experiment("sobol")
    seeded = replace(experiment, algorithm=replace(experiment.algorithm, seed=11))
    a, _ = suggest(experiment, History(experiment="demo"), 3)
    b, _ = suggest(seeded, History(experiment="demo"), 3)
    assert [t.parameters["lr"] for t in a] != [t.parameters["lr"] for t in b]
