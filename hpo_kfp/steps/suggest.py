"""The suggest step: read the history (or, in a run's first round, the metadata store),
stop when the experiment is done, otherwise propose the round's trials."""

from __future__ import annotations

import json
from pathlib import Path

from hpo_kfp.decide import decide, trial_counts
from hpo_kfp.history import History, TrialRecord
from hpo_kfp.spec import Experiment, parse_experiment
from hpo_kfp.steps.settings import StepSettings
from hpo_kfp.suggest import suggest

__all__ = ["SKIP", "initial_history", "suggest_step"]

SKIP = json.dumps({"skip": True})
"""The one item of a round with nothing to run: KFP's ParallelFor must never get an empty list."""


def initial_history(experiment: Experiment, settings: StepSettings) -> History:
    """What the store already holds of this experiment (a warm start), or nothing."""
    tracker = settings.tracker()
    if tracker is None:
        return History(experiment=experiment.name)
    return tracker.load_history(experiment.name)


def suggest_step(spec: str, history_in: str | None, history_out: str, settings: str = "") -> list[str]:
    """Proposes up to ``parallelTrialCount`` trials, as JSON strings, for the round's loop.

    Args:
        spec: The Experiment YAML.
        history_in: The previous round's history file; None in the first round.
        history_out: Where to write the history with the new trials (status Pending).
        settings: :class:`StepSettings` as JSON; the first round warm-starts from its store.
    """
    experiment = parse_experiment(spec)
    if history_in is None:
        history = initial_history(experiment, StepSettings.from_json(settings))
    else:
        history = History.from_json(Path(history_in).read_text(encoding="utf-8"))
    created: list[TrialRecord] = []
    if not decide(experiment, history).done:
        budget = experiment.max_trial_count - trial_counts(history)["total"]
        created, history = suggest(experiment, history, min(experiment.parallel_trial_count, budget))
    Path(history_out).write_text(history.to_json(), encoding="utf-8")
    if not created:
        return [SKIP]
    return [json.dumps({"name": t.name, "number": t.number, "parameters": t.parameters}) for t in created]
