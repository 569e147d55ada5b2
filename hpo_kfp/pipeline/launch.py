"""Running an experiment's pipeline on this machine: compile, run with kfp.local.

A run continues whatever the experiment store already holds of the experiment: its trials
are claimed from the store, ``maxTrialCount`` counts every trial the experiment ever ran,
and the run goes on until the experiment is done. Its lane tasks
(:mod:`hpo_kfp.pipeline.lanes`) run the trials asynchronously, or in synchronous rounds when
the algorithm needs them or they are asked for; when one run holds less than the experiment
needs (``--trials-per-run``), :func:`run_to_end` starts the same pipeline again until the
experiment is done. One local
run of an experiment at a time per run folder: a second is refused while the first runs (a
lock file it holds). A run that was killed leaves its unfinished trials claimed; the next
run releases them, and they run again with the same numbers and parameters before anything
new is suggested.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hpo_kfp.algorithms import get_algorithm, require_dependencies
from hpo_kfp.compat import kfp_compiler_libyaml
from hpo_kfp.decide import Decision, decide, trial_counts
from hpo_kfp.errors import ExperimentBusy, StepFailed
from hpo_kfp.history import History
from hpo_kfp.runners.local import LocalRunner
from hpo_kfp.spec import Experiment
from hpo_kfp.steps.settings import StepSettings
from hpo_kfp.store import ExperimentKey, Store, open_store

__all__ = [
    "ExperimentBusy",
    "LocalRun",
    "local_claimer",
    "local_lanes",
    "outcome",
    "prepare_local_run",
    "run_prepared",
    "run_to_end",
]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # kfp.local colours its messages
# The last line of a step's traceback when hpo-kfp itself raised: the cause, in its own words.
_STEP_ERROR = re.compile(r"^hpo_kfp\.errors\.\w+: (.+)$", re.MULTILINE)


@dataclass(frozen=True, kw_only=True)
class LocalRun:
    """Everything about one local run, before it starts."""

    experiment: Experiment
    directory: Path
    """This run's folder: pipeline YAML, kfp.local's log and the steps' artifacts."""
    pipeline: Path
    synchronous: bool = False
    """Whether the lanes run synchronous rounds."""
    settings: StepSettings
    prior: History
    """What the store held before this run."""
    key: ExperimentKey
    """The experiment's identity in the store."""
    released: tuple[str, ...] = ()
    """Trials a killed run had left claimed, to run again."""
    lanes: int = 0
    """Lanes the run starts: ``parallelTrialCount``, or fewer on a small machine."""
    lock: Any = None
    """The open lock file this run holds (closed when the process ends)."""


def prepare_local_run(
    experiment: Experiment,
    spec_file: Path,
    *,
    workdir: Path,
    store: str,
    type_prefix: str = "odh.",
    restart: bool = False,
    allow_space_change: bool = False,
    synchronous: bool = False,
    trials_per_run: int = 0,
) -> LocalRun:
    """Takes the experiment's run lock, prepares the store, and compiles the rounds still needed.

    Args:
        store: The store's URL (an SQLite path is made absolute: the steps run elsewhere).
        restart: Delete what the store holds of the experiment first.
        allow_space_change: Go on although the search space changed (old trials stay,
            outside the new space).
        synchronous: Run trials in synchronous rounds even if the algorithm does not need them.
        trials_per_run: New trials one compiled run may start (0: as many as it holds).

    Raises:
        ExperimentBusy: Another run of the experiment holds the lock.
        SearchSpaceChanged: The space changed and neither ``restart`` nor ``allow_space_change``.
    """
    from hpo_kfp.pipeline.lanes import build_lanes_pipeline
    from hpo_kfp.pipeline.tasks import compile_pipeline

    LocalRunner().check(experiment)
    require_dependencies(experiment.algorithm.name)
    settings = StepSettings(
        store=_absolute(store),
        type_prefix=type_prefix,
        trial_cwd=str(spec_file.resolve().parent),
        allow_space_change=allow_space_change,
        run_budget=trials_per_run,
    )
    key = settings.experiment_key(experiment)
    lock = _take_lock(_lock_path(workdir, key), key)
    # Holding the folder's lock, this run knows that trials still claimed under the folder's
    # prefix were left by a run that was killed. Runs from other folders sharing the store
    # keep theirs while their leases (heartbeats) last.
    settings = replace(settings, claimer=local_claimer(workdir, key))
    opened = open_store(settings.store, type_prefix=type_prefix)
    if restart:
        opened.delete(key)
    opened.open_experiment(experiment, key, allow_space_change=allow_space_change)
    released = tuple(opened.release(key, owner_prefix=settings.claimer))
    if settings.stale_seconds:
        released += tuple(opened.release(key, older_than=settings.stale_seconds))
    prior = opened.history(key)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    directory = (workdir / experiment.name / stamp).resolve()
    directory.mkdir(parents=True)
    pipeline = directory / "pipeline.yaml"
    synchronous = synchronous or get_algorithm(experiment.algorithm.name).synchronous
    lanes = min(experiment.parallel_trial_count, local_lanes())
    settings = replace(settings, synchronous=synchronous, max_lanes=lanes)
    # No report step: the command writes the page itself, with the trials' logs.
    compiled = build_lanes_pipeline(experiment, settings=settings, report=False, retry=False)
    with kfp_compiler_libyaml():
        compile_pipeline(compiled, pipeline)
    return LocalRun(
        experiment=experiment,
        directory=directory,
        pipeline=pipeline,
        synchronous=synchronous,
        settings=settings,
        prior=prior,
        key=key,
        released=released,
        lanes=lanes,
        lock=lock,
    )


def local_lanes() -> int:
    """Most lanes a local run starts, each running one trial process at a time: 4 per CPU, at
    least 8 (a ``parallelTrialCount`` of 10,000 on 2 cores loaded the machine to ~155)."""
    return max(8, 4 * (os.cpu_count() or 1))


def local_claimer(workdir: Path, key: ExperimentKey) -> str:
    """The prefix of the owner of every trial a local run from ``workdir`` claims: this
    machine and the run folder's lock, as a digest (a store keeps 128 characters of an owner)."""
    where = f"{socket.gethostname()}:{_lock_path(workdir, key).resolve()}"
    return f"local:{hashlib.sha256(where.encode()).hexdigest()[:16]}/"


def _lock_path(workdir: Path, key: ExperimentKey) -> Path:
    return workdir / ".locks" / f"{key.namespace or '_'}.{key.name}.lock"


def _absolute(url: str) -> str:
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        path = Path(url.removeprefix("sqlite:///")).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    return url


def _take_lock(path: Path, key: ExperimentKey) -> Any:
    """Holds ``path`` locked for the life of this process (the OS drops it if it dies).

    Raises:
        ExperimentBusy: Another process holds it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    stream = path.open("a+", encoding="utf-8")
    try:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(stream.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        stream.seek(0)
        holder = stream.read().strip() or "another process"
        stream.close()
        raise ExperimentBusy(
            f"experiment {key}: another local run of it must not be running, but {holder} is; wait for "
            "it to end or stop it (two runs of one experiment from different run folders share its "
            "budget instead)"
        ) from None
    stream.seek(0)
    stream.truncate()
    stream.write(f"pid {os.getpid()} since {datetime.now(UTC).isoformat(timespec='seconds')}")
    stream.flush()
    return stream


def run_to_end(run: LocalRun) -> int:
    """Runs the pipeline, and again while the experiment goes on (a run holds a share of
    it: ``--trials-per-run``); returns how many runs it took.

    Raises:
        StepFailed: A step failed, or a run finished no trial (another would not either).
    """
    store = open_store(run.settings.store, type_prefix=run.settings.type_prefix)
    runs = 0
    while True:
        before = _finished(store.history(run.key))
        try:
            run_prepared(run, index=runs)
        except KeyboardInterrupt:
            # The lanes have stopped (kfp.local waited for them): what they held is given back
            # now, for the next run or another claimer, rather than when its lease runs out.
            store.release(run.key, owner_prefix=run.settings.claimer)
            raise
        runs += 1
        history, decision = outcome(run, store)
        if decision.done:
            return runs
        if _finished(history) <= before:
            raise StepFailed(
                f"run {runs} of {run.experiment.name} finished no trial although the experiment goes on "
                f"({decision.counts}); see {run.directory / _log_name(runs - 1)}"
            )


def _finished(history: History) -> int:
    counts = trial_counts(history)
    return counts["total"] - counts["active"]


def _log_name(index: int) -> str:
    return "kfp-local.log" if index == 0 else f"kfp-local-{index + 1}.log"


def run_prepared(run: LocalRun, *, index: int = 0) -> None:
    """Runs the pipeline once to its end; kfp.local's output goes to ``kfp-local.log``
    (``kfp-local-N.log`` for the N-th run of a chain).

    Raises:
        StepFailed: A step failed (the message names the log to read).
    """
    from hpo_kfp.pipeline.local import run_pipeline_locally

    log_path = run.directory / _log_name(index)
    with log_path.open("w", encoding="utf-8") as log:
        try:
            run_pipeline_locally(
                run.pipeline,
                {"settings": run.settings.to_json()},
                pipeline_root=run.directory / "artifacts",
                max_parallelism=run.lanes,
                log=log,
                store=run.settings.store,
            )
        except RuntimeError as error:
            log.flush()
            raise StepFailed(f"the pipeline stopped: {_cause(error, log_path)}; see {log_path}") from None


def _cause(error: RuntimeError, log_path: Path) -> str:
    """Why a step failed: the last error hpo-kfp raised in a step (a store that went down,
    say), read from the run's log; else what kfp.local says ("Inner task failed: ...")."""
    try:
        found = _STEP_ERROR.findall(log_path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        found = []
    return found[-1].strip() if found else _ANSI.sub("", str(error))


def outcome(run: LocalRun, store: Store | None = None) -> tuple[History, Decision]:
    """The experiment's history and decision as the store holds them now."""
    opened = store or open_store(run.settings.store, type_prefix=run.settings.type_prefix)
    history = opened.history(run.key)
    return history, decide(run.experiment, history)
