"""KFP components run as trials: how a lane runs the trials of ``tune(trial=component)``.

A lane runs a KFP-native trial as it runs any other, through the trial runner -- a process
on this machine, a Kubernetes Job on a cluster -- so a component's trial costs what a
template's does (no KFP task, driver or executor pod of its own) and one that raises, exits
non-zero or reports no finite objective is a failed trial of the experiment, not a failed
run. What runs is the component's own container, as KFP compiled it (image, command and
args), with an executor input built for the trial the way KFP's driver builds one for a
task: the trial's hyperparameters and the component's other arguments as its input
parameters, its outputs under one folder. kfp's executor (``kfp/dsl/executor.py``) writes
the float return value and the ``system.Metrics`` metadata to the executor output file,
:data:`OUTPUT_FILE`: the trial's metrics output, read by the ExecutorOutput collector. On a
cluster that file is the container's termination message (the runner points
``terminationMessagePath`` at a collector's metrics file), which the kubelet keeps after
the pod ends; locally it is the trial's own metrics file.

Core layer: KFP is needed only to resolve the placeholders (:mod:`hpo_kfp.compat`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from hpo_kfp.compat import resolve_component_command
from hpo_kfp.history import TrialRecord, TrialRun
from hpo_kfp.runners.base import TrialFiles
from hpo_kfp.spec import Experiment
from hpo_kfp.spec.collector import CollectorSpec
from hpo_kfp.spec.template import TrialTemplate, default_conditions
from hpo_kfp.wire import TrialComponent

__all__ = ["CONTAINER", "OUTPUT_FILE", "executor_input", "read_outputs", "trial_experiment"]

OUTPUT_FILE = "/tmp/hpo-kfp/executor_output.json"
"""Where a component trial's executor writes its outputs (the trial's metrics output). Its
other outputs go under ``OUTPUT_FILE + "-outputs/"``: locally both move into the trial's own
folder, as a File collector's path does."""

CONTAINER = "main"
"""The name of a component trial's container in its Job."""

_OUTPUTS = OUTPUT_FILE + "-outputs"


def executor_input(component: TrialComponent, parameters: dict[str, Any]) -> dict[str, Any]:
    """The executor input of one trial of ``component``: its hyperparameters ``parameters``
    and the component's other arguments as input parameter values, every output placed
    under :data:`OUTPUT_FILE`'s folder (the shape of KFP's ``ExecutorInput`` message)."""
    return {
        "inputs": {"parameterValues": {**component.arguments, **parameters}},
        "outputs": {
            "parameters": {name: {"outputFile": f"{_OUTPUTS}/{name}"} for name in component.outputs},
            "artifacts": {
                name: {
                    "artifacts": [
                        {
                            "name": name,
                            "type": {"schemaTitle": title, "schemaVersion": version},
                            "uri": f"{_OUTPUTS}/{name}",
                            "metadata": {},
                        }
                    ]
                }
                for name, (title, version) in component.artifacts.items()
            },
            "outputFile": OUTPUT_FILE,
        },
    }


def trial_experiment(
    experiment: Experiment, component: TrialComponent, trial: TrialRecord, *, run_id: str
) -> Experiment:
    """``experiment`` with a trial template that runs ``trial`` of ``component``: a Job of one
    container, the component's image and command with the trial's executor input resolved
    into it, its metrics read from the executor output.

    A value reaches the container only inside the executor input's JSON (or as one whole
    argument, for a placeholder of its own), never as shell text: the command is a list of
    arguments, run without a shell by the local runner, and kfp's own ``sh -ec`` wrapper
    passes the arguments on as ``"$@"``.
    """
    argv = resolve_component_command(
        component.command,
        executor_input(component, dict(trial.parameters)),
        pipeline=experiment.name,
        task=trial.name,
        job_id=run_id,
    )
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": CONTAINER, "image": component.image, "command": argv}],
                }
            },
        },
    }
    conditions = default_conditions("Job")
    assert conditions is not None
    success, failure, labels = conditions
    template = TrialTemplate(
        trial_spec=job,
        primary_container_name=CONTAINER,
        primary_pod_labels=labels,
        success_condition=success,
        failure_condition=failure,
    )
    collector = CollectorSpec(kind="ExecutorOutput", path=OUTPUT_FILE)
    return replace(experiment, trial_template=template, metrics_collector=collector, early_stopping=None)


def read_outputs(component: TrialComponent, run: TrialRun, files: TrialFiles) -> TrialRun:
    """What a lane does once a trial of ``component`` ended, before its metrics are collected:
    keeps only the chosen ``system.Metrics`` output in the metrics file when the component has
    several, and returns ``run`` with the exception a failed component raised added to its
    reason (kfp's executor prints the traceback, whose last line names it: ``exit code 1:
    ValueError: diverged``)."""
    if component.metrics_output:
        _keep_metrics_output(files.metrics, component.metrics_output)
    if run.succeeded or run.early_stopped:
        return run
    log = files.log.read_text(encoding="utf-8", errors="replace") if files.log.exists() else ""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    if not any(line.startswith("Traceback (most recent call last)") for line in lines):
        return run
    last = lines[-1] if len(lines[-1]) <= 300 else lines[-1][:297] + "..."
    return replace(run, reason=f"{run.reason}: {last}" if run.reason else last)


def _keep_metrics_output(path: Path, name: str) -> None:
    """Leaves out of the executor output at ``path`` every artifact but output ``name``."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # nothing, or not JSON: the collector says what is missing
    artifacts = document.get("artifacts") if isinstance(document, dict) else None
    if isinstance(artifacts, dict):
        document["artifacts"] = {k: v for k, v in artifacts.items() if k == name}
        path.write_text(json.dumps(document), encoding="utf-8")
