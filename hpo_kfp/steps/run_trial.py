"""The run-trial step: run one trial with the chosen runner and keep its outputs."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from hpo_kfp.early_stopping import StopRule, StopWatch
from hpo_kfp.errors import HpoKfpError
from hpo_kfp.history import TrialRecord
from hpo_kfp.runners.base import TrialRun
from hpo_kfp.runners.follow import OutputFollower
from hpo_kfp.spec import Experiment, parse_experiment
from hpo_kfp.steps.settings import StepSettings
from hpo_kfp.wire import NoTrial, RunResult, TrialItem, read

__all__ = ["run_trial_step"]


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
    record = item.record()
    with _heartbeats(options, experiment, record.name):
        run = _run(experiment, options, item, record, Path(log_path), Path(metrics_path))
    return RunResult(trial=item, run=run).to_json()


def _run(
    experiment: Experiment,
    options: StepSettings,
    item: TrialItem,
    record: TrialRecord,
    log_path: Path,
    metrics_path: Path,
) -> TrialRun:
    if options.runner == "local":
        from hpo_kfp.runners import local_command, run_local

        command = local_command(experiment, record, metrics_path)
        stop = _stopper(experiment, item.stop_rule, log_path, metrics_path)
        return run_local(
            command, name=record.name, cwd=Path(options.trial_cwd or "."), log_path=log_path, stop=stop
        )
    from hpo_kfp.runners.kubernetes import KubernetesRunner, KubernetesSettings, step_namespace

    deadline = float(options.trial_deadline_seconds) if options.trial_deadline_seconds else None
    runner = KubernetesRunner.from_environment(KubernetesSettings(deadline_seconds=deadline))
    output = runner.run(
        experiment,
        record,
        namespace=step_namespace(options.namespace or None, experiment),
        stop_rule=item.stop_rule,
    )
    log_path.write_text(output.log, encoding="utf-8")
    metrics_path.write_text(output.metrics, encoding="utf-8")
    return output.run


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


def _stopper(
    experiment: Experiment, rule: StopRule | None, log_path: Path, metrics_path: Path
) -> Callable[[], str | None] | None:
    """The early-stopping check for a local trial, from the rule suggest attached to it."""
    if rule is None:
        return None
    watch = StopWatch(rule)
    source = log_path if experiment.metrics_collector.kind in ("StdOut", "TrainJobStatus") else metrics_path
    follower = OutputFollower(experiment, source)

    def stop() -> str | None:
        return watch.reason if watch.feed(follower.new_logs()) else None

    return stop
