"""The metrics collectors hpo-kfp reads: Katib's StdOut, File, TensorFlowEvent and Push, and two
of its own — a TrainJob's published status, and a KFP component's executor output."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo_kfp.collectors.base import LocalMetrics
from hpo_kfp.collectors.push import PUSH_METRICS_PATH
from hpo_kfp.collectors.tfevents import ERROR_KEY
from hpo_kfp.errors import SpecError
from hpo_kfp.metrics import MetricLog, metric_value, parse_json_lines, parse_text

if TYPE_CHECKING:
    from hpo_kfp.spec import Experiment
    from hpo_kfp.spec.collector import CollectorSpec

__all__ = [
    "ExecutorOutputCollector",
    "FileCollector",
    "PushCollector",
    "StdOutCollector",
    "TensorFlowEventCollector",
    "TrainJobStatusCollector",
    "executor_output",
]


class _Common:
    """What most collectors share: runnable on a cluster, no problems of their own."""

    reads_log = False
    reads_status = False

    def check_on_cluster(self, spec: CollectorSpec) -> None:
        return None

    def metrics_file(self, spec: CollectorSpec) -> str | None:
        return None

    def local_metrics(self, spec: CollectorSpec, metrics_file: Path) -> LocalMetrics | None:
        return None

    def problem(self, metrics_text: str) -> str | None:
        return None


@dataclass(frozen=True)
class StdOutCollector(_Common):
    """``name=value`` lines (or the spec's filters) in the primary container's output."""

    kind: str = "StdOut"
    reads_log = True

    def metric_logs(self, experiment: Experiment, log_text: str, metrics_text: str) -> list[MetricLog]:
        collector = experiment.metrics_collector
        return parse_text(log_text, experiment.objective.metrics, collector.metrics_format)


@dataclass(frozen=True)
class TrainJobStatusCollector(_Common):
    """The metrics Kubeflow Trainer publishes in a TrainJob's ``status.trainerStatus.metrics``
    (KEP-2779), which the runner writes as JSON lines; a trial that published none (or ran
    locally) is read from its output, as for StdOut."""

    kind: str = "TrainJobStatus"
    reads_log = True
    reads_status = True

    def metric_logs(self, experiment: Experiment, log_text: str, metrics_text: str) -> list[MetricLog]:
        names = experiment.objective.metrics
        published = parse_json_lines(metrics_text, names)
        return published or parse_text(log_text, names, experiment.metrics_collector.metrics_format)


class _WrittenFile(_Common):
    """A collector of a file the trial writes at the spec's path: on a cluster the
    container's termination message, locally the trial's own metrics file."""

    def metrics_file(self, spec: CollectorSpec) -> str | None:
        return spec.path

    def local_metrics(self, spec: CollectorSpec, metrics_file: Path) -> LocalMetrics | None:
        return LocalMetrics(placeholder=spec.path, replacement=metrics_file) if spec.path else None


@dataclass(frozen=True)
class FileCollector(_WrittenFile):
    """A file the trial writes: ``TEXT`` lines read by the filters, or ``JSON`` lines."""

    kind: str = "File"

    def metric_logs(self, experiment: Experiment, log_text: str, metrics_text: str) -> list[MetricLog]:
        collector = experiment.metrics_collector
        names = experiment.objective.metrics
        if collector.format == "TEXT":
            return parse_text(metrics_text, names, collector.metrics_format)
        return parse_json_lines(metrics_text, names)


@dataclass(frozen=True)
class PushCollector(_Common):
    """Values the training code reports with :func:`hpo_kfp.report_metrics` (JSON lines)."""

    kind: str = "Push"

    def metrics_file(self, spec: CollectorSpec) -> str | None:
        return PUSH_METRICS_PATH

    def metric_logs(self, experiment: Experiment, log_text: str, metrics_text: str) -> list[MetricLog]:
        return parse_json_lines(metrics_text, experiment.objective.metrics)


@dataclass(frozen=True)
class TensorFlowEventCollector(_Common):
    """Scalars in TensorFlow event files, which the local runner exports as JSON lines as they
    appear (:class:`hpo_kfp.collectors.tfevents.EventExporter`); a local trial only."""

    kind: str = "TensorFlowEvent"

    def check_on_cluster(self, spec: CollectorSpec) -> None:
        raise SpecError(
            "spec.metricsCollectorSpec.collector.kind",
            "must not be TensorFlowEvent on a cluster (the event files stay in the trial's pod: no "
            "volume is shared with the collect step; run with --runner local, or print name=value "
            "lines for StdOut)",
            repr(self.kind),
        )

    def local_metrics(self, spec: CollectorSpec, metrics_file: Path) -> LocalMetrics | None:
        if not spec.path:
            return None
        directory = metrics_file.with_name(metrics_file.name + ".tfevents")
        return LocalMetrics(placeholder=spec.path, replacement=directory, event_dir=directory)

    def metric_logs(self, experiment: Experiment, log_text: str, metrics_text: str) -> list[MetricLog]:
        return parse_json_lines(metrics_text, experiment.objective.metrics)

    def problem(self, metrics_text: str) -> str | None:
        if ERROR_KEY not in metrics_text:
            return None
        for line in metrics_text.splitlines():
            if ERROR_KEY in line:
                try:
                    return str(json.loads(line)[ERROR_KEY])
                except (json.JSONDecodeError, KeyError, TypeError):
                    return line
        return None


@dataclass(frozen=True)
class ExecutorOutputCollector(_WrittenFile):
    """A KFP component's executor output (kfp's ``dsl/executor.py`` writes it to
    ``executor_input.outputs.outputFile``, the spec's path): its float return value
    ``Output`` is the primary objective, and its ``system.Metrics`` outputs' metadata the
    other metrics (numbers, NaN and ±inf as JSON writes them, or the markers
    :func:`hpo_kfp.metrics.log_metric` writes for them). The metrics output is that JSON
    document (:mod:`hpo_kfp.component_trial`)."""

    kind: str = "ExecutorOutput"

    def metric_logs(self, experiment: Experiment, log_text: str, metrics_text: str) -> list[MetricLog]:
        if not metrics_text.strip():
            return []
        try:
            document = json.loads(metrics_text)
        except json.JSONDecodeError:
            return []
        if not isinstance(document, Mapping):
            return []
        names = experiment.objective.metrics
        logs = []
        for entry in _artifacts(document):
            metadata = entry.get("metadata")
            for name, raw in metadata.items() if isinstance(metadata, Mapping) else ():
                number = metric_value(raw) if name in names else None
                if number is not None:
                    logs.append(MetricLog(str(name), number))
        parameters = document.get("parameterValues")
        value = parameters.get("Output") if isinstance(parameters, Mapping) else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            logs.append(MetricLog(experiment.objective.metric, float(value)))
        return logs


def _artifacts(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    outputs = document.get("artifacts")
    found: list[Mapping[str, Any]] = []
    for output in outputs.values() if isinstance(outputs, Mapping) else ():
        listed = output.get("artifacts") if isinstance(output, Mapping) else None
        found += [a for a in listed or () if isinstance(a, Mapping)]
    return found


def executor_output(metrics: Mapping[str, object] | None = None, value: float | None = None) -> str:
    """An executor output document holding a ``system.Metrics`` output's metadata and a float
    return value, as kfp's executor writes it (for a trial whose outputs are already read)."""
    document: dict[str, Any] = {}
    if value is not None:
        document["parameterValues"] = {"Output": value}
    if metrics:
        document["artifacts"] = {"metrics": {"artifacts": [{"name": "metrics", "metadata": dict(metrics)}]}}
    return json.dumps(document, allow_nan=True)
