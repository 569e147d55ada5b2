"""Run settings shared by every step, passed through the pipeline as one JSON parameter.

One parameter instead of five keeps each round's compiled definition small (every input
is declared again per task and per loop). People type it by hand in the KFP UI, so a
document without a ``version`` is read as the current version.
"""

from __future__ import annotations

import functools
import json
import os
import re
import socket
import uuid
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from hpo_kfp.errors import InputError, SettingsError
from hpo_kfp.runners import RUNNERS, RunnerOptions, TrialRunner, get_runner
from hpo_kfp.spec import Experiment
from hpo_kfp.spec.experiment import NAMESPACE
from hpo_kfp.store import ExperimentKey, Store, check_store_url, open_store
from hpo_kfp.wire import check_version

__all__ = ["SETTINGS_VERSION", "SettingsError", "StepSettings"]

SETTINGS_VERSION = 1
"""The version of the settings document this release writes, and the only one it reads."""

_PREFIX = re.compile(r"[A-Za-z0-9_.-]*")
_SECRET = re.compile(r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
"""A Kubernetes Secret's name: a DNS subdomain (RFC 1123)."""
_POD_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@functools.cache
def _opened(url: str, type_prefix: str) -> Store:
    return open_store(url, type_prefix=type_prefix)


@dataclass(frozen=True, kw_only=True)
class StepSettings:
    """Where trials run and where results are recorded; checked when made.

    Raises:
        SettingsError: A field breaks its rule (named as ``settings.<field>``).
    """

    runner: str = "local"
    """``local`` (processes on this machine) or ``kubernetes``."""
    store: str = ""
    """The experiment store's URL (see :mod:`hpo_kfp.store`), or "" for none (the history
    then lives only in the run's artifacts)."""
    allow_space_change: bool = False
    """Go on with an experiment whose search space changed since the store recorded it."""
    type_prefix: str = "odh."
    """Prefix of the ML Metadata types (``odh.HPOTrial`` ...), for an ML Metadata store."""
    trial_cwd: str = ""
    """Working folder of local trials (the experiment file's folder)."""
    namespace: str = ""
    """Namespace of Kubernetes trials; "" for the step's own."""
    capacity_rounds: int = 0
    """Rounds the pipeline was compiled with (0: sized for the experiment)."""
    capacity_parallelism: int = 0
    """Largest loop parallelism the pipeline was compiled with (0: sized for the experiment)."""
    max_lanes: int = 0
    """Most lanes a run starts (0: ``parallelTrialCount``): a local run caps them to what the
    machine can run."""
    run_budget: int = 0
    """New trials this run may start (scheduled runs); 0: as many as ``maxTrialCount`` allows."""
    stale_seconds: int = 600
    """A claimed trial's lease: one whose run step has sent no heartbeat for this long (its
    pod evicted, its run stopped) is handed out again by a run's first claim; 0: never.
    Trials of a run that is alive keep their lease, whoever else shares the store."""
    claimer: str = ""
    """Prefix of the owner of every trial this run claims. A local run names its run folder
    here, so the next run from that folder (which holds the folder's lock) gives back what
    a killed run left at once, and nothing another live run holds."""
    synchronous: bool = False
    """Run trials in synchronous rounds of ``parallelTrialCount`` (each round suggested from
    every trial before it, once they all ended) even if the algorithm does not need them."""
    store_secret: str = ""
    """A Kubernetes Secret (in the run's namespace) whose key ``password`` is the store's
    password: the compiled pipeline hands it to every step that opens the store as
    ``HPO_KFP_STORE_PASSWORD`` (kfp-kubernetes' ``use_secret_as_env``); "" for none. Only
    its name is in the pipeline."""
    trial_deadline_seconds: int = 0
    """Kubernetes trials: one still running after this long is deleted and recorded as
    failed (DeadlineExceeded); 0: the trial object's own ``activeDeadlineSeconds`` and a
    minute for its controller, else 24 hours."""
    unschedulable_seconds: int = 0
    """Kubernetes trials: how long a pod may stay unschedulable before its trial fails; 0: the
    runner's default (5 minutes)."""
    start_grace_seconds: int = 0
    """Kubernetes trials: how long a container may keep failing to pull its image or to be
    configured before its trial fails; 0: the runner's default (a minute)."""

    def __post_init__(self) -> None:
        for item in fields(self):
            value: object = getattr(self, item.name)
            expected = type(item.default)  # every field's default is of the field's type
            if type(value) is not expected:
                raise SettingsError(f"settings.{item.name}", f"must be {expected.__name__}", repr(value))
            if isinstance(value, int) and value < 0:
                raise SettingsError(f"settings.{item.name}", "must be 0 or more", repr(value))
        if self.runner not in RUNNERS:
            raise SettingsError("settings.runner", f"must be one of {', '.join(RUNNERS)}", repr(self.runner))
        if self.store:
            shown = re.sub(r"(://[^:/@]+:)[^@/]*@", r"\1***@", self.store)  # never echo a password
            try:
                check_store_url(self.store)
            except InputError as error:
                raise SettingsError("settings.store", str(error).split(", but ")[0], repr(shown)) from None
            problem = get_runner(self.runner).store_problem(self.store)
            if problem is not None:
                raise SettingsError("settings.store", f"{problem} (runner {self.runner})", repr(shown))
        if not _PREFIX.fullmatch(self.type_prefix):
            raise SettingsError(
                "settings.type_prefix", "must be letters, digits, '.', '_' or '-'", repr(self.type_prefix)
            )
        if self.store_secret and not _SECRET.fullmatch(self.store_secret):
            raise SettingsError(
                "settings.store_secret",
                'must be a Kubernetes Secret name (lower-case letters, digits, "-" and ".", at most 253)',
                repr(self.store_secret),
            )
        if self.namespace and not NAMESPACE.fullmatch(self.namespace):
            raise SettingsError(
                "settings.namespace",
                'must be a Kubernetes namespace (lower-case letters, digits and "-", at most 63) '
                'or "" (the step\'s own)',
                repr(self.namespace),
            )

    def to_json(self) -> str:
        return json.dumps({"version": SETTINGS_VERSION, **asdict(self)}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> StepSettings:
        """Reads settings; "" means the defaults, and a document without ``version`` is read
        as this release's.

        Raises:
            SettingsError: Not a JSON object, an unknown key, or a field that breaks its rule.
            WireError: A version this release does not read.
        """
        try:
            data = json.loads(text or "{}")
        except json.JSONDecodeError as error:
            raise SettingsError("settings", "must be a JSON object", f"{text!r} ({error.msg})") from None
        if not isinstance(data, dict):
            raise SettingsError("settings", "must be a JSON object", repr(text))
        check_version("settings", data.pop("version", SETTINGS_VERSION), (SETTINGS_VERSION,))
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SettingsError(
                "settings", f"must have only the keys {sorted(known)}", f"unknown keys {unknown}"
            )
        return cls(**data)

    def open_store(self) -> Store | None:
        """The experiment store, or None when none is configured; one per process and URL (a
        step asks more than once, and opening one checks its tables)."""
        return _opened(self.store, self.type_prefix) if self.store else None

    def trial_runner(self) -> TrialRunner:
        """The runner these settings name, made with their options (connecting to nothing yet)."""
        options = RunnerOptions(
            trial_cwd=self.trial_cwd,
            namespace=self.namespace,
            deadline_seconds=self.trial_deadline_seconds,
            unschedulable_seconds=self.unschedulable_seconds,
            start_grace_seconds=self.start_grace_seconds,
        )
        return get_runner(self.runner, options)

    def owner(self, run_id: str) -> str:
        """The owner of the trials a step of run ``run_id`` claims (a process of its own
        when no run id is known)."""
        return f"{self.claimer}{run_id or _process_owner()}"

    def experiment_key(self, experiment: Experiment) -> ExperimentKey:
        """The experiment's identity in the store: its own namespace, else the trials'
        namespace, else the namespace the step runs in (a KFP profile's), else none."""
        namespace = self.namespace
        if not namespace and _POD_NAMESPACE.is_file():
            namespace = _POD_NAMESPACE.read_text(encoding="utf-8").strip()
        return ExperimentKey.of(experiment, namespace)


def _process_owner() -> str:
    """A claimer's name when no run id is known: unique to this process."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
