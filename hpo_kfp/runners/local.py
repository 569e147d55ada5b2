"""The local runner: a trial's primary container run as a process on this machine.

What a laptop has of a container is its ``command`` + ``args`` and ``env``: those run as a
subprocess (no shell) in the experiment file's folder, in a process group of its own so a
deadline (``spec.activeDeadlineSeconds`` of the trial object, when set) ends the whole tree.
Output and errors go, merged as a container log, to the trial's log file. A File metrics
collector's path is mapped to a per-trial file: wherever the collector's path appears in the
command, args or env values it is replaced by that file, so parallel trials never share one.
A TensorFlowEvent collector's directory is mapped the same way, to a per-trial directory
beside the metrics file; the values of its event files are copied into the metrics file as
they appear (:class:`hpo_kfp.tfevents.EventExporter`). A TrainJob (an OptimizationJob's
trial) has no container in its template: its ``spec.trainer`` (``command``, ``args``,
``env``) is the process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpo_kfp.errors import RunnerError
from hpo_kfp.history import TrialRecord
from hpo_kfp.runners._containers import expand_variables, primary_container
from hpo_kfp.runners.base import TrialRun, now
from hpo_kfp.spec import Experiment
from hpo_kfp.templates import render
from hpo_kfp.tfevents import EventExporter

__all__ = ["METRICS_FILE_ENV", "TRIAL_NAME_ENV", "LocalCommand", "local_command", "run_local"]

METRICS_FILE_ENV = "HPO_KFP_METRICS_FILE"
"""Where :func:`hpo_kfp.report_metrics` appends (the Push collector) and File metrics go."""
TRIAL_NAME_ENV = "HPO_KFP_TRIAL_NAME"
_GRACE_SECONDS = 5.0
_POLL_SECONDS = 0.05


@dataclass(frozen=True, kw_only=True)
class LocalCommand:
    """A trial as a process: what to run, with which environment."""

    argv: list[str]
    env: dict[str, str]
    deadline: float | None
    """Seconds the trial may run (``activeDeadlineSeconds``), or None."""
    event_dir: Path | None = None
    """The trial's own TensorFlowEvent directory, whose values go to ``metrics_file``."""
    metrics_file: Path | None = None
    metric_names: tuple[str, ...] = ()
    """The metrics to take from the event files."""


def local_command(experiment: Experiment, trial: TrialRecord, metrics_file: Path) -> LocalCommand:
    """The process that runs ``trial``.

    Raises:
        RunnerError: The template cannot run as a local process (no inline trialSpec, no
            command, or env values that only a cluster can fill).
    """
    template = experiment.template
    if template.trial_spec is None:
        raise RunnerError(
            "spec.trialTemplate.configMap: a ConfigMap template can be read only on a cluster; "
            "use an inline trialSpec to run locally"
        )
    manifest = render(
        template.trial_spec, template.references, trial.parameters, name=trial.name, namespace=None
    )
    container = _process_container(manifest, template.primary_container_name)
    command = [str(part) for part in _list(container, "command")]
    args = [str(part) for part in _list(container, "args")]
    if not command:
        raise RunnerError(
            f"container {template.primary_container_name!r} has no command: a local run needs one "
            "(outside a container the image's entrypoint is unknown)"
        )
    env = _container_env(container)
    collector = experiment.metrics_collector
    if collector.kind == "File" and collector.path:
        env = {k: v.replace(collector.path, str(metrics_file)) for k, v in env.items()}
        command = [part.replace(collector.path, str(metrics_file)) for part in command]
        args = [part.replace(collector.path, str(metrics_file)) for part in args]
    event_dir = None
    if collector.kind == "TensorFlowEvent" and collector.path:
        event_dir = metrics_file.with_name(metrics_file.name + ".tfevents")
        env = {k: v.replace(collector.path, str(event_dir)) for k, v in env.items()}
        command = [part.replace(collector.path, str(event_dir)) for part in command]
        args = [part.replace(collector.path, str(event_dir)) for part in args]
    env[METRICS_FILE_ENV] = str(metrics_file)
    env[TRIAL_NAME_ENV] = trial.name
    argv = [expand_variables(part, env) for part in command + args]
    if argv[0] in ("python", "python3"):
        argv[0] = sys.executable  # the interpreter hpo-kfp runs in, with its packages
    return LocalCommand(
        argv=argv,
        env=env,
        deadline=_deadline(manifest),
        event_dir=event_dir,
        metrics_file=metrics_file if event_dir is not None else None,
        metric_names=experiment.objective.metrics,
    )


def _process_container(manifest: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """The container whose command runs: the primary container, or a TrainJob's trainer."""
    if manifest.get("kind") == "TrainJob":
        spec = manifest.get("spec")
        trainer = spec.get("trainer") if isinstance(spec, Mapping) else None
        if not isinstance(trainer, Mapping):
            raise RunnerError(
                "spec.trainer of the TrainJob must be specified to run locally: its command and args "
                "are the trial's process"
            )
        return trainer
    return primary_container(manifest, name)


def _list(container: Mapping[str, Any], key: str) -> list[Any]:
    value = container.get(key) or []
    if not isinstance(value, list):
        raise RunnerError(f"{key} of the primary container must be a list, but got {value!r}")
    return value


def _deadline(manifest: Mapping[str, Any]) -> float | None:
    spec = manifest.get("spec")
    value = spec.get("activeDeadlineSeconds") if isinstance(spec, Mapping) else None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise RunnerError(
            f"spec.activeDeadlineSeconds of the trial must be a positive number, but got {value!r}"
        )
    return float(value)


def _container_env(container: Mapping[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in _list(container, "env"):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise RunnerError(
                f"env of the primary container must list {{name: ..., value: ...}}, but got {entry!r}"
            )
        name = entry.get("name")
        if "valueFrom" in entry:
            raise RunnerError(
                f"env {name!r} of the primary container uses valueFrom, which only a cluster can fill; "
                "give it a value to run locally"
            )
        env[str(name)] = str(entry.get("value", ""))
    return env


def run_local(
    command: LocalCommand,
    *,
    name: str,
    cwd: Path,
    log_path: Path,
    stop: Callable[[], str | None] | None = None,
) -> TrialRun:
    """Runs the trial's process to its end or deadline, logging its output to ``log_path``.

    A process that cannot start is a failed trial, with the reason recorded.

    Args:
        stop: Asked a few times a second while the trial runs; when it returns a reason,
            the trial's process group is stopped and the run is marked early-stopped.
    """
    started = now()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    exporter = None
    if command.event_dir is not None and command.metrics_file is not None:
        command.event_dir.mkdir(parents=True, exist_ok=True)
        exporter = EventExporter(command.event_dir, command.metric_names, command.metrics_file)
        stop = _exporting(exporter, stop)
    with log_path.open("wb") as log:
        try:
            process = subprocess.Popen(  # argv from the trial template; no shell
                command.argv,
                cwd=cwd,
                env={**os.environ, **command.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as error:
            return TrialRun(
                name=name,
                exit_code=127,
                started=started,
                finished=now(),
                reason=f"could not start {command.argv[0]!r}: {error.strerror}",
            )
        try:
            code, stopped = _wait(process, command.deadline, stop)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            return TrialRun(
                name=name,
                exit_code=None,
                started=started,
                finished=now(),
                reason=f"DeadlineExceeded: killed after activeDeadlineSeconds={command.deadline:g}",
            )
        except BaseException:
            _kill_group(process)  # the step itself is stopping: take the trial down with it
            raise
        finally:
            if exporter is not None:
                exporter.sync()
    if stopped is not None or code is None:
        return TrialRun(
            name=name,
            exit_code=None,
            started=started,
            finished=now(),
            reason=stopped or "",
            early_stopped=True,
        )
    reason = "" if code == 0 else _exit_reason(code)
    return TrialRun(name=name, exit_code=code, started=started, finished=now(), reason=reason)


def _exporting(
    exporter: EventExporter, stop: Callable[[], str | None] | None
) -> Callable[[], str | None] | None:
    """``stop``, after copying new event-file values (which early stopping reads) first."""
    if stop is None:
        return None

    def check() -> str | None:
        exporter.sync()
        return stop()

    return check


def _wait(
    process: subprocess.Popen[bytes], deadline: float | None, stop: Callable[[], str | None] | None
) -> tuple[int | None, str | None]:
    """Waits for the process; returns (exit code, None) or (None, the stop reason)."""
    if stop is None:
        return process.wait(timeout=deadline), None
    end = None if deadline is None else time.monotonic() + deadline
    while True:
        try:
            return process.wait(timeout=_POLL_SECONDS), None
        except subprocess.TimeoutExpired:
            reason = stop()
            if reason is not None:
                _kill_group(process)
                return None, reason
            if end is not None and time.monotonic() > end:
                raise


def _exit_reason(code: int) -> str:
    if code < 0:
        return f"killed by signal {signal.Signals(-code).name}"
    return f"exit code {code}"


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + _GRACE_SECONDS
    while time.monotonic() < end:
        if process.poll() is not None:
            break
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
