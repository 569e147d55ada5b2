"""How many rounds a pipeline needs to finish an experiment from where its history stands, and
the checks an experiment must pass to start.

Parsing checks the document; :func:`check_startable` checks it against this installation:
the algorithm's optional libraries. ``run`` and ``compile`` make the same checks when they
build the pipeline, and ``validate`` makes them up front, so a file that validates also
starts. :func:`rounds_needed` serves a pipeline of the separate components that unrolls
synchronous rounds (the committed ``components/``), and their ``suggest``'s capacity check.
"""

from __future__ import annotations

from hpo_kfp.algorithms import get_algorithm, require_dependencies
from hpo_kfp.decide import trial_counts
from hpo_kfp.history import History
from hpo_kfp.spec import Experiment

__all__ = ["check_startable", "rounds_needed"]


def rounds_needed(experiment: Experiment, history: History | None = None) -> int:
    """Rounds to run the trials ``maxTrialCount`` (and a run budget) still allows.

    A round runs up to ``parallelTrialCount`` trials; how many rounds the trials take is the
    algorithm's to say (with hyperband, a round is one rung of the schedule). At least 1.
    """
    history = history or History(experiment=experiment.name)
    counts = trial_counts(history)
    finished = counts["total"] - counts["active"]
    remaining = experiment.max_trial_count - finished
    if history.run_limit is not None:
        remaining = min(remaining, history.run_limit - finished)
    return get_algorithm(experiment.algorithm.name).rounds_needed(experiment, history, remaining)


def check_startable(experiment: Experiment) -> None:
    """Refuses an experiment that ``run`` or ``compile`` would refuse, whatever the runner.

    Raises:
        SamplerUnavailable: The algorithm needs a library that is not installed.
    """
    require_dependencies(experiment.algorithm.name)
