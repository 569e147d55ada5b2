"""``spec.parameters``: the search space as Katib declares it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from hpo_kfp.errors import SpecError
from hpo_kfp.spec._reader import Node, show, to_number

__all__ = ["Parameter", "parse_parameters"]

ParameterType = Literal["double", "int", "discrete", "categorical"]
Distribution = Literal["uniform", "logUniform", "normal", "logNormal"]

_TYPES = ("double", "int", "discrete", "categorical")
_DISTRIBUTIONS = ("uniform", "logUniform", "normal", "logNormal")
MAX_STEPS = 1e15
"""Most steps between ``min`` and ``max``: beyond this a double's own precision runs out."""

MAX_INT = 2**53
"""Largest magnitude of an int parameter's bounds and step: every whole number up to it is a
double (the samplers', numpy's and the report's charts' number)."""


@dataclass(frozen=True, kw_only=True)
class Parameter:
    """One hyperparameter and its feasible space."""

    name: str
    """The name trial parameters refer to."""
    type: ParameterType
    """``double``, ``int``, ``discrete`` (a list of numbers) or ``categorical`` (strings)."""
    min: float | None = None
    """Lower bound of a double or int parameter (inclusive)."""
    max: float | None = None
    """Upper bound of a double or int parameter (inclusive)."""
    step: float | None = None
    """Grid step from ``min``; for int parameters it defaults to 1."""
    values: tuple[str | int | float, ...] = ()
    """Choices of a discrete (numbers) or categorical (strings) parameter."""
    distribution: Distribution = "uniform"
    """How values are drawn between ``min`` and ``max``."""

    @property
    def is_numeric_range(self) -> bool:
        return self.type in ("double", "int")


def parse_parameters(node: Node) -> tuple[Parameter, ...]:
    parameters: list[Parameter] = []
    seen: set[str] = set()
    for path, item in node.items("parameters", required=True):
        parameter = _parameter(Node(item, path, ("name", "parameterType", "feasibleSpace")))
        if parameter.name in seen:
            raise SpecError(f"{path}.name", "must be unique among spec.parameters", show(parameter.name))
        seen.add(parameter.name)
        parameters.append(parameter)
    if not parameters:
        raise SpecError(node.at("parameters"), "must list at least one parameter", "an empty list")
    return tuple(parameters)


def _parameter(node: Node) -> Parameter:
    name = node.string("name", required=True)
    kind = node.string("parameterType", required=True, choices=_TYPES)
    assert name is not None and kind is not None
    space = node.required_child("feasibleSpace", ("min", "max", "step", "list", "distribution"))
    distribution = space.string("distribution", choices=_DISTRIBUTIONS) or "uniform"
    if kind in ("discrete", "categorical"):
        return _listed(name, kind, space, distribution)
    return _ranged(name, kind, space, distribution)


def _listed(name: str, kind: str, space: Node, distribution: str) -> Parameter:
    for key in ("min", "max", "step"):
        if space.has(key):
            raise SpecError(
                space.at(key), f"must be omitted for a {kind} parameter (use list)", show(space.raw(key))
            )
    if distribution != "uniform":
        raise SpecError(
            space.at("distribution"), f"must be uniform for a {kind} parameter", show(distribution)
        )
    items = list(space.items("list"))
    if not items:
        raise SpecError(space.at("list"), f"must list the choices of a {kind} parameter", "nothing")
    values: list[str | int | float] = []
    for path, item in items:
        if kind == "categorical":
            if isinstance(item, bool | dict | list) or item is None:
                raise SpecError(path, "must be a string", show(item))
            values.append(str(item))
        else:
            number = to_number(item, path)
            values.append(int(number) if number.is_integer() and "." not in str(item) else number)
    if len(set(values)) != len(values):
        raise SpecError(space.at("list"), "must not repeat a choice", show([str(v) for v in values]))
    return Parameter(name=name, type=kind, values=tuple(values))  # type: ignore[arg-type]


def _ranged(name: str, kind: str, space: Node, distribution: str) -> Parameter:
    if space.has("list"):
        raise SpecError(
            space.at("list"),
            f"must be omitted for a {kind} parameter (use min and max)",
            show(space.raw("list")),
        )
    low, high = space.number("min"), space.number("max")
    if low is None:
        raise SpecError(space.at("min"), f"must be specified for a {kind} parameter", "nothing")
    if high is None:
        raise SpecError(space.at("max"), f"must be specified for a {kind} parameter", "nothing")
    step = space.number("step")
    if kind == "int":
        for key, value in (("min", low), ("max", high), ("step", step)):
            if value is not None and not value.is_integer():
                raise SpecError(
                    space.at(key), "must be a whole number for an int parameter", show(space.raw(key))
                )
            if value is not None and abs(value) > MAX_INT:
                raise SpecError(
                    space.at(key),
                    f"must be within ±2**53 ({MAX_INT}) for an int parameter: beyond it a double, numpy's "
                    "arrays and the report's charts no longer hold every whole number",
                    show(space.raw(key)),
                )
    if low > high:
        raise SpecError(space.at("min"), "`min <= max` must hold", f"min={_plain(low)}, max={_plain(high)}")
    if not math.isfinite(high - low):
        raise SpecError(
            space.at("max"), "`max - min` must be a finite number", f"min={_plain(low)}, max={_plain(high)}"
        )
    if step is not None:
        if step <= 0:
            raise SpecError(space.at("step"), "must be greater than 0", show(space.raw("step")))
        if (high - low) / step > MAX_STEPS:
            raise SpecError(
                space.at("step"),
                f"`(max - min) / step <= {MAX_STEPS:.0e}` must hold",
                f"step={_plain(step)}, max - min={_plain(high - low)}",
            )
        if step > high - low and high > low:
            raise SpecError(
                space.at("step"),
                "`step <= max - min` must hold",
                f"step={_plain(step)}, max - min={_plain(high - low)}",
            )
    if distribution in ("logUniform", "logNormal"):
        if low <= 0:
            raise SpecError(
                space.at("min"),
                f"must be greater than 0 for distribution {distribution}",
                show(space.raw("min")),
            )
        if step is not None and distribution == "logUniform":
            raise SpecError(
                space.at("step"), "must be omitted with distribution logUniform", show(space.raw("step"))
            )
    if kind == "int" and step is None:
        step = 1.0
    return Parameter(
        name=name,
        type=kind,  # type: ignore[arg-type]
        min=low,
        max=high,
        step=step,
        distribution=distribution,  # type: ignore[arg-type]
    )


def _plain(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)
