"""The report component (see README.md). No ``from __future__ import annotations`` here:
KFP reads the component's annotations at definition time."""

import functools
from typing import Any

from kfp import dsl
from kfp.dsl import HTML, Artifact, Input, Markdown, Output

from components.image import RUNTIME_IMAGE


@functools.cache
def report_op(base_image: str = RUNTIME_IMAGE) -> Any:
    """The report component, running in ``base_image``."""

    @dsl.component(base_image=base_image, install_kfp_package=False)
    def report(spec: str, history: Input[Artifact], summary: Output[Markdown], page: Output[HTML]) -> None:
        from hpo_kfp.steps.report import report_step

        report_step(spec, history.path, summary.path, page.path)

    return report
