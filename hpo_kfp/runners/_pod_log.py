"""Following a container's log through ``pods/log`` while it runs, reading only what is new.

The kubelet serves only the newest file of the current container instance (rotated at 10 MiB
by default), the last terminated instance with ``previous=true``, and nothing once the pod is
deleted (``ttlSecondsAfterFinished: 0``, ``cleanPodPolicy: All``). So the log is read while
the trial runs and kept here, each read asking only for lines since the last one seen:

* lines are read with ``timestamps=true`` and resumed with ``sinceTime``. The API server hands
  ``sinceTime`` to the kubelet with whole seconds, so a read repeats the lines of the last
  second; they are recognised by their nanosecond time stamps (and, for lines of the same
  stamp, by how many were taken) and dropped;
* each read is capped with ``limitBytes``; a capped read is followed by another at once, with
  twice the cap when it brought nothing new (more than a read's worth written in one second);
* an instance is known by its ``containerID`` (the restart count where a runtime reports
  none); when it changed since the last read, the rest of the followed instance is read with
  ``previous=true`` before the new one — only one earlier instance is kept by the kubelet, so
  a container that restarted twice between two reads loses the middle one (a warning says so);
* a line still being written (no newline yet) is left for the next read, unless its instance
  has ended.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LogFollower", "LogReader"]

LogReader = Callable[[str, Mapping[str, str]], bytes | None]
"""Reads ``pods/{name}/log`` with the given query; None when there is no log to read (the
container waits to start, or the pod is gone)."""

_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")
_MAX_READS = 64  # capped reads in a row before waiting for the next poll


@dataclass
class _Stream:
    """What was read of one pod's container."""

    name: str
    instance: str | None = None
    since: tuple[int, int] | None = None
    """Time stamp of the last line taken (seconds, nanoseconds)."""
    taken_at_since: int = 0
    """How many lines stamped exactly ``since`` were taken."""
    lines: list[str] = field(default_factory=list)

    def begin(self, instance: str) -> None:
        self.instance, self.since, self.taken_at_since = instance, None, 0


def _stamp_key(stamp: str) -> tuple[int, int] | None:
    match = _STAMP.match(stamp)
    if match is None:
        return None
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    seconds = int(datetime.datetime.fromisoformat(match.group(1) + zone).timestamp())
    return seconds, int((match.group(2) or "0").ljust(9, "0"))


def _since_time(key: tuple[int, int]) -> str:
    return datetime.datetime.fromtimestamp(key[0], tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LogFollower:
    """The log of one container of a trial's primary pod, read incrementally."""

    def __init__(self, read: LogReader, container: str, *, chunk_bytes: int = 1 << 20) -> None:
        """
        Args:
            read: How ``pods/log`` is read.
            container: The container's name in the pod.
            chunk_bytes: ``limitBytes`` of one read.
        """
        self._read = read
        self._container = container
        self._chunk = chunk_bytes
        self._streams: dict[str, _Stream] = {}
        self._primary: str | None = None
        self.warnings: list[str] = []
        """What may be missing from the log (instances restarted between two reads)."""

    def poll(self, pod: Mapping[str, Any] | None) -> list[str]:
        """Reads what ``pod``'s container wrote since the last poll; returns the new lines.

        ``pod`` is the primary pod as last listed (None: none yet, or gone; what was read
        stays). A different pod than before (a Job's retry) is followed from its start.
        """
        if pod is None:
            return []
        metadata = pod.get("metadata") or {}
        name = str(metadata.get("name") or "")
        stream = self._streams.setdefault(str(metadata.get("uid") or name), _Stream(name))
        self._primary = str(metadata.get("uid") or name)
        # No status for the container yet: read anyway (the kubelet answers 400 if it waits).
        entry = _container_status(pod, self._container) or {"state": {"running": {}}}
        restarts = int(entry.get("restartCount") or 0)
        state = entry.get("state") or {}
        last = (entry.get("lastState") or {}).get("terminated")
        last_id = (str(last.get("containerID") or f"#{restarts - 1}")) if last else None
        started = "running" in state or "terminated" in state
        # Without a running or terminated instance the kubelet serves the last terminated one.
        current = str(entry.get("containerID") or f"#{restarts}") if started else last_id
        if current is None:
            return []  # never started: nothing to read yet
        fresh: list[str] = []
        if stream.instance is None:
            if last_id is not None and last_id != current:
                stream.begin(last_id)  # restarted before the first read: its previous instance first
                fresh += self._take(stream, previous=True, ended=True)
            stream.begin(current)
        elif stream.instance == f"#{restarts}" and current != last_id:
            # Read before the container had a status: the same instance, now with its ID.
            stream.instance = current
        elif stream.instance != current:
            if stream.instance == last_id:
                fresh += self._take(stream, previous=True, ended=True)
            else:
                self.warnings.append(
                    f"container {self._container} of pod {name} restarted more than once between two "
                    "reads of its log: the log of the instances between is lost"
                )
            stream.begin(current)
        fresh += self._take(
            stream, previous=current == last_id, ended=current == last_id or "terminated" in state
        )
        return fresh

    def text(self) -> str:
        """Every line read of the primary pod's container (the pod last polled)."""
        stream = self._streams.get(self._primary or "")
        return "".join(f"{line}\n" for line in stream.lines) if stream else ""

    def _take(self, stream: _Stream, *, previous: bool, ended: bool) -> list[str]:
        """Reads the instance from the stream's position on; ``ended``: no more is coming,
        so a last line without a newline is complete."""
        fresh: list[str] = []
        chunk = self._chunk
        for _ in range(_MAX_READS):
            query = {"container": self._container, "timestamps": "true", "limitBytes": str(chunk)}
            if stream.since is not None:
                query["sinceTime"] = _since_time(stream.since)
            if previous:
                query["previous"] = "true"
            data = self._read(stream.name, query)
            if data is None:
                break
            capped = len(data) >= chunk
            text = data.decode("utf-8", errors="replace")
            lines = text.split("\n")
            tail = lines.pop()  # "" after a final newline, else a line not finished (or cut)
            if tail and ((ended and not capped) or (capped and not lines)):
                lines.append(tail)  # the instance's last words, or one line longer than a read
            before = len(fresh)
            skip = stream.taken_at_since
            for line in lines:
                stamp, _, content = line.partition(" ")
                key = _stamp_key(stamp)
                if key is None:  # not stamped: take it as it is
                    fresh.append(line)
                    continue
                if stream.since is not None and key < stream.since:
                    continue
                if key == stream.since and skip > 0:
                    skip -= 1
                    continue
                if key == stream.since:
                    stream.taken_at_since += 1
                else:
                    stream.since, stream.taken_at_since = key, 1
                fresh.append(content)
            if not capped:
                break
            if len(fresh) == before:
                # A whole read within the second sinceTime repeats: read more at once.
                chunk *= 2
        stream.lines += fresh
        return fresh


def _container_status(pod: Mapping[str, Any], container: str) -> Mapping[str, Any] | None:
    status = pod.get("status") or {}
    for key in ("containerStatuses", "initContainerStatuses"):
        for entry in status.get(key) or []:
            if isinstance(entry, Mapping) and entry.get("name") == container:
                return entry
    return None
