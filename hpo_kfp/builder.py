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
from dataclasses import dataclass, field
from typing import Any, Literal

from hpo_kfp.spec import Experiment, parse_experiment

__all__ = [
    "AlgorithmChoice",
    "ObjectiveChoice",
    "SearchParameter",
    "algorithm",
    "categorical",
    "discrete",
    "double",
    "experiment",
    "integer",
    "objective",
]


@dataclass(frozen=True, kw_only=True)
class SearchParameter:
    """One hyperparameter and its feasible space, as Katib's ``spec.parameters[]``."""

    name: str
    type: Literal["double", "int", "discrete", "categorical"]
    """Katib's ``parameterType``."""
    low: float | None = None
    """``feasibleSpace.min`` (double and int)."""
    high: float | None = None
    """``feasibleSpace.max`` (double and int)."""
    step: float | None = None
    distribution: str | None = None
    """``uniform``, ``logUniform``, ``normal`` or ``logNormal`` (double and int)."""
    values: tuple[str, ...] = ()
    """``feasibleSpace.list`` (discrete and categorical)."""

    def to_katib(self) -> dict[str, Any]:
        """The ``spec.parameters[]`` entry."""
        if self.values or self.type in ("categorical", "discrete"):
            space: dict[str, Any] = {"list": list(self.values)}
        else:
            space = {"min": str(self.low), "max": str(self.high), "distribution": self.distribution}
            if self.step is not None:
                space["step"] = str(self.step)
        return {"name": self.name, "parameterType": self.type, "feasibleSpace": space}


@dataclass(frozen=True, kw_only=True)
class ObjectiveChoice:
    """The metric to optimise, as Katib's ``spec.objective``."""

    metric: str
    type: str = "minimize"
    """``minimize`` or ``maximize``."""
    goal: float | None = None
    """A value that, once reached, ends the experiment."""
    additional_metrics: tuple[str, ...] = ()
    """Other metrics to record with each trial."""
    strategies: Mapping[str, str] = field(default_factory=dict)
    """Metric name -> ``min``, ``max`` or ``latest``."""

    def to_katib(self) -> dict[str, Any]:
        """The ``spec.objective`` document."""
        document: dict[str, Any] = {"type": self.type, "objectiveMetricName": self.metric}
        if self.goal is not None:
            document["goal"] = self.goal
        if self.additional_metrics:
            document["additionalMetricNames"] = list(self.additional_metrics)
        if self.strategies:
            document["metricStrategies"] = [{"name": k, "value": v} for k, v in self.strategies.items()]
        return document


@dataclass(frozen=True, kw_only=True)
class AlgorithmChoice:
    """A Katib algorithm name and its settings, as ``spec.algorithm``."""

    name: str
    settings: Mapping[str, str] = field(default_factory=dict)
    """Katib's ``algorithmSettings``, values as strings."""

    def to_katib(self) -> dict[str, Any]:
        """The ``spec.algorithm`` document."""
        document: dict[str, Any] = {"algorithmName": self.name}
        if self.settings:
            document["algorithmSettings"] = [{"name": k, "value": v} for k, v in self.settings.items()]
        return document


def double(
    name: str,
    low: float,
    high: float,
    *,
    step: float | None = None,
    log: bool = False,
    distribution: str | None = None,
) -> SearchParameter:
    """A real-valued parameter in ``[low, high]`` (``log=True`` for a log-uniform one)."""
    chosen = distribution or ("logUniform" if log else "uniform")
    return SearchParameter(name=name, type="double", low=low, high=high, step=step, distribution=chosen)


def integer(
    name: str,
    low: int,
    high: int,
    *,
    step: int | None = None,
    log: bool = False,
    distribution: str | None = None,
) -> SearchParameter:
    """An integer parameter in ``[low, high]``."""
    chosen = distribution or ("logUniform" if log else "uniform")
    return SearchParameter(name=name, type="int", low=low, high=high, step=step, distribution=chosen)


def discrete(name: str, values: Iterable[float]) -> SearchParameter:
    """A parameter taking one of the given numbers."""
    return SearchParameter(name=name, type="discrete", values=tuple(str(v) for v in values))


def categorical(name: str, values: Iterable[str]) -> SearchParameter:
    """A parameter taking one of the given strings."""
    return SearchParameter(name=name, type="categorical", values=tuple(str(v) for v in values))


def objective(
    metric: str,
    type: str = "minimize",
    *,
    goal: float | None = None,
    additional_metrics: Sequence[str] = (),
    strategies: Mapping[str, str] | None = None,
) -> ObjectiveChoice:
    """The metric to optimise, its direction, and an optional goal that stops the experiment."""
    return ObjectiveChoice(
        metric=metric,
        type=type,
        goal=goal,
        additional_metrics=tuple(additional_metrics),
        strategies=dict(strategies or {}),
    )


def algorithm(name: str, **settings: Any) -> AlgorithmChoice:
    """A Katib algorithm name and its settings (e.g. ``algorithm("tpe", n_startup_trials=5)``)."""
    return AlgorithmChoice(name=name, settings={k: str(v) for k, v in settings.items()})


def experiment(
    name: str,
    *,
    objective: ObjectiveChoice | Mapping[str, Any],
    parameters: Sequence[SearchParameter | Mapping[str, Any]],
    max_trials: int,
    algorithm: AlgorithmChoice | Mapping[str, Any] | None = None,
    parallel: int = 3,
    max_failed: int | None = None,
    trial_template: Mapping[str, Any] | None = None,
) -> Experiment:
    """A validated experiment; ``trial_template`` as Katib's ``spec.trialTemplate``, or
    None when the trials are a KFP component. The parts may also be Katib documents.

    Raises:
        SpecError: Something breaks a rule, reported as for a YAML file.
    """
    spec: dict[str, Any] = {
        "objective": _document(objective),
        "algorithm": _document(algorithm or AlgorithmChoice(name="tpe")),
        "parameters": [_document(p) for p in parameters],
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


_Part = SearchParameter | ObjectiveChoice | AlgorithmChoice


def _document(part: _Part | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(part, SearchParameter | ObjectiveChoice | AlgorithmChoice):
        return part.to_katib()
    return dict(part)
