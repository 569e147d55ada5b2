"""Copying a store into another: how the previous release's ML Metadata files (``sqlite://PATH``
then, ``mlmd+sqlite:///PATH`` now) move into the SQL store.

Every experiment is copied with its spec, its trials (number, name, status, record), the
sampler's study state and its last decision. A copy can be run again: a trial whose number
the target has already is left alone, so a second copy adds nothing, and a copy that was
interrupted finishes where it stopped.

Trials still active in the source (their claimers belong to the old store) arrive released:
the next claim on the target hands them out again with the same number and parameters.
"""

from __future__ import annotations

from typing import Literal, cast

from hpo_kfp.algorithms import trial_name
from hpo_kfp.decide import Decision, Reason
from hpo_kfp.history import History
from hpo_kfp.store.base import ExperimentKey, ExperimentSummary, Store

__all__ = ["copy_store"]

_Status = Literal["Running", "Succeeded", "Failed"]
_DECIDED = ("Running", "Succeeded", "Failed")
"""Statuses a decision has; an experiment still ``Created`` has none to copy."""


def copy_store(source: Store, target: Store) -> list[tuple[ExperimentKey, int]]:
    """Copies every experiment of ``source`` into ``target``.

    Returns:
        Each experiment's key and how many trials this copy added to the target.

    Raises:
        SearchSpaceChanged: The target holds an experiment of the same key with another
            search space (nothing of that experiment is copied).
        StoreError: Either store cannot be read or written.
    """
    copied = []
    for summary in source.experiments():
        key = ExperimentKey(summary.namespace, summary.name)
        experiment = source.load_experiment(key)
        if experiment is None:  # deleted meanwhile
            continue
        target.open_experiment(experiment, key)
        history = source.history(key)
        have = {trial.number for trial in target.history(key).trials}
        added = 0
        for trial in history.trials:
            if trial.number in have:
                continue
            # An imported trial goes in as an import when that gives it the same number and
            # name, so the target knows it when the same prior data is imported again.
            if (
                trial.origin == "import"
                and trial.name == trial_name(experiment.name, trial.number)
                and target.history(key).next_number == trial.number
                and target.import_trials(experiment, key, [trial])
            ):
                added += 1
                continue
            target.record(key, trial)
            added += 1
        if summary.status in _DECIDED:
            target.save_decision(key, _decision(summary, history), history.study_attrs)
        copied.append((key, added))
    return copied


def _decision(summary: ExperimentSummary, history: History) -> Decision:
    """The source's last decision, as its summary tells it."""
    return Decision(
        done=summary.status != "Running",
        status=cast(_Status, summary.status),
        reason=cast(Reason, summary.reason) if summary.reason else None,
        best=history.get(summary.best_trial) if summary.best_trial else None,
    )
