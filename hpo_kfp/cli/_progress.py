"""A live view of a local run, read from the metadata store while the pipeline runs.

On a terminal one line is redrawn in place; otherwise a plain line is printed each time
more trials have finished, so logs and CI output stay readable.
"""

from __future__ import annotations

import threading
import time
from typing import TextIO

from hpo_kfp.decide import best_trial, trial_counts
from hpo_kfp.history import FINISHED, History
from hpo_kfp.pipeline.launch import LocalRun
from hpo_kfp.render import format_value
from hpo_kfp.store import open_store

__all__ = ["Progress", "describe", "parameters_text"]


def describe(run: LocalRun, history: History, elapsed: float) -> str:
    """One line: the round (synchronous runs), trials finished of the total, outcomes, best so far, time."""
    experiment = run.experiment
    if run.synchronous:
        new = [t for t in history.trials if t.number >= run.prior.next_number and t.status in FINISHED]
        where = f"round {len(new) // experiment.parallel_trial_count + 1}: "
    else:
        where = ""
    counts = trial_counts(history)  # the experiment's own trials, as the summary counts them
    finished = counts["total"] - counts["active"]
    outcomes = [f"{counts['succeeded']} ok"]
    if counts["earlyStopped"]:
        outcomes.append(f"{counts['earlyStopped']} early-stopped")
    outcomes.append(f"{counts['failed']} failed")
    if counts["metricsUnavailable"]:
        outcomes.append(f"{counts['metricsUnavailable']} without metrics")
    best = best_trial(experiment.objective, history.trials)
    best_text = "no result yet"
    if best is not None and best.objective is not None:
        imported = ", imported" if best.origin == "import" else ""
        best_text = f"best {experiment.objective.metric}={best.objective:.6g} ({best.name}{imported})"
    return (
        f"{where}{finished}/{experiment.max_trial_count} trials finished "
        f"({', '.join(outcomes)}), {best_text}, {elapsed:.1f} s"
    )


class Progress:
    """Polls the store in a thread and reports on ``stream`` until stopped."""

    def __init__(self, run: LocalRun, stream: TextIO, *, interval: float = 0.5) -> None:
        self._run = run
        self._stream = stream
        self._interval = interval
        self._live = stream.isatty()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="hpo-kfp-progress", daemon=True)
        self._started = time.monotonic()
        self._last = ""
        self._seen = -1

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._report(final=True)
        if self._live:
            self._stream.write("\n")
            self._stream.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._report(final=False)

    def _report(self, *, final: bool) -> None:
        try:
            settings = self._run.settings
            history = open_store(settings.store, type_prefix=settings.type_prefix).history(self._run.key)
        except Exception:  # the store is busy with the steps' writes: try again next tick
            return
        finished = history.count(*FINISHED)
        line = describe(self._run, history, time.monotonic() - self._started)
        if self._live:
            self._stream.write("\r" + line.ljust(len(self._last)))
            self._last = line
        elif finished != self._seen and (finished or final):
            self._stream.write(line + "\n")
        self._seen = finished
        self._stream.flush()


def parameters_text(parameters: dict[str, object]) -> str:
    """``name=value`` pairs, as the trial received them."""
    return " ".join(f"{name}={format_value(value)}" for name, value in parameters.items())
