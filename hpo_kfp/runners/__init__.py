"""Runners launch a trial and wait for its end: ``local`` (a process) or ``kubernetes``."""

from __future__ import annotations

from hpo_kfp.runners.base import TrialRun
from hpo_kfp.runners.local import LocalCommand, local_command, run_local

__all__ = ["LocalCommand", "TrialRun", "local_command", "run_local"]
