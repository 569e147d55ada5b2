"""The generic pipeline: upload it once in the KFP UI, start runs by pasting an Experiment.

Its ``spec`` run parameter takes any Katib Experiment YAML. The number of rounds and the
largest number of trials at a time are fixed when it is compiled (stated in its
description); an experiment that needs more fails at the first step with a message saying
so. The committed ``pipelines/hpo_experiment.yaml`` is written by
:mod:`hpo_kfp.pipeline.publish`.
"""

# No `from __future__ import annotations`: KFP reads the pipeline function's annotations.
from typing import Any

from kfp import dsl

from hpo_kfp.pipeline.components import RUNTIME_IMAGE
from hpo_kfp.pipeline.loop import add_rounds
from hpo_kfp.steps.settings import StepSettings
from hpo_kfp.store import CLUSTER_STORE

__all__ = ["CAPACITY_PARALLELISM", "CAPACITY_ROUNDS", "build_generic_pipeline"]

CAPACITY_ROUNDS = 30
CAPACITY_PARALLELISM = 10


def build_generic_pipeline(
    rounds: int = CAPACITY_ROUNDS, parallelism: int = CAPACITY_PARALLELISM, base_image: str = RUNTIME_IMAGE
) -> Any:
    """The uploadable pipeline, for a cluster: trials as Kubernetes objects, recorded in the
    in-cluster ML Metadata service (both can be changed through the ``settings`` parameter:
    ``"store"`` takes any store URL, e.g. an SQL database on a KFP without ML Metadata)."""
    settings = StepSettings(
        runner="kubernetes",
        store=CLUSTER_STORE,
        capacity_rounds=rounds,
        capacity_parallelism=parallelism,
    ).to_json()

    @dsl.pipeline(
        name="hpo-experiment",
        description=(
            "Hyperparameter tuning of any Katib Experiment pasted into the `spec` parameter (hpo-kfp). "
            f"Capacity: up to {rounds} rounds of up to {parallelism} trials at a time "
            f"(parallelTrialCount <= {parallelism} and maxTrialCount <= {rounds} x parallelTrialCount); "
            "an experiment that needs more fails at the first step. `settings` (JSON) chooses the runner, "
            "the ML Metadata service and the trials' namespace."
        ),
    )
    def hpo_experiment(spec: str, settings: str = settings) -> str:
        return add_rounds(  # type: ignore[no-any-return]
            spec, settings, rounds=rounds, parallelism=parallelism, base_image=base_image
        )

    return hpo_experiment
