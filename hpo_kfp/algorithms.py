"""Katib's algorithm names, their settings, and the Optuna sampler behind each.

Settings are validated when the spec is read (so a bad value is reported with its field
path); samplers are built only by :mod:`hpo_kfp.suggest`, which imports Optuna.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpo_kfp.errors import SamplerUnavailable

if TYPE_CHECKING:
    import optuna

__all__ = ["ALGORITHMS", "AlgorithmInfo", "Setting", "build_sampler", "require_dependencies"]


@dataclass(frozen=True)
class Setting:
    """One ``algorithmSettings`` entry an algorithm accepts."""

    parse: Callable[[str], Any]
    """Turns the string value into the typed value (raises ValueError when it cannot)."""
    rule: str
    """The invariant, as stated in an error message."""
    holds: Callable[[Any], bool]
    """Whether a parsed value satisfies ``rule``."""
    target: str
    """The sampler argument the value becomes."""


def _int(rule: str, holds: Callable[[int], bool], target: str) -> Setting:
    return Setting(_parse_int, rule, holds, target)


def _float(rule: str, holds: Callable[[float], bool], target: str) -> Setting:
    return Setting(float, rule, lambda v: math.isfinite(v) and holds(v), target)


def _choice(choices: tuple[str, ...], target: str) -> Setting:
    return Setting(str, f"must be one of {', '.join(choices)}", lambda v: v in choices, target)


def _parse_int(text: str) -> int:
    number = float(text)
    if not number.is_integer():
        raise ValueError(text)
    return int(number)


_SEED = _int("must be an integer >= 0", lambda v: v >= 0, "seed")
_PROBABILITY = "must be a number in [0, 1]"


@dataclass(frozen=True)
class AlgorithmInfo:
    """What an algorithm name means here."""

    sampler: str
    """The Optuna sampler class that runs it."""
    settings: Mapping[str, Setting]
    """The settings it accepts, by Katib's names."""
    multi_objective: bool
    """Whether it can optimise several objectives at once."""
    fixed: Mapping[str, Any]
    """Sampler arguments that are always set."""


_TPE_SETTINGS = {
    "n_startup_trials": _int("must be an integer >= 0", lambda v: v >= 0, "n_startup_trials"),
    "n_ei_candidates": _int("must be an integer >= 1", lambda v: v >= 1, "n_ei_candidates"),
    "n_EI_candidates": _int("must be an integer >= 1", lambda v: v >= 1, "n_ei_candidates"),
    "gamma": _float("must be a number in (0, 1)", lambda v: 0 < v < 1, "gamma"),
    "prior_weight": _float("must be a number > 0", lambda v: v > 0, "prior_weight"),
    "random_state": _SEED,
    "seed": _SEED,
}

ALGORITHMS: Mapping[str, AlgorithmInfo] = {
    "random": AlgorithmInfo("RandomSampler", {"random_state": _SEED, "seed": _SEED}, True, {}),
    "grid": AlgorithmInfo("GridSampler", {"random_state": _SEED, "seed": _SEED}, True, {}),
    # Optuna 5 makes TPE multivariate by default; Katib's `tpe` is the independent one.
    "tpe": AlgorithmInfo("TPESampler", _TPE_SETTINGS, True, {"constant_liar": True, "multivariate": False}),
    "multivariate-tpe": AlgorithmInfo(
        "TPESampler",
        _TPE_SETTINGS,
        True,
        {"constant_liar": True, "multivariate": True},
    ),
    "cmaes": AlgorithmInfo(
        "CmaEsSampler",
        {
            "sigma": _float("must be a number > 0", lambda v: v > 0, "sigma0"),
            "restart_strategy": _choice(("ipop", "bipop", "none", "None"), "restart_strategy"),
            "random_state": _SEED,
            "seed": _SEED,
        },
        False,
        {"warn_independent_sampling": False},
    ),
    "sobol": AlgorithmInfo(
        "QMCSampler",
        {"random_state": _SEED, "seed": _SEED},
        True,
        # Scrambled, so random_state chooses the sequence (suggest keeps its seed across calls).
        {
            "qmc_type": "sobol",
            "scramble": True,
            "warn_asynchronous_seeding": False,
            "warn_independent_sampling": False,
        },
    ),
    "bayesianoptimization": AlgorithmInfo(
        "GPSampler",
        {
            "base_estimator": _choice(("GP",), "base_estimator"),
            "n_initial_points": _int("must be an integer >= 0", lambda v: v >= 0, "n_startup_trials"),
            "acq_func": _choice(("EI",), "acq_func"),
            "random_state": _SEED,
            "seed": _SEED,
        },
        True,
        {"warn_independent_sampling": False},
    ),
    # Not an Optuna sampler: the schedule is hpo_kfp.hyperband's; its first rungs sample at random.
    "hyperband": AlgorithmInfo(
        "Hyperband",
        {
            "resource_name": Setting(str, "must name a parameter", bool, "resource_name"),
            "r_l": _float("must be a number > 0", lambda v: v > 0, "r_l"),
            "eta": _int("must be an integer >= 2", lambda v: v >= 2, "eta"),
            "random_state": _SEED,
            "seed": _SEED,
        },
        False,
        {},
    ),
    # Not a Katib name: NSGA-II for multi-objective experiments (an hpo-kfp extension).
    "nsga2": AlgorithmInfo(
        "NSGAIISampler",
        {
            "population_size": _int("must be an integer >= 2", lambda v: v >= 2, "population_size"),
            "mutation_prob": _float(_PROBABILITY, lambda v: 0 <= v <= 1, "mutation_prob"),
            "crossover_prob": _float(_PROBABILITY, lambda v: 0 <= v <= 1, "crossover_prob"),
            "swapping_prob": _float(_PROBABILITY, lambda v: 0 <= v <= 1, "swapping_prob"),
            "random_state": _SEED,
            "seed": _SEED,
        },
        True,
        {},
    ),
}

# Names Katib knows that hpo-kfp refuses, with the reason given to the user.
UNSUPPORTED_ALGORITHMS: Mapping[str, str] = {
    "enas": "neural architecture search (ENAS) is not supported by hpo-kfp",
    "darts": "neural architecture search (DARTS) is not supported by hpo-kfp",
    "pbt": "population based training is not supported by hpo-kfp",
}

# Settings that only shape Katib's own service and have no counterpart to set here.
_NOT_SAMPLER_ARGUMENTS = frozenset({"base_estimator", "acq_func", "seed"})


def build_sampler(
    name: str,
    settings: Mapping[str, Any],
    *,
    seed: int,
    grid: Mapping[str, list[Any]] | None = None,
) -> optuna.samplers.BaseSampler:
    """Builds the Optuna sampler for algorithm ``name`` with validated ``settings``.

    Args:
        name: A key of :data:`ALGORITHMS`.
        settings: Parsed settings keyed by sampler argument (see :class:`Setting.target`).
        seed: The seed for this call; the caller derives it so that calls differ.
        grid: The grid of the search space, for ``grid`` only.
    """
    import optuna

    info = ALGORITHMS[name]
    kwargs: dict[str, Any] = dict(info.fixed)
    kwargs.update({k: v for k, v in settings.items() if k not in _NOT_SAMPLER_ARGUMENTS})
    kwargs["seed"] = seed
    if "gamma" in kwargs:
        kwargs["gamma"] = _quantile_gamma(kwargs["gamma"])
    if kwargs.get("restart_strategy") in ("none", "None"):
        kwargs["restart_strategy"] = None
    if name == "grid":
        assert grid is not None
        return optuna.samplers.GridSampler(dict(grid), seed=seed)
    if name == "bayesianoptimization":
        _require_gp_dependencies()
    sampler_class = getattr(optuna.samplers, info.sampler)
    return sampler_class(**kwargs)  # type: ignore[no-any-return]


def _quantile_gamma(fraction: float) -> Callable[[int], int]:
    # hyperopt's gamma is the fraction of trials taken as "good"; Optuna wants a count.
    def gamma(n: int) -> int:
        return min(math.ceil(fraction * n), 25)

    return gamma


def require_dependencies(name: str) -> None:
    """Raises :class:`SamplerUnavailable` when algorithm ``name`` needs what is not installed."""
    if name == "bayesianoptimization":
        _require_gp_dependencies()


def _require_gp_dependencies() -> None:
    missing = []
    for module in ("torch", "scipy"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise SamplerUnavailable(
            "algorithm bayesianoptimization runs Optuna's GPSampler, which needs "
            f"{' and '.join(missing)}; install the CPU build: "
            "`uv pip install torch --index-url https://download.pytorch.org/whl/cpu` "
            "(a plain `pip install torch` pulls several GB of CUDA libraries)"
        )
