"""The experiment store's contract: what every backend does, and the errors it raises.

An experiment is known by its :class:`ExperimentKey` (namespace, name): the same name in two
namespaces is two experiments, as in Katib. The store holds the experiment's spec with a
fingerprint of its search space, every trial (claimed, running, finished, imported), the
sampler's study state, and the last decision.

Trials are *claimed*: :meth:`Store.claim` reads the history, suggests, and records the new
trials as one step that no other claimer can interleave with. Every backend gets this from a
uniqueness rule rather than a lock: trial numbers are dense (0, 1, 2, ...) and unique per
experiment, a claimer writes the numbers that follow the history it read, and a claimer
whose numbers were taken in the meantime reads again and suggests again. So two claimers
never get the same number, and the budget (``maxTrialCount``, a run's own budget) is exact:
a trial number is only written by a claimer that saw every trial before it.

A claimed trial carries its claimer (``owner``) and a heartbeat. A claimer that dies leaves
its trials active; :meth:`Store.release` gives them back (a local run does so when it takes
over an experiment whose previous run was killed; on a cluster, trials whose heartbeat is
older than a grace period), and the next claim hands a released trial out again with the
same number and parameters before it suggests anything new: nothing is lost or repeated.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from hpo_kfp.decide import Decision
from hpo_kfp.errors import InputError, TrackingError
from hpo_kfp.history import History, TrialRecord
from hpo_kfp.spec import Experiment

__all__ = [
    "ExperimentKey",
    "ExperimentSummary",
    "SearchSpaceChanged",
    "Store",
    "StoreError",
    "claimable",
    "import_key",
    "space_changes",
    "space_fingerprint",
]


class StoreError(TrackingError):
    """The store could not be read or written (a connection, a server, a file lock)."""


class SearchSpaceChanged(InputError):
    """The experiment's search space differs from the one the store recorded."""


@dataclass(frozen=True, order=True)
class ExperimentKey:
    """An experiment's identity in a store."""

    namespace: str
    """The Kubernetes namespace (a KFP profile); "" when none was given."""
    name: str
    """``metadata.name``."""

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @classmethod
    def of(cls, experiment: Experiment, namespace: str | None = None) -> ExperimentKey:
        """The key of ``experiment``: its own ``metadata.namespace``, else ``namespace``."""
        return cls(experiment.namespace or namespace or "", experiment.name)


@dataclass(frozen=True, kw_only=True)
class ExperimentSummary:
    """One experiment as the store knows it."""

    namespace: str
    name: str
    status: str
    reason: str
    trials: int
    best_trial: str
    best_objective: float | None
    updated: str
    stale: int = 0
    """Active trials whose claimer is gone (released, not yet claimed again)."""


@runtime_checkable
class Store(Protocol):
    """Where experiments and their trials are kept.

    Every method may raise :class:`StoreError` when the store cannot be reached or written;
    the errors listed under each are those of the call's own rules.
    """

    def open_experiment(
        self, experiment: Experiment, key: ExperimentKey, *, allow_space_change: bool = False
    ) -> None:
        """Records the experiment, or checks it against the stored one and keeps its newer spec.

        Called before a run (or a step) works on the experiment.

        Raises:
            SearchSpaceChanged: The search space differs and ``allow_space_change`` is False;
                the message names what changed. When allowed, the trials of the old space
                stay, outside the new space (suggest leaves them out).
        """

    def load_experiment(self, key: ExperimentKey) -> Experiment | None:
        """The experiment as last recorded, or None when the store does not know it."""

    def history(self, key: ExperimentKey) -> History:
        """Every trial of the experiment in number order, active ones included, with the
        sampler's study state; an empty history when the store does not know it."""

    def claim(
        self,
        experiment: Experiment,
        key: ExperimentKey,
        count: int,
        *,
        owner: str,
        run_limit: int | None = None,
    ) -> tuple[list[TrialRecord], History]:
        """Hands out up to ``count`` trials to ``owner``: released ones first, then new ones
        suggested from the history (others' active trials count as pending).

        Never more than ``maxTrialCount`` trials of the experiment's own (imports do not
        count), nor more than ``run_limit`` when given; fewer when the search space is
        exhausted or the experiment is done.

        Returns:
            The claimed trials (``Pending``), and the history including them.
        """

    def record(self, key: ExperimentKey, trial: TrialRecord, *, run_id: str = "") -> None:
        """Writes a trial's state; writing the same state again changes nothing.

        Raises:
            StoreError: The experiment is not in the store.
        """

    def heartbeat(self, key: ExperimentKey, names: list[str]) -> None:
        """Notes that the claimer of these active trials is alive."""

    def release(self, key: ExperimentKey, *, older_than: float | None = None) -> list[str]:
        """Gives active trials back for the next claim: all of them, or those whose last
        heartbeat is more than ``older_than`` seconds old. Returns their names."""

    def save_decision(self, key: ExperimentKey, decision: Decision, study_attrs: dict[str, Any]) -> None:
        """Records the experiment's status, reason and best trial (and the study state)."""

    def import_trials(self, experiment: Experiment, key: ExperimentKey, records: list[TrialRecord]) -> int:
        """Adds finished trials run elsewhere (``origin="import"``); one already imported
        (same parameters and values) is skipped. Returns how many were added."""

    def delete(self, key: ExperimentKey) -> bool:
        """Removes the experiment and its trials; False when the store did not know it."""

    def experiments(self) -> list[ExperimentSummary]:
        """Every experiment in the store, by namespace and name."""


def _space(experiment: Experiment) -> list[dict[str, Any]]:
    document = (experiment.source or {}).get("spec", {})
    return [
        {"name": p.get("name"), "type": p.get("parameterType"), "space": p.get("feasibleSpace")}
        for p in document.get("parameters") or []
    ]


def space_fingerprint(experiment: Experiment) -> str:
    """A digest of the search space: parameter names, types and feasible spaces."""
    canonical = json.dumps(_space(experiment), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def space_changes(before: Experiment, after: Experiment) -> list[str]:
    """What differs between two search spaces, in words (empty when they are the same)."""
    old = {p["name"]: p for p in _space(before)}
    new = {p["name"]: p for p in _space(after)}
    changes = [f"parameter {name!r} added" for name in new if name not in old]
    changes += [f"parameter {name!r} removed" for name in old if name not in new]
    for name in new.keys() & old.keys():
        if new[name]["type"] != old[name]["type"]:
            changes.append(f"parameter {name!r}: parameterType {old[name]['type']} -> {new[name]['type']}")
        before_space, after_space = old[name]["space"] or {}, new[name]["space"] or {}
        for field in sorted(before_space.keys() | after_space.keys()):
            if before_space.get(field) != after_space.get(field):
                changes.append(
                    f"parameter {name!r}: feasibleSpace.{field} {before_space.get(field)} -> "
                    f"{after_space.get(field)}"
                )
    return sorted(changes)


def import_key(trial: TrialRecord) -> str:
    """What makes an imported trial the same trial when imported again."""
    canonical = json.dumps(
        {"parameters": trial.parameters, "values": trial.values, "metrics": trial.metrics},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def claimable(experiment: Experiment, history: History, count: int, run_limit: int | None) -> int:
    """How many new trials a claim of ``count`` may add to ``history``: none once the
    experiment is done, never past ``maxTrialCount`` or the run's limit."""
    from dataclasses import replace

    from hpo_kfp.decide import decide, trial_counts

    if run_limit is not None:
        history = replace(history, run_limit=run_limit)
    if count <= 0 or decide(experiment, history).done:
        return 0
    spent = trial_counts(history)["total"]
    budget = experiment.max_trial_count - spent
    if run_limit is not None:
        budget = min(budget, run_limit - spent)
    return max(min(count, budget), 0)
