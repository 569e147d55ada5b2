"""One contract, every collector in the registry (:data:`hpo_kfp.collectors.COLLECTORS`).

Each collector gets a sample of what a trial of its kind leaves — a log, a metrics output —
and the same cases run over all: the values read are the ones reported, in order; nothing
reported is nothing read (and a MetricsUnavailable trial); line output read in pieces, as
early stopping reads it, gives what the whole gives; a collector the cluster cannot read is
refused naming the field; a metrics file is read from the metrics output.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hpo_kfp.collectors import COLLECTORS, EXECUTOR_OUTPUT, MetricsCollector, collector_for
from hpo_kfp.collectors.collect import collect_trial
from hpo_kfp.collectors.kinds import executor_output
from hpo_kfp.errors import SpecError
from hpo_kfp.history import TrialRecord, TrialRun
from hpo_kfp.spec import Experiment, parse_experiment
from tests.conftest import base_spec

_TRIAL = TrialRecord(name="demo-0001", number=1, parameters={"lr": 0.02, "layers": 4, "optimizer": "adam"})
_RUN = TrialRun(
    name=_TRIAL.name,
    exit_code=0,
    started="2026-12-01T00:00:00+00:00",
    finished="2026-12-01T00:01:00+00:00",
    reason="",
)


@dataclass(frozen=True)
class Sample:
    """A trial's output for one kind, and the (name, value) pairs it reports, in order."""

    spec: dict[str, Any] | None
    log: str
    metrics: str
    reported: list[tuple[str, float]]


def _lines(*records: dict[str, Any]) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


_SAMPLES: dict[str, Sample] = {
    "StdOut": Sample(
        None,
        "starting\nepoch=1 loss=0.9 accuracy=0.5\nepoch=2 loss=0.4 accuracy=0.7\n",
        "",
        [("loss", 0.9), ("accuracy", 0.5), ("loss", 0.4), ("accuracy", 0.7)],
    ),
    "File": Sample(
        {"collector": {"kind": "File"}, "source": {"fileSystemPath": {"path": "/out/m.txt", "kind": "File"}}},
        "noise loss=99\n",
        "loss=0.9 accuracy=0.5\nloss=0.4 accuracy=0.7\n",
        [("loss", 0.9), ("accuracy", 0.5), ("loss", 0.4), ("accuracy", 0.7)],
    ),
    "Push": Sample(
        {"collector": {"kind": "Push"}},
        "loss=99\n",
        _lines({"loss": 0.9, "accuracy": 0.5}, {"loss": 0.4, "accuracy": 0.7}),
        [("loss", 0.9), ("accuracy", 0.5), ("loss", 0.4), ("accuracy", 0.7)],
    ),
    "TensorFlowEvent": Sample(
        {
            "collector": {"kind": "TensorFlowEvent"},
            "source": {"fileSystemPath": {"path": "/tb", "kind": "Directory"}},
        },
        "loss=99\n",
        _lines({"loss": 0.9, "accuracy": 0.5}, {"loss": 0.4, "accuracy": 0.7}),
        [("loss", 0.9), ("accuracy", 0.5), ("loss", 0.4), ("accuracy", 0.7)],
    ),
    "TrainJobStatus": Sample(
        {"collector": {"kind": "TrainJobStatus"}},
        "loss=99\n",
        _lines({"loss": 0.9, "accuracy": 0.5}, {"loss": 0.4, "accuracy": 0.7}),
        [("loss", 0.9), ("accuracy", 0.5), ("loss", 0.4), ("accuracy", 0.7)],
    ),
    "ExecutorOutput": Sample(
        None,
        "loss=99\n",
        executor_output({"accuracy": 0.7}, 0.4),
        [("accuracy", 0.7), ("loss", 0.4)],
    ),
}


def _experiment(sample: Sample) -> Experiment:
    document = base_spec()
    if sample.spec is not None:
        document["spec"]["metricsCollectorSpec"] = sample.spec
    return parse_experiment(document)


@pytest.fixture(params=sorted(COLLECTORS))
def kind(request: pytest.FixtureRequest) -> str:
    if request.param not in _SAMPLES:
        pytest.fail(f"collector {request.param!r} has no sample in the contract suite")
    return str(request.param)


def _collector(kind: str, experiment: Experiment) -> MetricsCollector:
    collector = COLLECTORS[kind]
    if collector is not EXECUTOR_OUTPUT:  # native trials' collector, whatever the spec names
        assert collector_for(experiment) is collector
    return collector


def test_every_collector_keeps_the_contract(kind: str) -> None:
    collector = COLLECTORS[kind]
    assert isinstance(collector, MetricsCollector) and collector.kind == kind


def test_the_values_read_are_the_ones_reported(kind: str) -> None:
    sample = _SAMPLES[kind]
    experiment = _experiment(sample)
    logs = _collector(kind, experiment).metric_logs(experiment, sample.log, sample.metrics)
    assert [(log.name, log.value) for log in logs] == sample.reported
    record = collect_trial(experiment, _TRIAL, _RUN, sample.log, sample.metrics, collector=COLLECTORS[kind])
    assert (record.status, record.values) == ("Succeeded", (0.4,))


def test_nothing_reported_is_nothing_read(kind: str) -> None:
    experiment = _experiment(_SAMPLES[kind])
    collector = _collector(kind, experiment)
    assert collector.metric_logs(experiment, "", "") == []
    record = collect_trial(experiment, _TRIAL, _RUN, "", "", collector=collector)
    assert record.status == "MetricsUnavailable" and "loss" in record.reason


def test_lines_read_in_pieces_give_what_the_whole_gives(kind: str) -> None:
    """Early stopping reads a running trial's output a few complete lines at a time."""
    if kind == "ExecutorOutput":
        pytest.skip("one JSON document, written once the component returns: nothing to read as it runs")
    sample = _SAMPLES[kind]
    experiment = _experiment(sample)
    collector = _collector(kind, experiment)
    pieces = []
    for log_line, metrics_line in itertools.zip_longest(
        sample.log.splitlines(keepends=True), sample.metrics.splitlines(keepends=True), fillvalue=""
    ):
        pieces += collector.metric_logs(experiment, log_line, metrics_line)
    whole = collector.metric_logs(experiment, sample.log, sample.metrics)
    assert [(p.name, p.value) for p in pieces] == [(w.name, w.value) for w in whole]


def test_a_collector_the_cluster_cannot_read_is_refused_naming_the_field(kind: str) -> None:
    sample = _SAMPLES[kind]
    experiment = _experiment(sample)
    collector = _collector(kind, experiment)
    if kind == "TensorFlowEvent":
        with pytest.raises(SpecError, match=r"^spec\.metricsCollectorSpec\.collector\.kind: "):
            collector.check_on_cluster(experiment.metrics_collector)
    else:
        collector.check_on_cluster(experiment.metrics_collector)


def test_a_metrics_file_is_read_from_the_metrics_output(kind: str, tmp_path: Path) -> None:
    sample = _SAMPLES[kind]
    experiment = _experiment(sample)
    collector = _collector(kind, experiment)
    path = collector.metrics_file(experiment.metrics_collector)
    if path is not None:
        assert path.startswith("/") and not collector.reads_log
        assert collector.metric_logs(experiment, sample.metrics, "") != collector.metric_logs(
            experiment, "", sample.metrics
        )
    local = collector.local_metrics(experiment.metrics_collector, tmp_path / "metrics")
    if local is not None:
        assert local.placeholder == experiment.metrics_collector.path
        assert local.replacement.parent == tmp_path
    assert collector.problem(sample.metrics) is None


def test_a_corrupt_event_file_is_a_problem_with_its_reason() -> None:
    collector = COLLECTORS["TensorFlowEvent"]
    text = _lines({"loss": 0.9}, {"hpo-kfp.tfevents.error": "events.out: checksum mismatch at byte 40"})
    assert collector.problem(text) == "events.out: checksum mismatch at byte 40"
