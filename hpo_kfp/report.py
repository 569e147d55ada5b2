"""What people read about an experiment: a ranked table of trials and a summary document."""

from __future__ import annotations

from typing import Any

from hpo_kfp.decide import Decision
from hpo_kfp.history import History, TrialRecord
from hpo_kfp.spec import Objective
from hpo_kfp.templates import format_value

__all__ = ["ranked", "result_document", "trials_table"]


def ranked(objective: Objective, trials: tuple[TrialRecord, ...] | list[TrialRecord]) -> list[TrialRecord]:
    """Succeeded trials best first on the primary objective, then the others by number."""
    scored = [t for t in trials if t.status == "Succeeded" and t.objective is not None]
    sign = 1.0 if objective.type == "minimize" else -1.0
    scored.sort(key=lambda t: (sign * (t.objective or 0.0), t.number))
    rest = sorted((t for t in trials if t not in scored), key=lambda t: t.number)
    return scored + rest


def trials_table(objective: Objective, history: History) -> str:
    """A plain-text table: name, status, parameters, objective, duration."""
    trials = ranked(objective, history.trials)
    parameters = list(dict.fromkeys(name for t in trials for name in t.parameters))
    header = ["trial", "status", *parameters, objective.metric, "seconds"]
    rows = [header]
    for trial in trials:
        rows.append(
            [
                trial.name + (" *" if trial.origin == "import" else ""),
                trial.status,
                *(format_value(trial.parameters.get(name, "")) for name in parameters),
                "" if trial.objective is None else f"{trial.objective:.6g}",
                "" if trial.duration is None else f"{trial.duration:.1f}",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    if any(t.origin == "import" for t in trials):
        lines.append("* imported prior data")
    return "\n".join(lines)


def result_document(name: str, decision: Decision) -> dict[str, Any]:
    """The experiment's outcome as one JSON-ready object: status, reason, counts, best."""
    best = decision.best
    counts = decision.counts
    return {
        "experiment": name,
        "status": decision.status,
        "reason": decision.reason,
        "trials": {key: counts[key] for key in ("succeeded", "failed", "metricsUnavailable")},
        "best": None
        if best is None
        else {
            "name": best.name,
            "parameters": best.parameters,
            "objective": best.objective,
            "metrics": best.metrics,
        },
    }
