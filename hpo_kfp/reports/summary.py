"""What people read about an experiment: counts that add up, every trial with its status,
reason, duration and log, the Pareto front, and one JSON document of it all."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hpo_kfp.decide import Decision
from hpo_kfp.errors import HpoKfpError
from hpo_kfp.history import History, TrialRecord, last_lines
from hpo_kfp.render import format_value
from hpo_kfp.spec import Experiment, Objective
from hpo_kfp.wire import RunResult, read

__all__ = [
    "FAILURES",
    "best_text",
    "counts_text",
    "log_tail",
    "metric_names",
    "pareto_text",
    "ranked",
    "report_document",
    "result_document",
    "shown_metrics",
    "trial_log",
    "trial_logs",
    "trials_table",
]

FAILURES = frozenset({"Failed", "MetricsUnavailable"})
"""Statuses whose log tail is shown: the trial ended without a result."""

_TAIL_LINES = 8
_TAIL_CHARS = 1500


def ranked(objective: Objective, trials: tuple[TrialRecord, ...] | list[TrialRecord]) -> list[TrialRecord]:
    """Succeeded trials best first on the primary objective, then the others by number."""
    scored = [t for t in trials if t.status == "Succeeded" and t.objective is not None]
    sign = 1.0 if objective.type == "minimize" else -1.0
    scored.sort(key=lambda t: (sign * (t.objective or 0.0), t.number))
    taken = {id(t) for t in scored}  # not `t not in scored`: O(n²) comparisons of whole records
    rest = sorted((t for t in trials if id(t) not in taken), key=lambda t: t.number)
    return scored + rest


def counts_text(counts: Mapping[str, int]) -> str:
    """``N trials: a succeeded, b early-stopped, c failed, d without metrics`` (plus running and
    imported trials when there are any): the parts add up to N, the experiment's own trials."""
    parts = [
        f"{counts['succeeded']} succeeded",
        f"{counts['earlyStopped']} early-stopped",
        f"{counts['failed']} failed",
        f"{counts['metricsUnavailable']} without metrics",
    ]
    if counts.get("active"):
        parts.append(f"{counts['active']} running")
    text = f"{counts['total']} trials: " + ", ".join(parts)
    if counts.get("imported"):
        text += f" (and {counts['imported']} imported)"
    return text


def trial_logs(artifacts: Path) -> dict[str, Path]:
    """Trial name -> the log its run kept, in a local run's artifacts folder.

    A lane task keeps each trial's log as ``trials/<trial name>/log`` in its ``trials``
    artifact. A round's run-trial step keeps it beside its ``executor_output.json``
    (kfp.local's record of a task's outputs), whose ``Output`` names the trial.
    """
    logs: dict[str, Path] = {log.parent.name: log for log in sorted(artifacts.glob("**/trials/*/log"))}
    for output in sorted(artifacts.glob("**/run-trial/executor_output.json")):
        try:
            document = json.loads(output.read_text(encoding="utf-8"))
            result = read(str(document["parameterValues"]["Output"]), RunResult)
        except (OSError, ValueError, KeyError, TypeError, HpoKfpError):
            continue  # a task that did not finish, or a round's no-trial item
        log = output.parent / "log"
        if isinstance(result, RunResult) and log.is_file():
            logs[result.trial.name] = log
    return logs


def log_tail(path: Path | None, lines: int = _TAIL_LINES) -> str:
    """The last ``lines`` non-empty lines of a log (at most ~1500 characters); "" without one."""
    if path is None:
        return ""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return last_lines(text, lines, _TAIL_CHARS)


def trial_log(trial: TrialRecord, logs: Mapping[str, Path]) -> tuple[str | Path | None, str]:
    """Where the trial's log is and its last lines: the file found beside this run, else what
    the store kept when the trial was collected (from any folder, for any runner)."""
    found = logs.get(trial.name)
    if found is not None:
        return found, log_tail(found)
    return trial.log or None, trial.log_tail


def metric_names(experiment: Experiment, history: History) -> list[str]:
    """Every metric to show: the objectives first, then the additional metrics, then any
    other the trials recorded."""
    names = list(dict.fromkeys(t.metric for t in experiment.objective.terms))
    names += [n for n in experiment.objective.metrics if n not in names]
    for trial in history.trials:
        names += [n for n in (*trial.metrics, *trial.series) if n not in names]
    return names


def shown_metrics(experiment: Experiment, trial: TrialRecord) -> dict[str, float]:
    """The trial's metrics; for a trial stopped early (which has no result), the best its
    series reached before it stopped, reduced by each metric's strategy."""
    if trial.metrics or trial.status != "EarlyStopped":
        return dict(trial.metrics)
    shown: dict[str, float] = {}
    for name, points in trial.series.items():
        values = [v for _, v in points]
        if not values:
            continue
        strategy = experiment.objective.strategies.get(name, "latest")
        shown[name] = min(values) if strategy == "min" else max(values) if strategy == "max" else values[-1]
    return shown


def _seconds(trial: TrialRecord) -> str:
    return "" if trial.duration is None else f"{trial.duration:.1f}"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


TABLE_ROWS = 25
"""Trials the terminal's table shows unless asked for every one (``--all``)."""
TABLE_PARAMETERS = 10
"""Parameter columns the terminal's table shows unless asked for every one."""


def trials_table(
    experiment: Experiment,
    history: History,
    logs: Mapping[str, Path] | None = None,
    *,
    every: bool = False,
) -> str:
    """A plain-text table of the trials, best first: status, parameters, every metric,
    seconds and reason; then, for each trial that failed, its log and the log's last lines.

    Unless ``every``, the table holds the best :data:`TABLE_ROWS` trials and the first
    :data:`TABLE_PARAMETERS` parameters, and says how many more there are (1,000 trials made
    1,225 lines; 10,000 parameters a megabyte per row)."""
    logs = logs or {}
    everything = ranked(experiment.objective, history.trials)
    trials = everything if every else everything[:TABLE_ROWS]
    parameters = list(dict.fromkeys(name for t in everything for name in t.parameters))
    hidden_parameters = 0 if every else max(len(parameters) - TABLE_PARAMETERS, 0)
    if hidden_parameters:
        parameters = parameters[:TABLE_PARAMETERS]
    metrics = metric_names(experiment, history)
    header = ["trial", "status", *parameters, *metrics, "seconds", "reason"]
    rows = [header]
    for trial in trials:
        values = shown_metrics(experiment, trial)
        rows.append(
            [
                trial.name + (" *" if trial.origin == "import" else ""),
                trial.status,
                *(format_value(trial.parameters.get(name, "")) for name in parameters),
                *(_number(values.get(name)) for name in metrics),
                _seconds(trial),
                trial.reason,
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    if any(t.origin == "import" for t in trials):
        lines.append("* imported prior data")
    left = [f"{len(everything) - len(trials)} more trials"] if len(trials) < len(everything) else []
    left += [f"{hidden_parameters} more parameters"] if hidden_parameters else []
    if left:
        lines.append(f"({' and '.join(left)} not shown: `hpo-kfp report {experiment.name} --all` shows them)")
    for trial in sorted((t for t in everything if t.status in FAILURES), key=lambda t: t.number):
        log, tail = trial_log(trial, logs)
        lines.append(f"{trial.name} {trial.status}: {trial.reason or 'no reason recorded'}")
        if log is not None:
            lines.append(f"  log: {log}")
        lines += [f"  | {line}" for line in tail.splitlines()]
    return "\n".join(lines)


def best_text(experiment: Experiment, decision: Decision) -> str:
    """``best trial NAME: metric=value ...; parameters`` with ``(imported)`` for prior data."""
    best = decision.best
    if best is None:
        return "best trial: none (no trial has succeeded yet)"
    imported = " (imported prior data)" if best.origin == "import" else ""
    metrics = " ".join(f"{k}={v:.6g}" for k, v in best.metrics.items())
    parameters = " ".join(f"{k}={format_value(v)}" for k, v in best.parameters.items())
    return f"best trial {best.name}{imported}: {metrics}; {parameters}"


def pareto_text(experiment: Experiment, decision: Decision) -> str:
    """The Pareto front as a table, every objective a column; "" for one objective."""
    if not experiment.objective.is_multi:
        return ""
    terms = experiment.objective.terms
    header = ["trial", *(f"{t.metric} ({t.direction[:3]})" for t in terms), "parameters"]
    rows = [header]
    for trial in decision.pareto:
        rows.append(
            [
                trial.name + (" *" if trial.origin == "import" else ""),
                *(_number(v) for v in trial.values or ()),
                " ".join(f"{k}={format_value(v)}" for k, v in trial.parameters.items()),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [f"Pareto front: {len(decision.pareto)} trials"]
    lines += [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines)


def _trial_document(
    experiment: Experiment, trial: TrialRecord, logs: Mapping[str, Path], pareto: set[str]
) -> dict[str, Any]:
    log, tail = trial_log(trial, logs)
    document: dict[str, Any] = {
        "name": trial.name,
        "number": trial.number,
        "status": trial.status,
        "reason": trial.reason,
        "imported": trial.origin == "import",
        "parameters": trial.parameters,
        "objectives": dict(
            zip((t.metric for t in experiment.objective.terms), trial.values or (), strict=False)
        ),
        "metrics": shown_metrics(experiment, trial),
        "started": trial.started,
        "finished": trial.finished,
        "seconds": trial.duration,
        "series": {name: [list(point) for point in points] for name, points in trial.series.items()},
        "log": None if log is None else str(log),
        "lane": trial.lane or None,
    }
    if experiment.objective.is_multi:
        document["pareto"] = trial.name in pareto
    if trial.status in FAILURES:
        document["logTail"] = tail
    return document


def result_document(name: str, decision: Decision) -> dict[str, Any]:
    """The experiment's outcome as one JSON-ready object: status, reason, counts per status
    (``succeeded + earlyStopped + failed + metricsUnavailable + active == total``; imported
    trials apart) and the best trial (``bestImported`` when it is prior data)."""
    best = decision.best
    counts = decision.counts
    keys = ("succeeded", "earlyStopped", "failed", "metricsUnavailable", "active", "total", "imported")
    return {
        "experiment": name,
        "status": decision.status,
        "reason": decision.reason,
        "trials": {key: counts[key] for key in keys},
        "best": None
        if best is None
        else {
            "name": best.name,
            "parameters": best.parameters,
            "objective": best.objective,
            "metrics": best.metrics,
        },
        "bestImported": best is not None and best.origin == "import",
    }


def report_document(
    experiment: Experiment,
    history: History,
    decision: Decision,
    logs: Mapping[str, Path] | None = None,
) -> dict[str, Any]:
    """:func:`result_document` plus the Pareto front (several objectives: each trial's
    objectives by name) and every trial best first (``results``: status, reason, seconds,
    metrics, its log and, for a failure, the log's last lines)."""
    logs = logs or {}
    document = result_document(experiment.name, decision)
    pareto = {t.name for t in decision.pareto}
    if experiment.objective.is_multi:
        terms = [t.metric for t in experiment.objective.terms]
        document["pareto"] = [
            {
                "name": t.name,
                "imported": t.origin == "import",
                "objectives": dict(zip(terms, t.values or (), strict=False)),
                "parameters": t.parameters,
            }
            for t in decision.pareto
        ]
    document["results"] = [
        _trial_document(experiment, t, logs, pareto) for t in ranked(experiment.objective, history.trials)
    ]
    return document
