"""Where a trial template's primary container sits, and what its pod calls it."""

from __future__ import annotations

import pytest

from hpo_kfp.containers import find_primary

_TASK_RUN = {
    "apiVersion": "tekton.dev/v1",
    "kind": "TaskRun",
    "spec": {
        "taskSpec": {
            "steps": [
                {"name": "fetch", "image": "busybox", "script": "true"},
                {"image": "train:1", "command": ["python", "train.py"]},
            ]
        }
    },
}


@pytest.mark.parametrize("name", ["step-unnamed-1", "step-fetch", "fetch"])
def test_a_tekton_step_is_called_as_tekton_names_its_container(name: str) -> None:
    # Tekton's pod names a step's container step-<name>, or step-unnamed-<index> without a name.
    primary = find_primary(_TASK_RUN, name)
    assert primary.style == "tekton"
    assert primary.pod_container == ("step-fetch" if "fetch" in name else "step-unnamed-1")
