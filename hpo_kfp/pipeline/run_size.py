"""The pipeline one run on a KFP cluster runs, compiled and checked against Argo's limits.

The lanes are a handful of tasks whatever ``maxTrialCount`` is (each lane task loops over its
trials in its own pod, asynchronously or in synchronous rounds), so one run holds the whole
experiment; a share per run (``--trials-per-run``, the settings' ``run_budget``) is only
what a user asks for. The run's Argo Workflow, estimated at the end of the run by
:mod:`hpo_kfp.pipeline.argo_size` with every lane retried, is checked against the project's
budget (:data:`~hpo_kfp.pipeline.argo_size.BUDGET_END_BYTES`) all the same.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from hpo_kfp.algorithms import get_algorithm
from hpo_kfp.pipeline.argo_size import BUDGET_END_BYTES, Values, check_fits, load_ir
from hpo_kfp.pipeline.compact import compact_file
from hpo_kfp.pipeline.components import RUNTIME_IMAGE
from hpo_kfp.pipeline.lanes import build_lanes_pipeline
from hpo_kfp.pipeline.tasks import compile_pipeline
from hpo_kfp.spec import Experiment
from hpo_kfp.steps.settings import StepSettings

__all__ = ["RunPlan", "compile_run"]


@dataclass(frozen=True, kw_only=True)
class RunPlan:
    """A compiled run: its shape, its share of the experiment, its estimated size."""

    path: Path
    synchronous: bool
    """Whether the lanes run synchronous rounds."""
    share: int
    """Trials one run may start (the settings' ``run_budget``); 0: every trial left."""
    needed: int
    """Trials the experiment needs from the start (``maxTrialCount``)."""
    end_bytes: int
    """Estimated Workflow at the end of a run, as Argo stores it."""
    depth: int
    size_bytes: int
    """The compiled (compacted) pipeline file."""

    @property
    def continues(self) -> bool:
        """Whether the experiment needs more than one run."""
        return bool(self.share) and self.share < self.needed

    def describe(self) -> str:
        share = f"{self.share} trials per run" if self.share else "every trial in one run"
        shape = "lanes in synchronous rounds" if self.synchronous else "asynchronous lanes"
        return (
            f"{shape}, {share}; Argo Workflow ~{self.end_bytes / 1024:.0f} KiB at the end of a run "
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
    budget: int = BUDGET_END_BYTES,
) -> RunPlan:
    """Compiles (and compacts) the experiment's pipeline for a cluster into ``output``.

    Args:
        settings: The steps' settings (its ``run_budget`` is replaced by the share).
        synchronous: Synchronous rounds (hyperband always has them).
        trials_per_run: The most trials one run may start (0: every trial left).
        budget: Bytes the Workflow may reach at the end of a run.

    Raises:
        PipelineTooLarge: The run does not fit Argo's limits (a huge Experiment, say).
    """
    needed = experiment.max_trial_count
    share = min(trials_per_run, needed) if trials_per_run and trials_per_run < needed else 0
    synchronous = synchronous or get_algorithm(experiment.algorithm.name).synchronous
    settings = replace(settings, run_budget=share, synchronous=synchronous)
    compile_pipeline(build_lanes_pipeline(experiment, settings=settings, base_image=image), output)
    size = compact_file(output)
    estimate = check_fits(
        load_ir(output),
        Values.for_experiment(experiment, settings=settings),
        {},
        budget=budget,
        default_iterations=experiment.parallel_trial_count,
    )
    return RunPlan(
        path=output,
        synchronous=synchronous,
        share=share,
        needed=needed,
        end_bytes=estimate.end_bytes,
        depth=estimate.depth,
        size_bytes=size,
    )
