"""The one way tests wait: for an event, with a deadline, never for a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

_T = TypeVar("_T")

POLL_SECONDS = 0.02
"""How often the condition is asked: a poll interval, never an assertion's timing."""


def wait_for(condition: Callable[[], _T], *, seconds: float = 10.0, what: str = "the condition") -> _T:
    """Asks ``condition`` until it returns something truthy, and returns that.

    Raises:
        AssertionError: ``seconds`` passed first; the message names ``what``.
    """
    end = time.monotonic() + seconds
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"waited {seconds:g} s for {what}")
        time.sleep(POLL_SECONDS)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie has ended: it only waits to be reaped)."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def group_alive(group: int) -> bool:
    """Whether any process of process group ``group`` runs (zombies left out)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False
