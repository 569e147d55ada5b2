"""The contract every metrics collector keeps.

A collector knows where a trial's metric values are and how to read them: from the primary
container's log (``StdOut``, ``TrainJobStatus``), from a metrics file the trial writes
(``File``, ``Push``, and ``TensorFlowEvent`` once its event files are exported as JSON lines),
or from the executor output of a KFP component (a native trial). Runners hand a collector
two texts — the log and the metrics output — and the collector turns them into
:class:`~hpo_kfp.metrics.MetricLog` values; it never runs anything itself.

Collectors are looked up by kind in :mod:`hpo_kfp.collectors` (one registry): nothing else
compares collector kinds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from hpo_kfp.metrics import MetricLog
    from hpo_kfp.spec import Experiment
    from hpo_kfp.spec.collector import CollectorSpec

__all__ = ["LocalMetrics", "MetricsCollector"]


@dataclass(frozen=True, kw_only=True)
class LocalMetrics:
    """Where a local trial's metrics go instead of the path its template names."""

    placeholder: str
    """The path in the trial's command, args and env to replace."""
    replacement: Path
    """The trial's own file (or directory), so that parallel trials never share one."""
    event_dir: Path | None = None
    """A TensorFlowEvent directory whose values are copied into the metrics file."""


@runtime_checkable
class MetricsCollector(Protocol):
    """How one kind of collector reads a trial's metric values."""

    @property
    def kind(self) -> str:
        """Katib's ``metricsCollectorSpec.collector.kind`` (or an hpo-kfp extension's): the
        registry key."""
        ...

    @property
    def reads_log(self) -> bool:
        """Whether the values are in the primary container's log (else in the metrics
        output). On a cluster only the log is read while the trial runs, so early stopping
        there needs a collector that reads the log."""
        ...

    @property
    def reads_status(self) -> bool:
        """Whether the values are published in the trial object's status (a TrainJob's),
        which a cluster runner then records as the metrics output."""
        ...

    def check_on_cluster(self, spec: CollectorSpec) -> None:
        """Refuses a collector the Kubernetes runner cannot read, before a pipeline is built.

        Raises:
            SpecError: Naming ``spec.metricsCollectorSpec`` and why.
        """
        ...

    def metrics_file(self, spec: CollectorSpec) -> str | None:
        """The file in the trial's container the values are written to, which a cluster
        trial hands back as its termination message; None when they are not in a file."""
        ...

    def local_metrics(self, spec: CollectorSpec, metrics_file: Path) -> LocalMetrics | None:
        """Where a local trial writes what :meth:`metrics_file` names, or None."""
        ...

    def metric_logs(self, experiment: Experiment, log_text: str, metrics_text: str) -> list[MetricLog]:
        """The values of the experiment's metrics in a trial's log and metrics output, in
        the order reported; texts may be pieces of the whole (complete lines), as early
        stopping reads them while the trial runs."""
        ...

    def problem(self, metrics_text: str) -> str | None:
        """Why the metrics output cannot be trusted (a corrupt event file, say), or None."""
        ...
