"""submit and schedule against a stub of the KFP REST API (no real cluster was used)."""

from __future__ import annotations

from datetime import datetime, timedelta
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
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"sklearn-digits: run run-1 started: {kfp_api.url}/#/runs/details/run-1"
    assert out[1].startswith("sklearn-digits: asynchronous lanes, every trial in one run")
    assert len(out) == 2 and kfp_api.posted("/apis/v2beta1/recurringruns") == []  # one run holds it
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


def test_compile_sets_the_runners_timings_in_the_pipeline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "p.yaml"
    timings = ["--trial-deadline", "600", "--unschedulable-seconds", "90", "--start-grace", "30"]
    assert main(["compile", str(_EXAMPLE), "-o", str(out), *timings]) == 0
    settings = _check_pipeline_spec(yaml.safe_load(out.read_text()))
    assert (
        settings.trial_deadline_seconds,
        settings.unschedulable_seconds,
        settings.start_grace_seconds,
    ) == (
        600,
        90,
        30,
    )
    capsys.readouterr()
    assert main(["compile", str(_EXAMPLE), "-o", str(out), "--start-grace", "-1"]) == 2
    assert capsys.readouterr().err == "--start-grace: must be 0 (the default) or more seconds, but got -1\n"


def test_submit_sets_the_runners_timings_and_they_reach_the_kubernetes_runner(kfp_api: KfpApiStub) -> None:
    from hpo_kfp.runners.kubernetes import KubernetesRunner

    timings = ["--trial-deadline", "7200", "--unschedulable-seconds", "900", "--start-grace", "120"]
    assert main(["submit", str(_EXAMPLE), "--host", kfp_api.url, *timings]) == 0
    [run] = kfp_api.posted("/apis/v2beta1/runs")
    settings = _check_pipeline_spec(run["pipeline_spec"])
    assert (
        settings.trial_deadline_seconds,
        settings.unschedulable_seconds,
        settings.start_grace_seconds,
    ) == (
        7200,
        900,
        120,
    )
    runner = settings.trial_runner()
    assert isinstance(runner, KubernetesRunner)
    made = runner._settings
    assert (made.deadline_seconds, made.unschedulable_seconds, made.start_grace_seconds) == (7200, 900, 120)
    # Unset, each is the runner's own default.
    default = StepSettings(runner="kubernetes").trial_runner()._settings  # type: ignore[attr-defined]
    assert (default.deadline_seconds, default.unschedulable_seconds, default.start_grace_seconds) == (
        None,
        300,
        60,
    )


def test_a_negative_timing_is_one_line(kfp_api: KfpApiStub, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["submit", str(_EXAMPLE), "--host", kfp_api.url, "--start-grace", "-5"]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("--start-grace: must be 0 (the default) or more seconds, but got -5")
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
    assert "start" in recurring["pipeline_spec"]["root"]["dag"]["tasks"]  # asynchronous lanes


@pytest.mark.parametrize(
    ("timing", "until", "field", "end"),
    [
        (["--every", "6h"], "2099-01-31", "periodic_schedule", "2099-01-31T23:59:59Z"),
        (["--cron", "0 2 * * *"], "2099-01-31T18:30:00+02:00", "cron_schedule", "2099-01-31T16:30:00Z"),
    ],
    ids=["every-until-a-date", "cron-until-a-time"],
)
def test_schedule_takes_an_end(
    kfp_api: KfpApiStub,
    capsys: pytest.CaptureFixture[str],
    timing: list[str],
    until: str,
    field: str,
    end: str,
) -> None:
    """A recurring run of a done experiment still starts runs: an end stops it by itself."""
    command = ["schedule", str(_EXAMPLE), "--host", kfp_api.url, *timing, "--trials-per-run", "3"]
    assert main([*command, "--until", until]) == 0
    assert f"until {end}" in capsys.readouterr().out
    [recurring] = kfp_api.posted("/apis/v2beta1/recurringruns")
    assert recurring["trigger"][field]["end_time"] == end


def test_schedule_ends_after_a_number_of_runs(
    kfp_api: KfpApiStub, capsys: pytest.CaptureFixture[str]
) -> None:
    """KFP starts a periodic run at start + k * interval while that is not past the end
    (periodic_schedule.go): the end half an interval after the third run lets three start."""
    command = ["schedule", str(_EXAMPLE), "--host", kfp_api.url, "--every", "6h", "--trials-per-run", "3"]
    assert main([*command, "--runs", "3"]) == 0
    assert "every 6h, 3 runs" in capsys.readouterr().out
    [recurring] = kfp_api.posted("/apis/v2beta1/recurringruns")
    periodic = recurring["trigger"]["periodic_schedule"]
    start, end = (
        datetime.fromisoformat(periodic[k].replace("Z", "+00:00")) for k in ("start_time", "end_time")
    )
    interval = timedelta(seconds=int(periodic["interval_second"]))
    assert interval == timedelta(hours=6)
    runs = [start + k * interval for k in range(1, 10) if start + k * interval <= end]
    assert len(runs) == 3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["--cron", "0 2 * * *", "--runs", "3"],
            "--runs: needs --every (the runs of a cron schedule are not evenly spaced: end it with --until)",
        ),
        (["--every", "6h", "--runs", "0"], "--runs: must be at least 1, but got 0"),
    ],
    ids=["cron", "zero"],
)
def test_a_bad_number_of_runs_is_one_line_before_the_cluster_is_asked(
    kfp_api: KfpApiStub, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    command = ["schedule", str(_EXAMPLE), "--host", kfp_api.url, "--trials-per-run", "3", *options]
    assert main(command) == 2
    assert capsys.readouterr().err == message + "\n"
    assert kfp_api.requests == []


@pytest.mark.parametrize(
    ("until", "message"),
    [
        (
            "next week",
            "--until: must be an RFC 3339 time (2027-01-31T18:00:00Z) or a date (2027-01-31), "
            "but got 'next week'",
        ),
        ("2001-01-01", "--until: must be in the future, but got '2001-01-01' (2001-01-01T23:59:59Z)"),
    ],
    ids=["malformed", "past"],
)
def test_a_bad_end_is_one_line_before_the_cluster_is_asked(
    kfp_api: KfpApiStub, capsys: pytest.CaptureFixture[str], until: str, message: str
) -> None:
    command = ["schedule", str(_EXAMPLE), "--host", kfp_api.url, "--every", "6h", "--trials-per-run", "3"]
    assert main([*command, "--until", until]) == 2
    assert capsys.readouterr().err == message + "\n"
    assert kfp_api.requests == []


@pytest.mark.slow
def test_submit_starts_one_run_whatever_the_experiment_size_and_no_recurring_run(
    kfp_api: KfpApiStub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 26: lane tasks hold any number of trials; submit leaves no follow-on runs behind."""
    document = yaml.safe_load(_EXAMPLE.read_text())
    document["spec"]["maxTrialCount"] = 10_000
    big = tmp_path / "big.yaml"
    big.write_text(yaml.safe_dump(document))
    assert main(["submit", str(big), "--host", kfp_api.url]) == 0
    out = capsys.readouterr().out
    [run] = kfp_api.posted("/apis/v2beta1/runs")
    assert _check_pipeline_spec(run["pipeline_spec"]).run_budget == 0 and "every trial in one run" in out
    assert kfp_api.posted("/apis/v2beta1/recurringruns") == [] and "recurring" not in out
    with pytest.raises(SystemExit) as stopped:
        main(["submit", str(big), "--host", kfp_api.url, "--continue-every", "15m"])
    assert stopped.value.code == 2
    assert "unrecognized arguments: --continue-every" in capsys.readouterr().err


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


@pytest.mark.parametrize(
    ("command", "version", "needed"),
    [
        (["submit"], "2.5.0", "2.14"),
        (["schedule", "--every", "1d", "--trials-per-run", "3"], "2.13.1", "2.14"),
    ],
    ids=["submit-on-kubeflow-1.10", "schedule-on-2.13"],
)
def test_an_older_backend_is_refused_in_one_line_before_anything_starts(
    kfp_api: KfpApiStub, capsys: pytest.CaptureFixture[str], command: list[str], version: str, needed: str
) -> None:
    kfp_api.version = version
    assert main([command[0], str(_EXAMPLE), "--host", kfp_api.url, *command[1:]]) == 2
    err = capsys.readouterr().err
    assert err.endswith(
        f": the KFP backend at {kfp_api.url} must be {needed} or newer to run this pipeline (dsl.Collected "
        f"of parameters (a ParallelFor's outputs gathered into a list)), but it is {version}\n"
    )
    assert err.count("\n") == 1
    assert {r.path for r in kfp_api.requests} == {"/apis/v2beta1/healthz"}  # the version, nothing else


@pytest.mark.parametrize("version", ["2.14.0", None], ids=["2.14", "no-tag"])
def test_a_new_enough_backend_or_one_without_a_tag_gets_the_run(
    kfp_api: KfpApiStub, version: str | None
) -> None:
    kfp_api.version = version
    assert main(["submit", str(_EXAMPLE), "--host", kfp_api.url]) == 0
    assert len(kfp_api.posted("/apis/v2beta1/runs")) == 1


def _kube_config(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "real", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "real",
            }
        )
    )
    return path


@pytest.mark.parametrize(
    "command",
    [["submit"], ["schedule", "--cron", "0 2 * * *", "--trials-per-run", "3"], ["sweep", "--all"]],
    ids=["submit", "schedule", "sweep"],
)
def test_an_unknown_kube_context_is_one_line_naming_it(
    kfp_api: KfpApiStub,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    command: list[str],
) -> None:
    config = _kube_config(tmp_path, kfp_api.url)
    monkeypatch.setenv("KUBECONFIG", str(config))
    assert main([command[0], str(_EXAMPLE), "--kube-context", "prod", *command[1:]]) == 2
    err = capsys.readouterr().err
    assert err.endswith(
        f"--kube-context: must name a context of the kube config {config} (real), but got 'prod'\n"
    )
    assert err.count("\n") == 1 and "Traceback" not in err
    assert kfp_api.requests == []


def test_a_kube_context_without_a_kube_config_is_one_line_naming_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    assert main(["submit", str(_EXAMPLE), "--kube-context", "prod"]) == 2
    err = capsys.readouterr().err
    assert (
        f"--kube-context: 'prod' must be a context of a readable kube config, but {tmp_path / 'missing'}"
        in err
    )
    assert err.count("\n") == 1


def test_generic_pipeline_is_compiled_for_any_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hpo_kfp.pipeline.publish import GENERIC_PIPELINE, targets

    output = tmp_path / "generic.yaml"
    assert main(["generic-pipeline", "-o", str(output), "--image", "registry.example/hpo-kfp:0.2.0"]) == 0
    assert capsys.readouterr().out.startswith(
        f"{output}: the generic pipeline, every step in registry.example/"
    )
    pipeline_spec = next(yaml.safe_load_all(output.read_text()))
    executors = pipeline_spec["deploymentSpec"]["executors"].values()
    assert {e["container"]["image"] for e in executors} == {"registry.example/hpo-kfp:0.2.0"}
    # Otherwise the very pipeline the repository publishes.
    targets()[GENERIC_PIPELINE](tmp_path / "published.yaml")
    published = (tmp_path / "published.yaml").read_text()
    assert output.read_text().replace("registry.example/hpo-kfp:0.2.0", "hpo-kfp:0.1.0") == published


def test_generic_pipeline_refuses_a_malformed_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["generic-pipeline", "-o", str(tmp_path / "g.yaml"), "--image", "my image"]) == 2
    assert (
        capsys.readouterr().err == "--image: must be an image reference without spaces, but got 'my image'\n"
    )
    assert not (tmp_path / "g.yaml").exists()
