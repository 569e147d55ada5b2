"""The compiled files committed at the repository's top: one command writes them all.

``components/<name>/component.yaml`` is each component compiled on its own -- suggest,
run_trial, collect_metrics, decide and report, each usable alone, and the lane loop's start,
lane and lane_decide -- for ``kfp.components.load_component_from_file`` (or ``_from_url``,
from the repository);
``pipelines/hpo_experiment.yaml`` is the generic uploadable pipeline. From a checkout::

    uv run python -m hpo_kfp.pipeline.publish          # rewrite them
    uv run python -m hpo_kfp.pipeline.publish --check  # exit 1 naming any stale file

The files name the runtime image of this release (:data:`hpo_kfp.runtime.RUNTIME_IMAGE`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hpo_kfp.pipeline.compact import compact_file
from hpo_kfp.pipeline.components import (
    collect_metrics_op,
    decide_op,
    lane_decide_op,
    lane_op,
    report_op,
    run_trial_op,
    start_op,
    suggest_op,
)
from hpo_kfp.pipeline.generic import build_generic_pipeline
from hpo_kfp.pipeline.tasks import compile_pipeline

__all__ = ["COMPONENTS", "GENERIC_PIPELINE", "check", "main", "write_all"]

COMPONENTS: Mapping[str, Callable[[], Any]] = {
    "suggest": suggest_op,
    "run_trial": run_trial_op,
    "collect_metrics": collect_metrics_op,
    "decide": decide_op,
    "report": report_op,
    "start": start_op,
    "lane": lane_op,
    "lane_decide": lane_decide_op,
}
"""Folder under ``components/`` -> the component's factory."""

GENERIC_PIPELINE = Path("pipelines") / "hpo_experiment.yaml"
"""The generic pipeline's path, relative to the repository's top."""


def targets() -> dict[Path, Callable[[Path], None]]:
    """Each committed file (relative path) and how to write it."""

    def component(factory: Callable[[], Any]) -> Callable[[Path], None]:
        def write(path: Path) -> None:
            compile_pipeline(factory(), path)

        return write

    def generic(path: Path) -> None:
        compile_pipeline(build_generic_pipeline(), path)
        compact_file(path)

    files: dict[Path, Callable[[Path], None]] = {
        Path("components") / name / "component.yaml": component(factory)
        for name, factory in COMPONENTS.items()
    }
    files[GENERIC_PIPELINE] = generic
    return files


def write_all(root: Path) -> list[Path]:
    """Writes every committed file under ``root``; returns their paths."""
    written = []
    for relative, write in targets().items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path)
        written.append(path)
    return written


def check(root: Path) -> list[Path]:
    """The committed files under ``root`` that differ from what the code compiles now."""
    with tempfile.TemporaryDirectory(prefix="hpo-kfp-publish-") as folder:
        fresh = Path(folder)
        write_all(fresh)
        return [
            relative
            for relative in targets()
            if not (root / relative).is_file()
            or (root / relative).read_bytes() != (fresh / relative).read_bytes()
        ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hpo_kfp.pipeline.publish", description=__doc__)
    parser.add_argument("--root", default=".", help="the repository's top (default: .)")
    parser.add_argument("--check", action="store_true", help="only report stale files (exit 1 if any)")
    args = parser.parse_args(argv)
    root = Path(args.root)
    if args.check:
        stale = check(root)
        for path in stale:
            print(f"{path}: stale; regenerate with `uv run python -m hpo_kfp.pipeline.publish`")
        return 1 if stale else 0
    for path in write_all(root):
        print(f"{path}: {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
