"""collect_metrics for KFP-native trials: the user's component reported the metrics itself.
No ``from __future__ import annotations`` here: KFP reads the annotations."""

import functools
from typing import Any

from kfp import dsl
from kfp.dsl import Input, Metrics, Output

from components.image import RUNTIME_IMAGE


@functools.cache
def collect_native_metrics_op(base_image: str = RUNTIME_IMAGE) -> Any:
    """Records a trial from its component's ``system.Metrics`` output."""

    @dsl.component(base_image=base_image, install_kfp_package=False)
    def collect_trial_metrics(
        spec: str,
        settings: str,
        run_id: str,
        trial: str,
        trial_metrics: Input[Metrics],
        metrics: Output[Metrics],
    ) -> str:
        from hpo_kfp.steps.native import native_trial_step

        record, shown = native_trial_step(spec, trial, settings, run_id, metrics=trial_metrics.metadata)
        for name, value in shown.items():
            metrics.log_metric(name, value)
        return record

    return collect_trial_metrics


@functools.cache
def collect_native_value_op(base_image: str = RUNTIME_IMAGE) -> Any:
    """Records a trial from its component's float return value (the primary objective)."""

    @dsl.component(base_image=base_image, install_kfp_package=False)
    def collect_trial_value(
        spec: str, settings: str, run_id: str, trial: str, value: float, metrics: Output[Metrics]
    ) -> str:
        from hpo_kfp.steps.native import native_trial_step

        record, shown = native_trial_step(spec, trial, settings, run_id, value=value)
        for name, reported in shown.items():
            metrics.log_metric(name, reported)
        return record

    return collect_trial_value
