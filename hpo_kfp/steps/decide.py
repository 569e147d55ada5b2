"""The decide step: merge the round's results, record the experiment, say whether it is done."""

from __future__ import annotations

import json
from pathlib import Path

from hpo_kfp.decide import decide
from hpo_kfp.history import History, TrialRecord
from hpo_kfp.spec import parse_experiment
from hpo_kfp.steps.settings import StepSettings

__all__ = ["decide_step"]


def decide_step(spec: str, history_in: str, results: list[str], history_out: str, settings: str = "") -> str:
    """Returns the decision as JSON: ``done``, ``status``, ``reason``, ``best`` and counts."""
    experiment = parse_experiment(spec)
    history = History.from_json(Path(history_in).read_text(encoding="utf-8"))
    records = [TrialRecord.from_dict(data) for data in map(json.loads, results) if not data.get("skip")]
    history = history.upsert(records)
    decision = decide(experiment, history)
    tracker = StepSettings.from_json(settings).tracker()
    if tracker is not None and records:
        tracker.save_experiment(experiment, history, decision)
    Path(history_out).write_text(history.to_json(), encoding="utf-8")
    best = decision.best
    return json.dumps(
        {
            "experiment": experiment.name,
            "done": decision.done,
            "status": decision.status,
            "reason": decision.reason,
            "trials": decision.counts,
            "best": None
            if best is None
            else {
                "name": best.name,
                "parameters": best.parameters,
                "objective": best.objective,
                "metrics": best.metrics,
            },
        }
    )
