"""The search space as Optuna distributions, and the mapping between the two value spaces.

Every parameter has an *internal* value (what Optuna samples and learns on) and an
*external* value (what the trial receives). They are equal except for the ``normal`` and
``logNormal`` distributions, which Optuna lacks: those are sampled as a uniform quantile in
``[Φ(-3), Φ(3)]`` and mapped through the inverse normal CDF with Katib's parameters
(mean at the middle of ``[min, max]``, sigma a sixth of its width), so values stay within
the bounds and every sampler — random, TPE, CMA-ES, QMC, GP — works on them unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

    from hpo_kfp.spec.parameters import Parameter

__all__ = ["SearchSpace", "grid_size", "grid_values"]

_STANDARD = NormalDist()
_Q_LOW = _STANDARD.cdf(-3.0)
_Q_HIGH = _STANDARD.cdf(3.0)


class SearchSpace:
    """Converts between a spec's parameters and Optuna's distributions."""

    def __init__(self, parameters: Sequence[Parameter]) -> None:
        self.parameters = tuple(parameters)
        self._by_name = {p.name: p for p in self.parameters}

    def distributions(self) -> dict[str, BaseDistribution]:
        """Optuna distributions over internal values, by parameter name."""
        return {p.name: _distribution(p) for p in self.parameters}

    def to_external(self, internal: Mapping[str, Any]) -> dict[str, Any]:
        """The values a trial receives, from Optuna's sampled values."""
        return {name: _external(self._by_name[name], value) for name, value in internal.items()}

    def to_internal(self, external: Mapping[str, Any]) -> dict[str, Any]:
        """Optuna's values for a trial's parameters (for telling Optuna about past trials)."""
        return {
            name: _internal(self._by_name[name], value)
            for name, value in external.items()
            if name in self._by_name
        }

    def grid(self) -> dict[str, list[Any]]:
        """Every grid point of each parameter, as internal values (for ``GridSampler``)."""
        return {p.name: [_internal(p, value) for value in grid_values(p)] for p in self.parameters}

    def violation(self, name: str, value: Any) -> str | None:
        """The rule ``value`` breaks as a value of parameter ``name``, or None when it fits."""
        parameter = self._by_name[name]
        if _inside(parameter, value):
            return None
        if parameter.values:
            return f"must be one of {list(parameter.values)}"
        kind = "a whole number" if parameter.type == "int" else "a number"
        return f"must be {kind} within [{parameter.min:g}, {parameter.max:g}]"

    def contains(self, external: Mapping[str, Any]) -> bool:
        """Whether ``external`` assigns every parameter a value inside its feasible space."""
        if set(external) != set(self._by_name):
            return False
        return all(_inside(self._by_name[name], value) for name, value in external.items())


def grid_values(parameter: Parameter) -> list[Any]:
    """The grid points of one parameter, as external values."""
    if parameter.values:
        return list(parameter.values)
    assert parameter.min is not None and parameter.step is not None
    points = [_snap(parameter, parameter.min + k * parameter.step) for k in range(_grid_count(parameter))]
    return [int(p) for p in points] if parameter.type == "int" else points


def grid_size(parameters: Sequence[Parameter]) -> int:
    """How many grid points the parameters make (counted, not listed)."""
    return math.prod(_grid_count(parameter) for parameter in parameters)


def _grid_count(parameter: Parameter) -> int:
    if parameter.values:
        return len(parameter.values)
    assert parameter.min is not None and parameter.max is not None and parameter.step is not None
    return math.floor((parameter.max - parameter.min) / parameter.step + 1e-9) + 1


def _distribution(parameter: Parameter) -> BaseDistribution:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if parameter.values:
        return CategoricalDistribution(list(parameter.values))
    low, high = parameter.min, parameter.max
    assert low is not None and high is not None
    if parameter.distribution in ("normal", "logNormal"):
        return FloatDistribution(_Q_LOW, _Q_HIGH)
    log = parameter.distribution == "logUniform"
    if parameter.type == "int":
        step = 1 if log or parameter.step is None else int(parameter.step)
        return IntDistribution(int(low), _top(int(low), int(high), step), log=log, step=step)
    if parameter.step is not None:
        top = low + math.floor((high - low) / parameter.step + 1e-9) * parameter.step
        return FloatDistribution(low, min(high, _tidy(top)), step=parameter.step)
    return FloatDistribution(low, high, log=log)


def _top(low: int, high: int, step: int) -> int:
    return low + (high - low) // step * step


def _external(parameter: Parameter, value: Any) -> Any:
    if parameter.values:
        return value
    if parameter.distribution in ("normal", "logNormal"):
        mean, sigma = _normal_parameters(parameter)
        z = _STANDARD.inv_cdf(min(max(float(value), _Q_LOW), _Q_HIGH))
        number = mean + sigma * z
        if parameter.distribution == "logNormal":
            number = math.exp(number)
        number = _snap(parameter, number) if parameter.step is not None else _clamp(parameter, number)
        return round(number) if parameter.type == "int" else number
    if parameter.type == "int":
        return int(value)
    if parameter.step is not None:
        return _snap(parameter, float(value))
    return float(value)


def _internal(parameter: Parameter, value: Any) -> Any:
    if parameter.values:
        return value
    if parameter.distribution in ("normal", "logNormal"):
        mean, sigma = _normal_parameters(parameter)
        number = float(value)
        if parameter.distribution == "logNormal":
            number = math.log(number)
        return min(max(_STANDARD.cdf((number - mean) / sigma), _Q_LOW), _Q_HIGH)
    return int(value) if parameter.type == "int" else float(value)


def _normal_parameters(parameter: Parameter) -> tuple[float, float]:
    assert parameter.min is not None and parameter.max is not None
    low, high = parameter.min, parameter.max
    if parameter.distribution == "logNormal":
        low, high = math.log(low), math.log(high)
    sigma = (high - low) / 6 if high > low else 1.0
    return (low + high) / 2, sigma


def _snap(parameter: Parameter, value: float) -> float:
    assert parameter.min is not None and parameter.max is not None and parameter.step is not None
    last = math.floor((parameter.max - parameter.min) / parameter.step + 1e-9)
    steps = min(max(round((value - parameter.min) / parameter.step), 0), last)
    return _tidy(parameter.min + steps * parameter.step)


def _clamp(parameter: Parameter, value: float) -> float:
    assert parameter.min is not None and parameter.max is not None
    return min(max(value, parameter.min), parameter.max)


def _tidy(value: float) -> float:
    # 0.1 + 2 * 0.1 is 0.30000000000000004; a grid point should print as 0.3.
    return float(f"{value:.12g}")


def _inside(parameter: Parameter, value: Any) -> bool:
    if parameter.values:
        return value in parameter.values
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    assert parameter.min is not None and parameter.max is not None
    if parameter.type == "int" and not float(value).is_integer():
        return False
    return parameter.min <= value <= parameter.max
