"""The exception hierarchy: one base error, one subclass per kind of failure.

Two branches matter to a caller: :class:`InputError` (the user's input breaks a rule: a
spec, a file, a flag, a pipeline argument; the CLI exits 2) and everything else (a trial
could not be launched, the store failed, a step failed; the CLI exits 1).
"""

from __future__ import annotations

__all__ = [
    "BackendTooOld",
    "BuildError",
    "ClusterError",
    "HistoryError",
    "HpoKfpError",
    "InputError",
    "MetricsUnavailable",
    "PipelineTooLarge",
    "RunnerError",
    "SamplerUnavailable",
    "SpecError",
    "StoreInputError",
    "TemplateError",
    "TrackingError",
    "StepFailed",
    "WireError",
]


class HpoKfpError(Exception):
    """Base class of every error hpo-kfp raises on purpose."""


class InputError(HpoKfpError):
    """The user's input breaks a rule; the message names where, what must hold, and the value."""


class SpecError(InputError):
    """An experiment spec breaks a rule; names the field path, the rule and the value."""

    def __init__(self, path: str, must: str, got: str) -> None:
        self.path = path
        self.must = must
        self.got = got
        super().__init__(f"{path}: {must}, but got {got}")


class TemplateError(InputError):
    """A trial template cannot be rendered with the given assignment."""


class BuildError(InputError):
    """A pipeline cannot be built as asked (e.g. a trial component that does not fit)."""


class PipelineTooLarge(BuildError):
    """A compiled pipeline's run would break a limit of the cluster's Argo (Workflow size,
    template depth, a pod argument's length) or the project's budget under those limits."""

    def __init__(self, message: str, *, estimate: object | None = None) -> None:
        self.estimate = estimate
        """The :class:`~hpo_kfp.pipeline.argo_size.ArgoEstimate` behind the refusal, if any."""
        super().__init__(message)


class HistoryError(InputError):
    """A history document is malformed or of a version this release does not read."""


class MetricsUnavailable(HpoKfpError):
    """The objective metric never appeared in a trial's output."""


class SamplerUnavailable(InputError):
    """An algorithm needs optional dependencies that are not installed."""


class RunnerError(HpoKfpError):
    """A trial could not be launched or watched (not a trial that failed)."""


class TrackingError(HpoKfpError):
    """The metadata store could not be read or written."""


class StoreInputError(TrackingError, InputError):
    """A store the user named cannot be used as given (a file holding something else, a
    malformed address or type prefix)."""


class ClusterError(HpoKfpError):
    """The KFP API could not be reached or failed a request (not a refused credential)."""


class BackendTooOld(InputError):
    """The KFP backend chosen is older than a feature of the pipeline needs (names both)."""


class StepFailed(HpoKfpError):
    """A step of the pipeline failed (not a trial: a failed trial is recorded, not raised)."""


class WireError(HpoKfpError):
    """A message between steps is malformed, of another kind, or of a version this release does not read."""
