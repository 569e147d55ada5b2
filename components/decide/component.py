"""The decide component (see README.md). No ``from __future__ import annotations`` here:
KFP reads the component's annotations at definition time."""

import functools
from typing import Any, List

from kfp import dsl
from kfp.dsl import Artifact, Input, Output, OutputPath

from components.image import RUNTIME_IMAGE


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
        from hpo_kfp.steps import decide_step

        return decide_step(spec, previous.path, results, history.path, settings, decision)

    return decide
