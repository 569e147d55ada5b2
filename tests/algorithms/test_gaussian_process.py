"""``bayesianoptimization``: a Gaussian process on numpy and scipy that takes Katib's settings."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import replace
from typing import Any

import pytest

from hpo_kfp.errors import SpecError
from hpo_kfp.history import History
from hpo_kfp.spec import Experiment, parse_experiment
from hpo_kfp.suggest import suggest
from tests.conftest import base_spec

_BRANIN_MINIMUM = 0.397887


def _branin(p: dict[str, Any]) -> float:
    x, y = p["x"], p["y"]
    return (
        (y - 5.1 / (4 * math.pi**2) * x * x + 5 / math.pi * x - 6) ** 2
        + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x)
        + 10
    )


def _experiment(
    settings: dict[str, str] | None = None,
    *,
    algorithm: str = "bayesianoptimization",
    goal: str = "minimize",
    parameters: list[dict[str, Any]] | None = None,
) -> Experiment:
    document = base_spec()
    spec = document["spec"]
    spec["objective"]["type"] = goal
    spec["algorithm"] = {
        "algorithmName": algorithm,
        "algorithmSettings": [{"name": k, "value": v} for k, v in (settings or {}).items()],
    }
    spec["maxTrialCount"] = 100
    spec["parameters"] = parameters or [
        {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "-5", "max": "10"}},
        {"name": "y", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "15"}},
    ]
    names = [p["name"] for p in spec["parameters"]]
    spec["trialTemplate"]["trialParameters"] = [{"name": n, "reference": n} for n in names]
    container = spec["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = ["train", *[f"${{trialParameters.{n}}}" for n in names]]
    return parse_experiment(document)


def _tune(experiment: Experiment, evaluations: int, loss: Any = _branin, batch: int = 4) -> History:
    history = History(experiment=experiment.name)
    while len(history.trials) < evaluations:
        created, history = suggest(experiment, history, batch)
        history = history.upsert(
            replace(t, status="Succeeded", values=(loss(t.parameters),)) for t in created
        )
    return history


def _best(history: History) -> float:
    return min(t.values[0] for t in history.trials if t.values)


def test_runs_without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails, as on a plain install
    for module in [m for m in sys.modules if m.startswith("hpo_kfp.algorithms.gaussian_process")]:
        monkeypatch.delitem(sys.modules, module)
    history = _tune(_experiment(), 24)
    assert len({tuple(t.parameters.values()) for t in history.trials}) == 24


def test_finds_branins_minimum_where_random_search_does_not() -> None:
    # Deterministic: the same history gives the same suggestions, so these are fixed numbers.
    gp = _best(_tune(_experiment(), 40)) - _BRANIN_MINIMUM
    random = _best(_tune(_experiment(algorithm="random"), 40)) - _BRANIN_MINIMUM
    assert gp < 0.01
    assert random > 10 * gp


def test_maximises_when_the_objective_says_so() -> None:
    history = _tune(_experiment(goal="maximize"), 32, loss=lambda p: -_branin(p))
    assert -max(t.values[0] for t in history.trials if t.values) - _BRANIN_MINIMUM < 0.05


def test_running_trials_keep_a_batch_apart() -> None:
    experiment = _experiment()
    history = _tune(experiment, 16)
    created, _ = suggest(experiment, history, 4)
    points = [((t.parameters["x"] + 5) / 15, t.parameters["y"] / 15) for t in created]
    closest = min(math.dist(a, b) for i, a in enumerate(points) for b in points[i + 1 :])
    assert closest > 0.02, points


def test_n_initial_points_is_how_many_trials_are_random() -> None:
    # Before the model is used the sampler draws as `random` does, with the same seed.
    random = _tune(_experiment(algorithm="random"), 12)
    later = _tune(_experiment({"n_initial_points": "8"}), 12)
    sooner = _tune(_experiment({"n_initial_points": "4"}), 12)
    assert [t.parameters for t in later.trials[:8]] == [t.parameters for t in random.trials[:8]]
    assert [t.parameters for t in later.trials[8:]] != [t.parameters for t in random.trials[8:]]
    assert [t.parameters for t in sooner.trials[4:8]] != [t.parameters for t in random.trials[4:8]]


@pytest.mark.parametrize("setting", [{"acq_func": "LCB"}, {"acq_func": "PI"}, {"acq_optimizer": "sampling"}])
def test_each_setting_changes_what_is_proposed(setting: dict[str, str]) -> None:
    default = _experiment()
    history = _tune(default, 16)
    chosen, _ = suggest(_experiment(setting), history, 2)
    usual, _ = suggest(default, history, 2)
    assert [t.parameters for t in chosen] != [t.parameters for t in usual]


def test_gp_hedge_keeps_its_portfolio_on_the_trials() -> None:
    experiment = _experiment({"acq_func": "gp_hedge"})
    history = _tune(experiment, 20)
    proposed = [t for t in history.trials if "hpo_kfp:gp_hedge" in t.sampler_attrs]
    assert [t.number for t in proposed] == list(range(10, 20))
    # Each holds the point EI, PI and LCB proposed; the next call reads their gains from them.
    assert all(len(json.loads(t.sampler_attrs["hpo_kfp:gp_hedge"])) == 3 for t in proposed)
    first, _ = suggest(experiment, history, 2)
    again, _ = suggest(experiment, History.from_json(history.to_json()), 2)
    assert [t.parameters for t in first] == [t.parameters for t in again]


def test_every_kind_of_parameter_decodes_in_bounds_and_on_its_grid() -> None:
    parameters = [
        {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "1e-4", "max": "1", "distribution": "logUniform"}},
        {"name": "drop", "parameterType": "double", "feasibleSpace": {"min": "0.1", "max": "0.5", "step": "0.1"}},
        {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": "2", "max": "10", "step": "2"}},
        {"name": "width", "parameterType": "int", "feasibleSpace": {"min": "8", "max": "512", "distribution": "logUniform"}},
        {"name": "batch", "parameterType": "discrete", "feasibleSpace": {"list": ["16", "32", "64"]}},
        {"name": "optimizer", "parameterType": "categorical", "feasibleSpace": {"list": ["sgd", "adam", "rmsprop"]}},
    ]  # fmt: skip

    def loss(p: dict[str, Any]) -> float:
        return (
            (math.log10(p["lr"]) + 2) ** 2
            + abs(p["drop"] - 0.3)
            + (p["optimizer"] != "adam")
            + p["layers"] / 10
        )

    history = _tune(_experiment(parameters=parameters), 28, loss=loss)
    for trial in history.trials[10:]:
        p = trial.parameters
        assert 1e-4 <= p["lr"] <= 1
        assert p["drop"] in (0.1, 0.2, 0.3, 0.4, 0.5)
        assert p["layers"] in (2, 4, 6, 8, 10)
        assert type(p["width"]) is int and 8 <= p["width"] <= 512
        assert p["batch"] in (16, 32, 64)
        assert p["optimizer"] in ("sgd", "adam", "rmsprop")
    assert min(loss(t.parameters) for t in history.trials[10:]) < min(
        loss(t.parameters) for t in history.trials[:10]
    )


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [
        ("base_estimator", "RF", "must be GP (hpo-kfp's bayesianoptimization is a Gaussian process; "),
        ("acq_func", "EIps", "must be one of gp_hedge, EI, PI, LCB"),
        ("acq_optimizer", "adam", "must be one of auto, sampling, lbfgs"),
        ("n_initial_points", "-1", "must be an integer >= 0"),
    ],
)
def test_a_setting_it_cannot_honour_is_refused_in_one_line(name: str, value: str, rule: str) -> None:
    with pytest.raises(SpecError) as refused:
        _experiment({name: value})
    message = str(refused.value)
    assert message.startswith(f"spec.algorithm.algorithmSettings[0].value: {name} {rule}")
    assert message.endswith(f"but got {value!r}") and "\n" not in message


def test_katibs_settings_are_accepted_as_katib_writes_them() -> None:
    settings = {
        "base_estimator": "GP",
        "n_initial_points": "10",
        "acq_func": "gp_hedge",
        "acq_optimizer": "auto",
        "random_state": "10",
    }
    experiment = _experiment(settings)
    assert experiment.algorithm.seed == 10
    assert _tune(experiment, 12).trials[-1].number == 11


def test_more_than_one_objective_is_refused() -> None:
    document = base_spec()
    document["spec"]["algorithm"] = {"algorithmName": "bayesianoptimization"}
    document["spec"]["objective"]["additionalObjectives"] = [{"metricName": "latency", "type": "minimize"}]
    with pytest.raises(SpecError, match="bayesianoptimization"):
        parse_experiment(document)
