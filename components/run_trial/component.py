"""The run_trial component (see README.md). No ``from __future__ import annotations`` here:
KFP reads the component's annotations at definition time."""

import functools
from typing import Any

from kfp import dsl
from kfp.dsl import Artifact, Output

from components.image import RUNTIME_IMAGE


@functools.cache
def run_trial_op(base_image: str = RUNTIME_IMAGE) -> Any:
    """The run_trial component, running in ``base_image``."""

    @dsl.component(base_image=base_image, install_kfp_package=False)
    def run_trial(
        spec: str, settings: str, trial: str, log: Output[Artifact], metrics_file: Output[Artifact]
    ) -> str:
        from hpo_kfp.steps import run_trial_step

        return run_trial_step(spec, trial, log.path, metrics_file.path, settings)

    return run_trial
