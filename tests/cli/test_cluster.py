"""submit and schedule against a stub of the KFP REST API (no real cluster was used)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hpo_kfp.cli import main
from hpo_kfp.errors import HpoKfpError
from hpo_kfp.steps import StepSettings
from hpo_kfp.submit import every_seconds, six_field_cron
from tests.conftest import base_spec
from tests.kfp_api_stub import KfpApiStub

_EXAMPLE = Path(__file__).parents[2] / "examples" / "sklearn-digits" / "experiment.yaml"


def _tasks(pipeline_spec: dict[str, Any]) -> list[dict[str, Any]]:
    tasks = list(pipeline_spec["root"]["dag"]["tasks"].values())
    for component in pipeline_spec["components"].values():
        tasks += list(((component.get("dag") or {}).get("tasks") or {}).values())
    return tasks


def _check_pipeline_spec(pipeline_spec: dict[str, Any]) -> StepSettings:
    """A valid pipeline spec: KFP's own loader reads it, caching is off for every step."""
    from kfp import components

    loaded = components.load_component_from_text(yaml.safe_dump(pipeline_spec))
    assert set(loaded.component_spec.inputs or {}) == {"spec", "settings"}
    steps = [t for t in _tasks(pipeline_spec) if "cachingOptions" in t]
    assert steps and all(not t["cachingOptions"].get("enableCache") for t in steps)
    default = pipeline_spec["root"]["inputDefinitions"]["parameters"]["settings"]["defaultValue"]
    return StepSettings.from_json(default)


def test_submit_starts_one_run_and_prints_its_url(
    kfp_api: KfpApiStub, capsys: pytest.CaptureFixture[str]
) -> None:
    kfp_api.token = "s3cret"
    code = main(
        [
            "submit",
            str(_EXAMPLE),
            "--host",
            kfp_api.url,
            "--token",
            "s3cret",
            "--namespace",
            "team-a",
            "--run-name",
            "digits-1",
            "--image",
            "registry.example/hpo-kfp:0.1.0",
        ]
    )
    assert code == 0
    assert (
        capsys.readouterr().out == f"sklearn-digits: run run-1 started: {kfp_api.url}/#/runs/details/run-1\n"
    )
    [experiment] = kfp_api.posted("/apis/v2beta1/experiments")
    assert experiment == {"display_name": "sklearn-digits", "namespace": "team-a"}
    [run] = kfp_api.posted("/apis/v2beta1/runs")
    assert run["display_name"] == "digits-1" and run["experiment_id"] == "exp-1"
    settings = _check_pipeline_spec(run["pipeline_spec"])
    assert (settings.runner, settings.store, settings.run_budget) == (
        "kubernetes",
        "grpc://metadata-grpc-service.kubeflow:8080",
        0,
    )
    executors = run["pipeline_spec"]["deploymentSpec"]["executors"].values()
    assert {e["container"]["image"] for e in executors} == {"registry.example/hpo-kfp:0.1.0"}
    assert all(
        r.headers.get("authorization") == "Bearer s3cret" for r in kfp_api.requests if "healthz" not in r.path
    )


def test_schedule_creates_a_recurring_run_with_a_budget(
    kfp_api: KfpApiStub, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["schedule", str(_EXAMPLE), "--host", kfp_api.url, "--cron", "0 2 * * *", "--trials-per-run", "6"]
    )
    assert code == 0
    assert "recurring run recurring-1 created (cron '0 2 * * *', 6 trials per run" in capsys.readouterr().out
    [recurring] = kfp_api.posted("/apis/v2beta1/recurringruns")
    assert recurring["trigger"]["cron_schedule"]["cron"] == "0 0 2 * * *"
    assert int(recurring["max_concurrency"]) == 1 and recurring["no_catchup"] is True
    assert recurring["mode"] == "ENABLE" and recurring["experiment_id"] == "exp-1"
    settings = _check_pipeline_spec(recurring["pipeline_spec"])
    assert settings.run_budget == 6
    rounds = [t for t in recurring["pipeline_spec"]["root"]["dag"]["tasks"] if t.startswith("suggest")]
    assert len(rounds) == 2  # 6 trials, 3 at a time


def test_schedule_every_interval(kfp_api: KfpApiStub) -> None:
    assert (
        main(["schedule", str(_EXAMPLE), "--host", kfp_api.url, "--every", "6h", "--trials-per-run", "3"])
        == 0
    )
    [recurring] = kfp_api.posted("/apis/v2beta1/recurringruns")
    assert int(recurring["trigger"]["periodic_schedule"]["interval_second"]) == 6 * 3600


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "0 2 * *"], "--cron: must have 5 fields (or 6 with seconds), but got '0 2 * *'"),
        (["--every", "soon"], "--every: must be a positive duration like 30m, 6h or 1d, but got 'soon'"),
        (["--every", "1d", "--trials-per-run", "0"], "--trials-per-run: must be at least 1, but got 0"),
    ],
    ids=["bad-cron", "bad-interval", "no-budget"],
)
def test_schedule_mistakes_are_one_line(
    kfp_api: KfpApiStub, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    argv = ["schedule", str(_EXAMPLE), "--host", kfp_api.url, *args]
    if "--trials-per-run" not in args:
        argv += ["--trials-per-run", "3"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == message + "\n"
    assert kfp_api.posted("/apis/v2beta1/experiments") == []  # refused before the cluster is contacted


def test_a_refused_token_is_one_line(kfp_api: KfpApiStub, capsys: pytest.CaptureFixture[str]) -> None:
    kfp_api.token = "right"
    assert main(["submit", str(_EXAMPLE), "--host", kfp_api.url, "--token", "wrong"]) == 2
    err = capsys.readouterr().err
    assert f"the KFP API at {kfp_api.url} must accept the request, but it answered: HTTP 401" in err
    assert err.count("\n") == 1


def test_a_failing_cluster_exits_1_not_2(kfp_api: KfpApiStub, capsys: pytest.CaptureFixture[str]) -> None:
    """2 is for the user's input; a KFP API that fails a valid request is not that."""
    kfp_api.failing = "/apis/v2beta1/runs"
    assert main(["submit", str(_EXAMPLE), "--host", kfp_api.url]) == 1
    err = capsys.readouterr().err
    assert f"the KFP API at {kfp_api.url} must accept the request, but it answered: HTTP 500" in err
    assert err.count("\n") == 1


def test_duration_and_cron_helpers() -> None:
    assert every_seconds("45") == 45 and every_seconds("2w") == 2 * 604800
    assert six_field_cron("*/5 0 2 * * *") == "*/5 0 2 * * *"
    with pytest.raises(HpoKfpError):
        every_seconds("0h")


def test_a_scheduled_run_adds_its_budget_and_stops(tmp_path: Path) -> None:
    """What each scheduled run does: continue from the store, add N trials, stop as RunBudgetReached."""
    import json

    from hpo_kfp.history import History
    from hpo_kfp.steps import suggest_step

    document = base_spec()  # parallelTrialCount 2, maxTrialCount 8
    settings = StepSettings(run_budget=3).to_json()
    spec = yaml.safe_dump(document)
    items = suggest_step(spec, None, str(tmp_path / "h.json"), settings)
    assert len(items) == 2
    history = History.from_json((tmp_path / "h.json").read_text())
    assert history.run_limit == 3
    from dataclasses import replace

    history = history.upsert(replace(t, status="Succeeded", values=(1.0,)) for t in history.trials)
    (tmp_path / "h2.json").write_text(history.to_json())
    assert len(suggest_step(spec, str(tmp_path / "h2.json"), str(tmp_path / "h3.json"), settings)) == 1
    third = History.from_json((tmp_path / "h3.json").read_text())
    done = third.upsert(replace(t, status="Succeeded", values=(1.0,)) for t in third.trials)
    from hpo_kfp.decide import decide
    from hpo_kfp.spec import parse_experiment

    decision = decide(parse_experiment(document), done)
    assert (decision.done, decision.status, decision.reason) == (True, "Running", "RunBudgetReached")
    assert json.loads(items[0])["name"] == "demo-0000"
