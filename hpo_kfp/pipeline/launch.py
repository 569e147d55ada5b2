"""Running an experiment's pipeline on this machine: compile, compact, run with kfp.local.

A run continues whatever the metadata store already holds of the experiment: the
pipeline's first round warm-starts from it, ``maxTrialCount`` counts every trial the
experiment ever ran, and only the rounds still needed are compiled. A run that was killed
loses only the trials that had not finished; they are proposed again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hpo_kfp.algorithms import require_dependencies
from hpo_kfp.decide import Decision, decide
from hpo_kfp.errors import InputError, RunnerError, StepFailed
from hpo_kfp.history import History, TrialRecord
from hpo_kfp.planning import rounds_needed
from hpo_kfp.runners import local_command
from hpo_kfp.spec import Experiment
from hpo_kfp.steps.settings import StepSettings
from hpo_kfp.tracking import Tracker, check_store_file, open_tracker
from hpo_kfp.tracking.base import DEFAULT_PREFIX

__all__ = ["LocalRun", "check_runs_locally", "outcome", "prepare_local_run", "run_prepared"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # kfp.local colours its messages


@dataclass(frozen=True, kw_only=True)
class LocalRun:
    """Everything about one local run, before it starts."""

    experiment: Experiment
    directory: Path
    """This run's folder: pipeline YAML, kfp.local's log and the steps' artifacts."""
    pipeline: Path
    rounds: int
    settings: StepSettings
    prior: History
    """What the store held before this run."""


def check_runs_locally(experiment: Experiment) -> None:
    """Fails early, with the reason, when the trial template cannot run as a local process.

    Raises:
        InputError: No inline trialSpec, no command, or env only a cluster can fill (the
            experiment's trial template is the user's input here, not a launch that failed).
    """
    sample = {p.name: (p.values[0] if p.values else p.min) for p in experiment.parameters}
    trial = TrialRecord(name=f"{experiment.name}-check", number=0, parameters=sample)
    try:
        local_command(experiment, trial, Path("metrics"))
    except RunnerError as error:
        raise InputError(str(error)) from error


def prepare_local_run(
    experiment: Experiment, spec_file: Path, *, workdir: Path, store: Path, type_prefix: str = DEFAULT_PREFIX
) -> LocalRun:
    """Creates the run folder and the store, and compiles the rounds still needed."""
    from hpo_kfp.pipeline.compact import compact_file
    from hpo_kfp.pipeline.loop import build_pipeline, compile_pipeline

    check_runs_locally(experiment)
    require_dependencies(experiment.algorithm.name)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    directory = (workdir / experiment.name / stamp).resolve()
    directory.mkdir(parents=True)
    # Create the store and its types before parallel steps open it (SQLite creation races).
    check_store_file(store)
    settings = StepSettings(
        tracking=f"sqlite://{store.resolve()}",
        type_prefix=type_prefix,
        trial_cwd=str(spec_file.resolve().parent),
    )
    prior = open_tracker(settings.tracking, prefix=type_prefix).load_history(experiment.name)
    rounds = rounds_needed(experiment, prior)
    pipeline = directory / "pipeline.yaml"
    compile_pipeline(build_pipeline(experiment, settings=settings, rounds=rounds), pipeline)
    compact_file(pipeline)
    return LocalRun(
        experiment=experiment,
        directory=directory,
        pipeline=pipeline,
        rounds=rounds,
        settings=settings,
        prior=prior,
    )


def run_prepared(run: LocalRun) -> None:
    """Runs the pipeline to its end; kfp.local's output goes to ``kfp-local.log``.

    Raises:
        StepFailed: A step failed (the message names the log to read).
    """
    from hpo_kfp.pipeline.local import run_pipeline_locally

    log_path = run.directory / "kfp-local.log"
    with log_path.open("w", encoding="utf-8") as log:
        try:
            run_pipeline_locally(
                run.pipeline,
                {"settings": run.settings.to_json()},
                pipeline_root=run.directory / "artifacts",
                max_parallelism=run.experiment.parallel_trial_count,
                log=log,
            )
        except RuntimeError as error:
            plain = _ANSI.sub("", str(error))
            raise StepFailed(f"the pipeline stopped: {plain}; see {log_path}") from None


def outcome(run: LocalRun, tracker: Tracker | None = None) -> tuple[History, Decision]:
    """The experiment's history and decision as the store holds them now."""
    store = tracker or open_tracker(run.settings.tracking, prefix=run.settings.type_prefix)
    history = store.load_history(run.experiment.name)
    return history, decide(run.experiment, history)
