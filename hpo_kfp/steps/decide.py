"""The decide step: merge the round's results, record the experiment, say whether it is done."""

from __future__ import annotations

import json
from pathlib import Path

from hpo_kfp.decide import decide
from hpo_kfp.history import History, TrialRecord
from hpo_kfp.report import result_document
from hpo_kfp.spec import parse_experiment
from hpo_kfp.steps.settings import StepSettings

__all__ = ["decide_step"]


def decide_step(
    spec: str,
    history_in: str,
    results: list[str],
    history_out: str,
    settings: str = "",
    decision_out: str = "",
) -> bool:
    """Merges the round's results and decides; returns whether the experiment is done.

    The decision is written to ``decision_out`` as JSON: ``done``, ``status``, ``reason``,
    ``trials`` (counts) and ``best``.
    """
    experiment = parse_experiment(spec, trial_template=None)
    history = History.from_json(Path(history_in).read_text(encoding="utf-8"))
    records = [TrialRecord.from_dict(data) for data in map(json.loads, results) if not data.get("skip")]
    history = history.upsert(records)
    decision = decide(experiment, history)
    tracker = StepSettings.from_json(settings).tracker()
    if tracker is not None and records:
        tracker.save_experiment(experiment, history, decision)
    Path(history_out).write_text(history.to_json(), encoding="utf-8")
    if decision_out:
        document = {"done": decision.done, **result_document(experiment.name, decision)}
        document["trials"] = decision.counts
        Path(decision_out).write_text(json.dumps(document), encoding="utf-8")
    return decision.done
