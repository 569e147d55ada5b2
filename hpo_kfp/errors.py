"""Every error hpo-kfp raises on purpose, in one tree.

Two branches matter to a caller: :class:`InputError` (the user's input breaks a rule: a
spec, a file, a flag, a pipeline argument, a request; the CLI exits 2, the service answers
4xx) and everything else (a trial could not be launched, the store failed, a step failed;
the CLI exits 1). Each class says who raises it and what the caller should do. Messages
name the field path, the rule that must hold and the value received, in one line.

::

    HpoKfpError
    ├── InputError                   fix the input, then try again
    │   ├── SpecError                an Experiment / OptimizationJob field
    │   ├── TemplateError            a trial template and its assignment
    │   ├── SettingsError            the step settings (a pipeline argument)
    │   ├── UsageError               a command-line flag
    │   ├── OptionError              an option of a command or a server
    │   ├── BuildError               a pipeline that cannot be built as asked
    │   │   └── PipelineTooLarge
    │   ├── BackendTooOld            the KFP backend chosen
    │   ├── HistoryError             a history document
    │   ├── PriorError               a file of trials to import
    │   ├── ReportError              a metric reported by training code
    │   ├── AccessDenied             a credential the KFP API refused
    │   ├── SamplerUnavailable       an optional library the algorithm needs
    │   ├── SearchSpaceChanged       the space differs from the stored one
    │   ├── StoreInputError          a store named but unusable as given
    │   └── RequestError             a service request (with its HTTP status)
    │       ├── NotFound, Conflict, Unauthorized, Forbidden, TooLarge, Unavailable
    ├── TrackingError                the experiment store
    │   ├── StoreError               could not be read or written
    │   └── StoreInputError
    ├── ClaimRefused                 a claim no claimer may make (a caller's bug)
    ├── RunnerError                  a trial could not be launched or watched
    ├── MetricsUnavailable           a trial's objective never appeared
    │   └── EventFileError
    ├── ClusterError                 the KFP API failed a request
    ├── ExperimentBusy               another local run holds the experiment
    ├── StepFailed                   a pipeline step failed
    ├── WireError                    a message between steps is malformed
    └── UnsupportedDependency        an installed library is outside the supported range
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "BackendTooOld",
    "BuildError",
    "ClaimRefused",
    "ClusterError",
    "Conflict",
    "EventFileError",
    "ExperimentBusy",
    "Forbidden",
    "HistoryError",
    "HpoKfpError",
    "InputError",
    "MetricsUnavailable",
    "NotFound",
    "OptionError",
    "PipelineTooLarge",
    "PriorError",
    "ReportError",
    "RequestError",
    "RunnerError",
    "SamplerUnavailable",
    "SearchSpaceChanged",
    "SettingsError",
    "SpecError",
    "StepFailed",
    "StoreError",
    "StoreInputError",
    "TemplateError",
    "TooLarge",
    "TrackingError",
    "Unauthorized",
    "Unavailable",
    "UnsupportedDependency",
    "UsageError",
    "WireError",
]


class HpoKfpError(Exception):
    """Base class of every error hpo-kfp raises on purpose."""


# --- the user's input ----------------------------------------------------------------


class InputError(HpoKfpError):
    """The user's input breaks a rule; the message names where, what must hold, and the value.

    The CLI prints it as one line and exits 2; nothing was changed.
    """


class _FieldError(InputError):
    """An input error about one field: ``{path}: {must}, but got {got}``."""

    def __init__(self, path: str, must: str, got: str) -> None:
        self.path = path
        self.must = must
        self.got = got
        super().__init__(f"{path}: {must}, but got {got}")


class SpecError(_FieldError):
    """An experiment spec breaks a rule. Raised by the spec reader, the algorithms'
    checks and the planners; the path is the field's in the user's document."""


class SettingsError(_FieldError):
    """The step settings (a pipeline argument, typed by hand in the KFP UI) break a rule.
    Raised when a step reads them; the path is ``settings.<field>``."""


class TemplateError(InputError):
    """A trial template cannot be rendered with the given assignment, or cannot run where
    it is asked to (a local process). Raised by :mod:`hpo_kfp.render`, the spec reader and
    the runners' checks."""


class UsageError(InputError):
    """A command-line mistake; the CLI prints the message as it is."""


class OptionError(InputError):
    """An option of a command or a server breaks a rule (``--cron``, ``--kube-context``, a
    server's binding and token); names the option and the value."""


class BuildError(InputError):
    """A pipeline cannot be built as asked (e.g. a trial component that does not fit).
    Raised by the KFP layer's builders."""


class PipelineTooLarge(BuildError):
    """A compiled pipeline's run would break a limit of the cluster's Argo (Workflow size,
    template depth, a pod argument's length) or the project's budget under those limits."""

    def __init__(self, message: str, *, estimate: object | None = None) -> None:
        self.estimate = estimate
        """The :class:`~hpo_kfp.pipeline.argo_size.ArgoEstimate` behind the refusal, if any."""
        super().__init__(message)


class BackendTooOld(InputError):
    """The KFP backend chosen is older than a feature of the pipeline needs (names both).
    Raised by ``submit`` and ``schedule``; use a newer backend or leave the feature out."""


class HistoryError(InputError):
    """A history document is malformed or of a version this release does not read."""


class PriorError(InputError):
    """A file of trials run elsewhere (``hpo-kfp import``) breaks a rule; names the entry,
    the field and the value. Nothing of the file was imported."""


class ReportError(InputError):
    """Training code reported a metric wrongly (:func:`hpo_kfp.report_metrics` outside a
    trial, or a value that is not a number; :func:`hpo_kfp.metrics.log_metric` likewise)."""


class AccessDenied(InputError):
    """The KFP API refused the credential (HTTP 401 or 403). Raised by ``submit`` and
    ``schedule``; fix the token, the kube context or the profile's access."""


class SamplerUnavailable(InputError):
    """An algorithm needs optional dependencies that are not installed; the message says
    what to install. Raised before a run starts, and by the service's validation."""


class SearchSpaceChanged(InputError):
    """The experiment's search space differs from the one the store recorded. Raised by
    :meth:`~hpo_kfp.store.Store.open_experiment`; start over or allow the change."""


class RequestError(InputError):
    """A service request breaks a rule (HTTP 400): the message names the field, the rule and
    the value. Raised by :mod:`hpo_kfp.service`; the client gets ``{"error", "field"}``."""

    status = 400

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")

    def body(self) -> dict[str, str]:
        """The JSON reply."""
        return {"error": str(self).replace("\n", " "), "field": self.field}


class NotFound(RequestError):
    """The request names an experiment or a trial the store does not hold (HTTP 404)."""

    status = 404


class Conflict(RequestError):
    """The request does not fit the experiment's state: a name already taken, a trial already
    finished otherwise, a budget already spent, a changed search space (HTTP 409)."""

    status = 409


class Unauthorized(RequestError):
    """The request carries no bearer token, or another one than the server's (HTTP 401)."""

    status = 401


class Forbidden(RequestError):
    """A request the server does not answer for where it came from (403)."""

    status = 403


class TooLarge(RequestError):
    """The request body is over the server's limit (HTTP 413)."""

    status = 413


class Unavailable(RequestError):
    """The request needs something this server was installed without (HTTP 501)."""

    status = 501


# --- the experiment store --------------------------------------------------------------


class TrackingError(HpoKfpError):
    """The experiment store could not be used."""


class StoreError(TrackingError):
    """The store could not be read or written (a connection, a server, a file lock, an
    experiment it does not hold). Raised by every :class:`~hpo_kfp.store.Store` method;
    the step or command fails (exit 1) and can be run again: nothing half-written stays."""


class StoreInputError(TrackingError, InputError):
    """A store the user named cannot be used as given (a file holding something else, a
    malformed address or type prefix, a missing driver). Raised when the store is opened."""


class ClaimRefused(HpoKfpError):
    """A claim no claimer may make (one without an owner). Raised by
    :func:`hpo_kfp.claim.claim`; the caller has a bug to fix."""


# --- trials, steps and clusters ----------------------------------------------------------


class RunnerError(HpoKfpError):
    """A trial could not be launched or watched (not a trial that failed: that is a result).
    Raised by the trial runners; the step fails and a retry runs the trial again."""


class MetricsUnavailable(HpoKfpError):
    """The objective metric never appeared in a trial's output. Raised by the metrics
    collectors; the trial is recorded ``MetricsUnavailable``."""


class EventFileError(MetricsUnavailable):
    """An event file is corrupt (a checksum does not match, or a message is malformed)."""


class ClusterError(HpoKfpError):
    """The KFP API could not be reached or failed a request (not a refused credential)."""


class ExperimentBusy(HpoKfpError):
    """Another local run of the experiment is running from the same run folder. Raised by
    ``hpo-kfp run``; wait for it, or use another ``--workdir``."""


class StepFailed(HpoKfpError):
    """A step of the pipeline failed (not a trial: a failed trial is recorded, not raised)."""


class WireError(HpoKfpError):
    """A message between steps is malformed, of another kind, or of a version this release
    does not read. Raised by :mod:`hpo_kfp.wire`; the two steps come from different releases."""


class UnsupportedDependency(HpoKfpError, ImportError):
    """An installed library is outside the version range this release supports. Raised by
    :mod:`hpo_kfp.compat` when the library is first used; install a supported version."""
