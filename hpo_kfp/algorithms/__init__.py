"""The algorithm registry: Katib's algorithm names, and the implementation behind each.

Every algorithm keeps the contract of :class:`Algorithm` (:mod:`hpo_kfp.algorithms.base`);
there is one implementation per family: :class:`OptunaSampler` for those an Optuna sampler
runs, :class:`Hyperband` for Katib's ``hyperband``. The rest of hpo-kfp looks an algorithm
up here with :func:`get_algorithm` and never compares names.

Importing this package imports no Optuna: the spec reader uses it to check settings, and a
training image that only reports metrics must not pay for Optuna.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from hpo_kfp.algorithms.base import (
    SEED,
    Algorithm,
    Setting,
    call_seed,
    choice_setting,
    float_setting,
    int_setting,
    trial_name,
)
from hpo_kfp.algorithms.hyperband import Hyperband
from hpo_kfp.algorithms.optuna_family import OptunaSampler
from hpo_kfp.errors import SpecError

if TYPE_CHECKING:
    import optuna

__all__ = [
    "ALGORITHMS",
    "GP_ACQUISITION_FUNCTIONS",
    "GP_ACQUISITION_OPTIMIZERS",
    "UNSUPPORTED_ALGORITHMS",
    "Algorithm",
    "Hyperband",
    "OptunaSampler",
    "Setting",
    "build_sampler",
    "call_seed",
    "get_algorithm",
    "require_dependencies",
    "trial_name",
]

_PROBABILITY = "must be a number in [0, 1]"

GP_ACQUISITION_FUNCTIONS = ("gp_hedge", "EI", "PI", "LCB")
"""Katib's ``acq_func`` values ``bayesianoptimization`` runs (Katib also lists ``EIps`` and
``PIps``, which model each trial's duration as a second objective)."""

GP_ACQUISITION_OPTIMIZERS = ("auto", "sampling", "lbfgs")
"""Katib's ``acq_optimizer`` values (all of them)."""
_SEEDS = {"random_state": SEED, "seed": SEED}

_TPE_SETTINGS: Mapping[str, Setting] = {
    "n_startup_trials": int_setting("must be an integer >= 0", lambda v: v >= 0, "n_startup_trials"),
    "n_ei_candidates": int_setting("must be an integer >= 1", lambda v: v >= 1, "n_ei_candidates"),
    "n_EI_candidates": int_setting("must be an integer >= 1", lambda v: v >= 1, "n_ei_candidates"),
    "gamma": float_setting("must be a number in (0, 1)", lambda v: 0 < v < 1, "gamma"),
    "prior_weight": float_setting("must be a number > 0", lambda v: v > 0, "prior_weight"),
    **_SEEDS,
}

# In the order an error message lists them.
_REGISTERED: tuple[Algorithm, ...] = (
    OptunaSampler(name="random", sampler="RandomSampler", settings=_SEEDS),
    OptunaSampler(
        name="grid", sampler="GridSampler", settings=_SEEDS, continues_sequence=True, enumerates_grid=True
    ),
    # Optuna 5 makes TPE multivariate by default; Katib's `tpe` is the independent one.
    OptunaSampler(
        name="tpe",
        sampler="TPESampler",
        settings=_TPE_SETTINGS,
        fixed={"constant_liar": True, "multivariate": False},
    ),
    OptunaSampler(
        name="multivariate-tpe",
        sampler="TPESampler",
        settings=_TPE_SETTINGS,
        fixed={"constant_liar": True, "multivariate": True},
    ),
    OptunaSampler(
        name="cmaes",
        sampler="CmaEsSampler",
        settings={
            "sigma": float_setting("must be a number > 0", lambda v: v > 0, "sigma0"),
            "restart_strategy": choice_setting(("ipop", "bipop", "none", "None"), "restart_strategy"),
            **_SEEDS,
        },
        multi_objective=False,
        fixed={"warn_independent_sampling": False},
        min_ranged_parameters=2,
    ),
    OptunaSampler(
        name="sobol",
        sampler="QMCSampler",
        settings=_SEEDS,
        # Scrambled, so random_state chooses the sequence, which every call continues.
        fixed={
            "qmc_type": "sobol",
            "scramble": True,
            "warn_asynchronous_seeding": False,
            "warn_independent_sampling": False,
        },
        continues_sequence=True,
    ),
    # Katib's settings as scikit-optimize defines them, run without torch (gaussian_process.py).
    OptunaSampler(
        name="bayesianoptimization",
        sampler="GaussianProcessSampler",
        module="hpo_kfp.algorithms.gaussian_process",
        settings={
            "base_estimator": Setting(
                str,
                "must be GP (hpo-kfp's bayesianoptimization is a Gaussian process; "
                "Katib's RF, ET and GBRT are not supported)",
                lambda v: v == "GP",
                "base_estimator",
            ),
            "n_initial_points": int_setting("must be an integer >= 0", lambda v: v >= 0, "n_startup_trials"),
            "acq_func": choice_setting(GP_ACQUISITION_FUNCTIONS, "acq_func"),
            "acq_optimizer": choice_setting(GP_ACQUISITION_OPTIMIZERS, "acq_optimizer"),
            **_SEEDS,
        },
        multi_objective=False,
    ),
    Hyperband(),
    # Not a Katib name: NSGA-II for multi-objective experiments (an hpo-kfp extension).
    OptunaSampler(
        name="nsga2",
        sampler="NSGAIISampler",
        settings={
            "population_size": int_setting("must be an integer >= 2", lambda v: v >= 2, "population_size"),
            "mutation_prob": float_setting(_PROBABILITY, lambda v: 0 <= v <= 1, "mutation_prob"),
            "crossover_prob": float_setting(_PROBABILITY, lambda v: 0 <= v <= 1, "crossover_prob"),
            "swapping_prob": float_setting(_PROBABILITY, lambda v: 0 <= v <= 1, "swapping_prob"),
            **_SEEDS,
        },
    ),
)

ALGORITHMS: Mapping[str, Algorithm] = MappingProxyType({a.name: a for a in _REGISTERED})
"""Every algorithm hpo-kfp runs, by name."""

UNSUPPORTED_ALGORITHMS: Mapping[str, str] = MappingProxyType(
    {
        "enas": "neural architecture search (ENAS) is not supported by hpo-kfp",
        "darts": "neural architecture search (DARTS) is not supported by hpo-kfp",
        "pbt": "population based training is not supported by hpo-kfp",
    }
)
"""Names Katib knows that hpo-kfp refuses, with the reason given to the user."""

_NAME_PATH = "spec.algorithm.algorithmName"


def get_algorithm(name: str) -> Algorithm:
    """The algorithm registered as ``name``.

    Raises:
        SpecError: Naming ``spec.algorithm.algorithmName``, when hpo-kfp does not run
            ``name`` (with the reason, for a Katib algorithm it refuses).
    """
    algorithm = ALGORITHMS.get(name)
    if algorithm is not None:
        return algorithm
    if name in UNSUPPORTED_ALGORITHMS:
        raise SpecError(_NAME_PATH, UNSUPPORTED_ALGORITHMS[name], repr(name))
    raise SpecError(_NAME_PATH, f"must be one of {', '.join(ALGORITHMS)}", repr(name))


def require_dependencies(name: str) -> None:
    """Checks that algorithm ``name`` has the optional libraries it needs.

    A name that is not registered needs nothing here: the spec reader refuses it.

    Raises:
        SamplerUnavailable: Naming what is missing and how to install it.
    """
    algorithm = ALGORITHMS.get(name)
    if algorithm is not None:
        algorithm.require_dependencies()


def build_sampler(
    name: str,
    settings: Mapping[str, Any],
    *,
    seed: int,
    grid: Mapping[str, list[Any]] | None = None,
) -> optuna.samplers.BaseSampler:
    """Builds the Optuna sampler for algorithm ``name`` with validated ``settings``.

    For comparing with a live Optuna study (the quality tests and benchmarks); suggesting
    goes through :meth:`Algorithm.suggest`.

    Args:
        name: A key of :data:`ALGORITHMS` whose algorithm an Optuna sampler runs.
        settings: Parsed settings keyed by sampler argument (see :attr:`Setting.target`).
        seed: The seed for this call.
        grid: The grid of the search space, for an algorithm that enumerates it.

    Raises:
        TypeError: ``name`` is not run by one Optuna sampler (``hyperband``).
        SamplerUnavailable: The sampler needs a library that is not installed.
    """
    algorithm = get_algorithm(name)
    if not isinstance(algorithm, OptunaSampler):
        raise TypeError(f"algorithm {name} is not run by one Optuna sampler")
    return algorithm.build_sampler(settings, seed=seed, grid=grid)
