"""``spec.algorithm`` and ``spec.earlyStopping``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hpo_kfp.algorithms import get_algorithm
from hpo_kfp.errors import SpecError
from hpo_kfp.spec._reader import Node, show

__all__ = ["AlgorithmSpec", "EarlyStopping", "parse_algorithm", "parse_early_stopping"]


@dataclass(frozen=True, kw_only=True)
class AlgorithmSpec:
    """The search algorithm, by Katib's name, with its validated settings."""

    name: str
    """A key of :data:`hpo_kfp.algorithms.ALGORITHMS`: ``random``, ``grid``, ``tpe``,
    ``multivariate-tpe``, ``cmaes``, ``sobol``, ``bayesianoptimization``, ``hyperband`` or
    (an hpo-kfp extension) ``nsga2``."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Parsed settings keyed by the sampler argument they set."""
    seed: int | None = None
    """``random_state`` (or ``seed``) when given."""


@dataclass(frozen=True, kw_only=True)
class EarlyStopping:
    """Katib's median stopping rule and its settings."""

    algorithm: str = "medianstop"
    """Only ``medianstop`` exists in Katib."""
    min_trials_required: int = 3
    """Succeeded trials needed before any trial is stopped."""
    start_step: int = 4
    """Number of reported values before a trial can be stopped."""


def parse_algorithm(spec: Node) -> AlgorithmSpec:
    node = spec.required_child("algorithm", ("algorithmName", "algorithmSettings"))
    name = node.string("algorithmName", required=True)
    assert name is not None
    schema = get_algorithm(name).settings
    settings: dict[str, Any] = {}
    seed = None
    for path, item in node.items("algorithmSettings"):
        entry = Node(item, path, ("name", "value"))
        key = entry.string("name", required=True)
        assert key is not None
        if key not in schema:
            raise SpecError(entry.at("name"), f"must be a setting of {name}: {', '.join(schema)}", show(key))
        setting = schema[key]
        text = _setting_text(entry)
        try:
            value = setting.parse(text)
        except ValueError:
            raise SpecError(entry.at("value"), f"{key} {setting.rule}", show(text)) from None
        if not setting.holds(value):
            raise SpecError(entry.at("value"), f"{key} {setting.rule}", show(text))
        settings[setting.target] = value
        if setting.target == "seed":
            seed = value
    return AlgorithmSpec(name=name, settings=settings, seed=seed)


def _setting_text(entry: Node) -> str:
    value = entry.raw("value")
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        raise SpecError(entry.at("value"), "must be a string", show(value))
    return str(value)


_MEDIAN_SETTINGS = ("min_trials_required", "start_step")


def parse_early_stopping(spec: Node) -> EarlyStopping | None:
    node = spec.child("earlyStopping", ("algorithmName", "algorithmSettings"))
    if node is None:
        return None
    name = node.string("algorithmName", required=True, choices=("medianstop",))
    assert name is not None
    values = {"min_trials_required": 3, "start_step": 4}
    for path, item in node.items("algorithmSettings"):
        entry = Node(item, path, ("name", "value"))
        key = entry.string("name", required=True, choices=_MEDIAN_SETTINGS)
        assert key is not None
        text = _setting_text(entry)
        try:
            number = int(text)
        except ValueError:
            raise SpecError(entry.at("value"), f"{key} must be an integer >= 1", show(text)) from None
        if number < 1:
            raise SpecError(entry.at("value"), f"{key} must be an integer >= 1", show(text))
        values[key] = number
    return EarlyStopping(algorithm=name, **values)
