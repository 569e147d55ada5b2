"""The generic pipeline: upload it once in the KFP UI, start runs by pasting an Experiment.

Its ``spec`` run parameter takes any Katib Experiment YAML, run in asynchronous lanes
(:mod:`hpo_kfp.pipeline.lanes`). The largest number of trials at a time, the trials per lane
and the share of trials one run may start are fixed when it is compiled (stated in its
description) so that a run fits Argo's Workflow limit at any ``parallelTrialCount`` up to
the capacity; an experiment that needs more trials goes on in the next run of the same
pipeline (a recurring run of it, or runs started by hand), each continuing what the store
holds. The committed ``pipelines/hpo_experiment.yaml`` is written by
:mod:`hpo_kfp.pipeline.publish`; ``hpo-kfp generic-pipeline`` compiles it for another image.
"""

# No `from __future__ import annotations`: KFP reads the pipeline function's annotations.
from typing import Any

from kfp import dsl

from hpo_kfp.pipeline.components import RUNTIME_IMAGE
from hpo_kfp.pipeline.lanes import add_lanes
from hpo_kfp.steps.settings import StepSettings
from hpo_kfp.store import CLUSTER_STORE

__all__ = ["CAPACITY_PARALLELISM", "CAPACITY_SLOTS", "CAPACITY_TRIALS", "build_generic_pipeline"]

CAPACITY_PARALLELISM = 10
CAPACITY_SLOTS = 10
"""Trials per lane in one run."""
CAPACITY_TRIALS = 50
"""Trials one run may start: with 10 lanes of 10 slots, a run of 50 trials of a 4.4 KB
Experiment is estimated at ~650 KiB of Argo Workflow at its end (``tests/pipeline``
checks it with :mod:`hpo_kfp.pipeline.argo_size`)."""


def build_generic_pipeline(
    parallelism: int = CAPACITY_PARALLELISM,
    slots: int = CAPACITY_SLOTS,
    trials: int = CAPACITY_TRIALS,
    base_image: str = RUNTIME_IMAGE,
) -> Any:
    """The uploadable pipeline, for a cluster: trials as Kubernetes objects, recorded in the
    in-cluster ML Metadata service (both can be changed through the ``settings`` parameter:
    ``"store"`` takes any store URL, e.g. an SQL database on a KFP without ML Metadata)."""
    settings = StepSettings(
        runner="kubernetes",
        store=CLUSTER_STORE,
        capacity_parallelism=parallelism,
        run_budget=trials,
    ).to_json()

    @dsl.pipeline(
        name="hpo-experiment",
        description=(
            "Hyperparameter tuning of any Katib Experiment pasted into the `spec` parameter (hpo-kfp). "
            f"Capacity: up to {parallelism} trials at a time (parallelTrialCount <= {parallelism}), up to "
            f"{trials} new trials per run in lanes of up to {slots}; a bigger experiment goes on in the "
            "next run of this pipeline (e.g. a recurring run), which continues what the store holds. "
            "`settings` (JSON) chooses the runner, the store (`run_budget`: trials per run) and the "
            "trials' namespace."
        ),
    )
    def hpo_experiment(spec: str, settings: str = settings) -> str:
        finished = add_lanes(spec, settings, parallelism=parallelism, slots=slots, base_image=base_image)
        return finished.outputs["decision"]  # type: ignore[no-any-return]

    return hpo_experiment
