"""The step that records a KFP-native trial: the user's own component ran the training."""

from __future__ import annotations

import math
from collections.abc import Mapping

from hpo_kfp.collectors import EXECUTOR_OUTPUT
from hpo_kfp.collectors.collect import collect_trial
from hpo_kfp.collectors.kinds import executor_output
from hpo_kfp.history import TrialRun, now
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
    trial_record = TrialItem.from_json(trial).record()
    stamp = now()
    run = TrialRun(
        name=trial_record.name, exit_code=0, started=trial_record.started or stamp, finished=stamp, reason=""
    )
    outputs = executor_output(metrics, value)
    record = collect_trial(experiment, trial_record, run, "", outputs, collector=EXECUTOR_OUTPUT)
    options = StepSettings.from_json(settings)
    store = options.open_store()
    if store is not None:
        store.record(options.experiment_key(experiment), record, run_id=run_id)
    shown = {k: v for k, v in record.metrics.items() if math.isfinite(v)}
    return RecordedTrial(record=record).to_json(), shown
