"""Every Katib default condition and every form Katib's examples use, pinned."""

from __future__ import annotations

from typing import Any

import pytest

from hpo_kfp.runners.conditions import job_state
from hpo_kfp.spec.template import default_conditions

_JOB = default_conditions("Job")
_KUBEFLOW = default_conditions("TFJob")
_TRAINJOB = default_conditions("TrainJob")
assert _JOB and _KUBEFLOW and _TRAINJOB
_ARGO = ('status.[@this].#(phase=="Succeeded")#', 'status.[@this].#(phase=="Failed")#')
_TEKTON = (
    'status.conditions.#(type=="Succeeded")#|#(status=="True")#',
    'status.conditions.#(type=="Succeeded")#|#(status=="False")#',
)


def _conditions(*items: dict[str, str]) -> dict[str, Any]:
    return {"status": {"conditions": list(items)}}


_CASES = [
    ("job-none", _JOB[:2], {"status": {}}, "Running", ""),
    ("job-no-status", _JOB[:2], {}, "Running", ""),
    ("job-active", _JOB[:2], {"status": {"active": 1}}, "Running", ""),
    (
        "job-complete",
        _JOB[:2],
        _conditions({"type": "Complete", "status": "True", "reason": "Done"}),
        "Succeeded",
        "Done",
    ),
    (
        "job-failed",
        _JOB[:2],
        _conditions(
            {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
            }
        ),
        "Failed",
        "BackoffLimitExceeded",
    ),
    (
        "job-failed-wins",
        _JOB[:2],
        _conditions(
            {"type": "Complete", "status": "True"},
            {"type": "Failed", "status": "True", "reason": "DeadlineExceeded"},
        ),
        "Failed",
        "DeadlineExceeded",
    ),
    ("job-condition-false", _JOB[:2], _conditions({"type": "Failed", "status": "False"}), "Running", ""),
    (
        "tfjob-created-running",
        _KUBEFLOW[:2],
        _conditions({"type": "Created", "status": "True"}, {"type": "Running", "status": "True"}),
        "Running",
        "",
    ),
    (
        "tfjob-succeeded",
        _KUBEFLOW[:2],
        _conditions(
            {"type": "Running", "status": "False"},
            {"type": "Succeeded", "status": "True", "reason": "TFJobSucceeded"},
        ),
        "Succeeded",
        "TFJobSucceeded",
    ),
    (
        "pytorchjob-failed",
        _KUBEFLOW[:2],
        _conditions({"type": "Failed", "status": "True", "reason": "PyTorchJobFailed"}),
        "Failed",
        "PyTorchJobFailed",
    ),
    (
        "trainjob-complete",
        _TRAINJOB[:2],
        _conditions({"type": "Complete", "status": "True", "reason": "JobsCompleted"}),
        "Succeeded",
        "JobsCompleted",
    ),
    ("argo-running", _ARGO, {"status": {"phase": "Running"}}, "Running", ""),
    ("argo-succeeded", _ARGO, {"status": {"phase": "Succeeded"}}, "Succeeded", ""),
    ("argo-failed", _ARGO, {"status": {"phase": "Failed", "message": "child failed"}}, "Failed", ""),
    ("tekton-unknown", _TEKTON, _conditions({"type": "Succeeded", "status": "Unknown"}), "Running", ""),
    (
        "tekton-true",
        _TEKTON,
        _conditions({"type": "Succeeded", "status": "True", "reason": "Succeeded"}),
        "Succeeded",
        "Succeeded",
    ),
    (
        "tekton-false",
        _TEKTON,
        _conditions({"type": "Succeeded", "status": "False", "reason": "Failed"}),
        "Failed",
        "Failed",
    ),
]


@pytest.mark.parametrize(
    ("conditions", "document", "condition", "reason"), [c[1:] for c in _CASES], ids=[c[0] for c in _CASES]
)
def test_katib_forms(
    conditions: tuple[str, str], document: dict[str, Any], condition: str, reason: str
) -> None:
    state = job_state(document, *conditions)
    assert (state.condition, state.reason) == (condition, reason)


def test_message_comes_from_the_matched_condition() -> None:
    state = job_state(_conditions({"type": "Failed", "status": "True", "message": "OOMKilled"}), *_JOB[:2])
    assert state.message == "OOMKilled"


def test_a_plain_object_result_holds() -> None:
    # An expression that selects an object (not an array) holds, as in Katib.
    state = job_state({"status": {"done": {"reason": "ok"}}}, "status.done", "status.broken")
    assert (state.condition, state.reason) == ("Succeeded", "ok")


def test_a_scalar_result_does_not_hold() -> None:
    assert job_state({"status": {"succeeded": 1}}, "status.succeeded", "status.failed").condition == "Running"
