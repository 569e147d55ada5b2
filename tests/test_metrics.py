"""Metrics are read from output as Katib's collectors read them, and reduced by strategy."""

from __future__ import annotations

import json
import math

import pytest
from google.protobuf.json_format import MessageToDict
from google.protobuf.struct_pb2 import Struct

from hpo_kfp.errors import InputError, MetricsUnavailable
from hpo_kfp.metrics import log_metric, metric_value, observe, parse_json_lines, parse_text
from hpo_kfp.spec.objective import Objective, ObjectiveTerm

_LOG = """\
Epoch 1/3
epoch=1 loss=0.9 accuracy=0.50
2024-05-01T10:00:02Z epoch=2 loss=0.4 accuracy=0.70
2024-05-01T10:00:03.123456789+02:00 loss=0.5 accuracy=0.80 lr=1e-3
Validation-accuracy=0.81 loss = -1.5E-1
nothing to see: loss is not a metric line without equals
"""


def test_default_text_filter_reads_every_value_and_timestamp() -> None:
    logs = parse_text(_LOG, ["loss", "accuracy"])
    assert [(m.name, m.value) for m in logs] == [
        ("loss", 0.9),
        ("accuracy", 0.5),
        ("loss", 0.4),
        ("accuracy", 0.7),
        ("loss", 0.5),
        ("accuracy", 0.8),
        ("loss", -0.15),
    ]
    assert logs[0].timestamp is None
    assert logs[2].timestamp == "2024-05-01T10:00:02+00:00"
    assert logs[4].timestamp == "2024-05-01T10:00:03.123456+02:00"


def test_names_are_matched_whole() -> None:
    # Katib compares the captured name with the metric name exactly.
    logs = parse_text("Validation-accuracy=0.81 accuracy=0.7", ["accuracy"])
    assert [(m.name, m.value) for m in logs] == [("accuracy", 0.7)]


def test_custom_metrics_format() -> None:
    text = "{metricName: loss, metricValue: 0.25}\n{metricName: accuracy, metricValue: 0.9}\n"
    logs = parse_text(
        text, ["loss", "accuracy"], [r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}"]
    )
    assert [(m.name, m.value) for m in logs] == [("loss", 0.25), ("accuracy", 0.9)]


def test_json_lines_with_string_number_and_epoch_timestamps() -> None:
    lines = [
        json.dumps({"loss": "0.5", "timestamp": "2024-05-01T10:00:00Z"}),
        "not json at all",
        json.dumps({"loss": 0.25, "accuracy": 0.9, "timestamp": 1714557600.5}),
        json.dumps(["a", "list"]),
        json.dumps({"accuracy": True}),
    ]
    logs = parse_json_lines("\n".join(lines), ["loss", "accuracy"])
    assert [(m.name, m.value) for m in logs] == [("loss", 0.5), ("loss", 0.25), ("accuracy", 0.9)]
    assert logs[0].timestamp == "2024-05-01T10:00:00+00:00"
    assert logs[1].timestamp == "2024-05-01T10:00:00.500000+00:00"


def _objective(strategy: str) -> Objective:
    return Objective(
        type="minimize",
        metric="loss",
        additional_metrics=("accuracy",),
        strategies={"loss": strategy, "accuracy": "max"},
    )  # type: ignore[dict-item]


@pytest.mark.parametrize(("strategy", "expected"), [("min", -0.15), ("max", 0.9), ("latest", -0.15)])
def test_strategies_reduce_the_series(strategy: str, expected: float) -> None:
    observation = observe(parse_text(_LOG, ["loss", "accuracy"]), _objective(strategy))
    assert observation.values == (expected,)
    assert observation.metrics["accuracy"] == 0.8
    assert len(observation.series["loss"]) == 4


def test_missing_objective_is_metrics_unavailable() -> None:
    with pytest.raises(MetricsUnavailable, match=r"'loss' was not found"):
        observe(parse_text("accuracy=0.9", ["loss", "accuracy"]), _objective("min"))


def test_non_finite_values_are_counted_and_left_out() -> None:
    text = "\n".join(
        json.dumps(r) for r in ({"loss": "nan"}, {"loss": 0.3}, {"loss": "inf"}, {"loss": "-inf"})
    )
    observation = observe(parse_json_lines(text, ["loss"]), _objective("min"))
    assert observation.values == (0.3,)
    assert observation.non_finite == {"loss": 3}


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        (["NaN"], "loss was NaN"),
        (["inf", "-Infinity"], "loss was infinite"),
        (["nan", "inf"], "loss was NaN or infinite"),
    ],
    ids=["nan", "infinite", "both"],
)
def test_only_non_finite_objective_is_metrics_unavailable_naming_the_metric(
    values: list[str], reason: str
) -> None:
    text = "\n".join(json.dumps({"loss": value}) for value in values)
    with pytest.raises(MetricsUnavailable, match=f"^{reason}$"):
        observe(parse_json_lines(text, ["loss"]), _objective("min"))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("loss=nan", "nan"),
        ("epoch=3 loss = NaN accuracy=0.5", "nan"),
        ("loss=inf", "inf"),
        ("loss=-Infinity", "-inf"),
        ("loss=+INF", "inf"),
    ],
    ids=["nan", "spaced-NaN", "inf", "minus-infinity", "plus-INF"],
)
def test_default_text_filter_reads_the_non_finite_values_python_prints(line: str, expected: str) -> None:
    [log] = [m for m in parse_text(line, ["loss", "accuracy"]) if m.name == "loss"]
    assert repr(log.value) == expected


@pytest.mark.parametrize(
    "line", ["loss=nanometres", "loss=info", "loss=inf.5"], ids=["nanometres", "info", "inf."]
)
def test_default_text_filter_reads_no_value_from_words_that_start_like_one(line: str) -> None:
    assert parse_text(line, ["loss"]) == []


def test_a_text_trial_printing_nan_is_unavailable_because_of_the_nan() -> None:
    with pytest.raises(MetricsUnavailable, match=r"^loss was NaN$"):
        observe(parse_text("epoch=1 loss=nan\nepoch=2 loss=nan\n", ["loss"]), _objective("min"))


class _Metrics:
    """What KFP's ``Output[Metrics]`` is to log_metric: an object with a metadata dict."""

    def __init__(self) -> None:
        self.metadata: dict[str, object] = {}


def test_log_metric_writes_numbers_and_a_marker_for_each_non_finite_value() -> None:
    metrics = _Metrics()
    for name, value in [("loss", math.nan), ("up", math.inf), ("down", -math.inf), ("acc", 1), ("f", 0.5)]:
        log_metric(metrics, name, value)
    assert metrics.metadata == {"loss": "NaN", "up": "Infinity", "down": "-Infinity", "acc": 1.0, "f": 0.5}
    # Every value survives protobuf's Struct (which is what fails on a bare NaN) ...
    struct = Struct()
    struct.update(metrics.metadata)
    # ... and reads back as the number it stands for.
    back = {name: metric_value(value) for name, value in MessageToDict(struct).items()}
    expected = {"loss": math.nan, "up": math.inf, "down": -math.inf, "acc": 1.0, "f": 0.5}
    assert repr(sorted(back.items())) == repr(sorted(expected.items()))  # repr: NaN != NaN


def test_log_metric_refuses_what_is_not_a_number() -> None:
    with pytest.raises(InputError, match=r"^log_metric\(\): loss must be a number, but got 'low'$"):
        log_metric(_Metrics(), "loss", "low")  # type: ignore[arg-type]


def test_several_objectives_come_back_in_term_order() -> None:
    objective = Objective(
        type="maximize",
        metric="accuracy",
        strategies={"accuracy": "max", "latency": "min"},
        additional_objectives=(ObjectiveTerm(metric="latency", direction="minimize"),),
    )
    observation = observe(
        parse_text("latency=12 accuracy=0.7\nlatency=9 accuracy=0.6", ["accuracy", "latency"]), objective
    )
    assert observation.values == (0.7, 9.0)


def test_trainjob_status_falls_back_to_the_trainers_output() -> None:
    """A TrainJobStatus trial that published nothing (or ran locally) is read from its output."""
    from hpo_kfp.collectors.collect import metric_logs
    from hpo_kfp.spec import parse_experiment
    from tests.conftest import base_spec

    document = base_spec()
    document["spec"]["metricsCollectorSpec"] = {"collector": {"kind": "TrainJobStatus"}}
    experiment = parse_experiment(document)
    published = '{"loss": 0.2, "timestamp": "2026-12-01T10:00:00Z"}\n'
    assert [(m.name, m.value) for m in metric_logs(experiment, "loss=0.7\n", published)] == [("loss", 0.2)]
    assert [(m.name, m.value) for m in metric_logs(experiment, "loss=0.7\n", "")] == [("loss", 0.7)]
