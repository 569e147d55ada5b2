"""Building an experiment in Python: small typed helpers that produce a Katib document.

Everything they build goes through the same reader and checks as a YAML file, so a
mistake is reported with the same field path and rule::

    experiment = hpo_kfp.experiment(
        "digits",
        objective=hpo_kfp.objective("accuracy", "maximize", goal=0.98),
        algorithm=hpo_kfp.algorithm("tpe", n_startup_trials=5),
        parameters=[hpo_kfp.double("C", 0.1, 100, log=True), hpo_kfp.categorical("kernel", ["rbf", "poly"])],
        max_trials=20,
        parallel=4,
    )
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hpo_kfp.spec import Experiment, parse_experiment

__all__ = ["algorithm", "categorical", "discrete", "double", "experiment", "integer", "objective"]


def double(
    name: str,
    low: float,
    high: float,
    *,
    step: float | None = None,
    log: bool = False,
    distribution: str | None = None,
) -> dict[str, Any]:
    """A real-valued parameter in ``[low, high]`` (``log=True`` for a log-uniform one)."""
    return _ranged(name, "double", low, high, step, distribution or ("logUniform" if log else "uniform"))


def integer(
    name: str,
    low: int,
    high: int,
    *,
    step: int | None = None,
    log: bool = False,
    distribution: str | None = None,
) -> dict[str, Any]:
    """An integer parameter in ``[low, high]``."""
    return _ranged(name, "int", low, high, step, distribution or ("logUniform" if log else "uniform"))


def discrete(name: str, values: Iterable[float]) -> dict[str, Any]:
    """A parameter taking one of the given numbers."""
    return {"name": name, "parameterType": "discrete", "feasibleSpace": {"list": [str(v) for v in values]}}


def categorical(name: str, values: Iterable[str]) -> dict[str, Any]:
    """A parameter taking one of the given strings."""
    return {"name": name, "parameterType": "categorical", "feasibleSpace": {"list": [str(v) for v in values]}}


def objective(
    metric: str,
    type: str = "minimize",
    *,
    goal: float | None = None,
    additional_metrics: Sequence[str] = (),
    strategies: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The metric to optimise, its direction, and an optional goal that stops the experiment."""
    document: dict[str, Any] = {"type": type, "objectiveMetricName": metric}
    if goal is not None:
        document["goal"] = goal
    if additional_metrics:
        document["additionalMetricNames"] = list(additional_metrics)
    if strategies:
        document["metricStrategies"] = [{"name": k, "value": v} for k, v in strategies.items()]
    return document


def algorithm(name: str, **settings: Any) -> dict[str, Any]:
    """A Katib algorithm name and its settings (e.g. ``algorithm("tpe", n_startup_trials=5)``)."""
    document: dict[str, Any] = {"algorithmName": name}
    if settings:
        document["algorithmSettings"] = [{"name": k, "value": str(v)} for k, v in settings.items()]
    return document


def experiment(
    name: str,
    *,
    objective: Mapping[str, Any],
    parameters: Sequence[Mapping[str, Any]],
    max_trials: int,
    algorithm: Mapping[str, Any] | None = None,
    parallel: int = 3,
    max_failed: int | None = None,
    trial_template: Mapping[str, Any] | None = None,
) -> Experiment:
    """A validated experiment; ``trial_template`` as Katib's ``spec.trialTemplate``, or
    None when the trials are a KFP component.

    Raises:
        SpecError: Something breaks a rule, reported as for a YAML file.
    """
    spec: dict[str, Any] = {
        "objective": dict(objective),
        "algorithm": dict(algorithm or {"algorithmName": "tpe"}),
        "parameters": [dict(p) for p in parameters],
        "maxTrialCount": max_trials,
        "parallelTrialCount": parallel,
    }
    if max_failed is not None:
        spec["maxFailedTrialCount"] = max_failed
    if trial_template is not None:
        spec["trialTemplate"] = dict(trial_template)
    document = {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": spec,
    }
    return parse_experiment(document, trial_template=trial_template is not None)


def _ranged(
    name: str, kind: str, low: float, high: float, step: float | None, distribution: str
) -> dict[str, Any]:
    space: dict[str, Any] = {"min": str(low), "max": str(high), "distribution": distribution}
    if step is not None:
        space["step"] = str(step)
    return {"name": name, "parameterType": kind, "feasibleSpace": space}
