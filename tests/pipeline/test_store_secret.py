"""The store's password on a cluster (issue 26): a Kubernetes Secret handed to every step that
opens the store through kfp-kubernetes, never the password in the compiled pipeline, and never
to a step that does not need it (the report, the author's trial component)."""

# No `from __future__ import annotations`: KFP reads the pipeline function's annotations.
from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp import compiler, dsl

import hpo_kfp
from hpo_kfp.cli import main
from hpo_kfp.errors import SettingsError
from hpo_kfp.steps.settings import StepSettings

_EXAMPLE = Path(__file__).parents[2] / "examples" / "sklearn-digits" / "experiment.yaml"
_STORE = "postgresql://hpo@db.team-a:5432/hpo"


def _secret_users(compiled: dict[str, Any]) -> dict[str, list[Any]]:
    """Executor label -> the Secrets it gets as environment variables."""
    executors = (
        compiled.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})
    )
    return {label: config.get("secretAsEnv", []) for label, config in executors.items()}


def _load_all(path: Path) -> dict[str, Any]:
    documents = list(yaml.safe_load_all(path.read_text()))
    compiled = documents[0]
    if len(documents) > 1:
        compiled["platforms"] = documents[1]["platforms"]
    return compiled


@pytest.mark.parametrize("sync", [False, True], ids=["asynchronous", "synchronous"])
def test_compile_hands_the_secret_to_each_step_that_opens_the_store(tmp_path: Path, sync: bool) -> None:
    output = tmp_path / "p.yaml"
    args = ["compile", str(_EXAMPLE), "-o", str(output), "--store", _STORE, "--store-secret", "hpo-db"]
    assert main(args + (["--sync"] if sync else [])) == 0
    compiled = _load_all(output)
    users = _secret_users(compiled)
    assert set(users) == {"exec-start", "exec-lane", "exec-lane-decide"}  # --sync: the same lanes
    for given in users.values():
        [secret] = given
        assert secret["secretName"] == "hpo-db"
        assert secret["keyToEnv"] == [{"secretKey": "password", "envVar": "HPO_KFP_STORE_PASSWORD"}]
    assert "exec-report" not in users
    assert "s3cret" not in output.read_text()


def test_without_a_secret_no_step_gets_one(tmp_path: Path) -> None:
    output = tmp_path / "p.yaml"
    assert main(["compile", str(_EXAMPLE), "-o", str(output), "--store", _STORE]) == 0
    assert _secret_users(_load_all(output)) == {}


def test_a_bad_secret_name_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", str(_EXAMPLE), "-o", str(tmp_path / "p.yaml"), "--store-secret", "Hpo_DB"]) == 2
    assert capsys.readouterr().err == (
        '--store-secret: must be a Kubernetes Secret name (lower-case letters, digits, "-" and ".", at '
        "most 253), but got 'Hpo_DB'\n"
    )
    with pytest.raises(SettingsError, match=r"^settings.store_secret: must be a Kubernetes Secret name"):
        StepSettings(store_secret="-x")


@dsl.component
def _trial(lr: float, layers: int, optimizer: str) -> float:
    return lr


def test_tune_hands_the_secret_to_its_steps_not_to_the_authors_trial(tmp_path: Path) -> None:
    settings = StepSettings(runner="kubernetes", store=_STORE, store_secret="hpo-db")
    document = yaml.safe_load(_EXAMPLE.read_text())
    native = {**document, "spec": {k: v for k, v in document["spec"].items() if k != "trialTemplate"}}
    native["spec"]["parameters"] = [
        {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.01", "max": "0.1"}},
        {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}},
        {"name": "optimizer", "parameterType": "categorical", "feasibleSpace": {"list": ["sgd", "adam"]}},
    ]
    native["spec"]["maxTrialCount"] = 4

    @dsl.pipeline(name="p")
    def both() -> None:
        hpo_kfp.tune(_EXAMPLE, settings=settings)
        hpo_kfp.tune(native, _trial, settings=settings)

    compiler.Compiler().compile(both, str(tmp_path / "p.yaml"))
    users = _secret_users(_load_all(tmp_path / "p.yaml"))
    assert "exec-lane" in users and "exec-start" in users and "exec-lane-decide" in users
    executors = set(_load_all(tmp_path / "p.yaml")["deploymentSpec"]["executors"])
    # The author's trial is no task: its Job, made by the lane, is no pod of KFP's and gets no
    # Secret. The report and the best step do not open the store.
    assert "exec-trial" not in executors and "exec-report" in executors
    assert not any(k.startswith(("exec-best", "exec-report")) for k in users)
