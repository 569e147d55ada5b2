"""The step that records a KFP-native trial: the user's own component ran the training."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace

from hpo_kfp.errors import MetricsUnavailable
from hpo_kfp.metrics import MetricLog, metric_value, observe
from hpo_kfp.runners.base import now
from hpo_kfp.spec import parse_experiment
from hpo_kfp.steps.settings import StepSettings
from hpo_kfp.wire import RecordedTrial, TrialItem

__all__ = ["native_trial_step"]


def native_trial_step(
    spec: str,
    trial: str,
    settings: str = "",
    run_id: str = "",
    *,
    metrics: Mapping[str, object] | None = None,
    value: float | None = None,
) -> tuple[str, dict[str, float]]:
    """Records a KFP-native trial from what its component reported.

    Args:
        trial: The loop item the trial ran: a :class:`~hpo_kfp.wire.TrialItem` as JSON.
        metrics: The metadata of the component's ``system.Metrics`` output, if it has one:
            numbers, or the markers :func:`hpo_kfp.metrics.log_metric` writes for NaN and ±inf.
        value: The component's float return value, taken as the primary objective.

    Returns:
        The record as a :class:`~hpo_kfp.wire.RecordedTrial` (JSON): ``Succeeded``, or
        ``MetricsUnavailable`` when the objective is missing or not finite (reason
        ``"loss was NaN"``, say); and the metrics to show in the UI.
    """
    experiment = parse_experiment(spec, trial_template=None)
    item = TrialItem.from_json(trial)
    logs = []
    for name, raw in (metrics or {}).items():
        number = metric_value(raw) if name in experiment.objective.metrics else None
        if number is not None:
            logs.append(MetricLog(str(name), number))
    if value is not None:
        logs.append(MetricLog(experiment.objective.metric, float(value)))
    record = replace(item.record(), finished=now())
    try:
        observation = observe(logs, experiment.objective)
    except MetricsUnavailable as error:
        record = replace(record, status="MetricsUnavailable", reason=str(error))
    else:
        record = replace(
            record,
            status="Succeeded",
            values=observation.values,
            metrics=observation.metrics,
            series=observation.series,
        )
    options = StepSettings.from_json(settings)
    store = options.open_store()
    if store is not None:
        store.record(options.experiment_key(experiment), record, run_id=run_id)
    shown = {k: v for k, v in record.metrics.items() if math.isfinite(v)}
    return RecordedTrial(record=record).to_json(), shown
