"""StepSettings: checked when made (in code or from the JSON a person types in the KFP UI)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hpo_kfp.errors import InputError, SettingsError, WireError
from hpo_kfp.steps.settings import SETTINGS_VERSION, StepSettings


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"runner": "docker"}, r"^settings.runner: must be one of local, kubernetes, but got 'docker'$"),
        ({"runner": 1}, r"^settings.runner: must be str, but got 1$"),
        (
            {"store": "ftp://m"},
            r"^settings.store: the store must be sqlite:///PATH, postgresql://.*, but got 'ftp://m'$",
        ),
        (
            {"store": "postgresql://hpo:secret@db/hpo"},
            r"^settings.store: the store URL must not hold a password .*, but got 'postgresql://hpo:\*\*\*@db/hpo'$",
        ),
        (
            {"runner": "kubernetes", "store": "sqlite:////runs/s.sqlite"},
            r"^settings.store: must be a store every step's pod reaches on a cluster .* \(runner kubernetes\), "
            r"but got 'sqlite:////runs/s.sqlite'$",
        ),
        (
            {"runner": "kubernetes", "store": "mlmd+sqlite:////runs/m.sqlite"},
            r"^settings.store: must be a store every step's pod reaches .*, but got 'mlmd\+sqlite:////runs/m.sqlite'$",
        ),
        ({"type_prefix": "a b"}, r"^settings.type_prefix: must be letters, digits.*, but got 'a b'$"),
        (
            {"namespace": "Team_A"},
            r"^settings.namespace: must be a Kubernetes namespace.*, but got 'Team_A'$",
        ),
        ({"capacity_rounds": -1}, r"^settings.capacity_rounds: must be 0 or more, but got -1$"),
        ({"capacity_parallelism": 2.0}, r"^settings.capacity_parallelism: must be int, but got 2.0$"),
        ({"run_budget": True}, r"^settings.run_budget: must be int, but got True$"),
        ({"trial_cwd": None}, r"^settings.trial_cwd: must be str, but got None$"),
    ],
    ids=[
        "runner",
        "runner-type",
        "store",
        "store-password",
        "file-store-on-a-cluster",
        "mlmd-file-on-a-cluster",
        "type-prefix",
        "namespace",
        "negative",
        "float",
        "bool",
        "none",
    ],
)
def test_settings_are_checked_when_made(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        StepSettings(**fields)
    with pytest.raises(SettingsError, match=message):  # the same rule for typed-in JSON
        StepSettings.from_json(json.dumps(fields))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"runer": "local"}',
            r"^settings: must have only the keys \[.*\], but got unknown keys \['runer'\]$",
        ),
        ('{"runner": ', r"^settings: must be a JSON object, but got '\{\"runner\": ' \("),
        ("[]", r"^settings: must be a JSON object, but got '\[\]'$"),
    ],
    ids=["unknown-key", "not-json", "not-an-object"],
)
def test_settings_documents_are_checked(text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        StepSettings.from_json(text)


def test_settings_errors_are_the_users_input() -> None:
    """The CLI exits 2 on them: settings are a pipeline argument."""
    assert issubclass(SettingsError, InputError)


def test_settings_round_trip_with_their_version() -> None:
    settings = StepSettings(runner="kubernetes", store="grpc://m:8080", namespace="ns", run_budget=3)
    text = settings.to_json()
    assert json.loads(text)["version"] == SETTINGS_VERSION
    assert StepSettings.from_json(text) == settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", StepSettings()),
        ("{}", StepSettings()),
        ('{"runner": "kubernetes"}', StepSettings(runner="kubernetes")),
    ],
    ids=["empty", "no-keys", "no-version"],
)
def test_settings_typed_by_hand_need_no_version(text: str, expected: StepSettings) -> None:
    assert StepSettings.from_json(text) == expected
    assert StepSettings.from_json(text).open_store() is None


@pytest.mark.parametrize("version", [2, 0, "1", None], ids=["newer", "zero", "string", "null"])
def test_settings_of_an_unknown_version_are_refused_by_name(version: object) -> None:
    text = json.dumps({"version": version, "runner": "local"})
    with pytest.raises(
        WireError, match=rf"^settings version {version!r}: this release of hpo-kfp reads version 1;"
    ):
        StepSettings.from_json(text)
