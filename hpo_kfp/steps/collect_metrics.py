"""The collect-metrics step: read a trial's metrics, record the trial, report it to the UI."""

from __future__ import annotations

import json
from pathlib import Path

from hpo_kfp.collect import collect_trial
from hpo_kfp.history import TrialRecord
from hpo_kfp.runners.base import TrialRun
from hpo_kfp.spec import parse_experiment
from hpo_kfp.steps.settings import StepSettings

__all__ = ["collect_metrics_step"]


def collect_metrics_step(
    spec: str, result: str, log_path: str, metrics_path: str, settings: str = "", run_id: str = ""
) -> tuple[str, dict[str, float]]:
    """Turns a run's result and outputs into the trial's record, saved to the store.

    Returns:
        The record as JSON, and the values the trial's ``system.Metrics`` artifact shows.
    """
    data = json.loads(result)
    if data.get("skip"):
        return result, {}
    experiment = parse_experiment(spec, trial_template=None)
    item = data["trial"]
    trial = TrialRecord(
        name=item["name"],
        number=int(item["number"]),
        parameters=item["parameters"],
        sampler_attrs=item.get("sampler_attrs") or {},
    )
    run = TrialRun(**data["run"])
    log = Path(log_path).read_text(encoding="utf-8", errors="replace")
    metrics = Path(metrics_path).read_text(encoding="utf-8", errors="replace")
    record = collect_trial(experiment, trial, run, log, metrics)
    tracker = StepSettings.from_json(settings).tracker()
    if tracker is not None:
        tracker.save_trial(experiment, record, run_id=run_id)
    shown = dict(record.metrics)
    shown["trial-number"] = float(record.number)
    return json.dumps(record.to_dict()), shown
