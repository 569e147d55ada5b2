"""Turning a finished trial run and its output into the trial's record."""

from __future__ import annotations

import json
import math
from dataclasses import replace

from hpo_kfp.errors import MetricsUnavailable
from hpo_kfp.history import TrialRecord
from hpo_kfp.metrics import MetricLog, observe, parse_json_lines, parse_text
from hpo_kfp.runners.base import TrialRun
from hpo_kfp.spec import Experiment
from hpo_kfp.tfevents import ERROR_KEY

__all__ = ["collect_trial", "metric_logs"]


def metric_logs(experiment: Experiment, log_text: str, metrics_text: str) -> list[MetricLog]:
    """The metric values a trial reported, read from where its collector says."""
    collector = experiment.metrics_collector
    names = experiment.objective.metrics
    if collector.kind == "StdOut":
        return parse_text(log_text, names, collector.metrics_format)
    if collector.kind == "TrainJobStatus":
        # The TrainJob's published metrics (the runner writes each status it saw as a JSON
        # line); a trial that published none (or ran locally) is read from its output.
        return parse_json_lines(metrics_text, names) or parse_text(log_text, names, collector.metrics_format)
    if collector.kind == "File" and collector.format == "TEXT":
        return parse_text(metrics_text, names, collector.metrics_format)
    # File JSON, Push, and TensorFlowEvent (whose values the runner exports as JSON lines:
    # see hpo_kfp.tfevents.EventExporter).
    return parse_json_lines(metrics_text, names)


def _event_file_error(experiment: Experiment, metrics_text: str) -> str | None:
    """Why a TensorFlowEvent trial's event files could not be read, if they could not."""
    if experiment.metrics_collector.kind != "TensorFlowEvent" or ERROR_KEY not in metrics_text:
        return None
    for line in metrics_text.splitlines():
        if ERROR_KEY in line:
            try:
                return str(json.loads(line)[ERROR_KEY])
            except (json.JSONDecodeError, KeyError, TypeError):
                return line
    return None


def collect_trial(
    experiment: Experiment, trial: TrialRecord, run: TrialRun, log_text: str, metrics_text: str = ""
) -> TrialRecord:
    """The trial's record once it has ended.

    A run stopped by the early-stopping rule is ``EarlyStopped``; one that did not exit
    cleanly is ``Failed`` (either way its partial metrics are kept as evidence); a clean run
    whose objective never appeared is ``MetricsUnavailable``.
    """
    logs = metric_logs(experiment, log_text, metrics_text)
    ended = replace(trial, started=run.started, finished=run.finished)
    if run.early_stopped:
        return replace(ended, status="EarlyStopped", reason=run.reason, series=_series(logs))
    if not run.succeeded:
        return replace(ended, status="Failed", reason=run.reason, series=_series(logs))
    corrupt = _event_file_error(experiment, metrics_text)
    if corrupt is not None:
        return replace(ended, status="MetricsUnavailable", reason=corrupt, series=_series(logs))
    try:
        observation = observe(logs, experiment.objective)
    except MetricsUnavailable as error:
        return replace(ended, status="MetricsUnavailable", reason=str(error), series=_series(logs))
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
        reason=reason,
    )


def _series(logs: list[MetricLog]) -> dict[str, list[tuple[str | None, float]]]:
    """The finite values, as ``observe`` keeps them (NaN and ±inf have no place in JSON)."""
    series: dict[str, list[tuple[str | None, float]]] = {}
    for log in logs:
        if math.isfinite(log.value):
            series.setdefault(log.name, []).append((log.timestamp, log.value))
    return series
