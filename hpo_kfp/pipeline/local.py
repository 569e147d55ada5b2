"""Running a compiled tuning pipeline on this machine with ``kfp.local``.

The pipeline YAML is loaded as KFP's own loader loads it (with libyaml:
:func:`hpo_kfp.compat.load_pipeline_file`) and run by kfp.local's ``SubprocessRunner``: each
step is a process running the same component code a cluster runs. Two defects of kfp.local's
orchestrator (its ParallelFor cap of 2 and a print wrapper that is not thread-safe) are worked
around for the duration of the run only, without changing the pipeline: see
:func:`hpo_kfp.compat.kfp_local_fixes`; the folder each task makes for its code goes under the
pipeline root and is removed at the end (:func:`hpo_kfp.compat.kfp_local_task_folders`); and
each task's process is forked from a server that imported the steps' code once, instead of a
new interpreter importing it again (:func:`hpo_kfp.compat.kfp_local_warm_tasks`).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from hpo_kfp.compat import (
    kfp_local_fixes,
    kfp_local_task_folders,
    kfp_local_warm_tasks,
    load_pipeline_file,
    warm_server,
)

__all__ = ["WARM_MODULES", "run_pipeline_locally", "start_warm_steps", "warm_modules"]

WARM_MODULES = (
    "hpo_kfp.steps",
    "hpo_kfp.steps.lanes",
    "hpo_kfp.component_trial",
    "hpo_kfp.store.sql",
    "hpo_kfp.algorithms.optuna_family",
    "optuna",
    "numpy.random",  # the samplers' random state, imported on first use
    "sqlalchemy",
)
"""What the server that forks the steps' processes imports once (see
:func:`hpo_kfp.compat.kfp_local_warm_tasks`): the steps' own imports, the store's and the
sampler's."""

_STORE_MODULES = {
    "sqlite": ("sqlalchemy.dialects.sqlite",),
    "postgresql": ("sqlalchemy.dialects.postgresql", "psycopg"),
    "mysql": ("sqlalchemy.dialects.mysql", "pymysql"),
    "mariadb": ("sqlalchemy.dialects.mysql", "pymysql"),
}
"""What a step's ``create_engine`` would import for the store's backend: SQLAlchemy loads a
dialect on first use (~0.1 s of every step, without this). A driver that is not installed is
skipped by the server, and the step names the missing extra as before."""


def warm_modules(store: str = "") -> tuple[str, ...]:
    """:data:`WARM_MODULES` and what the steps need for ``store`` (an SQLAlchemy URL)."""
    backend = store.split(":", 1)[0].split("+", 1)[0]
    return WARM_MODULES + _STORE_MODULES.get(backend, ())


def start_warm_steps(store: str = "") -> None:
    """Starts the server the steps' processes fork from now, so that its imports (a second or
    so) overlap with whatever comes before the run, such as compiling the pipeline."""
    warm_server(warm_modules(store))


def run_pipeline_locally(
    pipeline_yaml: str | Path,
    arguments: Mapping[str, Any],
    *,
    pipeline_root: str | Path,
    max_parallelism: int,
    log: TextIO | None = None,
    store: str = "",
) -> Any:
    """Runs the pipeline in ``pipeline_yaml`` with kfp.local and returns its output.

    Args:
        pipeline_yaml: A compiled (and possibly compacted) pipeline.
        arguments: The pipeline's parameters.
        pipeline_root: Where kfp.local keeps the steps' artifacts.
        max_parallelism: The largest loop parallelism to allow (``parallelTrialCount``).
        log: Where kfp.local's own output goes (default: this process's stdout).
        store: The store's URL, for what the steps' server imports ahead (:func:`warm_modules`).

    Raises:
        RuntimeError: A step failed (kfp.local names it).
    """
    from kfp import local

    pipeline = load_pipeline_file(Path(pipeline_yaml))
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(Path(pipeline_root).resolve()),
        raise_on_error=True,
    )
    target = log or sys.stdout
    with (
        kfp_local_fixes(max_parallelism),
        kfp_local_task_folders(Path(pipeline_root).resolve()),
        kfp_local_warm_tasks(warm_modules(store)),
        contextlib.redirect_stdout(target),
        contextlib.redirect_stderr(target),
    ):
        task = pipeline(**arguments)
    return task.output
