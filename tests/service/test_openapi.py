"""The OpenAPI document against the running server: every operation, fuzzed by schemathesis.

Each generated request, valid and invalid, must get an answer that the document declares
(its status code, content type and body schema), and never a 5xx. Schemathesis's pytest
plugin cannot load a schema from a fixture under pytest 9 (it reads a private attribute
pytest removed), so the test drives schemathesis's strategies with hypothesis itself.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.service.conftest import Server

_EXAMPLES = 6


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_every_operation_answers_as_documented(server: Server, mode: GenerationMode) -> None:
    api = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    failures = []
    operations = 0
    for result in api.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            # A valid request for an experiment that does not exist gets 404 by design, not 2xx.
            case.call_and_validate(base_url=server.url, excluded_checks=[positive_data_acceptance])

        try:
            check()
        except Unsatisfiable:
            continue  # no invalid request exists for an operation without parameters
        except Exception as error:
            failures.append(f"{operation.label}: {error}")
    assert operations >= 12
    assert failures == []


def test_the_document_declares_the_error_reply_on_every_operation(http: httpx.Client) -> None:
    document = http.get("/openapi.json").json()
    assert {"/experiment_trials", "/v1/experiments", "/v1/experiments/{name}/suggestions", "/health"} <= set(
        document["paths"]
    )
    for path in document["paths"].values():
        for operation in path.values():
            assert "422" not in operation["responses"]
            assert operation["responses"]["default"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorReply"
            }
