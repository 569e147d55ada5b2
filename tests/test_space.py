"""Parameters map to Optuna distributions and back without leaving their feasible space."""

from __future__ import annotations

import math

import pytest

from hpo_kfp.space import SearchSpace, grid_size, grid_values
from hpo_kfp.spec.parameters import Parameter


def _double(**kw: object) -> Parameter:
    return Parameter(name="x", type="double", **{"min": 0.0, "max": 1.0, **kw})  # type: ignore[arg-type]


def test_grid_of_a_double_with_step_prints_tidy_points() -> None:
    assert grid_values(_double(min=0.1, max=0.5, step=0.1)) == [0.1, 0.2, 0.3, 0.4, 0.5]


def test_grid_of_an_int_and_size_of_a_space() -> None:
    layers = Parameter(name="n", type="int", min=2, max=8, step=3)
    colour = Parameter(name="c", type="categorical", values=("r", "g"))
    assert grid_values(layers) == [2, 5, 8]
    assert grid_size([layers, colour]) == 6


@pytest.mark.parametrize("distribution", ["normal", "logNormal"])
def test_normal_distributions_round_trip_inside_bounds(distribution: str) -> None:
    space = SearchSpace([_double(min=0.5, max=4.0, distribution=distribution)])
    low = space.distributions()["x"].low  # type: ignore[attr-defined]
    high = space.distributions()["x"].high  # type: ignore[attr-defined]
    for quantile in (low, 0.1, 0.5, 0.9, high):
        value = space.to_external({"x": quantile})["x"]
        assert 0.5 <= value <= 4.0
        assert math.isclose(space.to_internal({"x": value})["x"], quantile, rel_tol=1e-9)
    middle = space.to_external({"x": 0.5})["x"]
    expected = 2.25 if distribution == "normal" else math.sqrt(0.5 * 4.0)
    assert math.isclose(middle, expected)


def test_normal_int_with_step_lands_on_the_grid() -> None:
    space = SearchSpace([Parameter(name="n", type="int", min=10, max=50, step=10, distribution="normal")])
    values = {space.to_external({"n": q})["n"] for q in (0.0014, 0.2, 0.5, 0.8, 0.9986)}
    assert values <= {10, 20, 30, 40, 50}
    assert all(isinstance(v, int) for v in values)


def test_contains_checks_names_bounds_and_types() -> None:
    space = SearchSpace([_double(), Parameter(name="n", type="int", min=1, max=3, step=1)])
    assert space.contains({"x": 0.5, "n": 2})
    assert not space.contains({"x": 1.5, "n": 2})
    assert not space.contains({"x": 0.5, "n": 2.5})
    assert not space.contains({"x": 0.5})
    assert not space.contains({"x": "0.5", "n": 2})
