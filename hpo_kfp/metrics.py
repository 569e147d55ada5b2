"""Reading metrics from a trial's output the way Katib's collectors do, and reducing them.

TEXT: a line is considered only if it contains a metric's name; each filter regex (Katib's
default when none is given) yields ``(name, value)`` pairs from its first two groups; a line
that starts with an RFC 3339 time stamp gives its metrics that time. JSON: one object per
line, metric values as numbers or strings, an optional ``timestamp`` (RFC 3339 or epoch
seconds). Values that are not finite (NaN, ±inf) are never used as a result: they are
counted and left out, and an objective with no finite value makes the trial
``MetricsUnavailable`` with the reason ``"<metric> was NaN"`` (or ``infinite``).

A KFP-native trial reports through a ``system.Metrics`` artifact, whose metadata KFP carries
as a protobuf ``Struct``: a NaN or infinite number there fails the run (kfp.local: "Fail to
serialize NaN for Value.number_value"; the backend's Go launcher rejects the bare ``NaN``
the Python executor writes). :func:`log_metric` writes such a value as its marker string
instead (:data:`NON_FINITE_MARKERS`, the spelling protobuf's JSON gives non-finite doubles),
which the collect step reads back as the non-finite number it stands for.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from hpo_kfp.errors import MetricsUnavailable, ReportError
from hpo_kfp.spec import Objective

__all__ = [
    "DEFAULT_FILTER",
    "NON_FINITE_MARKERS",
    "MetricLog",
    "MetricsArtifact",
    "Observation",
    "log_metric",
    "metric_value",
    "observe",
    "parse_json_lines",
    "parse_text",
]

DEFAULT_FILTER = r"([\w|-]+)\s*=\s*((?i:[+-]?(?:nan|inf(?:inity)?))(?![\w.])|[+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
"""Katib's default TEXT filter, ``name=value``, which also reads the non-finite values Python
prints (``loss=nan``, ``loss=inf``, ``loss=-Infinity``): Katib's own would read an empty value
there, and the trial would look as if it never reported its metric."""

NON_FINITE_MARKERS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
"""The strings :func:`log_metric` writes for non-finite values, and what they stand for."""

_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True)
class MetricLog:
    """One reported value."""

    name: str
    value: float
    timestamp: str | None = None


@dataclass(frozen=True, kw_only=True)
class Observation:
    """A trial's metrics: reduced values, full series, and what was left out."""

    metrics: dict[str, float]
    """Each metric reduced by its strategy (only metrics with a finite value)."""
    values: tuple[float, ...]
    """The objective values, the primary objective first."""
    series: dict[str, list[tuple[str | None, float]]] = field(default_factory=dict)
    non_finite: dict[str, int] = field(default_factory=dict)
    """How many NaN or infinite values each metric reported."""


class MetricsArtifact(Protocol):
    """What :func:`log_metric` needs of a KFP ``system.Metrics`` output: its metadata."""

    metadata: dict[str, Any]


def log_metric(metrics: MetricsArtifact, name: str, value: float) -> None:
    """Logs a KFP-native trial's metric into its ``Output[Metrics]``; NaN and ±inf too.

    Use it instead of ``metrics.log_metric(name, value)`` whenever the value may not be
    finite: KFP cannot carry a non-finite number (the run fails, locally and on a cluster),
    so such a value is written as its marker string (``"NaN"``, ``"Infinity"``,
    ``"-Infinity"``), and hpo-kfp records the trial ``MetricsUnavailable`` with the reason
    ``"<name> was NaN"``. A trial image without hpo-kfp can write the marker itself:
    ``metrics.metadata["loss"] = "NaN"``.

    Raises:
        ReportError: ``value`` is not a number.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ReportError(f"log_metric(): {name} must be a number, but got {value!r}")
    number = float(value)
    if math.isfinite(number):
        metrics.metadata[name] = number
    elif math.isnan(number):
        metrics.metadata[name] = "NaN"
    else:
        metrics.metadata[name] = "Infinity" if number > 0 else "-Infinity"


def metric_value(raw: object) -> float | None:
    """A reported value as a number: an int or float, or a string holding one (a
    :data:`NON_FINITE_MARKERS` marker, ``"nan"`` or ``"inf"`` included); None for anything
    else (booleans too)."""
    if isinstance(raw, bool):
        return None
    return _number(raw)


def parse_text(text: str, names: Sequence[str], filters: Sequence[str] = ()) -> list[MetricLog]:
    """Metric values in free text, found with Katib's rules (see the module docstring)."""
    patterns = [re.compile(f) for f in (filters or (DEFAULT_FILTER,))]
    wanted = set(names)
    logs: list[MetricLog] = []
    for line in text.splitlines():
        if not any(name in line for name in names):
            continue
        first, _, _ = line.partition(" ")
        timestamp = _rfc3339(first)
        for pattern in patterns:
            for match in pattern.finditer(line):
                if pattern.groups < 2:
                    continue
                name, raw = match.group(1).strip(), (match.group(2) or "").strip()
                if name in wanted:
                    value = _number(raw)
                    if value is not None:
                        logs.append(MetricLog(name, value, timestamp))
    return logs


def parse_json_lines(text: str, names: Sequence[str]) -> list[MetricLog]:
    """Metric values in JSON lines; a line that is not a JSON object is skipped."""
    logs: list[MetricLog] = []
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(record, dict):
            continue
        timestamp = _json_timestamp(record.get("timestamp"))
        for name in names:
            if name in record:
                value = metric_value(record[name])
                if value is not None:
                    logs.append(MetricLog(name, value, timestamp))
    return logs


def observe(logs: Iterable[MetricLog], objective: Objective) -> Observation:
    """Reduces metric logs by each metric's strategy.

    Raises:
        MetricsUnavailable: An objective metric has no finite value: ``"loss was NaN"``
            (``infinite``, or ``NaN or infinite``) when it reported only non-finite values.
    """
    series: dict[str, list[tuple[str | None, float]]] = {}
    non_finite: dict[str, int] = {}
    kinds: dict[str, set[str]] = {}
    for log in logs:
        if math.isfinite(log.value):
            series.setdefault(log.name, []).append((log.timestamp, log.value))
        else:
            non_finite[log.name] = non_finite.get(log.name, 0) + 1
            kinds.setdefault(log.name, set()).add("NaN" if math.isnan(log.value) else "infinite")
    metrics = {
        name: _reduce(points, objective.strategies.get(name, "latest")) for name, points in series.items()
    }
    values = []
    for term in objective.terms:
        if term.metric not in metrics:
            if non_finite.get(term.metric):
                raise MetricsUnavailable(f"{term.metric} was {' or '.join(sorted(kinds[term.metric]))}")
            raise MetricsUnavailable(f"objective metric {term.metric!r} was not found in the trial's output")
        values.append(metrics[term.metric])
    return Observation(metrics=metrics, values=tuple(values), series=series, non_finite=non_finite)


def _reduce(points: list[tuple[str | None, float]], strategy: str) -> float:
    numbers = [value for _, value in points]
    if strategy == "min":
        return min(numbers)
    if strategy == "max":
        return max(numbers)
    return numbers[-1]


def _number(raw: object) -> float | None:
    if isinstance(raw, int | float):
        return float(raw)
    if isinstance(raw, str):
        try:
            return float(raw.strip())
        except ValueError:
            return None
    return None


def _rfc3339(text: str) -> str | None:
    match = _RFC3339.match(text)
    if match is None:
        return None
    date, clock, fraction, zone = match.groups()
    fraction = (fraction or "")[:7]  # Python keeps microseconds; RFC 3339 allows nanoseconds.
    zone = "+00:00" if zone in ("Z", "z") else zone
    try:
        return datetime.fromisoformat(f"{date}T{clock}{fraction}{zone}").isoformat()
    except ValueError:
        return None


def _json_timestamp(raw: object) -> str | None:
    if isinstance(raw, str):
        return _rfc3339(raw.strip())
    if isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw):
        return datetime.fromtimestamp(raw, tz=UTC).isoformat()
    return None
