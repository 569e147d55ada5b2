"""Katib's success and failure conditions: GJSON expressions evaluated on the trial object.

Katib's rule (``pkg/controller.v1beta1/trial/util/job_util.go``): the failure condition is
checked first; a condition holds when its result is an object or a non-empty array; the
reason and message come from that object (an array's first element). Evaluation uses
``pygjson`` (MIT, bindings to gjson.rs).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["JobState", "condition_holds", "job_state"]


@dataclass(frozen=True)
class JobState:
    """Where a trial's object stands."""

    condition: Literal["Running", "Succeeded", "Failed"]
    reason: str = ""
    message: str = ""


def job_state(document: Mapping[str, Any], success: str, failure: str) -> JobState:
    """Evaluates the failure condition, then the success condition, on ``document``."""
    text = json.dumps(document)
    matched = condition_holds(text, failure)
    if matched is not None:
        return JobState("Failed", *_reason_and_message(matched))
    matched = condition_holds(text, success)
    if matched is not None:
        return JobState("Succeeded", *_reason_and_message(matched))
    return JobState("Running")


def condition_holds(document_json: str, expression: str) -> dict[str, Any] | None:
    """The object the expression selects when the condition holds, else None."""
    import pygjson

    result = pygjson.get(document_json, expression)
    if not result.exists():
        return None
    if result.type_ is dict:
        return _as_dict(result.to_str())
    if result.type_ is list and result.value:
        first = result.value[0]
        return _as_dict(first.to_str()) if first.type_ is dict else {}
    return None


def _as_dict(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _reason_and_message(matched: Mapping[str, Any]) -> tuple[str, str]:
    return str(matched.get("reason") or ""), str(matched.get("message") or "")
