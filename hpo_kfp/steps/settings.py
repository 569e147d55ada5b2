"""Run settings shared by every step, passed through the pipeline as one JSON parameter.

One parameter instead of five keeps each round's compiled definition small (every input
is declared again per task and per loop).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from hpo_kfp.errors import HpoKfpError
from hpo_kfp.tracking import Tracker

__all__ = ["StepSettings"]


@dataclass(frozen=True, kw_only=True)
class StepSettings:
    """Where trials run and where results are recorded."""

    runner: str = "local"
    """``local`` (processes on this machine) or ``kubernetes``."""
    tracking: str = ""
    """The metadata store: ``sqlite:///PATH``, ``grpc://HOST:PORT``, or "" for none."""
    type_prefix: str = "odh."
    """Prefix of the metadata types (``odh.HPOTrial`` ...)."""
    trial_cwd: str = ""
    """Working folder of local trials (the experiment file's folder)."""
    namespace: str = ""
    """Namespace of Kubernetes trials; "" for the step's own."""
    capacity_rounds: int = 0
    """Rounds the pipeline was compiled with (0: sized for the experiment)."""
    capacity_parallelism: int = 0
    """Largest loop parallelism the pipeline was compiled with (0: sized for the experiment)."""
    run_budget: int = 0
    """New trials this run may start (scheduled runs); 0: as many as ``maxTrialCount`` allows."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> StepSettings:
        """Reads settings; an unknown key or a runner other than local/kubernetes is an error."""
        data = json.loads(text or "{}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise HpoKfpError(f"settings: unknown keys {unknown}; the keys are {sorted(known)}")
        settings = cls(**data)
        if settings.runner not in ("local", "kubernetes"):
            raise HpoKfpError(f"settings.runner: must be local or kubernetes, but got {settings.runner!r}")
        return settings

    def tracker(self) -> Tracker | None:
        """The metadata store, or None when no store is configured."""
        if not self.tracking:
            return None
        from hpo_kfp.tracking import open_tracker

        return open_tracker(self.tracking, prefix=self.type_prefix)
