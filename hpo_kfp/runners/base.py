"""The contract every trial runner keeps.

A runner runs one trial to its end: it renders the experiment's trial template with the
trial's assignment, starts it (a process, a Kubernetes object), writes what the trial
printed and the metrics it wrote to the two files it is given, and returns how the run
ended (:class:`~hpo_kfp.history.TrialRun`). A trial that fails is a result, not an exception.
While the trial runs, the runner feeds its new output to the early-stopping watch it is
given, if any, and stops the trial when the watch says so: the rule is applied in one place
(:class:`hpo_kfp.early_stopping.TrialWatch`), whatever runs the trial.

Runners are looked up by name in :mod:`hpo_kfp.runners` (one registry): nothing else compares
runner names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from hpo_kfp.history import TrialRecord, TrialRun
    from hpo_kfp.spec import Experiment

__all__ = ["OutputWatch", "RunnerOptions", "TrialFiles", "TrialRunner"]


@dataclass(frozen=True, kw_only=True)
class TrialFiles:
    """Where a runner writes a trial's output."""

    log: Path
    """The primary container's log (output and errors)."""
    metrics: Path
    """What the trial's collector reads besides the log: a File or Push collector's file,
    TensorFlowEvent values as JSON lines, a TrainJob's published metrics."""


@dataclass(frozen=True, kw_only=True)
class RunnerOptions:
    """What a runner is made with (from the step settings)."""

    trial_cwd: str = ""
    """Working folder of local trials (the experiment file's folder); "" for the current one."""
    namespace: str = ""
    """Namespace of Kubernetes trials; "" for the step's own."""
    deadline_seconds: int = 0
    """Kubernetes trials: delete one still running after this long; 0 for the default."""
    unschedulable_seconds: int = 0
    """Kubernetes trials: fail one whose pod stays unschedulable this long; 0 for the default."""
    start_grace_seconds: int = 0
    """Kubernetes trials: fail one whose container keeps failing to pull its image or to be
    configured this long; 0 for the default."""


class OutputWatch(Protocol):
    """Early stopping for one running trial, fed the trial's output as it appears."""

    @property
    def reads_log(self) -> bool:
        """Whether the values it watches are in the log (else in the metrics output)."""
        ...

    def feed(self, log_text: str = "", metrics_text: str = "") -> str | None:
        """Reads complete lines of new output; returns the reason to stop now, or None."""
        ...


@runtime_checkable
class TrialRunner(Protocol):
    """Runs trials of an experiment somewhere."""

    @property
    def name(self) -> str:
        """The name the step settings give (``settings.runner``): the registry key."""
        ...

    def store_problem(self, url: str) -> str | None:
        """Why the steps of a run whose trials this runner runs cannot share the store at
        ``url`` (what must hold, for an error message), or None when they can."""
        ...

    def check(self, experiment: Experiment) -> None:
        """Refuses, before any pipeline is built, an experiment this runner cannot run.

        Raises:
            InputError: Naming the field of the experiment (or the option) and why.
        """
        ...

    def run(
        self,
        experiment: Experiment,
        trial: TrialRecord,
        files: TrialFiles,
        *,
        watch: OutputWatch | None = None,
    ) -> TrialRun:
        """Runs ``trial`` to its end, writing its log and metrics output to ``files``.

        Nothing the trial started is left behind when this returns or raises.

        Args:
            watch: Early stopping: fed the new output while the trial runs; the trial is
                stopped (and its run marked early-stopped) when it returns a reason.

        Returns:
            How the run ended: a failure of the trial itself is a result.

        Raises:
            RunnerError: The trial could not be launched or watched.
        """
        ...
