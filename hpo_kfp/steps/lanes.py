"""The steps of the asynchronous loop: ``start`` opens the run, each lane loops over its
trials, ``finish`` decides.

A run is ``start -> ParallelFor(lanes) -> lane -> finish``. A lane is one task that loops
in its own process: claim the experiment's next trial, run it through the settings' trial
runner, collect its metrics through the experiment's collector, record it, claim again --
until the claim finds nothing (the experiment is done, ``maxTrialCount`` trials exist, or
the run's share is spent). Lanes share nothing but the experiment store: a claim sees every
other lane's (and run's) trials as pending, so a lane starts its next trial as soon as its
last one ended. A KFP-native trial of ``tune()`` (the author's component) is run the same way,
through the runner, from the component's own container (:mod:`hpo_kfp.component_trial`).

Only ``start`` receives the Experiment as a string; it writes it, with the settings, the
run's trial limit and the trial component, into one :class:`~hpo_kfp.wire.RunDocument`
artifact the other steps read.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from hpo_kfp.algorithms import get_algorithm
from hpo_kfp.claim import claim
from hpo_kfp.component_trial import read_outputs, trial_experiment
from hpo_kfp.decide import decide, trial_counts
from hpo_kfp.early_stopping import stop_rule
from hpo_kfp.errors import SettingsError, SpecError
from hpo_kfp.history import TrialRecord
from hpo_kfp.runners import TrialFiles
from hpo_kfp.spec import Experiment, parse_experiment
from hpo_kfp.steps.collect_metrics import record_run
from hpo_kfp.steps.run_trial import run_item
from hpo_kfp.steps.settings import StepSettings
from hpo_kfp.steps.suggest import initial_history
from hpo_kfp.store import Store
from hpo_kfp.wire import DecisionDocument, RunDocument, TrialComponent, TrialItem

__all__ = [
    "LANE_RECORDS",
    "finish_step",
    "lane_owner",
    "lane_step",
    "read_run_document",
    "start_step",
]

_LONGEST_WAIT = 5.0
"""Seconds between two looks at the store, at most, while a synchronous round runs."""

LANE_RECORDS = "lane-{lane}.jsonl"
"""A lane's records in its ``trials`` artifact folder, one trial's record as JSON per line
(each trial's log and metrics file are in the folder named after the trial)."""


def start_step(
    spec: str, settings: str, run_id: str, document_out: str, trial_component: str = ""
) -> list[str]:
    """Opens the run: records the experiment in its store (refusing a changed search space
    unless allowed), hands trials a stopped run left behind out again, fixes this run's
    share of trials, and writes the run document.

    Args:
        spec: The Experiment (YAML or JSON).
        settings: :class:`StepSettings` as JSON; must name a store.
        run_id: The pipeline run (unused here; the lanes claim under it).
        document_out: Where to write the :class:`~hpo_kfp.wire.RunDocument`.
        trial_component: The KFP component each trial runs (a
            :class:`~hpo_kfp.wire.TrialComponent` as JSON), or "" for the trial template.

    Returns:
        The lanes' loop items: ``"1"`` .. ``"P"`` for ``parallelTrialCount`` P (at most the
        settings' ``max_lanes``), or one lane when the experiment is already done (its first
        claim finds nothing).

    Raises:
        SpecError: No Experiment, or more trials at a time than the pipeline was compiled for.
        SettingsError: No store (the lanes share their trials through it).
        WireError: ``trial_component`` is not a trial component.
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
    if trial_component:
        TrialComponent.from_json(trial_component)
    document = RunDocument(spec=spec, settings=settings, run_limit=run_limit, trial_component=trial_component)
    Path(document_out).write_text(document.to_json(), encoding="utf-8")
    done = decide(experiment, replace(history, run_limit=run_limit)).done
    lanes = (
        1
        if done
        else min(experiment.parallel_trial_count, options.max_lanes or experiment.parallel_trial_count)
    )
    return [str(lane) for lane in range(1, lanes + 1)]


def read_run_document(path: str) -> RunDocument:
    """The run document at ``path``."""
    return RunDocument.from_json(Path(path).read_text(encoding="utf-8"))


def _opened(path: str) -> tuple[RunDocument, Experiment, StepSettings]:
    """The run document at ``path``, its experiment and its settings."""
    document = read_run_document(path)
    experiment = parse_experiment(document.spec, trial_template=None)
    return document, experiment, StepSettings.from_json(document.settings)


def next_trial(
    store: Store,
    experiment: Experiment,
    options: StepSettings,
    document: RunDocument,
    *,
    owner: str,
    said: Callable[[str], None] = lambda line: None,
) -> TrialItem | None:
    """The experiment's next trial for ``owner``, or None when it has none left to hand out.

    Gives back first the trials whose lease ran out (a lane or run that died: their
    heartbeats stopped ``settings.stale_seconds`` ago). In synchronous rounds (``--sync``,
    or an algorithm that needs them, hyperband) a claim finds nothing while the round's
    trials run; this waits for them, polling the store, and ``said`` is told so once.

    Raises:
        StoreError: The store failed.
    """
    key = options.experiment_key(experiment)
    synchronous = options.synchronous or get_algorithm(experiment.algorithm.name).synchronous
    round_size = experiment.parallel_trial_count if synchronous else 0
    waited = 0
    while True:
        if options.stale_seconds:
            store.release(key, older_than=options.stale_seconds)
        created, history = claim(
            store, experiment, key, 1, owner=owner, run_limit=document.run_limit, round_size=round_size
        )
        if created:
            return TrialItem.of(created[0], stop_rule=stop_rule(experiment, history))
        if not synchronous or not trial_counts(history)["active"]:
            return None
        if not waited:
            said("waiting for the round's other trials to end")
        time.sleep(min(0.1 * 1.5**waited, _LONGEST_WAIT))
        waited += 1


def lane_owner(options: StepSettings, run_id: str, lane: str) -> str:
    """The owner of the trials lane ``lane`` of run ``run_id`` claims; a retried lane task
    has the same, and gives back what its killed attempt held."""
    return f"{options.owner(run_id)}/lane-{lane}/"


def lane_step(document_path: str, run_id: str, lane: str, trials_out: str, trials_uri: str = "") -> int:
    """Runs trials of the experiment one after another until a claim finds none; returns
    how many this lane recorded.

    First gives back the trials an earlier attempt of this lane held (a retried task: its
    pod was deleted or evicted), so they are claimed again -- the Kubernetes runner adopts a
    trial object that still runs, by its labels and digest -- with their numbers and
    parameters. Prints one line per trial (what the KFP UI's log shows) and keeps each
    trial's log and metrics file, and the lane's records, in the ``trials_out`` folder (the
    lane's artifact, uploaded to ``trials_uri`` when the task ends: each trial's record says
    where its log will be).

    Raises:
        RunnerError: A trial could not be launched at all (the task's retry tries again).
        StoreError: The store failed.
    """
    document, experiment, options = _opened(document_path)
    store = options.open_store()
    assert store is not None, "start refuses settings without a store"
    key = options.experiment_key(experiment)
    owner = lane_owner(options, run_id, lane)
    folder = Path(trials_out)
    folder.mkdir(parents=True, exist_ok=True)
    component = TrialComponent.from_json(document.trial_component) if document.trial_component else None
    given_back = store.release(key, owner_prefix=owner)
    if given_back:
        held = ", ".join(given_back)
        print(f"lane {lane}: taking up {held} again (an earlier attempt of this lane held them)", flush=True)
    count = 0
    while True:
        item = next_trial(
            store, experiment, options, document, owner=owner, said=lambda line: print(f"lane {lane}: {line}")
        )
        if item is None:
            break
        files = TrialFiles(log=folder / item.name / "log", metrics=folder / item.name / "metrics")
        files.log.parent.mkdir(exist_ok=True)
        files.log.write_text("", encoding="utf-8")
        files.metrics.write_text("", encoding="utf-8")
        ran = (
            experiment
            if component is None
            else trial_experiment(experiment, component, item.record(), run_id=run_id)
        )
        run = run_item(ran, options, item, files)
        if component is not None:
            run = read_outputs(component, run, files)
        # Where the log will be once KFP's launcher uploads the lane's output artifacts, after
        # the task's command ends (uploadOutputArtifacts, backend/src/v2/component/launcher_v2.go);
        # a lane killed before then uploads nothing: the record keeps a failure's tail anyway.
        location = f"{trials_uri.rstrip('/')}/{item.name}/log" if trials_uri else ""
        record = record_run(
            ran, options, item.record(), run, files, run_id, location, f"{run_id}/lane-{lane}"
        )
        with (folder / LANE_RECORDS.format(lane=lane)).open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(record.to_dict(), separators=(",", ":")) + "\n")
        print(f"lane {lane}: {_trial_line(experiment, record)}", flush=True)
        count += 1
    print(f"lane {lane}: no trial left to claim after {count} of its own", flush=True)
    return count


def _trial_line(experiment: Experiment, record: TrialRecord) -> str:
    """One trial for people: its name, parameters, and result or reason."""
    parameters = ", ".join(
        f"{name}={value:.6g}" if isinstance(value, float) else f"{name}={value}"
        for name, value in record.parameters.items()
    )
    line = f"{record.name} ({parameters}): {record.status}"
    metric = experiment.objective.metric
    if metric in record.metrics:
        line += f", {metric}={record.metrics[metric]:.6g}"
    if record.reason:
        line += f" ({record.reason})"
    return line


def finish_step(document_path: str, history_out: str, decision_out: str) -> tuple[bool, dict[str, float]]:
    """Decides from what the store holds once every lane ended; records the decision and
    writes the history and the :class:`~hpo_kfp.wire.DecisionDocument`.

    Returns:
        Whether the experiment is done (a run whose share is spent is done, its
        experiment still ``Running``: the next run continues it), and what the best
        trial's ``system.Metrics`` show: its finite metrics and its number (none without one).
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
    best = decision.best
    shown = {} if best is None else {k: v for k, v in best.metrics.items() if math.isfinite(v)}
    if best is not None:
        shown["trial-number"] = float(best.number)
    return decision.done, shown
