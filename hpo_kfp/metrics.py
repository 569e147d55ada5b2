"""Reading metrics from a trial's output the way Katib's collectors do, and reducing them.

TEXT: a line is considered only if it contains a metric's name; each filter regex (Katib's
default when none is given) yields ``(name, value)`` pairs from its first two groups; a line
that starts with an RFC 3339 time stamp gives its metrics that time. JSON: one object per
line, metric values as numbers or strings, an optional ``timestamp`` (RFC 3339 or epoch
seconds). Values that are not finite (NaN, ±inf) are never used as a result: they are
counted and left out, and an objective with no finite value makes the trial
``MetricsUnavailable``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hpo_kfp.errors import MetricsUnavailable
from hpo_kfp.spec import Objective

__all__ = [
    "DEFAULT_FILTER",
    "MetricLog",
    "Observation",
    "observe",
    "parse_json_lines",
    "parse_text",
]

DEFAULT_FILTER = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
"""Katib's default TEXT filter: ``name=value``."""

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
                raw = record[name]
                value = None if isinstance(raw, bool) else _number(raw)
                if value is not None:
                    logs.append(MetricLog(name, value, timestamp))
    return logs


def observe(logs: Iterable[MetricLog], objective: Objective) -> Observation:
    """Reduces metric logs by each metric's strategy.

    Raises:
        MetricsUnavailable: An objective metric has no finite value.
    """
    series: dict[str, list[tuple[str | None, float]]] = {}
    non_finite: dict[str, int] = {}
    for log in logs:
        if math.isfinite(log.value):
            series.setdefault(log.name, []).append((log.timestamp, log.value))
        else:
            non_finite[log.name] = non_finite.get(log.name, 0) + 1
    metrics = {
        name: _reduce(points, objective.strategies.get(name, "latest")) for name, points in series.items()
    }
    values = []
    for term in objective.terms:
        if term.metric not in metrics:
            if non_finite.get(term.metric):
                raise MetricsUnavailable(
                    f"objective metric {term.metric!r} reported only non-finite values "
                    f"({non_finite[term.metric]} NaN or infinite)"
                )
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
