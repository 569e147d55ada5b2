"""The suggest step: read the history (or, in a run's first round, the metadata store),
stop when the experiment is done, otherwise propose the round's trials."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from hpo_kfp.decide import decide, trial_counts
from hpo_kfp.early_stopping import stop_rule
from hpo_kfp.errors import SpecError
from hpo_kfp.history import History, TrialRecord
from hpo_kfp.planning import rounds_needed
from hpo_kfp.spec import Experiment, parse_experiment
from hpo_kfp.steps.settings import StepSettings
from hpo_kfp.suggest import suggest
from hpo_kfp.wire import NoTrial, TrialItem

__all__ = ["check_capacity", "initial_history", "suggest_step"]


def initial_history(experiment: Experiment, settings: StepSettings) -> History:
    """What the store already holds of this experiment (a warm start), or nothing."""
    tracker = settings.tracker()
    if tracker is None:
        return History(experiment=experiment.name)
    return tracker.load_history(experiment.name)


def check_capacity(experiment: Experiment, history: History, settings: StepSettings) -> None:
    """Fails the first step when a pipeline compiled for a fixed capacity cannot run the experiment.

    Raises:
        SpecError: More trials at a time, or more rounds, than the pipeline was compiled for.
    """
    advice = "; compile a pipeline for this experiment with `hpo-kfp compile`"
    limit = settings.capacity_parallelism
    if limit and experiment.parallel_trial_count > limit:
        raise SpecError(
            "spec.parallelTrialCount",
            f"must be at most {limit}, this pipeline's capacity{advice}",
            str(experiment.parallel_trial_count),
        )
    needed = rounds_needed(experiment, history)
    if settings.capacity_rounds and needed > settings.capacity_rounds:
        raise SpecError(
            "spec.maxTrialCount",
            f"must fit in this pipeline's {settings.capacity_rounds} rounds of parallelTrialCount "
            f"trials{advice}",
            f"{needed} rounds",
        )


def suggest_step(spec: str, history_in: str | None, history_out: str, settings: str = "") -> list[str]:
    """Proposes up to ``parallelTrialCount`` trials for the round's loop: each a
    :class:`~hpo_kfp.wire.TrialItem` as JSON, or one :class:`~hpo_kfp.wire.NoTrial` item
    when the round has nothing to run.

    Args:
        spec: The Experiment YAML.
        history_in: The previous round's history file; None in the first round.
        history_out: Where to write the history with the new trials (status Pending).
        settings: :class:`StepSettings` as JSON; the first round warm-starts from its store.
    """
    if not spec.strip():
        raise SpecError("spec", "must hold a Katib Experiment (YAML or JSON)", "nothing")
    experiment = parse_experiment(spec, trial_template=None)
    if history_in is None:
        options = StepSettings.from_json(settings)
        history = initial_history(experiment, options)
        if options.run_budget:
            spent = trial_counts(history)["total"]
            history = replace(history, run_limit=spent + options.run_budget)
        check_capacity(experiment, history, options)
    else:
        history = History.from_json(Path(history_in).read_text(encoding="utf-8"))
    created: list[TrialRecord] = []
    if not decide(experiment, history).done:
        spent = trial_counts(history)["total"]
        budget = experiment.max_trial_count - spent
        if history.run_limit is not None:
            budget = min(budget, history.run_limit - spent)
        created, history = suggest(experiment, history, min(experiment.parallel_trial_count, budget))
    Path(history_out).write_text(history.to_json(), encoding="utf-8")
    if not created:
        return [NoTrial().to_json()]
    rule = stop_rule(experiment, history)
    return [TrialItem.of(trial, stop_rule=rule).to_json() for trial in created]
