"""The suggest step: claim the round's trials from the experiment store (or, with no store,
suggest them from the history the previous round handed on), or none once it is done."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from hpo_kfp.claim import claim, claimable
from hpo_kfp.decide import trial_counts
from hpo_kfp.early_stopping import stop_rule
from hpo_kfp.errors import SpecError
from hpo_kfp.history import History, TrialRecord
from hpo_kfp.rounds import rounds_needed
from hpo_kfp.spec import Experiment, parse_experiment
from hpo_kfp.steps.settings import StepSettings
from hpo_kfp.suggest import suggest
from hpo_kfp.wire import NoTrial, TrialItem

__all__ = ["check_capacity", "initial_history", "suggest_step"]


def initial_history(experiment: Experiment, settings: StepSettings) -> History:
    """What the store already holds of this experiment (a warm start), or nothing; records
    the experiment in the store first (refusing a changed search space unless allowed)."""
    store = settings.open_store()
    if store is None:
        return History(experiment=experiment.name)
    key = settings.experiment_key(experiment)
    store.open_experiment(experiment, key, allow_space_change=settings.allow_space_change)
    if settings.stale_seconds:
        # Trials whose claimer went quiet (a run stopped, a pod lost) run again in this run.
        store.release(key, older_than=settings.stale_seconds)
    return store.history(key)


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


def suggest_step(
    spec: str, history_in: str | None, history_out: str, settings: str = "", run_id: str = ""
) -> list[str]:
    """Proposes up to ``parallelTrialCount`` trials for the round's loop: each a
    :class:`~hpo_kfp.wire.TrialItem` as JSON, or one :class:`~hpo_kfp.wire.NoTrial` item
    when the round has nothing to run.

    With a store, the trials are claimed there (others' running trials count as pending,
    and a trial a killed run left is handed out again first); without one, they are
    suggested from the history file.

    Args:
        spec: The Experiment YAML.
        history_in: The previous round's history file; None in the first round.
        history_out: Where to write the history with the new trials (status Pending).
        settings: :class:`StepSettings` as JSON; the first round warm-starts from its store.
        run_id: The pipeline run, as the trials' claimer in the store.
    """
    if not spec.strip():
        raise SpecError("spec", "must hold a Katib Experiment (YAML or JSON)", "nothing")
    experiment = parse_experiment(spec, trial_template=None)
    options = StepSettings.from_json(settings)
    if history_in is None:
        history = initial_history(experiment, options)
        if options.run_budget:
            spent = trial_counts(history)["total"]
            history = replace(history, run_limit=spent + options.run_budget)
        check_capacity(experiment, history, options)
    else:
        history = History.from_json(Path(history_in).read_text(encoding="utf-8"))
    run_limit = history.run_limit
    count = experiment.parallel_trial_count
    store = options.open_store()
    created: list[TrialRecord]
    if store is not None:
        key = options.experiment_key(experiment)
        created, history = claim(
            store, experiment, key, count, owner=options.owner(run_id), run_limit=run_limit
        )
        history = replace(history, run_limit=run_limit)
    else:
        created, history = suggest(experiment, history, claimable(experiment, history, count, run_limit))
    Path(history_out).write_text(history.to_json(), encoding="utf-8")
    if not created:
        return [NoTrial().to_json()]
    rule = stop_rule(experiment, history)
    return [TrialItem.of(trial, stop_rule=rule).to_json() for trial in created]
