"""The collect_metrics component (see README.md). No ``from __future__ import annotations``
here: KFP reads the component's annotations at definition time."""

import functools
from typing import Any

from kfp import dsl
from kfp.dsl import Artifact, Input, Metrics, Output

from components.image import RUNTIME_IMAGE


@functools.cache
def collect_metrics_op(base_image: str = RUNTIME_IMAGE) -> Any:
    """The collect_metrics component, running in ``base_image``."""

    @dsl.component(base_image=base_image, install_kfp_package=False)
    def collect_metrics(
        spec: str,
        settings: str,
        run_id: str,
        result: str,
        log: Input[Artifact],
        metrics_file: Input[Artifact],
        metrics: Output[Metrics],
    ) -> str:
        from hpo_kfp.steps import collect_metrics_step

        record, shown = collect_metrics_step(spec, result, log.path, metrics_file.path, settings, run_id)
        for name, value in shown.items():
            metrics.log_metric(name, value)
        return record

    return collect_metrics
