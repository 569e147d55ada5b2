"""The history document round-trips, merges idempotently, and refuses other versions."""

from __future__ import annotations

import json

import pytest

from hpo_kfp.errors import HistoryError
from hpo_kfp.history import History, TrialRecord


def _history() -> History:
    return History(
        experiment="demo",
        study_attrs={"qmc:sample_id": 3},
        trials=(
            TrialRecord(
                name="demo-0000",
                number=0,
                parameters={"lr": 0.1, "n": 2, "opt": "sgd"},
                status="Succeeded",
                values=(0.5,),
                metrics={"loss": 0.5},
                series={"loss": [(None, 0.7), ("2024-01-01T00:00:00+00:00", 0.5)]},
                started="2024-01-01T00:00:00+00:00",
                finished="2024-01-01T00:00:02.500000+00:00",
                sampler_attrs={"cma:generation": 0},
            ),
            TrialRecord(
                name="demo-0001",
                number=1,
                parameters={"lr": 0.2, "n": 3, "opt": "adam"},
                status="Failed",
                reason="exit code 1",
            ),
        ),
    )


def test_round_trip_keeps_everything() -> None:
    history = _history()
    again = History.from_json(history.to_json())
    assert again == history
    assert again.trials[0].duration == 2.5
    assert isinstance(again.trials[0].parameters["n"], int)


def test_a_records_dict_has_every_field_in_order_and_shares_no_container() -> None:
    from dataclasses import fields

    record = _history().trials[0]
    data = record.to_dict()
    assert list(data) == [f.name for f in fields(TrialRecord)]  # a new field is not forgotten
    assert TrialRecord.from_dict(data) == record
    data["parameters"]["lr"] = 9.0
    data["series"]["loss"][0][1] = 9.0
    data["sampler_attrs"]["cma:generation"] = 9
    assert record.parameters["lr"] == 0.1 and record.series["loss"][0][1] == 0.7
    assert record.sampler_attrs == {"cma:generation": 0}


def test_upsert_replaces_by_name_and_is_idempotent() -> None:
    history = _history()
    done = TrialRecord(
        name="demo-0001",
        number=1,
        parameters={"lr": 0.2, "n": 3, "opt": "adam"},
        status="Succeeded",
        values=(0.4,),
    )
    once = history.upsert([done])
    assert once.upsert([done]) == once
    assert [t.status for t in once.trials] == ["Succeeded", "Succeeded"]
    assert once.next_number == 2


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"version": 2, "experiment": "demo", "trials": []}, r"reads history version 1, but got 2"),
        ({"experiment": "demo", "trials": []}, r"reads history version 1, but got None"),
        ({"version": "1", "experiment": "demo", "trials": []}, r"but got '1'"),
        ({"version": 1, "experiment": "demo", "trials": {}}, r"trials: must be a list"),
        (
            {"version": 1, "experiment": "demo", "trials": [{"name": "x"}]},
            r"trials\[0\]: must be a trial record",
        ),
        (
            {
                "version": 1,
                "experiment": "demo",
                "trials": [{"name": "x", "number": 0, "parameters": {}, "status": "Done"}],
            },
            r"trials\[0\].status: must be one of",
        ),
        ({"version": 1, "experiment": "demo", "trials": [1]}, r"trials\[0\]: must be a trial record"),
        (
            {
                "version": 1,
                "experiment": "demo",
                "trials": [{"name": "x", "number": 0, "parameters": {}, "metrics": [1]}],
            },
            r"trials\[0\]: must be a trial record",
        ),
        (
            {
                "version": 1,
                "experiment": "demo",
                "trials": [{"name": "x", "number": 0, "parameters": {}, "values": [float("nan")]}],
            },
            r"trials\[0\].values: must be finite numbers",
        ),
        (
            {"version": 1, "experiment": "demo", "trials": [], "study_attrs": [1, 2]},
            r"study_attrs: must be an object",
        ),
    ],
    ids=[
        "newer",
        "unversioned",
        "string-version",
        "trials-not-list",
        "record-missing-fields",
        "bad-status",
        "record-not-object",
        "metrics-not-object",
        "nan-value",
        "study-attrs-not-object",
    ],
)
def test_other_versions_and_malformed_documents_are_refused(
    document: dict[str, object], message: str
) -> None:
    with pytest.raises(HistoryError, match=message):
        History.from_json(json.dumps(document))


def test_not_json_is_refused() -> None:
    with pytest.raises(HistoryError, match=r"must be JSON"):
        History.from_json("{trials: ")


def test_written_json_is_strict() -> None:
    text = _history().to_json()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard constant {c}"))
