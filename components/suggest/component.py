"""The suggest component (see README.md). No ``from __future__ import annotations`` here:
KFP reads the component's annotations at definition time."""

import functools
from typing import Any, List, Optional

from kfp import dsl
from kfp.dsl import Artifact, Input, Output

from components.image import RUNTIME_IMAGE


@functools.cache
def suggest_op(base_image: str = RUNTIME_IMAGE) -> Any:
    """The suggest component, running in ``base_image``."""

    @dsl.component(base_image=base_image, install_kfp_package=False)
    def suggest(
        spec: str, settings: str, history: Output[Artifact], previous: Optional[Input[Artifact]] = None
    ) -> List[str]:
        from hpo_kfp.steps import suggest_step

        return suggest_step(spec, previous.path if previous else None, history.path, settings)

    return suggest
