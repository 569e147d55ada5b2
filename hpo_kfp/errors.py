"""The exception hierarchy: one base error, one subclass per kind of failure."""

from __future__ import annotations

__all__ = [
    "BuildError",
    "HistoryError",
    "HpoKfpError",
    "MetricsUnavailable",
    "RunnerError",
    "SamplerUnavailable",
    "SpecError",
    "TemplateError",
    "TrackingError",
    "StepFailed",
]


class HpoKfpError(Exception):
    """Base class of every error hpo-kfp raises on purpose."""


class SpecError(HpoKfpError):
    """An experiment spec breaks a rule; names the field path, the rule and the value."""

    def __init__(self, path: str, must: str, got: str) -> None:
        self.path = path
        self.must = must
        self.got = got
        super().__init__(f"{path}: {must}, but got {got}")


class TemplateError(HpoKfpError):
    """A trial template cannot be rendered with the given assignment."""


class BuildError(HpoKfpError):
    """A pipeline cannot be built as asked (e.g. a trial component that does not fit)."""


class HistoryError(HpoKfpError):
    """A history document is malformed or of a version this release does not read."""


class MetricsUnavailable(HpoKfpError):
    """The objective metric never appeared in a trial's output."""


class SamplerUnavailable(HpoKfpError):
    """An algorithm needs optional dependencies that are not installed."""


class RunnerError(HpoKfpError):
    """A trial could not be launched or watched (not a trial that failed)."""


class TrackingError(HpoKfpError):
    """The metadata store could not be read or written."""


class StepFailed(HpoKfpError):
    """A step of the pipeline failed (not a trial: a failed trial is recorded, not raised)."""
