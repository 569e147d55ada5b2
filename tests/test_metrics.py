"""Metrics are read from output as Katib's collectors read them, and reduced by strategy."""

from __future__ import annotations

import json

import pytest

from hpo_kfp.errors import MetricsUnavailable
from hpo_kfp.metrics import observe, parse_json_lines, parse_text
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


def test_only_non_finite_objective_is_metrics_unavailable() -> None:
    text = json.dumps({"loss": "NaN"})
    with pytest.raises(MetricsUnavailable, match=r"reported only non-finite values \(1 NaN or infinite\)"):
        observe(parse_json_lines(text, ["loss"]), _objective("min"))


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
    from hpo_kfp.collect import metric_logs
    from hpo_kfp.spec import parse_experiment
    from tests.conftest import base_spec

    document = base_spec()
    document["spec"]["metricsCollectorSpec"] = {"collector": {"kind": "TrainJobStatus"}}
    experiment = parse_experiment(document)
    published = '{"loss": 0.2, "timestamp": "2026-12-01T10:00:00Z"}\n'
    assert [(m.name, m.value) for m in metric_logs(experiment, "loss=0.7\n", published)] == [("loss", 0.2)]
    assert [(m.name, m.value) for m in metric_logs(experiment, "loss=0.7\n", "")] == [("loss", 0.7)]
