"""A pipeline an author might wire from the four separate components: synchronous rounds
unrolled one after another (suggest -> ParallelFor(run_trial -> collect_metrics) -> decide),
the history flowing from each round's decide to the next suggest.

hpo-kfp's own pipelines run their rounds in lane tasks; this shape stays what the published
components (``components/``) allow, and what the Argo estimator and the compaction are
checked on: it grows with every round.
"""

# No `from __future__ import annotations`: KFP reads the pipeline function's annotations.
import json
from typing import Any

from kfp import dsl

from hpo_kfp.pipeline.components import collect_metrics_op, decide_op, report_op, run_trial_op, suggest_op
from hpo_kfp.pipeline.tasks import name_step
from hpo_kfp.runtime import RUNTIME_IMAGE
from hpo_kfp.spec import Experiment
from hpo_kfp.steps.settings import StepSettings


def build_rounds_pipeline(experiment: Experiment, *, settings: StepSettings, rounds: int) -> Any:
    """``rounds`` flat rounds of the experiment's trials, parallelTrialCount at a time."""
    spec_text = json.dumps(experiment.source, separators=(",", ":"))
    parallelism = experiment.parallel_trial_count

    @dsl.pipeline(name=f"hpo-{experiment.name}", description=f"{rounds} rounds")
    def tuning(spec: str = spec_text, settings: str = settings.to_json()) -> str:
        history = None
        decision = None
        for index in range(1, rounds + 1):
            previous: dict[str, Any] = {} if history is None else {"previous": history}
            proposed = suggest_op(RUNTIME_IMAGE)(
                spec=spec, settings=settings, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, **previous
            )
            name_step(proposed, f"round-{index}-suggest")
            with dsl.ParallelFor(proposed.outputs["Output"], parallelism=parallelism) as item:
                ran = run_trial_op(RUNTIME_IMAGE)(spec=spec, settings=settings, trial=item)
                record = collect_metrics_op(RUNTIME_IMAGE)(
                    spec=spec,
                    settings=settings,
                    run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                    result=ran.outputs["Output"],
                    log=ran.outputs["log"],
                    metrics_file=ran.outputs["metrics_file"],
                )
            decided = decide_op(RUNTIME_IMAGE)(
                spec=spec,
                settings=settings,
                previous=proposed.outputs["history"],
                results=dsl.Collected(record.outputs["Output"]),
            )
            name_step(decided, f"round-{index}-decide")
            history = decided.outputs["history"]
            decision = decided.outputs["decision"]
        report_op(RUNTIME_IMAGE)(spec=spec, history=history)
        return decision  # type: ignore[return-value]

    return tuning
