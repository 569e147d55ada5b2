"""Turning a finished trial run and its output into the trial's record, through its collector."""

from __future__ import annotations

import math
from dataclasses import replace

from hpo_kfp.collectors import collector_for
from hpo_kfp.collectors.base import MetricsCollector
from hpo_kfp.errors import MetricsUnavailable
from hpo_kfp.history import TrialRecord, TrialRun
from hpo_kfp.metrics import MetricLog, observe
from hpo_kfp.spec import Experiment

__all__ = ["collect_trial", "metric_logs"]


def metric_logs(experiment: Experiment, log_text: str, metrics_text: str) -> list[MetricLog]:
    """The metric values a trial reported, read from where its collector says."""
    return collector_for(experiment).metric_logs(experiment, log_text, metrics_text)


def collect_trial(
    experiment: Experiment,
    trial: TrialRecord,
    run: TrialRun,
    log_text: str,
    metrics_text: str = "",
    *,
    collector: MetricsCollector | None = None,
) -> TrialRecord:
    """The trial's record once it has ended.

    A run stopped by the early-stopping rule is ``EarlyStopped``; one that did not exit
    cleanly is ``Failed`` (either way its partial metrics are kept as evidence); a clean run
    whose objective never appeared is ``MetricsUnavailable``.

    Args:
        collector: Who reads the texts; the experiment's own collector by default.
    """
    collector = collector or collector_for(experiment)
    logs = collector.metric_logs(experiment, log_text, metrics_text)
    ended = replace(trial, started=run.started, finished=run.finished)

    def noted(reason: str) -> str:
        # The run's warnings (a trimmed termination message, say) follow the reason.
        return "; ".join(part for part in (reason, *run.warnings) if part)

    if run.early_stopped:
        return replace(ended, status="EarlyStopped", reason=noted(run.reason), series=_series(logs))
    if not run.succeeded:
        return replace(ended, status="Failed", reason=noted(run.reason), series=_series(logs))
    corrupt = collector.problem(metrics_text)
    if corrupt is not None:
        return replace(ended, status="MetricsUnavailable", reason=noted(corrupt), series=_series(logs))
    try:
        observation = observe(logs, experiment.objective)
    except MetricsUnavailable as error:
        return replace(ended, status="MetricsUnavailable", reason=noted(str(error)), series=_series(logs))
    reason = ""
    if observation.non_finite:
        counts = ", ".join(f"{name}: {n}" for name, n in sorted(observation.non_finite.items()))
        reason = f"non-finite values left out ({counts})"
    return replace(
        ended,
        status="Succeeded",
        values=observation.values,
        metrics=observation.metrics,
        series=observation.series,
        reason=noted(reason),
    )


def _series(logs: list[MetricLog]) -> dict[str, list[tuple[str | None, float]]]:
    """The finite values, as ``observe`` keeps them (NaN and ±inf have no place in JSON)."""
    series: dict[str, list[tuple[str | None, float]]] = {}
    for log in logs:
        if math.isfinite(log.value):
            series.setdefault(log.name, []).append((log.timestamp, log.value))
    return series
