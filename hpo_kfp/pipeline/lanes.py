"""The asynchronous tuning loop: ``parallelTrialCount`` lanes, each starting its next trial as
soon as its last one ended.

KFP v2 has no loop construct, so a run is unrolled at compile time::

    start -> ParallelFor(lane in 1..P):                                  -> decide -> report
                 suggest -> If(claimed): run_trial -> collect_metrics
                                         suggest -> If(claimed): run_trial -> collect_metrics
                                                                 suggest -> If(claimed): ...

A lane is a chain of *slots*, each nested in the condition of the one before: the slot's
``suggest`` claims the experiment's next trial from the store (every trial of the other
lanes, and of other runs, counted as pending), and the rest of the lane is entered only if
it got one. Nothing waits for the slowest trial of a round, and once the experiment is done
(goal, failures, ``maxTrialCount``, or this run's share of trials spent) each lane stops
after one more ``suggest``: a finished experiment costs a few tasks, whatever
``maxTrialCount`` is.

The nesting is what bounds a run: each slot adds one template level on Argo (which refuses
100) and a few KiB to the Workflow (which Argo refuses over 1 MiB at the end of the run), so
a run holds at most :data:`MAX_SLOTS` trials per lane and the share of trials that fits
:mod:`hpo_kfp.pipeline.argo_size`'s budget; an experiment bigger than that goes on in
follow-on runs (``hpo-kfp run`` chains them; on a cluster, see ``hpo-kfp submit``). The
Experiment reaches the steps as one small artifact (:class:`~hpo_kfp.wire.RunDocument`),
never as a string parameter of every task.

Algorithms that need synchronous rounds (Hyperband's rungs) use the round-by-round loop of
:mod:`hpo_kfp.pipeline.loop`, also available as an option for reproducible runs.
"""

# No `from __future__ import annotations`: KFP reads the pipeline function's annotations.
import json
from collections.abc import Callable
from typing import Any, Optional

from kfp import dsl

from hpo_kfp.pipeline.components import (
    RUNTIME_IMAGE,
    lane_collect_metrics_op,
    lane_decide_op,
    lane_report_op,
    lane_run_trial_op,
    lane_suggest_op,
    start_op,
)
from hpo_kfp.pipeline.loop import name_step
from hpo_kfp.spec import Experiment
from hpo_kfp.steps.settings import StepSettings

__all__ = ["MAX_SLOTS", "TrialTasks", "add_lanes", "build_lanes_pipeline", "slots_for", "template_trial"]

MAX_SLOTS = 40
"""Most trials one lane runs in one run: Argo nests a template per slot (the whole run is
then 48 levels deep, under Argo's limit of 100 with room for a caller's own nesting)."""

TrialTasks = Callable[[Any, Any, str], Any]
"""Adds one trial's tasks inside a slot: ``(run document, trial item, slot label)`` -> the
last task, which the next slot waits for."""


def slots_for(experiment: Experiment, trials: int) -> int:
    """Slots per lane for a run of at most ``trials`` trials: every lane able to run them
    all (lanes are uneven: one lane may run many short trials while another runs a long
    one), at most :data:`MAX_SLOTS`."""
    return max(1, min(trials, MAX_SLOTS))


def build_lanes_pipeline(
    experiment: Experiment,
    *,
    settings: StepSettings,
    slots: int,
    base_image: str = RUNTIME_IMAGE,
    report: bool = True,
) -> Any:
    """The experiment's asynchronous tuning pipeline.

    Args:
        experiment: The validated experiment; its document (one line of JSON) is the default
            of the ``spec`` parameter.
        settings: The default of the ``settings`` parameter; must name a store. Its
            ``run_budget`` is the run's share of trials.
        slots: Trials per lane in one run (see :func:`slots_for`).
        base_image: The image every step runs in.
        report: End with the report step (its page shows in the KFP UI; ``hpo-kfp run
            --local`` writes its own, beside the trials' logs).
    """
    settings.trial_runner().check(experiment)
    spec_text = json.dumps(experiment.source, separators=(",", ":"))
    parallelism = experiment.parallel_trial_count
    share = f"up to {settings.run_budget} trials" if settings.run_budget else "its trials"

    @dsl.pipeline(
        name=f"hpo-{experiment.name}",
        description=f"Hyperparameter tuning of {experiment.name}: {share} in {parallelism} asynchronous "
        f"lanes of up to {slots} ({experiment.algorithm.name}, {experiment.objective.type} "
        f"{experiment.objective.metric}).",
    )
    def tuning(spec: str = spec_text, settings: str = settings.to_json()) -> str:
        finished = add_lanes(
            spec, settings, parallelism=parallelism, slots=slots, base_image=base_image, report=report
        )
        return finished.outputs["decision"]  # type: ignore[no-any-return]

    return tuning


def add_lanes(
    spec: Any,
    settings: Any,
    *,
    parallelism: int,
    slots: int,
    base_image: str = RUNTIME_IMAGE,
    trial: Optional[TrialTasks] = None,
    report: bool = True,
) -> Any:
    """Adds a run of the asynchronous loop to the pipeline being defined; returns its
    ``decide`` task (outputs ``Output`` (done), ``decision``, ``history``).

    Args:
        spec: The ``spec`` channel or value (the Experiment, YAML or JSON).
        settings: The ``settings`` channel or value (:class:`StepSettings` as JSON).
        parallelism: The lanes' loop parallelism (at least ``parallelTrialCount``).
        slots: Trials per lane.
        base_image: The image hpo-kfp's steps run in.
        trial: Adds a trial's tasks (default: the experiment's trial template, run by
            ``run_trial`` and recorded by ``collect_metrics``).
        report: Add the report step after ``decide``.
    """
    add_trial = trial or template_trial(base_image)
    started = start_op(base_image)(spec=spec, settings=settings, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER)
    name_step(started, "start")
    run = started.outputs["run"]
    suggest = lane_suggest_op(base_image)

    def slot(index: int) -> Any:
        proposed = suggest(run=run, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER)
        name_step(proposed, f"slot-{index}-suggest")
        with dsl.If(proposed.outputs["Output"] == True, name=f"slot-{index}"):  # noqa: E712 - a KFP condition
            last = add_trial(run, proposed.outputs["trial"], f"slot-{index}")
            if index < slots:
                slot(index + 1).after(last)
        return proposed

    with dsl.ParallelFor(started.outputs["Output"], parallelism=parallelism, name="lanes") as _lane:
        first = slot(1)
    finished = lane_decide_op(base_image)(run=run, lanes=dsl.Collected(first.outputs["Output"]))
    name_step(finished, "decide")
    if report:
        reported = lane_report_op(base_image)(run=run, history=finished.outputs["history"])
        name_step(reported, "report")
    return finished


def template_trial(base_image: str) -> TrialTasks:
    """Adds a trial of the experiment's trial template: run_trial -> collect_metrics."""

    def add(run: Any, item: Any, label: str) -> Any:
        ran = lane_run_trial_op(base_image)(run=run, trial=item)
        name_step(ran, f"{label}-run-trial")
        record = lane_collect_metrics_op(base_image)(
            run=run,
            run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            result=ran.outputs["Output"],
            log=ran.outputs["log"],
            metrics_file=ran.outputs["metrics_file"],
        )
        name_step(record, f"{label}-collect-metrics")
        return record

    return add
