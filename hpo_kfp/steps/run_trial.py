"""The run-trial step: run one trial with the chosen runner and keep its outputs."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

from hpo_kfp.early_stopping import trial_watch
from hpo_kfp.errors import HpoKfpError
from hpo_kfp.history import TrialRun
from hpo_kfp.runners import TrialFiles
from hpo_kfp.spec import Experiment, parse_experiment
from hpo_kfp.steps.settings import StepSettings
from hpo_kfp.wire import NoTrial, RunResult, TrialItem, read

__all__ = ["run_item", "run_trial_step"]


def run_trial_step(
    spec: str,
    trial: str,
    log_path: str,
    metrics_path: str,
    settings: str = "",
) -> str:
    """Runs the trial of the loop item ``trial`` and returns the run's result.

    The primary container's log goes to ``log_path`` and the metrics file's content (File
    and Push collectors) to ``metrics_path``. A trial that fails is a result; only a
    trial that cannot be launched at all raises.

    Args:
        trial: A :class:`~hpo_kfp.wire.TrialItem` as JSON, or the round's
            :class:`~hpo_kfp.wire.NoTrial` item, which is handed on as it is.
        settings: :class:`StepSettings` as JSON: the runner, the local trials' folder, the
            Kubernetes namespace.

    Returns:
        A :class:`~hpo_kfp.wire.RunResult` as JSON, or the NoTrial item.
    """
    item = read(trial, TrialItem)
    Path(log_path).write_text("", encoding="utf-8")
    Path(metrics_path).write_text("", encoding="utf-8")
    if isinstance(item, NoTrial):
        return item.to_json()
    experiment = parse_experiment(spec, trial_template=None)
    options = StepSettings.from_json(settings)
    files = TrialFiles(log=Path(log_path), metrics=Path(metrics_path))
    return RunResult(trial=item, run=run_item(experiment, options, item, files)).to_json()


def run_item(experiment: Experiment, options: StepSettings, item: TrialItem, files: TrialFiles) -> TrialRun:
    """Runs a claimed trial with the settings' runner, its lease renewed while it runs and
    its early-stopping rule watching it; the log and metrics file go to ``files``.

    Raises:
        RunnerError: The trial could not be launched at all (a trial that fails is a result).
    """
    record = item.record()
    with _heartbeats(options, experiment, record.name):
        return options.trial_runner().run(
            experiment, record, files, watch=trial_watch(experiment, item.stop_rule)
        )


@contextlib.contextmanager
def _heartbeats(options: StepSettings, experiment: Experiment, name: str) -> Iterator[None]:
    """Tells the store, while the trial runs, that its claimer is alive: a trial whose
    heartbeats stop for ``settings.stale_seconds`` is handed out again by the next claim."""
    store = options.open_store() if options.stale_seconds else None
    if store is None:
        yield
        return
    key = options.experiment_key(experiment)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(max(options.stale_seconds / 4, 1)):
            with contextlib.suppress(HpoKfpError):  # a store busy for a moment: the next beat
                store.heartbeat(key, [name])

    store.heartbeat(key, [name])
    thread = threading.Thread(target=beat, name=f"heartbeat-{name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
