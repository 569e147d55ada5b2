"""Scalar summaries from TensorFlow event files, without TensorFlow (Katib's TensorFlowEvent collector).

An event file is a TFRecord file: each record is ``uint64 length``, ``uint32 masked
crc32c(length)``, ``length`` bytes of data, ``uint32 masked crc32c(data)`` (little-endian).
Every checksum is verified; a mismatch is an :class:`EventFileError`. Each record's data is an
``Event`` protobuf message, read here field by field (the protobuf wire format, with the
field numbers of tensorflow/core/util/event.proto and summary.proto):

- ``Event``: ``wall_time`` = 1 (double), ``step`` = 2 (int64), ``summary`` = 5 (Summary);
- ``Summary``: ``value`` = 1 (repeated Value);
- ``Value``: ``tag`` = 1 (string), ``simple_value`` = 2 (float: TF1, PyTorch's SummaryWriter),
  ``tensor`` = 8 (TensorProto: TF2's ``tf.summary.scalar``);
- ``TensorProto``: ``dtype`` = 1, ``tensor_content`` = 4, ``float_val`` = 5, ``double_val`` = 6
  (a scalar is one value of DT_FLOAT = 1 or DT_DOUBLE = 2).

Metric names are tags, with Katib's rule for TF2's per-writer folders: a name ``train/accuracy``
takes the tag ``accuracy`` from the event files in a folder ending in ``train``; a name
without ``/`` takes its tag from any event file under the directory.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hpo_kfp.errors import EventFileError
from hpo_kfp.metrics import MetricLog

__all__ = [
    "ERROR_KEY",
    "EventExporter",
    "EventFileError",
    "EventReader",
    "Scalar",
    "crc32c",
    "event_files",
    "masked_crc32c",
    "read_scalars",
    "scalar_logs",
]

_MASK_DELTA = 0xA282EAD8
_DT_FLOAT, _DT_DOUBLE = 1, 2


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum TFRecord uses."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked checksum: the CRC rotated right by 15 bits plus a constant."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


@dataclass(frozen=True)
class Scalar:
    """One scalar summary value."""

    tag: str
    value: float
    step: int
    wall_time: float


class EventReader:
    """Reads the records appended to one event file since the last call.

    Only complete records are read: a record still being written waits for the next call.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def new_scalars(self) -> list[Scalar]:
        """The scalars of the records completed since the last call.

        Raises:
            EventFileError: A checksum does not match or a message is malformed.
        """
        try:
            with self.path.open("rb") as stream:
                stream.seek(self._offset)
                data = stream.read()
        except FileNotFoundError:
            return []
        scalars: list[Scalar] = []
        position = 0
        while len(data) - position >= 12:
            header = data[position : position + 8]
            (length,) = struct.unpack("<Q", header)
            (length_crc,) = struct.unpack("<I", data[position + 8 : position + 12])
            where = f"{self.path}: record at offset {self._offset + position}"
            if masked_crc32c(header) != length_crc:
                raise EventFileError(f"{where}: the length's checksum does not match (a corrupt event file)")
            end = position + 12 + length + 4
            if len(data) < end:
                break
            body = data[position + 12 : position + 12 + length]
            (body_crc,) = struct.unpack("<I", data[end - 4 : end])
            if masked_crc32c(body) != body_crc:
                raise EventFileError(f"{where}: the data's checksum does not match (a corrupt event file)")
            try:
                scalars.extend(_event_scalars(body))
            except (ValueError, IndexError, struct.error, UnicodeDecodeError) as error:
                raise EventFileError(f"{where}: not an Event message ({error})") from error
            position = end
        self._offset += position
        return scalars


def event_files(directory: Path) -> list[Path]:
    """The event files under ``directory`` (``*tfevents*``, in subfolders too), in name order."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*") if "tfevents" in p.name and p.is_file())


def read_scalars(directory: Path) -> dict[Path, list[Scalar]]:
    """Every scalar in every event file under ``directory``, by file.

    Raises:
        EventFileError: A file is corrupt.
    """
    return {path: EventReader(path).new_scalars() for path in event_files(directory)}


def scalar_logs(
    directory: Path, path: Path, scalars: Sequence[Scalar], names: Sequence[str]
) -> list[MetricLog]:
    """The metric values among ``scalars`` of the event file ``path`` (see the module docstring)."""
    folder = path.parent.relative_to(directory).as_posix() if path.is_relative_to(directory) else ""
    logs = []
    for scalar in scalars:
        for name in names:
            prefix, _, tag = name.rpartition("/")
            if tag != scalar.tag:
                continue
            if prefix and not ("/" + folder).endswith("/" + prefix):
                continue
            stamp = datetime.fromtimestamp(scalar.wall_time, tz=UTC).isoformat()
            logs.append(MetricLog(name, scalar.value, stamp))
    return logs


def _fields(data: bytes) -> Iterator[tuple[int, int, bytes | int]]:
    """Yields ``(field number, wire type, value)`` of a protobuf message."""
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, position = _varint(data, position)
            yield number, wire, value
        elif wire == 1:
            yield number, wire, data[position : position + 8]
            position += 8
        elif wire == 2:
            length, position = _varint(data, position)
            if position + length > len(data):
                raise ValueError("a field runs past the message's end")
            yield number, wire, data[position : position + length]
            position += length
        elif wire == 5:
            yield number, wire, data[position : position + 4]
            position += 4
        else:
            raise ValueError(f"wire type {wire} of field {number} is not used by these messages")
        if position > len(data):
            raise ValueError("a field runs past the message's end")


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
        if shift > 63:
            raise ValueError("a varint longer than 10 bytes")


def _event_scalars(data: bytes) -> list[Scalar]:
    wall_time, step, summaries = 0.0, 0, []
    for number, wire, value in _fields(data):
        if number == 1 and wire == 1:
            assert isinstance(value, bytes)
            (wall_time,) = struct.unpack("<d", value)
        elif number == 2 and wire == 0:
            assert isinstance(value, int)
            step = value - (1 << 64) if value >= 1 << 63 else value
        elif number == 5 and wire == 2:
            summaries.append(value)
    scalars = []
    for summary in summaries:
        assert isinstance(summary, bytes)
        for number, wire, value in _fields(summary):
            if number == 1 and wire == 2:
                assert isinstance(value, bytes)
                found = _value(value)
                if found is not None:
                    scalars.append(Scalar(found[0], found[1], step, wall_time))
    return scalars


def _value(data: bytes) -> tuple[str, float] | None:
    tag, number_value = "", None
    for number, wire, value in _fields(data):
        if number == 1 and wire == 2:
            assert isinstance(value, bytes)
            tag = value.decode("utf-8")
        elif number == 2 and wire == 5:
            assert isinstance(value, bytes)
            (number_value,) = struct.unpack("<f", value)
        elif number == 8 and wire == 2:
            assert isinstance(value, bytes)
            number_value = _tensor_scalar(value)
    return None if number_value is None else (tag, float(number_value))


def _tensor_scalar(data: bytes) -> float | None:
    """The one value of a float or double tensor; None for anything else (text, images...)."""
    dtype, content = 0, b""
    values: list[float] = []
    for number, wire, value in _fields(data):
        if number == 1 and wire == 0:
            assert isinstance(value, int)
            dtype = value
        elif number == 4 and wire == 2:
            assert isinstance(value, bytes)
            content = value
        elif number in (5, 6):
            assert isinstance(value, bytes)
            size = 4 if number == 5 else 8  # packed (wire type 2) or one value (5 or 1)
            values += struct.unpack(f"<{len(value) // size}{'f' if size == 4 else 'd'}", value)
    if dtype not in (_DT_FLOAT, _DT_DOUBLE):
        return None
    if not values and content:
        size = 4 if dtype == _DT_FLOAT else 8
        values = list(struct.unpack(f"<{len(content) // size}{'f' if size == 4 else 'd'}", content))
    return float(values[0]) if len(values) == 1 else None


ERROR_KEY = "hpo-kfp.tfevents.error"
"""The key of the JSON line an :class:`EventExporter` writes when an event file is corrupt."""


class EventExporter:
    """Copies the metric values of a trial's event files, as they appear, into its metrics file.

    The metrics file then holds JSON lines (one ``{name: value, "timestamp": ...}`` per value)
    that the collect step and early stopping read as they read a Push collector's. A corrupt
    event file ends the export with one ``{"hpo-kfp.tfevents.error": reason}`` line.
    """

    def __init__(self, directory: Path, names: Sequence[str], metrics_file: Path) -> None:
        self.directory = directory
        self.names = tuple(names)
        self.metrics_file = metrics_file
        self._readers: dict[Path, EventReader] = {}
        self.error: str | None = None

    def sync(self) -> None:
        """Appends the values of the records written since the last call."""
        if self.error is not None:
            return
        lines = []
        try:
            for path in event_files(self.directory):
                reader = self._readers.setdefault(path, EventReader(path))
                for log in scalar_logs(self.directory, path, reader.new_scalars(), self.names):
                    lines.append(json.dumps({log.name: log.value, "timestamp": log.timestamp}))
        except EventFileError as error:
            self.error = str(error)
            lines.append(json.dumps({ERROR_KEY: self.error}))
        if lines:
            with self.metrics_file.open("a", encoding="utf-8") as stream:
                stream.write("".join(line + "\n" for line in lines))
