"""The collect-metrics step: read a trial's metrics, record the trial, report it to the UI."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from hpo_kfp.collectors.collect import collect_trial
from hpo_kfp.history import TrialRecord, TrialRun, last_lines
from hpo_kfp.runners import TrialFiles
from hpo_kfp.spec import Experiment, parse_experiment
from hpo_kfp.steps.settings import StepSettings
from hpo_kfp.wire import NoTrial, RecordedTrial, RunResult, read

__all__ = ["collect_metrics_step", "record_run"]


def collect_metrics_step(
    spec: str, result: str, log_path: str, metrics_path: str, settings: str = "", run_id: str = ""
) -> tuple[str, dict[str, float]]:
    """Turns a run's result and outputs into the trial's record, saved to the store.

    Args:
        result: A :class:`~hpo_kfp.wire.RunResult` as JSON, or the round's
            :class:`~hpo_kfp.wire.NoTrial` item, which is handed on as it is.

    Returns:
        A :class:`~hpo_kfp.wire.RecordedTrial` as JSON (or the NoTrial item), and the values
        the trial's ``system.Metrics`` artifact shows.
    """
    message = read(result, RunResult)
    if isinstance(message, NoTrial):
        return message.to_json(), {}
    experiment = parse_experiment(spec, trial_template=None)
    options = StepSettings.from_json(settings)
    files = TrialFiles(log=Path(log_path), metrics=Path(metrics_path))
    record = record_run(experiment, options, message.trial.record(), message.run, files, run_id)
    shown = dict(record.metrics)
    shown["trial-number"] = float(record.number)
    return RecordedTrial(record=record).to_json(), shown


def record_run(
    experiment: Experiment,
    options: StepSettings,
    trial: TrialRecord,
    run: TrialRun,
    files: TrialFiles,
    run_id: str = "",
    log_location: str = "",
    lane: str = "",
) -> TrialRecord:
    """The trial's record from its run and the outputs its runner kept in ``files``, saved
    to the settings' store when they name one; with where its log is kept (``log_location``,
    else the file's path), when it did not succeed the log's last lines, so that a report
    from any folder, of any runner, can show them, and the ``lane`` that ran it."""
    log = files.log.read_text(encoding="utf-8", errors="replace")
    metrics = files.metrics.read_text(encoding="utf-8", errors="replace")
    record = collect_trial(experiment, trial, run, log, metrics)
    record = replace(
        record,
        log=log_location or str(files.log.resolve()),
        log_tail="" if record.status == "Succeeded" else last_lines(log),
        lane=lane,
    )
    store = options.open_store()
    if store is not None:
        store.record(options.experiment_key(experiment), record, run_id=run_id)
    return record
