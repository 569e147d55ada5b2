"""Metrics collection: the collector registry, and turning a finished trial's output into its record.

Every collector keeps the contract of :class:`MetricsCollector` (:mod:`hpo_kfp.collectors.base`)
and is looked up here by kind, with :func:`collector_for` or :func:`get_collector`; nothing
outside this package compares collector kinds. The package also holds what a trial uses to
report (:func:`~hpo_kfp.collectors.push.report_metrics`), the TensorFlow event-file reader
(:mod:`hpo_kfp.collectors.tfevents`), and turning a finished trial's output into its record
(:mod:`hpo_kfp.collectors.collect`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from hpo_kfp.collectors.base import LocalMetrics, MetricsCollector
from hpo_kfp.collectors.kinds import (
    ExecutorOutputCollector,
    FileCollector,
    PushCollector,
    StdOutCollector,
    TensorFlowEventCollector,
    TrainJobStatusCollector,
)

if TYPE_CHECKING:
    from hpo_kfp.spec import Experiment

__all__ = [
    "COLLECTORS",
    "EXECUTOR_OUTPUT",
    "LocalMetrics",
    "MetricsCollector",
    "collector_for",
    "get_collector",
]

_REGISTERED: tuple[MetricsCollector, ...] = (
    StdOutCollector(),
    FileCollector(),
    PushCollector(),
    TensorFlowEventCollector(),
    TrainJobStatusCollector(),
    ExecutorOutputCollector(),
)

COLLECTORS: Mapping[str, MetricsCollector] = MappingProxyType({c.kind: c for c in _REGISTERED})
"""Every collector hpo-kfp reads, by kind."""

EXECUTOR_OUTPUT: MetricsCollector = COLLECTORS["ExecutorOutput"]
"""The collector of native trials (a KFP component's outputs), whatever the spec names."""


def get_collector(kind: str) -> MetricsCollector:
    """The collector registered as ``kind``.

    Raises:
        KeyError: No collector of that kind (the spec reader refuses such a spec first).
    """
    return COLLECTORS[kind]


def collector_for(experiment: Experiment) -> MetricsCollector:
    """The collector the experiment's ``metricsCollectorSpec`` names."""
    return COLLECTORS[experiment.metrics_collector.kind]
