"""The trial history: a versioned JSON document that flows from round to round.

It holds everything suggest needs to be stateless (every trial's parameters, status and
objective values, plus what the sampler stored on trials and on the study) and
everything a report needs (metrics, their series, timings, reasons).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from hpo_kfp.errors import HistoryError

__all__ = [
    "ACTIVE",
    "FINISHED",
    "HISTORY_VERSION",
    "History",
    "TrialRecord",
    "TrialRun",
    "TrialStatus",
    "jsonable",
    "last_lines",
    "now",
    "trial_name",
]

HISTORY_VERSION = 1
"""The version this release writes. Version 1 is the only one it reads."""

TrialStatus = Literal["Pending", "Running", "Succeeded", "Failed", "MetricsUnavailable", "EarlyStopped"]
_STATUSES = ("Pending", "Running", "Succeeded", "Failed", "MetricsUnavailable", "EarlyStopped")
ACTIVE = frozenset({"Pending", "Running"})
FINISHED = frozenset({"Succeeded", "Failed", "MetricsUnavailable", "EarlyStopped"})


@dataclass(frozen=True, kw_only=True)
class TrialRun:
    """How a trial's run ended: what every trial runner returns."""

    name: str
    exit_code: int | None
    """0 for success; None when the run did not end by itself (deadline, deleted, failed
    condition on a cluster)."""
    started: str
    finished: str
    reason: str
    """Empty when the run succeeded."""
    early_stopped: bool = False
    """Stopped by the early-stopping rule (then ``reason`` says why)."""
    warnings: tuple[str, ...] = ()
    """What may be missing or was left out of the trial's outputs (a termination message the
    kubelet trimmed, a log that could not be read to its end); kept in the trial's record."""

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0


@dataclass(frozen=True, kw_only=True)
class TrialRecord:
    """One trial: what was tried and what came of it."""

    name: str
    """Unique within the experiment; also the trial's object name on a cluster."""
    number: int
    """Order of creation within the experiment, from 0."""
    parameters: dict[str, Any]
    """The assignment, as the trial received it (int, float or str values)."""
    status: TrialStatus = "Pending"
    values: tuple[float, ...] | None = None
    """Reduced objective values, the primary objective first; None unless Succeeded."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Every collected metric, reduced by its strategy."""
    series: dict[str, list[tuple[str | None, float]]] = field(default_factory=dict)
    """Every reported value of each metric, in order, with its timestamp when known."""
    started: str | None = None
    """ISO 8601 start time."""
    finished: str | None = None
    """ISO 8601 end time."""
    reason: str = ""
    """Why the trial ended as it did (e.g. an exit code), for people."""
    sampler_attrs: dict[str, Any] = field(default_factory=dict)
    """What the sampler stored on this trial; carried so the next suggest can learn."""
    origin: str = "suggest"
    """``suggest``, or ``import`` for prior data brought in from elsewhere."""
    log: str = ""
    """Where the trial's whole log was kept: a file of a local run, the lane's artifact on a
    cluster (KFP uploads it when the lane ends); empty when no runner kept one."""
    log_tail: str = ""
    """The last lines of its log, kept with a trial that did not succeed."""
    lane: str = ""
    """The lane task that ran it, ``<run id>/lane-<n>``; empty when none did (an imported
    trial, one the service handed out)."""

    @property
    def objective(self) -> float | None:
        return self.values[0] if self.values else None

    @property
    def duration(self) -> float | None:
        """Seconds between start and end, when both are known."""
        if not self.started or not self.finished:
            return None
        return (datetime.fromisoformat(self.finished) - datetime.fromisoformat(self.started)).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy, every field in order. Written out rather than ``asdict``, which
        copies every value recursively: a third of the time of importing 200,000 trials."""
        return {
            "name": self.name,
            "number": self.number,
            "parameters": dict(self.parameters),
            "status": self.status,
            "values": list(self.values) if self.values is not None else None,
            "metrics": dict(self.metrics),
            "series": {k: [list(point) for point in v] for k, v in self.series.items()},
            "started": self.started,
            "finished": self.finished,
            "reason": self.reason,
            "sampler_attrs": copy.deepcopy(self.sampler_attrs) if self.sampler_attrs else {},
            "origin": self.origin,
            "log": self.log,
            "log_tail": self.log_tail,
            "lane": self.lane,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "trial") -> TrialRecord:
        try:
            status = data.get("status", "Pending")
            if status not in _STATUSES:
                raise HistoryError(
                    f"{where}.status: must be one of {', '.join(_STATUSES)}, but got {status!r}"
                )
            values = data.get("values")
            if values is not None and not all(math.isfinite(float(v)) for v in values):
                raise HistoryError(f"{where}.values: must be finite numbers, but got {values!r}")
            return cls(
                name=str(data["name"]),
                number=int(data["number"]),
                parameters=dict(data["parameters"]),
                status=status,
                values=tuple(float(v) for v in values) if values is not None else None,
                metrics={str(k): float(v) for k, v in (data.get("metrics") or {}).items()},
                series={
                    str(k): [(p[0], float(p[1])) for p in points]
                    for k, points in (data.get("series") or {}).items()
                },
                started=data.get("started"),
                finished=data.get("finished"),
                reason=str(data.get("reason") or ""),
                sampler_attrs=dict(data.get("sampler_attrs") or {}),
                origin=str(data.get("origin") or "suggest"),
                log=str(data.get("log") or ""),
                log_tail=str(data.get("log_tail") or ""),
                lane=str(data.get("lane") or ""),
            )
        except HistoryError:
            raise
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            raise HistoryError(f"{where}: must be a trial record, but it is malformed ({error!r})") from error


@dataclass(frozen=True, kw_only=True)
class History:
    """All trials of one experiment, plus sampler state kept on the study."""

    experiment: str
    trials: tuple[TrialRecord, ...] = ()
    study_attrs: dict[str, Any] = field(default_factory=dict)
    """What the sampler stored on the study (e.g. QMC's sample counter)."""
    run_limit: int | None = None
    """This run's trial budget, as a count of the experiment's own trials (scheduled runs
    that each add N trials); None when only ``maxTrialCount`` limits the run."""

    def count(self, *statuses: str) -> int:
        return sum(1 for t in self.trials if t.status in statuses)

    @property
    def next_number(self) -> int:
        return max((t.number for t in self.trials), default=-1) + 1

    def get(self, name: str) -> TrialRecord | None:
        for trial in self.trials:
            if trial.name == name:
                return trial
        return None

    def upsert(self, records: Iterable[TrialRecord]) -> History:
        """A history with ``records`` added, each replacing a trial of the same name.

        Merging the same record twice gives the same history: a retried step is harmless.
        """
        by_name = {t.name: t for t in self.trials}
        for record in records:
            by_name[record.name] = record
        ordered = sorted(by_name.values(), key=lambda t: (t.number, t.name))
        return replace(self, trials=tuple(ordered))

    def to_json(self) -> str:
        document = {
            "version": HISTORY_VERSION,
            "experiment": self.experiment,
            "study_attrs": self.study_attrs,
            "run_limit": self.run_limit,
            "trials": [t.to_dict() for t in self.trials],
        }
        return json.dumps(document, allow_nan=False, separators=(",", ":"), default=jsonable)

    @classmethod
    def from_json(cls, text: str) -> History:
        """Reads a history document.

        Raises:
            HistoryError: Not JSON, not a history, or of a version this release does not read.
        """
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise HistoryError(
                f"the history must be JSON, but it is not ({error.msg} at line {error.lineno})"
            ) from None
        if not isinstance(document, dict):
            raise HistoryError(f"the history must be a JSON object, but got {type(document).__name__}")
        version = document.get("version")
        if version != HISTORY_VERSION:
            raise HistoryError(
                f"version: this hpo-kfp reads history version {HISTORY_VERSION}, but got {version!r}"
            )
        trials = document.get("trials")
        if not isinstance(trials, list):
            raise HistoryError("trials: must be a list")
        if not isinstance(document.get("study_attrs") or {}, dict):
            raise HistoryError(f"study_attrs: must be an object, but got {document['study_attrs']!r}")
        return cls(
            experiment=str(document.get("experiment", "")),
            trials=tuple(TrialRecord.from_dict(t, f"trials[{i}]") for i, t in enumerate(trials)),
            study_attrs=dict(document.get("study_attrs") or {}),
            run_limit=document.get("run_limit"),
        )


def jsonable(value: Any) -> Any:
    """``json.dumps`` fallback for numpy values and non-finite floats from samplers."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def last_lines(text: str, lines: int = 8, chars: int = 1500) -> str:
    """The last ``lines`` non-empty lines of a log, at most ``chars`` characters of them."""
    kept = [line.rstrip() for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join(kept)[-chars:]


def now() -> str:
    """The current time, ISO 8601 in UTC: when a trial started or finished."""
    return datetime.now(UTC).isoformat()


def trial_name(experiment: str, number: int) -> str:
    """The name of trial ``number``: stable, so a retried step finds the same trial."""
    return f"{experiment}-{number:04d}"
