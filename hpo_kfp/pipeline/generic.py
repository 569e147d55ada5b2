"""The generic pipeline: upload it once in the KFP UI, start runs by pasting an Experiment.

Its ``spec`` run parameter takes any Katib Experiment YAML, run in asynchronous lane tasks
(:mod:`hpo_kfp.pipeline.lanes`). The largest number of trials at a time is fixed when it is
compiled (stated in its description); the trials per run are not: one run holds the whole
experiment, whatever its ``maxTrialCount``, and a later run of it continues what the store
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

__all__ = ["CAPACITY_PARALLELISM", "build_generic_pipeline"]

CAPACITY_PARALLELISM = 32
"""Most trials at a time (``parallelTrialCount``): the lanes' loop parallelism. A lane that
is not needed is not started, so a larger capacity costs nothing but this bound."""


def build_generic_pipeline(parallelism: int = CAPACITY_PARALLELISM, base_image: str = RUNTIME_IMAGE) -> Any:
    """The uploadable pipeline, for a cluster: trials as Kubernetes objects, recorded in the
    in-cluster ML Metadata service (both can be changed through the ``settings`` parameter:
    ``"store"`` takes any store URL, e.g. an SQL database on a KFP without ML Metadata)."""
    settings = StepSettings(
        runner="kubernetes", store=CLUSTER_STORE, capacity_parallelism=parallelism
    ).to_json()

    @dsl.pipeline(
        name="hpo-experiment",
        description=(
            "Hyperparameter tuning of any Katib Experiment pasted into the `spec` parameter (hpo-kfp). "
            f"Up to {parallelism} trials at a time (parallelTrialCount <= {parallelism}), each lane of "
            "trials one task; one run holds the whole experiment, and a later run continues what the "
            "store holds. `settings` (JSON) chooses the runner, the store (`run_budget`: trials per run, "
            "0 for all) and the trials' namespace."
        ),
    )
    def hpo_experiment(spec: str, settings: str = settings) -> str:
        finished = add_lanes(spec, settings, parallelism=parallelism, base_image=base_image)
        return finished.outputs["decision"]  # type: ignore[no-any-return]

    return hpo_experiment
