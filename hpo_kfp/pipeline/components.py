"""The KFP components of a tuning loop: suggest, run_trial, collect_metrics, decide, and report.

Each is a thin lightweight-Python component over :mod:`hpo_kfp.steps`; the runtime image
(the ``Dockerfile`` at the root) already holds hpo-kfp and kfp, so the components do not
pip-install anything when they start (``install_kfp_package=False``). No
``from __future__ import annotations`` here: KFP reads the components' annotations.
"""

import functools
from typing import Any, List, Optional

from kfp import dsl
from kfp.dsl import HTML, Artifact, Input, Markdown, Metrics, Output, OutputPath

from hpo_kfp.runtime import RUNTIME_IMAGE

__all__ = [
    "RUNTIME_IMAGE",
    "collect_metrics_op",
    "decide_op",
    "lane_decide_op",
    "lane_op",
    "report_op",
    "run_trial_op",
    "start_op",
    "suggest_op",
]


@functools.cache
def suggest_op(base_image: str = RUNTIME_IMAGE) -> Any:
    """The suggest component, running in ``base_image``."""

    @dsl.component(base_image=base_image, install_kfp_package=False)
    def suggest(
        spec: str,
        settings: str,
        history: Output[Artifact],
        previous: Optional[Input[Artifact]] = None,
        run_id: str = "",
    ) -> List[str]:
        """Claims the round's trials from the experiment store (or, without one, suggests
        them from the previous round's history)."""
        from hpo_kfp.steps import suggest_step

        return suggest_step(spec, previous.path if previous else None, history.path, settings, run_id)

    return suggest


@functools.cache
def run_trial_op(base_image: str = RUNTIME_IMAGE) -> Any:
    """The run_trial component, running in ``base_image``."""

    @dsl.component(base_image=base_image, install_kfp_package=False)
    def run_trial(
        spec: str, settings: str, trial: str, log: Output[Artifact], metrics_file: Output[Artifact]
    ) -> str:
        """Runs one trial of the experiment's trial template; keeps its log and metrics file."""
        from hpo_kfp.steps import run_trial_step

        return run_trial_step(spec, trial, log.path, metrics_file.path, settings)

    return run_trial


@functools.cache
def collect_metrics_op(base_image: str = RUNTIME_IMAGE) -> Any:
    """The collect_metrics component, running in ``base_image``."""

    @dsl.component(base_image=base_image, install_kfp_package=False)
    def collect_metrics(
        spec: str,
        settings: str,
        run_id: str,
        result: str,
        log: Input[Artifact],
        metrics_file: Input[Artifact],
        metrics: Output[Metrics],
    ) -> str:
        """Reads a trial's metrics as Katib's collectors do and records the trial."""
        from hpo_kfp.steps import collect_metrics_step

        record, shown = collect_metrics_step(spec, result, log.path, metrics_file.path, settings, run_id)
        for name, value in shown.items():
            metrics.log_metric(name, value)
        return record

    return collect_metrics


@functools.cache
def decide_op(base_image: str = RUNTIME_IMAGE) -> Any:
    """The decide component, running in ``base_image``. Its ``Output`` is the done flag, so a
    ``dsl.If`` can test it (kfp.local evaluates conditions only on an output named ``Output``)."""

    @dsl.component(base_image=base_image, install_kfp_package=False)
    def decide(
        spec: str,
        settings: str,
        previous: Input[Artifact],
        results: List[str],
        history: Output[Artifact],
        decision: OutputPath(str),  # type: ignore[valid-type]
    ) -> bool:
        """Merges the round's trial records, applies Katib's stop rules; returns whether done."""
        from hpo_kfp.steps import decide_step

        return decide_step(spec, previous.path, results, history.path, settings, decision)

    return decide


@functools.cache
def report_op(base_image: str = RUNTIME_IMAGE) -> Any:
    """The report component, running in ``base_image``."""

    @dsl.component(base_image=base_image, install_kfp_package=False)
    def report(spec: str, history: Input[Artifact], summary: Output[Markdown], page: Output[HTML]) -> None:
        """Writes the experiment's summary (Markdown) and page with plots (HTML)."""
        from hpo_kfp.steps.report import report_step

        report_step(spec, history.path, summary.path, page.path)

    return report


# The asynchronous loop's components (:mod:`hpo_kfp.pipeline.lanes`): every step but
# ``start`` reads the Experiment from the run document artifact, not from a string parameter.


@functools.cache
def start_op(base_image: str = RUNTIME_IMAGE) -> Any:
    """The start component: opens the run in the store, writes the run document, returns the lanes."""

    @dsl.component(base_image=base_image, install_kfp_package=False)
    def start(
        spec: str, settings: str, run_id: str, run: Output[Artifact], trial_component: str = ""
    ) -> List[str]:
        """Opens the experiment in its store and fixes this run's share of trials; one item per
        lane. ``trial_component``: the KFP component each trial runs (``tune()``), if any."""
        from hpo_kfp.steps.lanes import start_step

        return start_step(spec, settings, run_id, run.path, trial_component)

    return start


@functools.cache
def lane_op(base_image: str = RUNTIME_IMAGE) -> Any:
    """The lane component: claims, runs, collects and records trials one after another until
    the experiment has none left for it; ``Output`` is how many it recorded."""

    @dsl.component(base_image=base_image, install_kfp_package=False)
    def lane(run: Input[Artifact], run_id: str, lane: str, trials: Output[Artifact]) -> int:
        """Runs the experiment's trials one after another (claim -> run -> collect -> record)
        until none is left to claim; keeps each trial's log and metrics file in ``trials``."""
        from hpo_kfp.steps.lanes import lane_step

        return lane_step(run.path, run_id, lane, trials.path, trials.uri)

    return lane


@functools.cache
def lane_decide_op(base_image: str = RUNTIME_IMAGE) -> Any:
    """The asynchronous loop's decide component, once every lane ended."""

    @dsl.component(base_image=base_image, install_kfp_package=False)
    def lane_decide(
        run: Input[Artifact],
        lanes: List[int],
        history: Output[Artifact],
        best: Output[Metrics],
        decision: OutputPath(str),  # type: ignore[valid-type]
    ) -> bool:
        """Applies Katib's stop rules to what the store holds once every lane ended (``lanes``
        collects what each lane ran: it makes this step wait for the whole loop); shows the
        best trial's metrics as ``best``; returns whether done."""
        from hpo_kfp.steps.lanes import finish_step

        del lanes
        done, shown = finish_step(run.path, history.path, decision)
        for name, value in shown.items():
            best.log_metric(name, value)
        return done

    return lane_decide
