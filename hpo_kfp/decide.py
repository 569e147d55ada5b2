"""When to stop: Katib's experiment rules, plus the best trial so far.

Katib's order is kept: goal reached first; then failed trials (``Failed`` and
``MetricsUnavailable``) reaching ``maxFailedTrialCount``; then finished trials reaching
``maxTrialCount``; then an algorithm with nothing left to suggest (a grid, say). A run with its
own trial budget (scheduled runs) also stops once that budget is spent, with the
experiment still ``Running``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from hpo_kfp.algorithms import get_algorithm
from hpo_kfp.history import ACTIVE, History, TrialRecord
from hpo_kfp.spec import Experiment, Objective

__all__ = ["Decision", "best_trial", "decide", "pareto_front", "trial_counts"]

Reason = Literal[
    "GoalReached", "MaxTrialsReached", "MaxFailedTrialsReached", "SuggestionEndReached", "RunBudgetReached"
]


@dataclass(frozen=True, kw_only=True)
class Decision:
    """Whether the experiment is done, why, and its best trial."""

    done: bool
    status: Literal["Running", "Succeeded", "Failed"]
    reason: Reason | None = None
    best: TrialRecord | None = None
    """Best succeeded trial on the primary objective (for several objectives: the best
    on the primary objective among the Pareto front)."""
    pareto: tuple[TrialRecord, ...] = ()
    """Non-dominated succeeded trials, when there are several objectives."""
    counts: dict[str, int] = field(default_factory=dict)


def trial_counts(history: History) -> dict[str, int]:
    """The experiment's own trials by outcome, named as in the CLI's JSON.

    Trials imported as prior data are counted apart (``imported``): they inform the
    sampler and can be the best trial, but they spend none of the trial budget.
    """
    statuses: Counter[str] = Counter(t.status for t in history.trials if t.origin != "import")
    total = sum(statuses.values())
    return {
        "succeeded": statuses["Succeeded"],
        "failed": statuses["Failed"],
        "metricsUnavailable": statuses["MetricsUnavailable"],
        "earlyStopped": statuses["EarlyStopped"],
        "active": sum(statuses[status] for status in ACTIVE),
        "total": total,
        "imported": len(history.trials) - total,
    }


def decide(experiment: Experiment, history: History) -> Decision:
    counts = trial_counts(history)
    best = best_trial(experiment.objective, history.trials)
    pareto = (
        tuple(pareto_front(experiment.objective, history.trials)) if experiment.objective.is_multi else ()
    )

    def end(status: Literal["Succeeded", "Failed"], reason: Reason) -> Decision:
        return Decision(done=True, status=status, reason=reason, best=best, pareto=pareto, counts=counts)

    objective_best = best.objective if best is not None else None
    if objective_best is not None and experiment.objective.reached(objective_best):
        return end("Succeeded", "GoalReached")
    failed = counts["failed"] + counts["metricsUnavailable"]
    limit = experiment.max_failed_trial_count
    if limit is not None and failed != 0 and failed >= limit:
        return end("Failed", "MaxFailedTrialsReached")
    finished = counts["total"] - counts["active"]
    if finished >= experiment.max_trial_count:
        return end("Succeeded", "MaxTrialsReached")
    algorithm = get_algorithm(experiment.algorithm.name)
    if counts["active"] == 0 and algorithm.exhausted(experiment, history, counts["total"]):
        return end("Succeeded", "SuggestionEndReached")
    if history.run_limit is not None and finished >= history.run_limit:
        # This run's share is spent; the experiment goes on in the next run.
        return Decision(
            done=True, status="Running", reason="RunBudgetReached", best=best, pareto=pareto, counts=counts
        )
    return Decision(done=False, status="Running", best=best, pareto=pareto, counts=counts)


def best_trial(
    objective: Objective, trials: tuple[TrialRecord, ...] | list[TrialRecord]
) -> TrialRecord | None:
    candidates = pareto_front(objective, trials) if objective.is_multi else _succeeded(trials)
    if not candidates:
        return None
    # The first of equals wins (min and max keep the first); values[0] is the primary objective.
    choose = min if objective.type == "minimize" else max
    return choose(candidates, key=_primary)


def _primary(trial: TrialRecord) -> float:
    return trial.values[0]  # type: ignore[index]


def pareto_front(
    objective: Objective, trials: tuple[TrialRecord, ...] | list[TrialRecord]
) -> list[TrialRecord]:
    """Succeeded trials no other succeeded trial dominates, in trial order."""
    signs = [1.0 if term.direction == "minimize" else -1.0 for term in objective.terms]
    points = [(t, [s * v for s, v in zip(signs, t.values or (), strict=True)]) for t in _succeeded(trials)]

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x <= y for x, y in zip(a, b, strict=True)) and any(
            x < y for x, y in zip(a, b, strict=True)
        )

    return [t for t, p in points if not any(dominates(q, p) for _, q in points)]


def _succeeded(trials: tuple[TrialRecord, ...] | list[TrialRecord]) -> list[TrialRecord]:
    return [t for t in trials if t.status == "Succeeded" and t.values]
