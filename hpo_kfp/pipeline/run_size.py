"""How much of an experiment one run on a KFP cluster holds, and the pipeline that runs it.

A run's Argo Workflow grows with every trial it runs and Argo refuses one over 1 MiB, so a
run holds a computed share of the experiment: the most trials whose Workflow, estimated at
the end of the run by :mod:`hpo_kfp.pipeline.argo_size`, stays within the project's budget
(:data:`~hpo_kfp.pipeline.argo_size.BUDGET_END_BYTES`). The share is the ``run_budget`` of
the run's settings; an experiment that needs more goes on in follow-on runs (``hpo-kfp
submit`` creates a recurring run for them), each continuing what the store holds.

For the asynchronous lanes the figure is measured, not assumed: the run is sized with one
lane running all its slots and with two, and the difference is what one trial adds (with the
node status gzipped, as Argo stores it past 1 MiB).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from hpo_kfp.algorithms import get_algorithm
from hpo_kfp.errors import PipelineTooLarge
from hpo_kfp.pipeline.argo_size import (
    BUDGET_DEPTH,
    BUDGET_END_BYTES,
    Values,
    check_fits,
    estimate_run,
    load_ir,
    loop_names,
    template_depth,
)
from hpo_kfp.pipeline.compact import compact_file
from hpo_kfp.pipeline.components import RUNTIME_IMAGE
from hpo_kfp.pipeline.lanes import build_lanes_pipeline, slots_for
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
    slots: int = 0
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
            shape = f"asynchronous lanes of up to {self.slots} trials, {share}"
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
        PipelineTooLarge: Not even one trial's run fits, or synchronous rounds do not.
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
    needed = experiment.max_trial_count
    wanted = min(trials_per_run or needed, needed)
    lanes = experiment.parallel_trial_count

    def measure(slots: int) -> tuple[float, float]:
        """The run's fixed bytes and each trial's, for ``slots`` per lane."""
        compile_pipeline(
            build_lanes_pipeline(experiment, settings=settings, slots=slots, base_image=image), output
        )
        ir = load_ir(output)
        [loop] = loop_names(ir)
        # Past Argo's 1 MiB, which any sizeable run passes, Argo keeps the node status
        # gzipped: the Workflow then grows by one trial's compressed nodes per trial.
        one = estimate_run(ir, values, {loop: 1}).compressed_bytes
        two = estimate_run(ir, values, {loop: 2}).compressed_bytes
        per_trial = (two - one) / slots
        return one - slots * per_trial, per_trial

    # Each slot adds to the Workflow's spec whether it runs or not, each trial to its status:
    # the share is largest where lanes x slots meets what the budget leaves for trials.
    small, large = 4, 8
    fixed_small, per_trial = measure(small)
    fixed_large, _ = measure(large)
    per_slot = max((fixed_large - fixed_small) / (large - small), 0.0)
    base = fixed_small - small * per_slot

    def share_of(slots: int) -> int:
        fitting = math.floor((budget - base - slots * per_slot) / per_trial)
        return min(wanted, lanes * slots, fitting)

    # The most slots for that share: lanes are uneven (a lane of short trials runs more of
    # them), and a lane out of slots ends its part of the run.
    slots = max(range(1, slots_for(experiment, wanted) + 1), key=lambda k: (share_of(k), k))
    share = share_of(slots)
    if share < 1:
        raise PipelineTooLarge(
            f"pipeline of {experiment.name} on a KFP cluster: a run must fit at least one trial in "
            f"{budget / 1024:.0f} KiB of Argo Workflow, but its fixed part is estimated at "
            f"{(base + per_slot) / 1024:.0f} KiB"
        )
    if share < needed:
        settings = replace(settings, run_budget=share)
    else:
        share = 0
    compile_pipeline(
        build_lanes_pipeline(experiment, settings=settings, slots=slots, base_image=image), output
    )
    depth = template_depth(load_ir(output))
    if depth >= BUDGET_DEPTH:  # bounded by MAX_SLOTS; checked all the same
        raise PipelineTooLarge(
            f"pipeline of {experiment.name}: templates nest {depth} deep, over {BUDGET_DEPTH}"
        )
    return RunPlan(
        path=output,
        asynchronous=True,
        share=share,
        needed=needed,
        slots=slots,
        end_bytes=math.ceil(base + slots * per_slot + (share or needed) * per_trial),
        depth=depth,
        size_bytes=compact_file(output),
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
