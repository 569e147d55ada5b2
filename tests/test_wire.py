"""The wire format between steps: round trips, versions and kinds refused by name, and no
hand-made "nothing to run" item anywhere else in the package."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hpo_kfp.decide import decide
from hpo_kfp.early_stopping import StopRule
from hpo_kfp.errors import HpoKfpError, WireError
from hpo_kfp.history import History, TrialRecord, TrialRun
from hpo_kfp.reports.summary import result_document
from hpo_kfp.spec import parse_experiment
from hpo_kfp.wire import (
    WIRE_VERSION,
    BestTrial,
    DecisionDocument,
    Message,
    NoTrial,
    RecordedTrial,
    RunResult,
    TrialItem,
    read,
)
from tests.conftest import base_spec

_PACKAGE = Path(__file__).resolve().parents[1] / "hpo_kfp"

_ITEM = TrialItem(
    name="demo-0003",
    number=3,
    parameters={"lr": 0.02, "layers": 3, "optimizer": "adam"},
    sampler_attrs={"cma:generation": 1, "nested": {"a": [1, 2.5]}},
    stop_rule=StopRule(metric="loss", median=0.4, direction="minimize", start_step=2, trials=3),
)
_RUN = TrialRun(
    name="demo-0003",
    exit_code=None,
    started="2024-05-01T10:00:00+00:00",
    finished="2024-05-01T10:01:00+00:00",
    reason="stopped early",
    early_stopped=True,
)
_RECORD = TrialRecord(
    name="demo-0003",
    number=3,
    parameters={"lr": 0.02, "layers": 3, "optimizer": "adam"},
    status="Succeeded",
    values=(0.25, 0.9),
    metrics={"loss": 0.25, "accuracy": 0.9},
    series={"loss": [("2024-05-01T10:00:30+00:00", 0.5), (None, 0.25)]},
    started="2024-05-01T10:00:00+00:00",
    finished="2024-05-01T10:01:00+00:00",
    sampler_attrs={"cma:generation": 1},
)
_DECISION = DecisionDocument(
    done=True,
    experiment="demo",
    status="Succeeded",
    reason="GoalReached",
    trials={"succeeded": 1, "failed": 0, "total": 1},
    best=BestTrial(name="demo-0003", parameters=_RECORD.parameters, objective=0.25, metrics=_RECORD.metrics),
)

_MESSAGES: list[Message] = [
    NoTrial(),
    _ITEM,
    TrialItem(name="demo-0000", number=0, parameters={"x": 1}),
    RunResult(trial=_ITEM, run=_RUN),
    RunResult(trial=_ITEM, run=replace(_RUN, warnings=("the first line ('s=0.001') was left out",))),
    RecordedTrial(record=_RECORD),
    _DECISION,
    DecisionDocument(done=False, experiment="demo", status="Running"),
]
_IDS = [
    "no-trial",
    "trial-item",
    "trial-item-plain",
    "run-result",
    "run-result-with-warnings",
    "trial-record",
    "decision",
    "decision-no-best",
]


@pytest.mark.parametrize("message", _MESSAGES, ids=_IDS)
def test_every_message_round_trips(message: Message) -> None:
    text = message.to_json()
    document = json.loads(text)
    assert (document["kind"], document["version"]) == (message.KIND, WIRE_VERSION)
    assert type(message).from_json(text) == message
    assert read(text, type(message)) == message


def test_ints_stay_ints() -> None:
    """An int hyperparameter must reach its trial as an int (kfp.local's dicts would make it 3.0)."""
    again = TrialItem.from_json(_ITEM.to_json())
    assert type(again.parameters["layers"]) is int and type(again.parameters["lr"]) is float
    assert type(RunResult.from_json(RunResult(trial=_ITEM, run=_RUN).to_json()).trial.number) is int


@pytest.mark.parametrize("message", _MESSAGES, ids=_IDS)
@pytest.mark.parametrize("version", [9, 0, "1", None, True], ids=["newer", "zero", "string", "null", "bool"])
def test_an_unknown_version_is_refused_by_name(message: Message, version: object) -> None:
    document = json.loads(message.to_json())
    document["version"] = version
    expected = (
        rf"^{message.KIND} version {re.escape(repr(version))}: this release of hpo-kfp reads version 1; "
        r"every step of a pipeline must run the same hpo-kfp release$"
    )
    with pytest.raises(WireError, match=expected):
        type(message).from_json(json.dumps(document))
    with pytest.raises(WireError, match=expected):
        read(json.dumps(document), type(message))


@pytest.mark.parametrize(
    ("text", "expected", "message"),
    [
        (
            RunResult(trial=_ITEM, run=_RUN).to_json(),
            TrialItem,
            r"^trial-item: must be a trial-item message, but got a 'run-result' message$",
        ),
        (
            _ITEM.to_json(),
            RecordedTrial,
            r"^trial-record: must be a trial-record message, but got a 'trial-item' message$",
        ),
        (
            json.dumps({"kind": "trial-itme", "version": 1}),
            TrialItem,
            r"^trial-item: must be a trial-item message, but got a 'trial-itme' message$",
        ),
    ],
    ids=["run-result-as-item", "item-as-record", "misspelt-kind"],
)
def test_a_message_of_another_kind_is_refused(text: str, expected: type[Message], message: str) -> None:
    with pytest.raises(WireError, match=message):
        expected.from_json(text)
    with pytest.raises(WireError, match=message):
        read(text, expected)


@pytest.mark.parametrize(
    "text",
    [
        '{"skip": true}',
        json.dumps({"name": "demo-0000", "number": 0, "parameters": {}}),
        json.dumps({"kind": "trial-item", "name": "demo-0000"}),
        "not json",
        "[1, 2]",
        "",
    ],
    ids=["old-skip-item", "hand-built-item", "no-version", "not-json", "a-list", "empty"],
)
def test_what_is_not_a_message_is_refused(text: str) -> None:
    with pytest.raises(
        WireError,
        match=r"^trial-item: must be a JSON object with a kind and a version \(hpo-kfp's wire format\), "
        r"but got .*; every step of a pipeline must run the same hpo-kfp release$",
    ):
        read(text, TrialItem)


def test_the_no_trial_item_is_recognised_only_through_the_wire_api() -> None:
    text = NoTrial().to_json()
    assert isinstance(read(text, TrialItem), NoTrial)
    assert isinstance(read(text, RunResult), NoTrial)
    assert isinstance(read(text, RecordedTrial), NoTrial)
    assert isinstance(read(_ITEM.to_json(), TrialItem), TrialItem)
    with pytest.raises(
        WireError, match=r"^trial-item: .* 'no-trial' message \(the round has no trial to run\)$"
    ):
        TrialItem.from_json(text)
    with pytest.raises(
        WireError, match=r"^no-trial: must have only the keys \[\], but got also \['trial'\]$"
    ):
        read(json.dumps({"kind": "no-trial", "version": 1, "trial": 1}), TrialItem)


def _with(message: Message, path: str, value: Any) -> str:
    """``message`` as JSON with the field at dotted ``path`` set to ``value`` (... deleted)."""
    document = json.loads(message.to_json())
    *parents, last = path.split(".")
    target = document
    for key in parents:
        target = target[key]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return json.dumps(document)


@pytest.mark.parametrize(
    ("message", "path", "value", "error"),
    [
        (_ITEM, "number", "3", r"^trial-item.number: must be int, but got '3'$"),
        (_ITEM, "number", True, r"^trial-item.number: must be int, but got True$"),
        (_ITEM, "name", ..., r"^trial-item.name: must be present, but it is missing$"),
        (_ITEM, "parameters", [1], r"^trial-item.parameters: must be dict, but got \[1\]$"),
        (_ITEM, "stop_rule", {"metric": "loss"}, r"^trial-item.stop_rule: must be an early-stopping rule"),
        (_ITEM, "extra", 1, r"^trial-item: must have only the keys \[.*\], but got also \['extra'\]$"),
        (
            RunResult(trial=_ITEM, run=_RUN),
            "run.exit_code",
            "0",
            r"^run-result.run.exit_code: must be int or null, but got '0'$",
        ),
        (
            RunResult(trial=_ITEM, run=_RUN),
            "trial.number",
            None,
            r"^run-result.trial.number: must be int, but got None$",
        ),
        (
            RecordedTrial(record=_RECORD),
            "record.status",
            "Done",
            r"^trial-record.record.status: must be one of .*, but got 'Done'$",
        ),
        (_DECISION, "trials.succeeded", 1.0, r"^decision.trials.succeeded: must be an int, but got 1.0$"),
        (
            _DECISION,
            "best.objective",
            "low",
            r"^decision.best.objective: must be int or float, but got 'low'$",
        ),
        (_DECISION, "done", "yes", r"^decision.done: must be bool, but got 'yes'$"),
    ],
    ids=[
        "number-string",
        "number-bool",
        "missing-name",
        "parameters-list",
        "bad-stop-rule",
        "unknown-key",
        "exit-code-string",
        "nested-item",
        "record-status",
        "count-float",
        "objective-string",
        "done-string",
    ],
)
def test_malformed_fields_are_named(message: Message, path: str, value: Any, error: str) -> None:
    with pytest.raises(WireError, match=error):
        type(message).from_json(_with(message, path, value))


def test_wire_errors_are_hpo_kfp_errors() -> None:
    assert issubclass(WireError, HpoKfpError)


def test_an_item_carries_what_the_record_needs() -> None:
    record = _ITEM.record()
    assert (record.name, record.number, record.status) == ("demo-0003", 3, "Pending")
    assert record.parameters == _ITEM.parameters and record.sampler_attrs == _ITEM.sampler_attrs
    assert TrialItem.of(record, _ITEM.stop_rule) == _ITEM


def test_the_decision_document_keeps_the_keys_users_read() -> None:
    """decide's ``decision`` output: the CLI's ``--json`` keys, plus ``done`` and every count."""
    experiment = parse_experiment(base_spec())
    history = History(experiment=experiment.name, trials=(_RECORD,))
    decision = decide(experiment, history)
    document = json.loads(DecisionDocument.of(experiment.name, decision).to_json())
    cli = result_document(experiment.name, decision)
    assert {k: document[k] for k in ("experiment", "status", "reason", "best")} == {
        k: cli[k] for k in ("experiment", "status", "reason", "best")
    }
    assert document["done"] is decision.done and document["trials"] == decision.counts
    nothing = decide(experiment, History(experiment=experiment.name))
    assert DecisionDocument.of(experiment.name, nothing).best is None


_QUOTED_SKIP = re.compile(r"""["']skip["']""")


def _skip_literals(source: str) -> list[int]:
    """Lines of ``source`` with "skip" as a string (a key or a value to compare), outside docstrings."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and (node.value.strip().lower() == "skip" or _QUOTED_SKIP.search(node.value))
    ]


@pytest.mark.parametrize(
    "source",
    [
        'if data.get("skip"):\n    pass\n',
        'SKIP = json.dumps({"skip": True})\n',
        "ok = item == 'skip'\n",
        "code = f'''if item.get(\"skip\"): raise'''\n",
    ],
    ids=["get", "dict-key", "compare", "generated-source"],
)
def test_the_skip_scan_finds_a_hand_made_skip(source: str) -> None:
    assert _skip_literals(source) == [1]


def test_no_module_but_wire_makes_or_checks_a_skip_item() -> None:
    found = [
        f"{path.relative_to(_PACKAGE.parent)}:{line}"
        for path in sorted(_PACKAGE.rglob("*.py"))
        if path != _PACKAGE / "wire.py"
        for line in _skip_literals(path.read_text(encoding="utf-8"))
    ]
    assert found == [], "the round's empty item is hpo_kfp.wire.NoTrial; use hpo_kfp.wire.read"


def test_typed_parameters_give_each_value_its_parameters_type() -> None:
    from hpo_kfp import categorical, discrete, double, experiment, integer, objective
    from hpo_kfp.wire import parameter_kinds, typed_parameters, typed_parameters_json

    spec = experiment(
        "typed",
        objective=objective("loss", "minimize"),
        parameters=[
            double("lr", 0.01, 0.1),
            integer("layers", 1, 6),
            discrete("batch", [16, 32]),
            discrete("dropout", [0.1, 0.5]),
            categorical("optimizer", ["sgd", "adam"]),
        ],
        max_trials=2,
        parallel=1,
    )
    kinds = parameter_kinds(spec.parameters)
    assert kinds == {"lr": "float", "layers": "int", "batch": "int", "dropout": "float", "optimizer": "str"}
    # What KFP hands on: a dict's numbers as doubles (kfp.local), a whole double as an int (backend).
    carried = {"lr": 1, "layers": 3.0, "batch": 32.0, "dropout": 0.5, "optimizer": "adam"}
    typed = typed_parameters(carried, kinds)
    assert typed == carried
    assert [type(typed[name]) for name in kinds] == [float, int, int, float, str]
    assert typed_parameters_json(carried, kinds) == (
        '{"lr":1.0,"layers":3,"batch":32,"dropout":0.5,"optimizer":"adam"}'
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"layers": 2.5}, r"^parameters\.layers: must be a whole number \(int\), but got 2\.5$"),
        ({"layers": "3"}, r"^parameters\.layers: must be a finite number \(int\), but got '3'$"),
        ({"layers": float("nan")}, r"^parameters\.layers: must be a finite number \(int\), but got nan$"),
        ({"depth": 3}, r"^parameters\.depth: must be a parameter of the experiment, but got 3$"),
    ],
    ids=["fractional-int", "string", "nan", "unknown"],
)
def test_typed_parameters_refuse_a_value_not_of_its_kind(values: dict[str, object], message: str) -> None:
    from hpo_kfp.wire import typed_parameters

    with pytest.raises(WireError, match=message):
        typed_parameters(values, {"layers": "int"})
