"""The claim: how a claimer gets the experiment's next trials, for every store and every caller.

A claim takes the experiment's turn in the store (:meth:`~hpo_kfp.store.Store.turn`), hands
out trials whose lease ended first (:meth:`~hpo_kfp.store.Store.take_released`), and
otherwise reads the history, works out how many new trials the budget still allows
(:func:`claimable`), suggests them and appends them under the numbers that follow the
history it read (:meth:`~hpo_kfp.store.Store.append_trials`). The store's only rule is that
a number is never written twice; a claimer whose numbers were taken meanwhile (a store
without turns, or a turn that could not be had) reads, suggests and appends again. So two
claimers never get the same number and the budget is exact: a number is only written by a
claimer that saw every trial before it.

The pipeline's steps and the service both claim through :func:`claim`; the stores keep no
policy (they import neither :mod:`hpo_kfp.suggest` nor :mod:`hpo_kfp.decide`).

A claimed trial carries a lease: its claimer's heartbeat (:meth:`~hpo_kfp.store.Store.heartbeat`)
keeps it alive while the trial runs. Only a lease that ran out (``release(older_than=...)``)
or the claimer's own restart (``release(owner_prefix=...)``, by the one that knows its
earlier self is gone) gives a trial back, never another claimer starting, so any number of
runs, lanes and servers share one experiment's budget without repeating a trial.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import replace
from typing import NamedTuple

from hpo_kfp.decide import decide, trial_counts
from hpo_kfp.errors import ClaimRefused, StoreError
from hpo_kfp.history import History, TrialRecord
from hpo_kfp.spec import Experiment
from hpo_kfp.store import ExperimentKey, Store
from hpo_kfp.suggest import suggest

__all__ = ["ATTEMPTS", "Claim", "claim", "claimable"]

ATTEMPTS = 50
"""Appends tried before a claim gives up: each failed one means another claimer wrote trials."""


class Claim(NamedTuple):
    """What a claim handed out, and the history it was decided from (the trials included)."""

    trials: list[TrialRecord]
    """The claimed trials, status ``Pending``: released ones again, or new ones; empty when
    the experiment is done, its budget is spent or its space exhausted."""
    history: History


def claimable(experiment: Experiment, history: History, count: int, run_limit: int | None) -> int:
    """How many new trials a claim of ``count`` may add to ``history``: none once the
    experiment is done, never past ``maxTrialCount`` or the run's limit."""
    if run_limit is not None:
        history = replace(history, run_limit=run_limit)
    if count <= 0 or decide(experiment, history).done:
        return 0
    spent = trial_counts(history)["total"]
    budget = experiment.max_trial_count - spent
    if run_limit is not None:
        budget = min(budget, run_limit - spent)
    return max(min(count, budget), 0)


def claim(
    store: Store,
    experiment: Experiment,
    key: ExperimentKey,
    count: int,
    *,
    owner: str,
    run_limit: int | None = None,
    round_size: int = 0,
    hand_out: Callable[[TrialRecord], TrialRecord] | None = None,
) -> Claim:
    """Hands out up to ``count`` trials of the experiment to ``owner``.

    Released trials (their lease ended) come first, with their numbers and parameters;
    then new ones suggested from the history, where others' active trials count as
    pending. Never more than ``maxTrialCount`` trials of the experiment's own (imports do
    not count), nor more than ``run_limit`` when given.

    Args:
        owner: Who claims: a run, a lane's run, a server. A heartbeat under the trial's name
            keeps the claim; ``release(owner_prefix=...)`` gives back an owner's trials.
        round_size: Synchronous rounds of up to this many trials (0: none). A round is
            suggested only once no trial of the experiment is active, all at once from the
            whole history before it; what this claimer does not take of it is released at
            once, for the other claimers to take. While a round's trials run, a claimer that
            finds none released gets none: the store is the round's barrier, and the caller
            waits (``trial_counts(history)["active"]``) before claiming again.
        hand_out: What a new trial becomes before it is written, when it is handed out at
            once (the service's trials are ``Running`` from the start): one write, not two.
            Released trials taken again come back as the store holds them.

    Raises:
        ClaimRefused: ``owner`` is empty (a trial without a claimer could never be released).
        StoreError: The experiment is not in the store, the store failed, or every one of
            :data:`ATTEMPTS` appends lost to another claimer.
    """
    if not owner:
        raise ClaimRefused("a claim must name its owner, but got ''")
    with store.turn(key):
        for attempt in range(ATTEMPTS):
            taken = store.take_released(key, count, owner=owner)
            if taken:
                return Claim(taken, store.history(key))
            history = store.history(key)
            if round_size and trial_counts(history)["active"]:
                return Claim([], history)  # the round still runs
            new = claimable(experiment, history, round_size or count, run_limit)
            if new == 0:
                return Claim([], history)
            created, updated = suggest(experiment, history, new)
            if not created:
                return Claim([], history)
            if hand_out is not None and len(created) <= count:
                created = [hand_out(trial) for trial in created]
                updated = updated.upsert(created)
            # A round larger than this claim is written for a holder of its own, then
            # released for everyone: this claimer takes its share like the others.
            holder = f"{owner}round/" if len(created) > count else owner
            if store.append_trials(key, created, owner=holder, study_attrs=updated.study_attrs):
                if holder == owner:
                    return Claim(created, updated)
                store.release(key, owner_prefix=holder)
                return Claim(store.take_released(key, count, owner=owner), store.history(key))
            _back_off(attempt)
    raise StoreError(f"experiment {key}: no claim succeeded in {ATTEMPTS} attempts (too many claimers)")


def _back_off(attempt: int) -> None:
    """Waits a random while before a claimer that lost a race tries again, longer after each
    loss, so that many claimers do not all read, suggest and collide again in step."""
    time.sleep(random.uniform(0, min(0.005 * 2**attempt, 0.5)))
