"""Stateless suggestion: (experiment, history, count) -> new trials, as Katib's GetSuggestions.

The experiment's algorithm proposes the trials (see :mod:`hpo_kfp.algorithms`); everything
it learns between calls travels in the history, so the same history gives the same
suggestions, in any process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpo_kfp.algorithms import OptunaSampler, call_seed, get_algorithm, trial_name
from hpo_kfp.history import History, TrialRecord
from hpo_kfp.space import SearchSpace
from hpo_kfp.spec import Experiment

if TYPE_CHECKING:
    import optuna

__all__ = ["call_seed", "rebuild_study", "suggest", "trial_name"]


def suggest(experiment: Experiment, history: History, count: int) -> tuple[list[TrialRecord], History]:
    """Proposes up to ``count`` new trials.

    Fewer come back only when the algorithm has no more now: a grid that is exhausted, or a
    Hyperband rung waiting for the previous one to finish.

    Returns:
        The new trials, status ``Pending``, and the history with them added.

    Raises:
        SamplerUnavailable: The algorithm needs a library that is not installed.
    """
    if count <= 0:
        return [], history
    return get_algorithm(experiment.algorithm.name).suggest(experiment, history, count)


def rebuild_study(experiment: Experiment, history: History, space: SearchSpace) -> optuna.Study:
    """An in-memory Optuna study holding ``history``, with a sampler seeded for this call.

    Raises:
        TypeError: The experiment's algorithm is not run by one Optuna sampler (``hyperband``).
    """
    algorithm = get_algorithm(experiment.algorithm.name)
    if not isinstance(algorithm, OptunaSampler):
        raise TypeError(f"algorithm {experiment.algorithm.name} is not run by one Optuna sampler")
    return algorithm.rebuild_study(experiment, history, space)
