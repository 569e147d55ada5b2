"""``report_metrics()``: the Push collector, called from the training code."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from datetime import UTC, datetime

from hpo_kfp.errors import ReportError

__all__ = ["METRICS_FILE_ENV", "PUSH_METRICS_PATH", "TRIAL_NAME_ENV", "report_metrics"]

METRICS_FILE_ENV = "HPO_KFP_METRICS_FILE"
"""Where :func:`hpo_kfp.report_metrics` appends (the Push collector) and File metrics go."""
TRIAL_NAME_ENV = "HPO_KFP_TRIAL_NAME"
"""The running trial's name, in its environment."""
PUSH_METRICS_PATH = "/tmp/hpo-kfp-metrics.jsonl"
"""A cluster trial's Push metrics file, inside the trial's own container."""


def report_metrics(metrics: Mapping[str, float] | None = None, /, **named: float) -> None:
    """Reports metric values of the running trial, e.g. ``report_metrics(loss=0.25)``.

    Each call records one time-stamped line; call it as often as there are values (once
    per epoch, say). Use it with ``metricsCollectorSpec: {collector: {kind: Push}}``.

    Raises:
        InputError: Called outside a trial, or with a value that is not a number.
    """
    path = os.environ.get(METRICS_FILE_ENV)
    if not path:
        raise ReportError(f"report_metrics() must run inside a trial, but {METRICS_FILE_ENV} is not set")
    values = {**(metrics or {}), **named}
    record: dict[str, object] = {"timestamp": datetime.now(UTC).isoformat()}
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ReportError(f"report_metrics(): {name} must be a number, but got {value!r}")
        record[name] = float(value) if math.isfinite(value) else str(value)
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(json.dumps(record) + "\n")
