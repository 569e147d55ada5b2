"""A local trial's output, copied to its log file with a cap.

A trial may print without end (a debug flag left on, a loop printing every batch): written as
it is, 300 MB a trial filled the run folder and then the memory of every step that reads the
log. The first :data:`MAX_LOG_BYTES` of the output go to the log as printed; past them, the
log keeps only the lines that name one of the experiment's metrics (what the StdOut collector
and early stopping read, in their order) and, at its end, the last :data:`TAIL_BYTES` of the
rest (where a failure's traceback is), after a line saying how much was left out.
"""

from __future__ import annotations

import collections
import os
import threading
from typing import BinaryIO

__all__ = ["MAX_LOG_BYTES", "TAIL_BYTES", "OutputCopier"]

MAX_LOG_BYTES = 32 * 2**20
"""Output kept as printed, from the start of a trial."""
TAIL_BYTES = 2**20
"""Output kept from the end of a trial, past :data:`MAX_LOG_BYTES`."""
_CHUNK = 2**16


class OutputCopier(threading.Thread):
    """Copies what a trial prints (the read end of its stdout pipe) to its log file."""

    def __init__(self, source: int, log: BinaryIO, metric_names: tuple[str, ...]) -> None:
        super().__init__(name="trial-output", daemon=True)
        self._source = source
        self._log = log
        self._keep = tuple(name.encode() for name in metric_names if name)
        self._written = 0
        self._partial = b""
        self._tail: collections.deque[bytes] = collections.deque()
        self._tail_bytes = 0
        self._left_out = 0
        self._line_open = False

    def run(self) -> None:
        try:
            while chunk := os.read(self._source, _CHUNK):
                self._copy(chunk)
        except OSError:
            pass  # the pipe went away: what was read is kept
        finally:
            os.close(self._source)
            self._finish()

    def _copy(self, chunk: bytes) -> None:
        room = MAX_LOG_BYTES - self._written
        if room > 0:
            head = chunk[:room]
            self._write(head)
            chunk = chunk[room:]
            if not chunk:
                return
            if not head.endswith(b"\n"):  # the line the cap cut stays whole
                cut = chunk.find(b"\n")
                end = len(chunk) if cut < 0 else cut + 1
                self._write(chunk[:end])
                chunk = chunk[end:]
            self._write_line(
                f"[hpo-kfp: output past {MAX_LOG_BYTES // 2**20} MiB is left out but for the lines "
                "naming a metric; its last lines follow at the end]\n".encode()
            )
        data = self._partial + chunk
        end = data.rfind(b"\n") + 1
        if end and not any(name in data[:end] for name in self._keep):
            self._to_tail(data[:end])  # no metric in it: no need to look at its lines
        elif end:
            for line in data[:end].splitlines(keepends=True):
                self._past_cap(line)
        self._partial = data[end:]
        if len(self._partial) > TAIL_BYTES:  # a line without end: kept no longer than the tail
            self._to_tail(self._partial)
            self._partial = b""

    def _past_cap(self, line: bytes) -> None:
        if any(name in line for name in self._keep):
            self._write_line(line)
        else:
            self._to_tail(line)

    def _to_tail(self, piece: bytes) -> None:
        """Keeps ``piece`` among the last :data:`TAIL_BYTES` of output (whole lines, and at
        least the newest piece, cut to its last ``TAIL_BYTES``)."""
        if len(piece) > TAIL_BYTES:
            self._left_out += len(piece) - TAIL_BYTES
            piece = piece[-TAIL_BYTES:]
        self._tail.append(piece)
        self._tail_bytes += len(piece)
        while self._tail_bytes > TAIL_BYTES and len(self._tail) > 1:
            dropped = self._tail.popleft()
            self._tail_bytes -= len(dropped)
            self._left_out += len(dropped)

    def _finish(self) -> None:
        if self._partial:
            self._past_cap(self._partial)
        if self._tail:
            if self._left_out:
                self._write_line(f"[hpo-kfp: {self._left_out} bytes of output left out]\n".encode())
            for piece in self._tail:
                self._write(piece)

    def _write(self, data: bytes) -> None:
        self._log.write(data)
        self._log.flush()
        self._written += len(data)
        self._line_open = not data.endswith(b"\n")

    def _write_line(self, line: bytes) -> None:
        """Writes a whole line past the cap: on a line of its own, whatever was cut before it."""
        self._write(b"\n" + line if self._line_open else line)
