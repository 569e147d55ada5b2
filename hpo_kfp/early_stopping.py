"""Median stopping (Katib's ``medianstop``): stop a running trial that is visibly worse.

The rule: once ``min_trials_required`` trials have succeeded, take for each of them the
average of its objective's first ``start_step`` reported values, and their median. A
running trial whose best value so far (Katib compares the best so far, not the latest) is
worse than that median, at any step from ``start_step`` on, is stopped and recorded as
``EarlyStopped`` — neither failed nor succeeded, with its partial series kept.

Two notes against Katib's own code: its service averages those averages (``sum / len``)
although the rule is named for the median; this module uses the median. And its collector
checks only at step ``start_step``; since the best value so far can only improve, checking
at every later step stops exactly the same trials.

The rule is computed when a round is proposed (from the history, by suggest) and travels
with each trial to run_trial, which watches the trial's output as it is printed.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from hpo_kfp.collectors import collector_for
from hpo_kfp.history import History
from hpo_kfp.metrics import MetricLog
from hpo_kfp.spec import Experiment

__all__ = ["StopRule", "StopWatch", "TrialWatch", "stop_rule", "trial_watch"]


@dataclass(frozen=True, kw_only=True)
class StopRule:
    """When to stop a running trial."""

    metric: str
    """The objective metric."""
    median: float
    """The median of the succeeded trials' averages over their first ``start_step`` values."""
    direction: Literal["minimize", "maximize"]
    start_step: int
    """The number of reported values before the rule applies."""
    trials: int
    """How many succeeded trials the median comes from."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StopRule:
        return cls(**data)


def stop_rule(experiment: Experiment, history: History) -> StopRule | None:
    """The rule for the next round, or None (no early stopping, or too few succeeded trials)."""
    settings = experiment.early_stopping
    if settings is None:
        return None
    metric = experiment.objective.metric
    averages = []
    for trial in history.trials:
        if trial.status != "Succeeded":
            continue
        first = [value for _, value in trial.series.get(metric, [])[: settings.start_step]]
        if first:
            averages.append(sum(first) / len(first))
    if len(averages) < settings.min_trials_required:
        return None
    return StopRule(
        metric=metric,
        median=statistics.median(averages),
        direction=experiment.objective.type,
        start_step=settings.start_step,
        trials=len(averages),
    )


class StopWatch:
    """Follows a trial's reported values and says when the rule stops it."""

    def __init__(self, rule: StopRule) -> None:
        self.rule = rule
        self.steps = 0
        self.best: float | None = None
        self.reason = ""

    def feed(self, logs: Iterable[MetricLog]) -> bool:
        """Takes newly reported values; True once the trial must stop."""
        rule = self.rule
        for log in logs:
            if log.name != rule.metric or not math.isfinite(log.value):
                # A NaN would stick as the best so far (every comparison with it is false).
                continue
            self.steps += 1
            better = self.best is None or (
                log.value < self.best if rule.direction == "minimize" else log.value > self.best
            )
            if better:
                self.best = log.value
            if self.steps >= rule.start_step and self._worse(self.best):
                self.reason = (
                    f"best {rule.metric}={self.best:.6g} after {self.steps} steps is "
                    f"worse than the median {rule.median:.6g} of {rule.trials} succeeded trials"
                )
                return True
        return False

    def _worse(self, value: float | None) -> bool:
        if value is None:
            return False
        return value > self.rule.median if self.rule.direction == "minimize" else value < self.rule.median


class TrialWatch:
    """Early stopping for one running trial, whatever runs it (an
    :class:`~hpo_kfp.runners.base.OutputWatch`): the runner feeds it the trial's new output,
    the experiment's collector reads the values, and the rule says when to stop."""

    def __init__(self, experiment: Experiment, rule: StopRule) -> None:
        self._experiment = experiment
        self._collector = collector_for(experiment)
        self._watch = StopWatch(rule)

    @property
    def reads_log(self) -> bool:
        return self._collector.reads_log

    def feed(self, log_text: str = "", metrics_text: str = "") -> str | None:
        logs = self._collector.metric_logs(self._experiment, log_text, metrics_text)
        return self._watch.reason if logs and self._watch.feed(logs) else None


def trial_watch(experiment: Experiment, rule: StopRule | None) -> TrialWatch | None:
    """The watch of a trial that suggest attached ``rule`` to, or None without one."""
    return TrialWatch(experiment, rule) if rule is not None else None
