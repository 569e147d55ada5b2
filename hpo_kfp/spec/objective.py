"""``spec.objective``: what to optimise, and the hpo-kfp multi-objective extension."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from hpo_kfp.errors import SpecError
from hpo_kfp.spec._reader import Node, show

__all__ = ["Objective", "ObjectiveTerm", "parse_objective"]

Direction = Literal["minimize", "maximize"]
Strategy = Literal["min", "max", "latest"]

_DIRECTIONS = ("minimize", "maximize")
_STRATEGIES = ("min", "max", "latest")
_FIELDS = (
    "type",
    "goal",
    "objectiveMetricName",
    "additionalMetricNames",
    "metricStrategies",
    "additionalObjectives",
)


@dataclass(frozen=True, kw_only=True)
class ObjectiveTerm:
    """One metric to optimise and its direction."""

    metric: str
    """Name of the metric, as the trial prints it."""
    direction: Direction
    """``minimize`` or ``maximize``."""


@dataclass(frozen=True, kw_only=True)
class Objective:
    """Katib's objective, with Katib's default metric strategies applied."""

    type: Direction
    """Direction of the primary objective."""
    metric: str
    """``objectiveMetricName``: the primary objective."""
    goal: float | None = None
    """Stop once the best primary objective reaches this value."""
    additional_metrics: tuple[str, ...] = ()
    """``additionalMetricNames``: recorded, not optimised (unless also an objective below)."""
    strategies: dict[str, Strategy] = field(default_factory=dict)
    """How each metric's series reduces to one value: ``min``, ``max`` or ``latest``."""
    additional_objectives: tuple[ObjectiveTerm, ...] = ()
    """hpo-kfp extension: further objectives optimised jointly (a Pareto front)."""

    @property
    def terms(self) -> tuple[ObjectiveTerm, ...]:
        """Every objective, the primary first."""
        return (ObjectiveTerm(metric=self.metric, direction=self.type), *self.additional_objectives)

    @property
    def is_multi(self) -> bool:
        return bool(self.additional_objectives)

    @property
    def metrics(self) -> tuple[str, ...]:
        """Every metric to collect, the primary objective first."""
        names = [self.metric]
        for name in (*self.additional_metrics, *(t.metric for t in self.additional_objectives)):
            if name not in names:
                names.append(name)
        return tuple(names)

    def is_better(self, candidate: float, incumbent: float) -> bool:
        """Whether ``candidate`` beats ``incumbent`` on the primary objective."""
        return candidate < incumbent if self.type == "minimize" else candidate > incumbent

    def reached(self, value: float) -> bool:
        """Whether ``value`` of the primary objective meets the goal."""
        if self.goal is None:
            return False
        return value <= self.goal if self.type == "minimize" else value >= self.goal


def parse_objective(spec: Node) -> Objective:
    node = spec.required_child("objective", _FIELDS)
    direction = node.string("type", required=True, choices=_DIRECTIONS)
    metric = node.string("objectiveMetricName", required=True)
    assert direction is not None and metric is not None
    _check_metric_name(node.at("objectiveMetricName"), metric)
    additional = node.strings("additionalMetricNames")
    for index, name in enumerate(additional):
        _check_metric_name(f"{node.at('additionalMetricNames')}[{index}]", name)
    if metric in additional:
        raise SpecError(
            node.at("additionalMetricNames"),
            f"must not contain the objectiveMetricName {metric!r}",
            show(list(additional)),
        )
    extra_terms = _additional_objectives(node, metric)
    strategies = _strategies(node, direction, metric, additional, extra_terms)
    return Objective(
        type=direction,  # type: ignore[arg-type]
        metric=metric,
        goal=node.number("goal"),
        additional_metrics=additional,
        strategies=strategies,
        additional_objectives=extra_terms,
    )


def _additional_objectives(node: Node, primary: str) -> tuple[ObjectiveTerm, ...]:
    terms: list[ObjectiveTerm] = []
    seen = {primary}
    for path, item in node.items("additionalObjectives"):
        entry = Node(item, path, ("metricName", "type"))
        name = entry.string("metricName", required=True)
        direction = entry.string("type", required=True, choices=_DIRECTIONS)
        assert name is not None and direction is not None
        if name in seen:
            raise SpecError(entry.at("metricName"), "must name each objective metric once", show(name))
        seen.add(name)
        terms.append(ObjectiveTerm(metric=name, direction=direction))  # type: ignore[arg-type]
    return tuple(terms)


def _strategies(
    node: Node,
    direction: str,
    primary: str,
    additional: tuple[str, ...],
    extra_terms: tuple[ObjectiveTerm, ...],
) -> dict[str, Strategy]:
    known = {primary, *additional, *(t.metric for t in extra_terms)}
    strategies: dict[str, Strategy] = {}
    for path, item in node.items("metricStrategies"):
        entry = Node(item, path, ("name", "value"))
        name = entry.string("name", required=True)
        value = entry.string("value", required=True, choices=_STRATEGIES)
        assert name is not None and value is not None
        if name not in known:
            raise SpecError(
                entry.at("name"),
                "must name the objective metric or an additional metric",
                show(name),
            )
        strategies[name] = value  # type: ignore[assignment]
    # Katib's defaults follow the objective type; an extra objective follows its own type.
    for term in (ObjectiveTerm(metric=primary, direction=direction), *extra_terms):  # type: ignore[arg-type]
        strategies.setdefault(term.metric, "min" if term.direction == "minimize" else "max")
    for name in additional:
        strategies.setdefault(name, "min" if direction == "minimize" else "max")
    return strategies


_METRIC_NAME = re.compile(r"[^\s=]+")
"""A metric name as a trial prints it: ``name=value`` on a line of its output (StdOut)."""


def _check_metric_name(path: str, name: str) -> None:
    if not _METRIC_NAME.fullmatch(name):
        raise SpecError(path, "must be a metric name: no white space, line break or '='", show(name))
