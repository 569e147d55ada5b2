"""The experiment store's contract: what every backend persists, and the errors it raises.

An experiment is known by its :class:`ExperimentKey` (namespace, name): the same name in two
namespaces is two experiments, as in Katib. The store holds the experiment's spec with a
fingerprint of its search space, every trial (claimed, running, finished, imported), the
sampler's study state, and the last decision.

A store persists; it decides nothing. The claim (:mod:`hpo_kfp.claim`) decides which trials
to hand out, from a few atomic primitives every backend keeps:

* :meth:`Store.append_trials` writes new trials under the numbers that follow the history,
  all of them or none when any number is taken. Trial numbers are dense (0, 1, 2, ...) and
  unique per experiment: that rule, not a lock, is what keeps two claimers apart.
* :meth:`Store.take_released` hands released trials to a new owner, each by a
  compare-and-set on its owner: of two claimers of one trial only one gets it.
* :meth:`Store.turn` lets the claimers of one experiment take turns (one mechanism per kind
  of store), so that they rarely suggest trials whose numbers another claimer takes.

A claimed trial carries its claimer (``owner``) and a heartbeat: its lease. A claimer that
dies leaves its trials active; :meth:`Store.release` gives back those whose lease ran out,
or those of one claimer whose successor knows it is gone, and the next claim hands a
released trial out again with the same number and parameters: nothing is lost or repeated.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from hpo_kfp.errors import SearchSpaceChanged, StoreError
from hpo_kfp.history import History, TrialRecord
from hpo_kfp.spec import Experiment

__all__ = [
    "ExperimentKey",
    "ExperimentOutcome",
    "ExperimentSummary",
    "SearchSpaceChanged",
    "Store",
    "StoreError",
    "import_key",
    "space_changes",
    "space_fingerprint",
]


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


class ExperimentOutcome(Protocol):
    """What the store keeps of a decision (:class:`hpo_kfp.decide.Decision` is one)."""

    @property
    def status(self) -> str: ...

    @property
    def reason(self) -> str | None: ...

    @property
    def best(self) -> TrialRecord | None: ...

    @property
    def counts(self) -> Mapping[str, int]:
        """The trials by outcome, as :func:`hpo_kfp.decide.trial_counts` names them."""
        ...


@runtime_checkable
class Store(Protocol):
    """Where experiments and their trials are kept.

    Every method may raise :class:`StoreError` when the store cannot be reached or written;
    the errors listed under each are those of the call's own rules.
    """

    def open_experiment(
        self, experiment: Experiment, key: ExperimentKey, *, allow_space_change: bool = False
    ) -> bool:
        """Records the experiment, or checks it against the stored one and keeps its newer spec.

        Called before a run (or a step) works on the experiment.

        Returns:
            Whether this call recorded it: of callers racing to record one experiment, exactly
            one is told so (the store's unique key decides).

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

    def turn(self, key: ExperimentKey) -> AbstractContextManager[None]:
        """The experiment's turn to claim, held for the block, across processes and servers.

        Claimers of one experiment wait for each other; claimers of others do not. A turn
        that cannot be had (a lock server gone, too long a wait, a kind of store without
        locks) is done without: :meth:`append_trials` still keeps claimers apart.

        Raises:
            StoreError: The experiment is not in the store.
        """

    def take_released(self, key: ExperimentKey, count: int, *, owner: str) -> list[TrialRecord]:
        """Gives up to ``count`` released active trials to ``owner``, oldest number first,
        each with a fresh heartbeat; of two callers only one gets a trial.

        Returns:
            The trials taken, status ``Pending``; empty when none is released.

        Raises:
            StoreError: The experiment is not in the store.
        """

    def append_trials(
        self, key: ExperimentKey, trials: list[TrialRecord], *, owner: str, study_attrs: dict[str, Any]
    ) -> bool:
        """Writes ``trials`` (numbered on from the history) for ``owner`` with a fresh
        heartbeat, and the sampler's ``study_attrs``; the experiment becomes ``Running``.

        Returns:
            True when written; False, having written nothing, when any of the numbers is
            taken (another claimer wrote trials since the history was read).

        Raises:
            StoreError: The experiment is not in the store.
        """

    def record(self, key: ExperimentKey, trial: TrialRecord, *, run_id: str = "") -> None:
        """Writes a trial's state; writing the same state again changes nothing.

        Raises:
            StoreError: The experiment is not in the store.
        """

    def heartbeat(self, key: ExperimentKey, names: list[str]) -> None:
        """Renews the lease of these active trials: their claimer is alive."""

    def release(
        self, key: ExperimentKey, *, older_than: float | None = None, owner_prefix: str | None = None
    ) -> list[str]:
        """Gives claimed active trials back for the next claim: those whose last heartbeat
        is more than ``older_than`` seconds old and whose owner starts with ``owner_prefix``
        (each condition only when given: every claimed trial when neither is).

        Returns:
            The names of the trials released.
        """

    def save_decision(
        self, key: ExperimentKey, decision: ExperimentOutcome, study_attrs: dict[str, Any]
    ) -> None:
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
