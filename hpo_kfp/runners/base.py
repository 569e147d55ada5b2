"""What every runner returns: how a trial's run ended."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["TrialRun", "now"]


@dataclass(frozen=True, kw_only=True)
class TrialRun:
    """How a trial's run ended, and what it printed."""

    name: str
    exit_code: int | None
    """0 for success; None when the run did not end by itself (deadline, deleted, failed
    condition on a cluster)."""
    started: str
    finished: str
    reason: str
    """Empty when the run succeeded."""
    early_stopped: bool = False
    """Stopped by the early-stopping rule (then ``reason`` says why)."""

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0


def now() -> str:
    """The current time, ISO 8601 in UTC."""
    return datetime.now(UTC).isoformat()
