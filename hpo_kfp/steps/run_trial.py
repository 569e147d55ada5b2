"""The run-trial step: run one trial with the chosen runner and keep its outputs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hpo_kfp.early_stopping import StopRule, StopWatch
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
    if options.runner == "local":
        from hpo_kfp.runners import local_command, run_local

        command = local_command(experiment, record, Path(metrics_path))
        stop = _stopper(experiment, item.stop_rule, Path(log_path), Path(metrics_path))
        run = run_local(
            command, name=record.name, cwd=Path(options.trial_cwd or "."), log_path=Path(log_path), stop=stop
        )
    else:
        from hpo_kfp.runners.kubernetes import KubernetesRunner, step_namespace

        output = KubernetesRunner.from_environment().run(
            experiment,
            record,
            namespace=step_namespace(options.namespace or None, experiment),
            stop_rule=item.stop_rule,
        )
        Path(log_path).write_text(output.log, encoding="utf-8")
        Path(metrics_path).write_text(output.metrics, encoding="utf-8")
        run = output.run
    return RunResult(trial=item, run=run).to_json()


def _stopper(
    experiment: Experiment, rule: StopRule | None, log_path: Path, metrics_path: Path
) -> Callable[[], str | None] | None:
    """The early-stopping check for a local trial, from the rule suggest attached to it."""
    if rule is None:
        return None
    watch = StopWatch(rule)
    source = log_path if experiment.metrics_collector.kind == "StdOut" else metrics_path
    follower = OutputFollower(experiment, source)

    def stop() -> str | None:
        return watch.reason if watch.feed(follower.new_logs()) else None

    return stop
