"""Run settings shared by every step, passed through the pipeline as one JSON parameter.

One parameter instead of five keeps each round's compiled definition small (every input
is declared again per task and per loop). People type it by hand in the KFP UI, so a
document without a ``version`` is read as the current version.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields

from hpo_kfp.errors import InputError, TrackingError
from hpo_kfp.tracking import Tracker, resolve_type_prefix
from hpo_kfp.wire import check_version

__all__ = ["SETTINGS_VERSION", "SettingsError", "StepSettings"]

SETTINGS_VERSION = 1
"""The version of the settings document this release writes, and the only one it reads."""

_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
"""A Kubernetes namespace: an RFC 1123 label."""


class SettingsError(InputError):
    """The step settings (a pipeline argument) break a rule; names the field path, the rule
    and the value."""

    def __init__(self, path: str, must: str, got: str) -> None:
        self.path = path
        self.must = must
        self.got = got
        super().__init__(f"{path}: {must}, but got {got}")


@dataclass(frozen=True, kw_only=True)
class StepSettings:
    """Where trials run and where results are recorded; checked when made.

    Raises:
        SettingsError: A field breaks its rule (named as ``settings.<field>``).
    """

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

    def __post_init__(self) -> None:
        for item in fields(self):
            value: object = getattr(self, item.name)
            expected = type(item.default)  # every field's default is of the field's type
            if type(value) is not expected:
                raise SettingsError(f"settings.{item.name}", f"must be {expected.__name__}", repr(value))
            if isinstance(value, int) and value < 0:
                raise SettingsError(f"settings.{item.name}", "must be 0 or more", repr(value))
        if self.runner not in ("local", "kubernetes"):
            raise SettingsError("settings.runner", "must be local or kubernetes", repr(self.runner))
        if self.tracking and not self.tracking.startswith(("sqlite://", "grpc://")):
            raise SettingsError(
                "settings.tracking",
                'must be sqlite:///PATH, grpc://HOST:PORT or "" (no store)',
                repr(self.tracking),
            )
        try:
            resolve_type_prefix(self.type_prefix)
        except TrackingError:
            raise SettingsError(
                "settings.type_prefix", "must be letters, digits, '.', '_' or '-'", repr(self.type_prefix)
            ) from None
        if self.namespace and not _NAMESPACE.fullmatch(self.namespace):
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

    def tracker(self) -> Tracker | None:
        """The metadata store, or None when no store is configured."""
        if not self.tracking:
            return None
        from hpo_kfp.tracking import open_tracker

        return open_tracker(self.tracking, prefix=self.type_prefix)
