"""``spec.metricsCollectorSpec``: where a trial's metrics are read from."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from hpo_kfp.errors import SpecError
from hpo_kfp.spec._reader import Node, show

__all__ = ["DEFAULT_FILE_PATH", "CollectorSpec", "parse_collector"]

CollectorKind = Literal["StdOut", "File", "Push", "TensorFlowEvent", "TrainJobStatus", "ExecutorOutput"]
FileFormat = Literal["TEXT", "JSON"]

DEFAULT_FILE_PATH = "/var/log/katib/metrics.log"
"""Katib's default metrics file, used when a File collector names none."""

_UNSUPPORTED = {
    "Custom": "a custom metrics collector is not supported by hpo-kfp",
    "PrometheusMetric": "the PrometheusMetric collector is not supported by hpo-kfp",
    "None": "collector kind None (no metrics) cannot drive a tuning",
}
_KINDS = ("StdOut", "File", "Push", "TensorFlowEvent", "TrainJobStatus")
# Katib's rule: a filter has two top subexpressions, the metric name then its value.
_TWO_GROUPS = re.compile(r".*\(.*\).*\(.*\).*")


@dataclass(frozen=True, kw_only=True)
class CollectorSpec:
    """How metrics are collected from a trial, with Katib's defaults applied."""

    kind: CollectorKind = "StdOut"
    """``StdOut`` (the primary container's output), ``File``, ``Push``, ``TensorFlowEvent``, or
    ``TrainJobStatus`` (an hpo-kfp extension: the metrics Kubeflow Trainer publishes in a
    TrainJob's ``status.trainerStatus.metrics``, KEP-2779; where a trial publishes none, its
    trainer's output as for StdOut). ``ExecutorOutput`` is hpo-kfp's own, for the trials of a
    KFP component (:mod:`hpo_kfp.component_trial`): a spec cannot name it."""
    path: str | None = None
    """The metrics file of a ``File`` collector; the event files' directory of a
    ``TensorFlowEvent`` collector (read by :mod:`hpo_kfp.collectors.tfevents`; locally only).
    How each kind is read is :mod:`hpo_kfp.collectors`' concern."""
    format: FileFormat = "TEXT"
    """``TEXT`` (parsed by the filters) or ``JSON`` (one object per line)."""
    metrics_format: tuple[str, ...] = ()
    """``filter.metricsFormat``: regexes whose two groups are a metric's name and value."""


def parse_collector(spec: Node) -> CollectorSpec:
    node = spec.child("metricsCollectorSpec", ("collector", "source"))
    if node is None:
        return CollectorSpec()
    collector = node.child("collector", ("kind", "customCollector"))
    kind = "StdOut"
    if collector is not None:
        kind = collector.string("kind") or "StdOut"
        if kind in _UNSUPPORTED:
            raise SpecError(collector.at("kind"), _UNSUPPORTED[kind], show(kind))
        if kind not in _KINDS:
            raise SpecError(collector.at("kind"), f"must be one of {', '.join(_KINDS)}", show(kind))
    source = node.child("source", ("fileSystemPath", "filter", "httpGet"))
    path: str | None = None
    file_format = "TEXT"
    filters: tuple[str, ...] = ()
    if source is not None:
        if source.has("httpGet"):
            raise SpecError(
                source.at("httpGet"), "is read only by the PrometheusMetric collector", "a mapping"
            )
        filters = _filters(source)
        file_node = source.child("fileSystemPath", ("path", "kind", "format"))
        if file_node is not None:
            file_node.string("kind", choices=("Directory",) if kind == "TensorFlowEvent" else ("File",))
            path = file_node.string("path")
            file_format = file_node.string("format", choices=("TEXT", "JSON")) or "TEXT"
            if file_format == "JSON" and filters:
                raise SpecError(
                    source.at("filter"), "must be omitted when the file format is JSON", "a filter"
                )
    if kind == "TensorFlowEvent":
        _check_event_source(node, path, filters)
    if kind == "TrainJobStatus" and source is not None and source.has("fileSystemPath"):
        raise SpecError(
            node.at("source.fileSystemPath"),
            "must be omitted for TrainJobStatus (it reads the status)",
            "a path",
        )
    if kind == "File":
        path = path or DEFAULT_FILE_PATH
        if not path.startswith("/"):
            raise SpecError(
                "spec.metricsCollectorSpec.source.fileSystemPath.path", "must be an absolute path", show(path)
            )
    return CollectorSpec(kind=kind, path=path, format=file_format, metrics_format=filters)  # type: ignore[arg-type]


def _check_event_source(node: Node, path: str | None, filters: tuple[str, ...]) -> None:
    where = node.at("source.fileSystemPath")
    if path is None:
        raise SpecError(
            f"{where}.path", "must name the event files' directory for TensorFlowEvent", "nothing"
        )
    if not path.startswith("/"):
        raise SpecError(f"{where}.path", "must be an absolute path", show(path))
    if filters:
        raise SpecError(
            node.at("source.filter"), "must be omitted for TensorFlowEvent (tags are the names)", "a filter"
        )
    file_format = Node(node.data["source"]["fileSystemPath"], where).string("format")
    if file_format is not None:
        raise SpecError(f"{where}.format", "must be omitted for TensorFlowEvent", show(file_format))


def _filters(source: Node) -> tuple[str, ...]:
    filter_node = source.child("filter", ("metricsFormat",))
    if filter_node is None:
        return ()
    patterns = filter_node.strings("metricsFormat")
    for index, pattern in enumerate(patterns):
        path = f"{filter_node.at('metricsFormat')}[{index}]"
        try:
            compiled = re.compile(pattern)
        except re.error as error:
            raise SpecError(path, f"must be a valid regular expression ({error})", show(pattern)) from None
        if compiled.groups < 2 or not _TWO_GROUPS.match(pattern):
            raise SpecError(path, "must have two groups: the metric name, then its value", show(pattern))
    return patterns
