"""The pipeline one run on a KFP cluster runs, compiled and checked against Argo's limits.

The asynchronous lanes are a handful of tasks whatever ``maxTrialCount`` is (each lane task
loops over its trials in its own pod), so one run holds the whole experiment; a share per
run (``--trials-per-run``, the settings' ``run_budget``) is only what a user asks for.
Synchronous rounds are unrolled, and grow with the rounds: their Argo Workflow, estimated at
the end of the run by :mod:`hpo_kfp.pipeline.argo_size`, must stay within the project's
budget (:data:`~hpo_kfp.pipeline.argo_size.BUDGET_END_BYTES`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from hpo_kfp.algorithms import get_algorithm
from hpo_kfp.pipeline.argo_size import BUDGET_END_BYTES, Values, check_fits, load_ir
from hpo_kfp.pipeline.compact import compact_file
from hpo_kfp.pipeline.components import RUNTIME_IMAGE
from hpo_kfp.pipeline.lanes import build_lanes_pipeline
from hpo_kfp.pipeline.loop import build_pipeline, compile_pipeline
from hpo_kfp.rounds import check_rounds, rounds_needed
from hpo_kfp.spec import Experiment
from hpo_kfp.steps.settings import StepSettings

__all__ = ["RunPlan", "compile_run"]


@dataclass(frozen=True, kw_only=True)
class RunPlan:
    """A compiled run: its shape, its share of the experiment, its estimated size."""

    path: Path
    asynchronous: bool
    share: int
    """Trials one run may start (the settings' ``run_budget``); 0: every trial left."""
    needed: int
    """Trials the experiment needs from the start (``maxTrialCount``)."""
    rounds: int = 0
    end_bytes: int
    """Estimated Workflow at the end of a run that starts ``share`` trials (or all)."""
    depth: int
    size_bytes: int
    """The compiled (compacted) pipeline file."""

    @property
    def continues(self) -> bool:
        """Whether the experiment needs more than one run."""
        return bool(self.share) and self.share < self.needed

    def describe(self) -> str:
        if self.asynchronous:
            share = f"{self.share} trials per run" if self.share else "every trial in one run"
            shape = f"asynchronous lanes, {share}"
        else:
            shape = f"{self.rounds} synchronous rounds"
        return (
            f"{shape}; Argo Workflow ~{self.end_bytes / 1024:.0f} KiB at the end of a run "
            f"(budget {BUDGET_END_BYTES // 1024} KiB), template depth {self.depth}"
        )


def compile_run(
    experiment: Experiment,
    settings: StepSettings,
    output: Path,
    *,
    image: str = RUNTIME_IMAGE,
    synchronous: bool = False,
    trials_per_run: int = 0,
    rounds: int | None = None,
    budget: int = BUDGET_END_BYTES,
) -> RunPlan:
    """Compiles (and compacts) the experiment's pipeline for a cluster into ``output``.

    Args:
        settings: The steps' settings (its ``run_budget`` is replaced by the share).
        synchronous: Rounds instead of lanes (hyperband always has rounds).
        trials_per_run: The most trials one run may start (0: as many as fit).
        rounds: Synchronous rounds to unroll (default: enough for the share).
        budget: Bytes the Workflow may reach at the end of a run.

    Raises:
        PipelineTooLarge: The run does not fit Argo's limits (synchronous rounds may not).
        SpecError: More synchronous rounds than one pipeline may unroll.
    """
    values = Values.for_experiment(experiment, settings=settings)
    if synchronous or get_algorithm(experiment.algorithm.name).synchronous:
        return _rounds(experiment, settings, output, image, trials_per_run, rounds, values, budget)
    return _lanes(experiment, settings, output, image, trials_per_run, values, budget)


def _lanes(
    experiment: Experiment,
    settings: StepSettings,
    output: Path,
    image: str,
    trials_per_run: int,
    values: Values,
    budget: int,
) -> RunPlan:
    # Lane tasks loop in their own pods: the Workflow holds the same few nodes whatever the
    # number of trials, so one run holds the whole experiment unless a share is asked for.
    needed = experiment.max_trial_count
    share = min(trials_per_run, needed) if trials_per_run and trials_per_run < needed else 0
    if share:
        settings = replace(settings, run_budget=share)
    compile_pipeline(build_lanes_pipeline(experiment, settings=settings, base_image=image), output)
    size = compact_file(output)
    estimate = check_fits(
        load_ir(output), values, {}, budget=budget, default_iterations=experiment.parallel_trial_count
    )
    return RunPlan(
        path=output,
        asynchronous=True,
        share=share,
        needed=needed,
        end_bytes=estimate.end_bytes,
        depth=estimate.depth,
        size_bytes=size,
    )


def _rounds(
    experiment: Experiment,
    settings: StepSettings,
    output: Path,
    image: str,
    trials_per_run: int,
    rounds: int | None,
    values: Values,
    budget: int,
) -> RunPlan:
    from hpo_kfp.history import History

    needed = experiment.max_trial_count
    share = min(trials_per_run, needed) if trials_per_run else 0
    if share:
        settings = replace(settings, run_budget=share)
    history = History(experiment=experiment.name, run_limit=share or None)
    total = rounds or rounds_needed(experiment, history)
    check_rounds(total)
    compile_pipeline(build_pipeline(experiment, settings=settings, rounds=total, base_image=image), output)
    size = compact_file(output)
    ir = load_ir(output)
    estimate = check_fits(ir, values, {}, budget=budget, default_iterations=experiment.parallel_trial_count)
    return RunPlan(
        path=output,
        asynchronous=False,
        share=share,
        needed=needed,
        rounds=total,
        end_bytes=estimate.end_bytes,
        depth=estimate.depth,
        size_bytes=size,
    )
