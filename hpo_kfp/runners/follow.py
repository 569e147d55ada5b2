"""Reading a trial's metrics while it runs, from a file that keeps growing."""

from __future__ import annotations

from pathlib import Path

from hpo_kfp.collect import metric_logs
from hpo_kfp.metrics import MetricLog
from hpo_kfp.spec import Experiment

__all__ = ["OutputFollower"]


class OutputFollower:
    """Returns the metric values in the lines appended to a file since the last call.

    Only complete lines are read; a line still being written waits for the next call.
    """

    def __init__(self, experiment: Experiment, path: Path) -> None:
        self._experiment = experiment
        self._path = path
        self._offset = 0
        self._is_log = experiment.metrics_collector.kind in ("StdOut", "TrainJobStatus")

    def new_logs(self) -> list[MetricLog]:
        try:
            with self._path.open("rb") as stream:
                stream.seek(self._offset)
                data = stream.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self._offset += end + 1
        text = data[: end + 1].decode("utf-8", errors="replace")
        if self._is_log:
            return metric_logs(self._experiment, text, "")
        return metric_logs(self._experiment, "", text)
