"""The tuning loop as a KFP v2 pipeline: rounds unrolled at compile time.

KFP v2 has no recursion, so the loop is unrolled into rounds written one after another at
the top level::

    suggest -> ParallelFor(run_trial -> collect_metrics) -> decide  (round 1)
    suggest -> ParallelFor(run_trial -> collect_metrics) -> decide  (round 2) ...

with enough rounds to cover ``maxTrialCount``. The history flows from each round's
decide to the next suggest as an artifact. Once the experiment is done, a later round's
suggest sees it in the history and hands its loop a single "skip" item, so the rest of the
round runs as a cheap no-op (4 short tasks).

Why this shape, measured with kfp 2.17.0 (scripts and numbers in ``benchmarks/``):

* Skipping later rounds with ``dsl.If``/``dsl.Else`` and ``dsl.OneOf`` over the history
  artifact does not run under ``kfp.local`` ("Expected 1 artifact in
  ArtifactSelectorSpec. Got: 2").
* Rounds as a chain of nested sub-pipelines behind ``dsl.If`` run and truly skip, but
  compile to about 13 KB per round (50 rounds ~660 KB, over the ~450 KB budget a cluster
  tolerates after Argo's expansion) and hit kfp.local's recursion limit near 160 rounds.
* Rounds inline compile linearly at a few KB per round and run locally; their cost is a
  no-op round after the experiment is done.
* A round never hands ``ParallelFor`` an empty list: kfp.local stores no output for an
  empty loop and the ``dsl.Collected`` consumer then fails.

Trials travel through the loop as JSON strings: kfp.local turns every int inside a dict
parameter into a float.
"""

# No `from __future__ import annotations`: KFP reads the pipeline function's annotations.
import contextlib
import json
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Optional

from kfp import compiler, dsl

from hpo_kfp.errors import BuildError
from hpo_kfp.pipeline.components import (
    RUNTIME_IMAGE,
    collect_metrics_op,
    decide_op,
    report_op,
    run_trial_op,
    suggest_op,
)
from hpo_kfp.rounds import check_rounds, rounds_needed
from hpo_kfp.spec import Experiment
from hpo_kfp.steps.settings import StepSettings

__all__ = [
    "STORE_PASSWORD_ENV",
    "add_rounds",
    "build_pipeline",
    "compile_pipeline",
    "name_step",
    "round_count",
    "store_secret",
    "template_trial",
]


def round_count(experiment: Experiment) -> int:
    """Rounds needed to run the experiment from the start (see :func:`hpo_kfp.rounds.rounds_needed`)."""
    return rounds_needed(experiment)


def build_pipeline(
    experiment: Experiment,
    *,
    settings: Optional[StepSettings] = None,
    rounds: Optional[int] = None,
    base_image: str = RUNTIME_IMAGE,
) -> Any:
    """The experiment's tuning pipeline.

    Args:
        experiment: The validated experiment (its counts shape the pipeline); its document,
            as one line of JSON, is the default of the pipeline's ``spec`` parameter. (A
            multi-line default would break the comment header KFP writes atop the YAML.)
        settings: The default of the pipeline's ``settings`` parameter: runner, metadata
            store, namespace (see :class:`~hpo_kfp.steps.settings.StepSettings`).
        rounds: Rounds to unroll (default: enough for ``maxTrialCount``).
        base_image: The image every step runs in.
    """
    total = rounds or round_count(experiment)
    check_rounds(total)
    spec_text = json.dumps(experiment.source, separators=(",", ":"))
    if settings is not None:
        settings.trial_runner().check(experiment)
    default_settings = (settings or StepSettings()).to_json()
    parallelism = experiment.parallel_trial_count

    def tuning(spec: str = spec_text, settings: str = default_settings) -> str:
        return add_rounds(  # type: ignore[no-any-return]
            spec, settings, rounds=total, parallelism=parallelism, base_image=base_image
        )

    with store_secret(settings.store_secret if settings is not None else ""):
        return dsl.pipeline(
            name=f"hpo-{experiment.name}",
            description=f"Hyperparameter tuning of {experiment.name}: {total} rounds of up to "
            f"{parallelism} trials ({experiment.algorithm.name}, {experiment.objective.type} "
            f"{experiment.objective.metric}).",
        )(tuning)


def add_rounds(spec: Any, settings: Any, *, rounds: int, parallelism: int, base_image: str) -> Any:
    """Adds ``rounds`` flat rounds to the pipeline being defined; returns the last decision.

    Args:
        spec: The ``spec`` channel (the Experiment, YAML or JSON).
        settings: The ``settings`` channel (:class:`StepSettings` as JSON).
        rounds: How many rounds.
        parallelism: The loops' parallelism (at least ``parallelTrialCount``).
        base_image: The image every step runs in.
    """
    suggest, decide = suggest_op(base_image), decide_op(base_image)
    history = None
    decision = None
    for index in range(1, rounds + 1):
        previous: dict[str, Any] = {} if history is None else {"previous": history}
        proposed = suggest(spec=spec, settings=settings, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, **previous)
        name_step(proposed, f"round-{index}-suggest", store=True)
        with dsl.ParallelFor(proposed.outputs["Output"], parallelism=parallelism) as trial:
            record = template_trial(spec, settings, trial, f"round-{index}", base_image)
        decided = decide(
            spec=spec,
            settings=settings,
            previous=proposed.outputs["history"],
            results=dsl.Collected(record),
        )
        name_step(decided, f"round-{index}-decide", store=True)
        history = decided.outputs["history"]
        decision = decided.outputs["decision"]
    reported = report_op(base_image)(spec=spec, history=history)
    name_step(reported, "report")
    return decision


def template_trial(spec: Any, settings: Any, item: Any, label: str, base_image: str) -> Any:
    """Adds one trial of the experiment's trial template (run_trial -> collect_metrics)
    inside a round's loop; returns the channel of the trial's record."""
    ran = run_trial_op(base_image)(spec=spec, settings=settings, trial=item)
    name_step(ran, f"{label}-run-trial", store=True)
    record = collect_metrics_op(base_image)(
        spec=spec,
        settings=settings,
        run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        result=ran.outputs["Output"],
        log=ran.outputs["log"],
        metrics_file=ran.outputs["metrics_file"],
    )
    name_step(record, f"{label}-collect-metrics", store=True)
    return record.outputs["Output"]


STORE_PASSWORD_ENV = "HPO_KFP_STORE_PASSWORD"
"""Where a step finds the store's password (:mod:`hpo_kfp.store.sql`)."""

_STORE_SECRET: ContextVar[str] = ContextVar("store_secret", default="")


@contextlib.contextmanager
def store_secret(name: str) -> Iterator[None]:
    """While a pipeline is defined in the block, every step that opens the store (named
    with ``store=True``) gets the store's password from the Kubernetes Secret ``name`` (its
    key ``password``, as ``HPO_KFP_STORE_PASSWORD``), through kfp-kubernetes: the password
    never enters the compiled pipeline, only the Secret's name does. "" changes nothing."""
    token = _STORE_SECRET.set(name)
    try:
        yield
    finally:
        _STORE_SECRET.reset(token)


def name_step(task: Any, display: str, *, store: bool = False) -> None:
    """Names a step for people and turns its caching off; a step that opens the store
    (``store``) gets its password from the Secret of :func:`store_secret`, if any."""
    # Trials must run every time (the data may have changed); and people read round names.
    task.set_caching_options(False)
    task.set_display_name(display)
    secret = _STORE_SECRET.get()
    if store and secret:
        try:
            from kfp import kubernetes
        except ImportError:
            raise BuildError(
                f"settings.store_secret: a store Secret ({secret!r}) needs kfp-kubernetes: "
                "pip install 'hpo-kfp[cluster]'"
            ) from None
        kubernetes.use_secret_as_env(
            task, secret_name=secret, secret_key_to_env={"password": STORE_PASSWORD_ENV}
        )


def compile_pipeline(pipeline: Any, output: Any) -> int:
    """Compiles ``pipeline`` to ``output`` and returns the file's size in bytes."""
    compiler.Compiler().compile(pipeline, str(output))
    return Path(output).stat().st_size
