"""The committed protobuf modules: fresh from the .proto files, and wire-compatible with Katib."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpo_kfp.service._proto import api_pb2
from hpo_kfp.service._proto.__main__ import PROTOS, generate

_HERE = Path(__file__).resolve().parents[2] / "hpo_kfp" / "service" / "_proto"


def test_the_generated_modules_match_the_proto_files(tmp_path: Path) -> None:
    generate(tmp_path)
    fresh = tmp_path / "hpo_kfp" / "service" / "_proto"
    names = sorted(p.name for p in fresh.iterdir())
    assert names == sorted(
        f"{Path(proto).stem}{suffix}"
        for proto in PROTOS
        for suffix in ("_pb2.py", "_pb2.pyi", *(("_pb2_grpc.py",) if proto == "api.proto" else ()))
    )
    stale = [name for name in names if (fresh / name).read_bytes() != (_HERE / name).read_bytes()]
    assert stale == [], "regenerate them: python -m hpo_kfp.service._proto"


# Katib's api.v1.beta1 numbers, from its published api.proto: a wrong number decodes as garbage.
_KATIB_FIELDS = [
    (
        "GetSuggestionsRequest",
        {"experiment": 1, "trials": 2, "current_request_number": 4, "total_request_number": 5},
    ),
    ("GetSuggestionsReply", {"parameter_assignments": 1, "algorithm": 2, "early_stopping_rules": 3}),
    ("GetSuggestionsReply.ParameterAssignments", {"assignments": 1, "trial_name": 2, "labels": 3}),
    (
        "ExperimentSpec",
        {
            "parameter_specs": 1,
            "objective": 2,
            "algorithm": 3,
            "early_stopping": 4,
            "parallel_trial_count": 5,
            "max_trial_count": 6,
            "nas_config": 7,
        },
    ),
    ("FeasibleSpace", {"max": 1, "min": 2, "list": 3, "step": 4, "distribution": 5}),
    ("ObjectiveSpec", {"type": 1, "goal": 2, "objective_metric_name": 3, "additional_metric_names": 4}),
    ("TrialSpec", {"objective": 2, "parameter_assignments": 3, "labels": 4}),
    ("TrialStatus", {"start_time": 1, "completion_time": 2, "condition": 3, "observation": 4}),
    ("EarlyStoppingRule", {"name": 1, "value": 2, "comparison": 3, "start_step": 4}),
    ("GetEarlyStoppingRulesRequest", {"experiment": 1, "trials": 2, "db_manager_address": 3}),
    ("GetObservationLogRequest", {"trial_name": 1, "metric_name": 2, "start_time": 3, "end_time": 4}),
    ("MetricLog", {"time_stamp": 1, "metric": 2}),
]


@pytest.mark.parametrize(("message", "numbers"), _KATIB_FIELDS, ids=[m for m, _ in _KATIB_FIELDS])
def test_field_numbers_are_katibs(message: str, numbers: dict[str, int]) -> None:
    descriptor = api_pb2.DESCRIPTOR.message_types_by_name[message.split(".", maxsplit=1)[0]]
    for nested in message.split(".")[1:]:
        descriptor = descriptor.nested_types_by_name[nested]
    assert {field.name: field.number for field in descriptor.fields} == numbers


def test_services_and_enums_are_katibs() -> None:
    services = {
        s.full_name: sorted(m.name for m in s.methods) for s in api_pb2.DESCRIPTOR.services_by_name.values()
    }
    assert services == {
        "api.v1.beta1.Suggestion": ["GetSuggestions", "ValidateAlgorithmSettings"],
        "api.v1.beta1.EarlyStopping": [
            "GetEarlyStoppingRules",
            "SetTrialStatus",
            "ValidateEarlyStoppingSettings",
        ],
        "api.v1.beta1.DBManager": ["DeleteObservationLog", "GetObservationLog", "ReportObservationLog"],
    }
    assert api_pb2.TrialStatus.TrialConditionType.items() == [
        ("CREATED", 0),
        ("RUNNING", 1),
        ("SUCCEEDED", 2),
        ("KILLED", 3),
        ("FAILED", 4),
        ("METRICSUNAVAILABLE", 5),
        ("EARLYSTOPPED", 6),
        ("UNKNOWN", 7),
    ]
    assert dict(api_pb2.ComparisonType.items()) == {
        "UNKNOWN_COMPARISON": 0,
        "EQUAL": 1,
        "LESS": 2,
        "GREATER": 3,
    }
