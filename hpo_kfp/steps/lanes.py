"""The steps of the asynchronous loop: ``start`` opens the run, each lane's ``next_trial``
claims one trial at a time, ``finish`` decides.

A run is ``start -> ParallelFor(lanes) -> finish``; a lane is a chain of slots, each
``next_trial -> run_trial -> collect_metrics``, the next slot entered only when this one
claimed a trial. Lanes share nothing but the experiment store: a claim sees every other
lane's (and run's) trials as pending, so a lane starts its next trial as soon as its last
one ended, and the claims stop for every lane at once when the experiment is done or the
run's share of trials is spent.

Only ``start`` receives the Experiment as a string; it writes it, with the settings and the
run's trial limit, into one :class:`~hpo_kfp.wire.RunDocument` artifact the other steps read.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from hpo_kfp.claim import claim
from hpo_kfp.decide import decide, trial_counts
from hpo_kfp.early_stopping import stop_rule
from hpo_kfp.errors import SettingsError, SpecError
from hpo_kfp.spec import Experiment, parse_experiment
from hpo_kfp.steps.collect_metrics import collect_metrics_step
from hpo_kfp.steps.run_trial import run_trial_step
from hpo_kfp.steps.settings import StepSettings
from hpo_kfp.steps.suggest import initial_history
from hpo_kfp.wire import DecisionDocument, NoTrial, RunDocument, TrialItem

__all__ = [
    "collect_lane_trial_step",
    "finish_step",
    "next_trial_step",
    "read_run_document",
    "run_lane_trial_step",
    "start_step",
]


def start_step(spec: str, settings: str, run_id: str, document_out: str) -> list[str]:
    """Opens the run: records the experiment in its store (refusing a changed search space
    unless allowed), hands trials a stopped run left behind out again, fixes this run's
    share of trials, and writes the run document.

    Args:
        spec: The Experiment (YAML or JSON).
        settings: :class:`StepSettings` as JSON; must name a store.
        run_id: The pipeline run (unused here; the lanes claim under it).
        document_out: Where to write the :class:`~hpo_kfp.wire.RunDocument`.

    Returns:
        The lanes' loop items: ``"1"`` .. ``"P"`` for ``parallelTrialCount`` P, or one lane
        when the experiment is already done (its first claim finds nothing).

    Raises:
        SpecError: No Experiment, or more trials at a time than the pipeline was compiled for.
        SettingsError: No store (the lanes share their trials through it).
    """
    del run_id
    if not spec.strip():
        raise SpecError("spec", "must hold a Katib Experiment (YAML or JSON)", "nothing")
    experiment = parse_experiment(spec, trial_template=None)
    options = StepSettings.from_json(settings)
    if not options.store:
        raise SettingsError(
            "settings.store",
            "must name an experiment store: the asynchronous loop's lanes share their trials through it",
            "''",
        )
    limit = options.capacity_parallelism
    if limit and experiment.parallel_trial_count > limit:
        raise SpecError(
            "spec.parallelTrialCount",
            f"must be at most {limit}, this pipeline's capacity; compile a pipeline for this experiment "
            "with `hpo-kfp compile`",
            str(experiment.parallel_trial_count),
        )
    history = initial_history(experiment, options)
    run_limit = trial_counts(history)["total"] + options.run_budget if options.run_budget else None
    document = RunDocument(spec=spec, settings=settings, run_limit=run_limit)
    Path(document_out).write_text(document.to_json(), encoding="utf-8")
    done = decide(experiment, replace(history, run_limit=run_limit)).done
    lanes = 1 if done else experiment.parallel_trial_count
    return [str(lane) for lane in range(1, lanes + 1)]


def read_run_document(path: str) -> RunDocument:
    """The run document at ``path``."""
    return RunDocument.from_json(Path(path).read_text(encoding="utf-8"))


def _opened(path: str) -> tuple[RunDocument, Experiment, StepSettings]:
    """The run document at ``path``, its experiment and its settings."""
    document = read_run_document(path)
    experiment = parse_experiment(document.spec, trial_template=None)
    return document, experiment, StepSettings.from_json(document.settings)


def next_trial_step(document_path: str, run_id: str, trial_out: str) -> bool:
    """Claims the experiment's next trial for a lane; returns whether there was one.

    Writes the claimed trial as a :class:`~hpo_kfp.wire.TrialItem` (or a
    :class:`~hpo_kfp.wire.NoTrial` item) to ``trial_out``. There is none once the experiment
    is done, ``maxTrialCount`` trials exist, or this run's share is spent.
    """
    document, experiment, options = _opened(document_path)
    store = options.open_store()
    assert store is not None, "start refuses settings without a store"
    created, history = claim(
        store,
        experiment,
        options.experiment_key(experiment),
        1,
        owner=options.owner(run_id),
        run_limit=document.run_limit,
    )
    if not created:
        Path(trial_out).write_text(NoTrial().to_json(), encoding="utf-8")
        return False
    item = TrialItem.of(created[0], stop_rule=stop_rule(experiment, history))
    Path(trial_out).write_text(item.to_json(), encoding="utf-8")
    return True


def run_lane_trial_step(document_path: str, trial: str, log_path: str, metrics_path: str) -> str:
    """:func:`~hpo_kfp.steps.run_trial.run_trial_step` with the run document's spec and settings."""
    document = read_run_document(document_path)
    return run_trial_step(document.spec, trial, log_path, metrics_path, document.settings)


def collect_lane_trial_step(
    document_path: str, run_id: str, result: str, log_path: str, metrics_path: str
) -> tuple[str, dict[str, float]]:
    """:func:`~hpo_kfp.steps.collect_metrics.collect_metrics_step` with the run document's
    spec and settings."""
    document = read_run_document(document_path)
    return collect_metrics_step(document.spec, result, log_path, metrics_path, document.settings, run_id)


def finish_step(document_path: str, history_out: str, decision_out: str) -> bool:
    """Decides from what the store holds once every lane ended; records the decision and
    writes the history and the :class:`~hpo_kfp.wire.DecisionDocument`.

    Returns:
        Whether the experiment is done (a run whose share is spent is done, its
        experiment still ``Running``: the next run continues it).
    """
    document, experiment, options = _opened(document_path)
    store = options.open_store()
    assert store is not None, "start refuses settings without a store"
    key = options.experiment_key(experiment)
    history = replace(store.history(key), run_limit=document.run_limit)
    decision = decide(experiment, history)
    store.save_decision(key, decision, history.study_attrs)
    Path(history_out).write_text(history.to_json(), encoding="utf-8")
    Path(decision_out).write_text(DecisionDocument.of(experiment.name, decision).to_json(), encoding="utf-8")
    return decision.done
