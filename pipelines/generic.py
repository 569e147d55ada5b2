"""The generic pipeline: upload it once in the KFP UI, start runs by pasting an Experiment.

Its ``spec`` run parameter takes any Katib Experiment YAML. The number of rounds and the
largest number of trials at a time are fixed when it is compiled (stated in its
description); an experiment that needs more fails at the first step with a message saying
so. Regenerate the committed file with::

    uv run python -m pipelines.generic
"""

# No `from __future__ import annotations`: KFP reads the pipeline function's annotations.
import sys
from pathlib import Path
from typing import Any

from kfp import dsl

from components import RUNTIME_IMAGE
from hpo_kfp.steps.settings import StepSettings
from hpo_kfp.tracking.base import DEFAULT_PORT, IN_CLUSTER_HOST
from pipelines.compact import compact_file
from pipelines.loop import add_rounds, compile_pipeline

__all__ = ["CAPACITY_PARALLELISM", "CAPACITY_ROUNDS", "GENERIC_PIPELINE", "build_generic_pipeline", "write"]

CAPACITY_ROUNDS = 30
CAPACITY_PARALLELISM = 10
GENERIC_PIPELINE = Path(__file__).with_name("hpo_experiment.yaml")


def build_generic_pipeline(
    rounds: int = CAPACITY_ROUNDS, parallelism: int = CAPACITY_PARALLELISM, base_image: str = RUNTIME_IMAGE
) -> Any:
    """The uploadable pipeline, for a cluster: trials as Kubernetes objects, recorded in the
    in-cluster ML Metadata service (both can be changed through the ``settings`` parameter)."""
    settings = StepSettings(
        runner="kubernetes",
        tracking=f"grpc://{IN_CLUSTER_HOST}:{DEFAULT_PORT}",
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


def write(path: Path = GENERIC_PIPELINE) -> int:
    """Compiles and compacts the generic pipeline to ``path``; returns its size."""
    compile_pipeline(build_generic_pipeline(), path)
    return compact_file(path)


if __name__ == "__main__":
    size = write(Path(sys.argv[1]) if len(sys.argv) > 1 else GENERIC_PIPELINE)
    print(f"{sys.argv[1] if len(sys.argv) > 1 else GENERIC_PIPELINE}: {size} bytes")
