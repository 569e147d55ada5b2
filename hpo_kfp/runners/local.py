"""The local runner: a trial's primary container run as a process on this machine.

What a laptop has of a container is its ``command`` + ``args`` and ``env``: those run as a
subprocess (no shell) in the experiment file's folder, in a process group of its own so a
deadline (``spec.activeDeadlineSeconds`` of the trial object, when set) ends the whole tree;
nothing it started outlives it. Its ``python`` is the interpreter hpo-kfp runs in: a command
starting ``python``/``python3`` runs it, and its folder leads the trial's ``PATH`` (for a
shell that calls ``python3``, as a KFP component's command does). Output and errors go,
merged as a container log, to the trial's log file, with a cap
(:mod:`hpo_kfp.runners._output`). A File metrics
collector's path is mapped to a per-trial file: wherever the collector's path appears in the
command, args or env values it is replaced by that file, so parallel trials never share one.
A TensorFlowEvent collector's directory is mapped the same way, to a per-trial directory
beside the metrics file; the values of its event files are copied into the metrics file as
they appear (:class:`hpo_kfp.collectors.tfevents.EventExporter`). A TrainJob (an OptimizationJob's
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
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpo_kfp.collectors import collector_for
from hpo_kfp.collectors.push import METRICS_FILE_ENV, TRIAL_NAME_ENV
from hpo_kfp.collectors.tfevents import EventExporter
from hpo_kfp.containers import expand_variables, primary_container
from hpo_kfp.errors import RunnerError, TemplateError
from hpo_kfp.history import TrialRecord, TrialRun, now
from hpo_kfp.render import render
from hpo_kfp.runners._output import OutputCopier
from hpo_kfp.runners.base import OutputWatch, RunnerOptions, TrialFiles
from hpo_kfp.spec import Experiment

__all__ = ["LocalCommand", "LocalRunner", "local_command", "run_local"]

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


class LocalRunner:
    """The :class:`~hpo_kfp.runners.base.TrialRunner` of trials as processes on this machine."""

    name = "local"

    def __init__(self, options: RunnerOptions | None = None) -> None:
        self._cwd = Path((options or RunnerOptions()).trial_cwd or ".")

    def store_problem(self, url: str) -> str | None:
        """None: the steps of a local run share this machine, and any store on it."""
        return None

    def check(self, experiment: Experiment) -> None:
        """Refuses a template that cannot run as a local process (see :func:`local_command`).

        Raises:
            InputError: No inline trialSpec, no command, or env only a cluster can fill (the
                trial template is the user's input here, not a launch that failed).
        """
        sample = {p.name: (p.values[0] if p.values else p.min) for p in experiment.parameters}
        trial = TrialRecord(name=f"{experiment.name}-check", number=0, parameters=sample)
        try:
            local_command(experiment, trial, Path("metrics"))
        except RunnerError as error:
            raise TemplateError(str(error)) from error

    def run(
        self,
        experiment: Experiment,
        trial: TrialRecord,
        files: TrialFiles,
        *,
        watch: OutputWatch | None = None,
    ) -> TrialRun:
        command = local_command(experiment, trial, files.metrics)
        files.metrics.parent.mkdir(parents=True, exist_ok=True)
        files.metrics.touch()  # empty when the trial writes none, as on a cluster
        stop = None
        if watch is not None:
            tail = _Tail(files.log if watch.reads_log else files.metrics)

            def stop() -> str | None:
                text = tail.new_text()
                if not text:
                    return None
                return watch.feed(text, "") if watch.reads_log else watch.feed("", text)

        return run_local(command, name=trial.name, cwd=self._cwd, log_path=files.log, stop=stop)


class _Tail:
    """The complete lines appended to a file since the last call."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0

    def new_text(self) -> str:
        try:
            with self._path.open("rb") as stream:
                stream.seek(self._offset)
                data = stream.read()
        except FileNotFoundError:
            return ""
        end = data.rfind(b"\n")
        if end < 0:
            return ""  # a line still being written waits for the next call
        self._offset += end + 1
        return data[: end + 1].decode("utf-8", errors="replace")


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
    local = collector_for(experiment).local_metrics(experiment.metrics_collector, metrics_file)
    event_dir = None
    if local is not None:
        old, new = local.placeholder, str(local.replacement)
        env = {k: v.replace(old, new) for k, v in env.items()}
        command = [part.replace(old, new) for part in command]
        args = [part.replace(old, new) for part in args]
        event_dir = local.event_dir
    env[METRICS_FILE_ENV] = str(metrics_file)
    env[TRIAL_NAME_ENV] = trial.name
    if "PATH" not in env:  # `python3` in a shell command is this interpreter too (kfp's own wrapper)
        env["PATH"] = os.pathsep.join(filter(None, (os.path.dirname(sys.executable), os.environ.get("PATH"))))
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
    token = uuid.uuid4().hex
    with log_path.open("wb", buffering=0) as log:
        output, printed = os.pipe()
        copier = OutputCopier(output, log, command.metric_names)
        try:
            process = subprocess.Popen(  # argv from the trial template; no shell
                command.argv,
                cwd=cwd,
                env={**os.environ, **command.env, _RUN_TOKEN_ENV: token},
                stdout=printed,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as error:
            os.close(output)
            return TrialRun(
                name=name,
                exit_code=127,
                started=started,
                finished=now(),
                reason=f"could not start {command.argv[0]!r}: {error.strerror}",
            )
        finally:
            os.close(printed)
        copier.start()
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
            _end_leftovers(process, token)
            copier.join(timeout=_GRACE_SECONDS)  # its pipe closed with the last process of the trial
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


_RUN_TOKEN_ENV = "HPO_KFP_TRIAL_RUN"
"""Set to a token of its own in every trial process's environment: what the trial started
inherits it, so whatever is left of the trial once it ended can be found."""


def _end_leftovers(process: subprocess.Popen[bytes], token: str) -> None:
    """Ends what the trial started and left running: its process group (a child that stayed
    in it) and any process whose environment carries the trial's token (one that started a
    session of its own, a daemon). Linux's ``/proc``; elsewhere only the group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    marker = f"{_RUN_TOKEN_ENV}={token}".encode()
    for entry in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in entry.read_bytes().split(b"\0"):
                os.kill(int(entry.parent.name), signal.SIGKILL)
        except (OSError, ValueError):  # gone meanwhile, or not ours to read
            continue


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
