"""How many rounds a pipeline needs to finish an experiment from where its history stands."""

from __future__ import annotations

import math

from hpo_kfp.decide import trial_counts
from hpo_kfp.history import History
from hpo_kfp.spec import Experiment

__all__ = ["rounds_needed"]


def rounds_needed(experiment: Experiment, history: History | None = None) -> int:
    """Rounds to run the trials ``maxTrialCount`` (and a run budget) still allows.

    A round runs up to ``parallelTrialCount`` trials; with hyperband, a round is one rung of
    the schedule, so it is the number of rungs still to run within the budget. At least 1.
    """
    history = history or History(experiment=experiment.name)
    counts = trial_counts(history)
    finished = counts["total"] - counts["active"]
    remaining = experiment.max_trial_count - finished
    if history.run_limit is not None:
        remaining = min(remaining, history.run_limit - finished)
    if experiment.algorithm.name != "hyperband":
        return max(math.ceil(remaining / experiment.parallel_trial_count), 1)
    from hpo_kfp.hyperband import schedule

    settings = experiment.algorithm.settings
    done = {tuple(t.sampler_attrs.get("hyperband") or ()) for t in history.trials}
    rounds, budget = 0, remaining
    for rung in schedule(float(settings["r_l"]), int(settings.get("eta", 3))):
        if (rung.bracket, rung.index) in done:
            continue
        if budget <= 0:
            break
        budget -= rung.size
        rounds += 1
    return max(rounds, 1)
