"""Running a compiled tuning pipeline on this machine with ``kfp.local``.

The pipeline YAML is loaded with KFP's own loader and run by kfp.local's
``SubprocessRunner``: each step is a process running the same component code a cluster
runs. Two defects of kfp 2.17.0's local orchestrator are worked around here, for the
duration of the run only, without changing the pipeline:

* ``ParallelFor`` runs at most 2 iterations at once whatever the loop's ``parallelism``
  (``conservative_max = 2`` in ``kfp/local/orchestrator/enhanced_dag_orchestrator.py``, a
  guard against thread explosion in *nested* loops, which this pipeline has none of). The
  cap is raised to the loop's own ``parallelism`` (= ``parallelTrialCount``), which is what
  a cluster honours.
* ``kfp.local.logging_utils.indented_print`` swaps ``builtins.print`` for an indenting
  wrapper and back, which is not thread-safe: with two iterations at once the wrappers
  leak and nest, every print calls the next layer twice, and a long run slows down
  exponentially until it hangs (measured in ``benchmarks/RESULTS.md``). It is replaced by
  a no-op: step logs lose their 4-space indent.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

__all__ = ["kfp_local_fixes", "run_pipeline_locally"]


@contextlib.contextmanager
def kfp_local_fixes(max_parallelism: int) -> Iterator[None]:
    """Applies the two workarounds described in the module docstring, then restores."""
    from kfp.local import logging_utils
    from kfp.local.orchestrator import enhanced_dag_orchestrator as orchestrator

    executor_class = orchestrator.ParallelExecutor
    original_init = executor_class.__init__
    original_indent = logging_utils.indented_print

    def init(self: Any, max_workers: int | None = None) -> None:
        original_init(self, max_workers)
        self.conservative_max = max(max_parallelism, 1)
        self.max_workers = (
            self.conservative_max if max_workers is None else min(max_workers, self.conservative_max)
        )

    @contextlib.contextmanager
    def no_indent(num_spaces: int = 4) -> Iterator[None]:
        yield

    executor_class.__init__ = init
    logging_utils.indented_print = no_indent
    try:
        yield
    finally:
        executor_class.__init__ = original_init
        logging_utils.indented_print = original_indent


def run_pipeline_locally(
    pipeline_yaml: str | Path,
    arguments: Mapping[str, Any],
    *,
    pipeline_root: str | Path,
    max_parallelism: int,
    log: TextIO | None = None,
) -> Any:
    """Runs the pipeline in ``pipeline_yaml`` with kfp.local and returns its output.

    Args:
        pipeline_yaml: A compiled (and possibly compacted) pipeline.
        arguments: The pipeline's parameters.
        pipeline_root: Where kfp.local keeps the steps' artifacts.
        max_parallelism: The largest loop parallelism to allow (``parallelTrialCount``).
        log: Where kfp.local's own output goes (default: this process's stdout).

    Raises:
        RuntimeError: A step failed (kfp.local names it).
    """
    from kfp import components, local

    pipeline = components.load_component_from_file(str(pipeline_yaml))
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(Path(pipeline_root).resolve()),
        raise_on_error=True,
    )
    target = log or sys.stdout
    with (
        kfp_local_fixes(max_parallelism),
        contextlib.redirect_stdout(target),
        contextlib.redirect_stderr(target),
    ):
        task = pipeline(**arguments)
    return task.output
