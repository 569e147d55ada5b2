"""The run-trial step: run one trial with the chosen runner and keep its outputs."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hpo_kfp.early_stopping import StopRule, StopWatch
from hpo_kfp.history import TrialRecord
from hpo_kfp.runners.follow import OutputFollower
from hpo_kfp.spec import Experiment, parse_experiment
from hpo_kfp.steps.settings import StepSettings

__all__ = ["run_trial_step"]


def run_trial_step(
    spec: str,
    trial: str,
    log_path: str,
    metrics_path: str,
    settings: str = "",
) -> str:
    """Runs the trial described by ``trial`` (JSON) and returns the run's result as JSON.

    The primary container's log goes to ``log_path`` and the metrics file's content (File
    and Push collectors) to ``metrics_path``. A trial that fails is a result; only a
    trial that cannot be launched at all raises.

    Args:
        settings: :class:`StepSettings` as JSON: the runner, the local trials' folder, the
            Kubernetes namespace.
    """
    item = json.loads(trial)
    Path(log_path).write_text("", encoding="utf-8")
    Path(metrics_path).write_text("", encoding="utf-8")
    if item.get("skip"):
        return trial
    experiment = parse_experiment(spec, trial_template=None)
    options = StepSettings.from_json(settings)
    record = TrialRecord(name=item["name"], number=int(item["number"]), parameters=item["parameters"])
    if options.runner == "local":
        from hpo_kfp.runners import local_command, run_local

        command = local_command(experiment, record, Path(metrics_path))
        stop = _stopper(experiment, item, Path(log_path), Path(metrics_path))
        run = run_local(
            command, name=record.name, cwd=Path(options.trial_cwd or "."), log_path=Path(log_path), stop=stop
        )
    else:
        from hpo_kfp.runners.kubernetes import KubernetesRunner, step_namespace

        rule = StopRule.from_dict(item["stop_rule"]) if item.get("stop_rule") else None
        output = KubernetesRunner.from_environment().run(
            experiment,
            record,
            namespace=step_namespace(options.namespace or None, experiment),
            stop_rule=rule,
        )
        Path(log_path).write_text(output.log, encoding="utf-8")
        Path(metrics_path).write_text(output.metrics, encoding="utf-8")
        run = output.run
    return json.dumps({"trial": item, "run": dataclasses.asdict(run)})


def _stopper(
    experiment: Experiment, item: dict[str, Any], log_path: Path, metrics_path: Path
) -> Callable[[], str | None] | None:
    """The early-stopping check for a local trial, from the rule suggest attached to it."""
    if not item.get("stop_rule"):
        return None
    watch = StopWatch(StopRule.from_dict(item["stop_rule"]))
    source = log_path if experiment.metrics_collector.kind == "StdOut" else metrics_path
    follower = OutputFollower(experiment, source)

    def stop() -> str | None:
        return watch.reason if watch.feed(follower.new_logs()) else None

    return stop
