"""The asynchronous tuning loop: ``parallelTrialCount`` lane tasks, each running the
experiment's trials one after another in its own process::

    start -> ParallelFor(lane in 1..P): lane -> decide (-> report)

``start`` opens the run in the store and writes the run document (the Experiment and
settings, as one small artifact); each ``lane`` claims the experiment's next trial from the
store (every trial of the other lanes, and of other runs, counted as pending), runs it
through the trial runner, collects and records it, and claims again until none is left
(:func:`hpo_kfp.steps.lanes.lane_step`); ``decide`` applies Katib's stop rules to what the
store holds. Nothing waits for the slowest trial of a round, and the pipeline is the same
handful of tasks whatever ``maxTrialCount`` is: on a KFP cluster a trial costs its own
objects and nothing else (no driver or executor pod per trial, no Argo node per trial), and
one run holds the whole experiment. A lane task carries a retry: a retried lane gives back
and claims again the trial its killed attempt held (the Kubernetes runner adopts the trial
object if it still runs). KFP compiles ``set_retry`` to an Argo ``retryStrategy`` with a
limit and a backoff only (``getTaskRetryStrategyFromInput`` in KFP's
``backend/src/v2/compiler/argocompiler/container.go``), whose policy is then ``OnFailure``
(``RetryStrategy.RetryPolicyActual`` in Argo's ``workflow_types.go``): a pod that failed
(evicted, OOM-killed) is retried, a deleted one -- its node marked ``Error``, "pod deleted"
(``operator.go``) -- is not; its trial goes back to the other lanes when its lease runs out
(:func:`hpo_kfp.steps.lanes.next_trial`).

Synchronous rounds (hyperband, ``settings.synchronous``) run in the same lanes: a round is
claimable once the round before it ended, a barrier through the store
(:func:`hpo_kfp.claim.claim`'s ``round_size``).

The KFP-native trials of ``tune()`` (the author's own component) run in the same lanes: the
component's container, as KFP compiled it, is each trial's process or Job
(:mod:`hpo_kfp.component_trial`), handed to ``start`` as a trial component.
"""

# No `from __future__ import annotations`: KFP reads the pipeline function's annotations.
import json
from typing import Any

from kfp import dsl

from hpo_kfp.pipeline.components import (
    RUNTIME_IMAGE,
    lane_decide_op,
    lane_op,
    report_op,
    start_op,
)
from hpo_kfp.pipeline.tasks import name_step, store_secret
from hpo_kfp.spec import Experiment
from hpo_kfp.steps.settings import StepSettings

__all__ = [
    "LANE_RETRIES",
    "add_lanes",
    "build_lanes_pipeline",
]

LANE_RETRIES = 3
"""Times a lane task is started again after it failed (its pod deleted, evicted, or its node
lost): Argo's retry strategy on a cluster, kfp.local's retry policy locally."""


def build_lanes_pipeline(
    experiment: Experiment,
    *,
    settings: StepSettings,
    base_image: str = RUNTIME_IMAGE,
    report: bool = True,
    retry: bool = True,
) -> Any:
    """The experiment's asynchronous tuning pipeline.

    Args:
        experiment: The validated experiment; its document (one line of JSON) is the default
            of the ``spec`` parameter.
        settings: The default of the ``settings`` parameter; must name a store. Its
            ``run_budget`` is the run's share of trials.
        base_image: The image every step runs in.
        report: End with the report step (its page shows in the KFP UI; ``hpo-kfp run
            --local`` writes its own, beside the trials' logs).
        retry: Retry a failed lane task (see :func:`add_lanes`).
    """
    settings.trial_runner().check(experiment)
    spec_text = json.dumps(experiment.source, separators=(",", ":"))
    parallelism = experiment.parallel_trial_count
    share = f"up to {settings.run_budget} trials" if settings.run_budget else "its trials"

    def tuning(spec: str = spec_text, settings: str = settings.to_json()) -> str:
        finished = add_lanes(
            spec, settings, parallelism=parallelism, base_image=base_image, report=report, retry=retry
        )
        return finished.outputs["decision"]  # type: ignore[no-any-return]

    with store_secret(settings.store_secret):
        return dsl.pipeline(
            name=f"hpo-{experiment.name}",
            description=f"Hyperparameter tuning of {experiment.name}: {share} in {parallelism} "
            f"asynchronous lanes ({experiment.algorithm.name}, {experiment.objective.type} "
            f"{experiment.objective.metric}).",
        )(tuning)


def add_lanes(
    spec: Any,
    settings: Any,
    *,
    parallelism: int,
    base_image: str = RUNTIME_IMAGE,
    report: bool = True,
    retry: bool = True,
    trial_component: Any = "",
) -> Any:
    """Adds a run of the asynchronous loop of lane tasks to the pipeline being defined;
    returns its ``decide`` task (outputs ``Output`` (done), ``decision``, ``history``).

    Args:
        spec: The ``spec`` channel or value (the Experiment, YAML or JSON).
        settings: The ``settings`` channel or value (:class:`StepSettings` as JSON).
        parallelism: The lanes' loop parallelism (at least ``parallelTrialCount``).
        base_image: The image hpo-kfp's steps run in.
        report: Add the report step after ``decide``.
        retry: Retry a lane task that failed (:data:`LANE_RETRIES` times): on a cluster its
            pod may be deleted or evicted. ``hpo-kfp run --local`` turns it off: there a lane
            process ends only when the whole run is stopped (Ctrl-C), and a retry would go on.
        trial_component: The KFP component each trial runs (a
            :class:`~hpo_kfp.wire.TrialComponent` as JSON, or a channel of one), or "" to run
            the experiment's trial template.
    """
    started = start_op(base_image)(
        spec=spec, settings=settings, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, trial_component=trial_component
    )
    name_step(started, "start", store=True)
    run = started.outputs["run"]
    with dsl.ParallelFor(started.outputs["Output"], parallelism=parallelism, name="lanes") as lane:
        ran = lane_op(base_image)(run=run, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, lane=lane)
        name_step(ran, "lane", store=True)
        if retry:
            ran.set_retry(num_retries=LANE_RETRIES, backoff_duration="5s")
    return _finish(spec, run, ran, base_image, report)


def _finish(spec: Any, run: Any, lanes: Any, base_image: str, report: bool) -> Any:
    """Adds decide, once every lane ended (``lanes``: a task inside the lanes' loop whose
    ``Output`` it collects), and the report."""
    finished = lane_decide_op(base_image)(run=run, lanes=dsl.Collected(lanes.outputs["Output"]))
    name_step(finished, "decide", store=True)
    if report:
        reported = report_op(base_image)(spec=spec, history=finished.outputs["history"])
        name_step(reported, "report")
    return finished
