"""TensorFlow event files: the record framing and its checksums, scalar summaries of TF1/PyTorch
(``simple_value``) and TF2 (a scalar tensor), Katib's folder rule, and the TensorFlowEvent
collector in a local trial. The files are written here in the real record format."""

from __future__ import annotations

import struct
import sys
from pathlib import Path
from typing import Any

import pytest

from hpo_kfp.collectors import get_collector
from hpo_kfp.collectors.collect import collect_trial
from hpo_kfp.collectors.tfevents import EventReader, crc32c, masked_crc32c, read_scalars, scalar_logs
from hpo_kfp.errors import EventFileError, SpecError
from hpo_kfp.history import TrialRecord
from hpo_kfp.runners.local import local_command, run_local
from hpo_kfp.spec import parse_experiment
from tests.conftest import base_spec, with_field

# The writer, as source: trial processes in these tests write their event files with it too.
_WRITER = """
import struct
from hpo_kfp.collectors.tfevents import masked_crc32c


def _varint(n):
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def _field(number, wire, payload):
    key = _varint(number << 3 | wire)
    return key + (_varint(len(payload)) + payload if wire == 2 else payload)


def value_message(tag, value, kind="simple"):
    body = _field(1, 2, tag.encode())
    if kind == "simple":
        body += _field(2, 5, struct.pack("<f", value))
    elif kind == "float-tensor":  # TF2: DT_FLOAT, packed float_val
        body += _field(8, 2, _field(1, 0, _varint(1)) + _field(5, 2, struct.pack("<f", value)))
    else:  # a DT_DOUBLE tensor in tensor_content
        body += _field(8, 2, _field(1, 0, _varint(2)) + _field(4, 2, struct.pack("<d", value)))
    return body


def event(step, wall_time, values):
    summary = b"".join(_field(1, 2, value_message(*v)) for v in values)
    return _field(1, 1, struct.pack("<d", wall_time)) + _field(2, 0, _varint(step)) + _field(5, 2, summary)


def record(data):
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data))
"""
_names: dict[str, Any] = {}
exec(_WRITER, _names)  # our own source, shared with the trial script below
record, event = _names["record"], _names["event"]


def _write(path: Path, *events: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    file_version = record(
        _names["_field"](1, 1, struct.pack("<d", 1.0)) + _names["_field"](3, 2, b"brain.Event:2")
    )
    path.write_bytes(file_version + b"".join(record(e) for e in events))
    return path


def test_crc32c_matches_the_standard_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert masked_crc32c(b"") == ((0 >> 15 | 0 << 17) + 0xA282EAD8) & 0xFFFFFFFF


@pytest.mark.parametrize("kind", ["simple", "float-tensor", "double-tensor"])
def test_scalars_of_every_encoding_are_read_with_step_and_time(tmp_path: Path, kind: str) -> None:
    path = _write(
        tmp_path / "events.out.tfevents.1.host",
        event(1, 1700000000.5, [("loss", 0.75, kind), ("accuracy", 0.5, kind)]),
        event(2, 1700000001.5, [("loss", 0.25, kind)]),
    )
    scalars = EventReader(path).new_scalars()
    assert [(s.tag, s.value, s.step, s.wall_time) for s in scalars] == [
        ("loss", 0.75, 1, 1700000000.5),
        ("accuracy", 0.5, 1, 1700000000.5),
        ("loss", 0.25, 2, 1700000001.5),
    ]


def test_a_corrupt_checksum_is_refused_with_the_offset(tmp_path: Path) -> None:
    path = _write(tmp_path / "events.out.tfevents.1.host", event(1, 1.0, [("loss", 0.5, "simple")]))
    data = bytearray(path.read_bytes())
    data[-6] ^= 0xFF  # a byte of the last record's data
    path.write_bytes(bytes(data))
    with pytest.raises(EventFileError, match=r"record at offset \d+: the data's checksum does not match"):
        EventReader(path).new_scalars()


def test_a_record_still_being_written_waits_for_the_next_read(tmp_path: Path) -> None:
    path = _write(tmp_path / "events.out.tfevents.1.host", event(1, 1.0, [("loss", 0.5, "simple")]))
    reader = EventReader(path)
    assert [s.value for s in reader.new_scalars()] == [0.5]
    second = record(event(2, 2.0, [("loss", 0.25, "simple")]))
    with path.open("ab") as stream:
        stream.write(second[:10])
    assert reader.new_scalars() == []
    with path.open("ab") as stream:
        stream.write(second[10:])
    assert [s.value for s in reader.new_scalars()] == [0.25]


def test_a_name_with_a_folder_takes_the_tag_from_that_folder_only(tmp_path: Path) -> None:
    """Katib's rule for TF2's train/ and validation/ writers."""
    _write(tmp_path / "train" / "events.out.tfevents.1", event(1, 1.0, [("accuracy", 0.9, "float-tensor")]))
    _write(
        tmp_path / "validation" / "events.out.tfevents.2", event(1, 1.0, [("accuracy", 0.7, "float-tensor")])
    )
    found = {
        (log.name, round(log.value, 3))
        for path, scalars in read_scalars(tmp_path).items()
        for log in scalar_logs(tmp_path, path, scalars, ["validation/accuracy", "accuracy"])
    }
    assert found == {("validation/accuracy", 0.7), ("accuracy", 0.9), ("accuracy", 0.7)}


def _event_spec(**fields: Any) -> dict[str, Any]:
    document = base_spec()
    with_field(
        document,
        "spec.metricsCollectorSpec",
        {
            "collector": {"kind": "TensorFlowEvent"},
            "source": {"fileSystemPath": {"path": "/tmp/tb", "kind": "Directory"}},
        },
    )
    for path, value in fields.items():
        with_field(document, path, value)
    return document


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "spec.metricsCollectorSpec.source.fileSystemPath.kind",
            "File",
            r"fileSystemPath.kind: must be one of Directory",
        ),
        (
            "spec.metricsCollectorSpec.source.fileSystemPath.path",
            ...,
            r"fileSystemPath.path: must name the event",
        ),
        (
            "spec.metricsCollectorSpec.source.fileSystemPath.path",
            "tb",
            r"fileSystemPath.path: must be an absolute",
        ),
        (
            "spec.metricsCollectorSpec.source.fileSystemPath.format",
            "JSON",
            r"fileSystemPath.format: must be omitted",
        ),
    ],
    ids=["file-kind", "no-path", "relative", "format"],
)
def test_the_collector_source_must_be_a_directory(path: str, value: Any, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_experiment(_event_spec(**{path: value}))


def test_on_a_cluster_the_collector_is_refused_naming_the_field() -> None:
    collector = parse_experiment(_event_spec()).metrics_collector
    assert (collector.kind, collector.path) == ("TensorFlowEvent", "/tmp/tb")
    with pytest.raises(
        SpecError, match=r"^spec.metricsCollectorSpec.collector.kind: must not be TensorFlowEvent"
    ):
        get_collector(collector.kind).check_on_cluster(collector)


_TRIAL_SCRIPT = (
    _WRITER
    + """
import os, sys
from pathlib import Path

folder = Path(sys.argv[1])
folder.mkdir(parents=True, exist_ok=True)
data = b"".join(record(event(step, 1700000000.0 + step, [("loss", loss, "float-tensor")]))
                for step, loss in ((1, 0.5), (2, 0.125), (3, 0.25)))
if os.environ.get("CORRUPT"):
    data = data[:-3] + bytes([data[-3] ^ 0xFF]) + data[-2:]
(folder / "events.out.tfevents.1.host").write_bytes(data)
"""
)


@pytest.mark.parametrize(
    ("corrupt", "status"), [("", "Succeeded"), ("1", "MetricsUnavailable")], ids=["ok", "corrupt"]
)
def test_a_local_trial_reads_its_own_event_directory_with_the_strategy(
    tmp_path: Path, corrupt: str, status: str
) -> None:
    (tmp_path / "trial.py").write_text(_TRIAL_SCRIPT)
    container = {"name": "training-container", "command": ["python3", "trial.py", "/tmp/tb/run"]}
    container["env"] = [{"name": "CORRUPT", "value": corrupt}]
    document = _event_spec(
        **{
            "spec.trialTemplate.trialSpec.spec.template.spec.containers": [container],
            "spec.trialTemplate.trialParameters": [],
            "spec.objective.additionalMetricNames": [],
        }
    )
    experiment = parse_experiment(document)
    trial = TrialRecord(name="demo-0001", number=1, parameters={"lr": 0.02, "layers": 3, "optimizer": "sgd"})
    metrics = tmp_path / "out" / "metrics"
    metrics.parent.mkdir()
    command = local_command(experiment, trial, metrics)
    assert command.event_dir == metrics.with_name("metrics.tfevents")
    assert command.argv == [sys.executable, "trial.py", f"{command.event_dir}/run"]
    run = run_local(command, name=trial.name, cwd=tmp_path, log_path=tmp_path / "log.txt")
    assert run.succeeded, (tmp_path / "log.txt").read_text()
    recorded = collect_trial(experiment, trial, run, "", metrics.read_text())
    assert recorded.status == status, recorded.reason
    if corrupt:
        assert "the data's checksum does not match" in recorded.reason
    else:
        assert recorded.metrics == {"loss": 0.125}  # minimize: Katib's default strategy is min
        assert [v for _, v in recorded.series["loss"]] == [0.5, 0.125, 0.25]
