"""End to end: a real experiment through the compiled pipeline on kfp.local, via the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from hpo_kfp.tracking import open_tracker, resolve_target

_HERE = Path(__file__).parent


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hpo_kfp", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def scripted_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One real run of the scripted experiment, shared by the tests below."""
    workdir = tmp_path_factory.mktemp("scripted")
    result = _cli(
        "run", str(_HERE / "scripted.yaml"), "--local", "--json", "--workdir", str(workdir), cwd=workdir
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return workdir, result


def test_parallel_trials_a_failure_and_an_early_goal(
    scripted_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    tmp_path, result = scripted_run
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    # Round 1: trials 0-2, trial 1 crashes. Round 2: trials 3-5, trial 4 reports nothing and
    # trial 5 meets the goal; rounds 3 and 4 then run as no-ops.
    assert outcome["status"] == "Succeeded" and outcome["reason"] == "GoalReached"
    assert outcome["trials"] == {"succeeded": 4, "failed": 1, "metricsUnavailable": 1}
    assert outcome["best"]["name"] == "scripted-0005" and outcome["best"]["objective"] == 5.0
    assert 0 <= outcome["best"]["parameters"]["x"] <= 1

    history = open_tracker(resolve_target(str(tmp_path / "mlmd.sqlite"))).load_history("scripted")
    assert [t.status for t in history.trials] == [
        "Succeeded",
        "Failed",
        "Succeeded",
        "Succeeded",
        "MetricsUnavailable",
        "Succeeded",
    ]
    assert history.trials[1].reason == "exit code 3"
    # The three trials of round 2 ran at the same time.
    spans = [
        (datetime.fromisoformat(t.started or ""), datetime.fromisoformat(t.finished or ""))
        for t in history.trials[3:6]
    ]
    assert max(start for start, _ in spans) < min(end for _, end in spans)
    # The run's log holds the failing trial's output.
    logs = list(tmp_path.glob("scripted/*/artifacts/**/log"))
    assert any("simulated crash" in path.read_text() for path in logs)
    assert "round 2/4" in result.stdout


def test_the_run_leaves_a_complete_metadata_graph(
    scripted_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    from ml_metadata.proto import metadata_store_pb2 as pb

    from hpo_kfp.tracking.mlmd import MlmdTracker

    tmp_path, _ = scripted_run
    tracker = open_tracker(resolve_target(str(tmp_path / "mlmd.sqlite")))
    assert isinstance(tracker, MlmdTracker)
    store = tracker._store
    [experiment] = store.get_contexts_by_type("odh.HPOExperiment")
    assert experiment.properties["status"].string_value == "Succeeded"
    assert experiment.properties["reason"].string_value == "GoalReached"
    assert experiment.properties["best_trial"].string_value == "scripted-0005"
    trials = store.get_contexts_by_type("odh.HPOTrial")
    assert sorted(c.name for c in trials) == [f"scripted-{i:04d}" for i in range(6)]
    assert {c.id for c in store.get_children_contexts_by_context(experiment.id)} == {c.id for c in trials}
    executions = store.get_executions_by_type("odh.Train")
    states = {e.properties["trial"].string_value: e.last_known_state for e in executions}
    assert states["scripted-0001"] == pb.Execution.FAILED and states["scripted-0004"] == pb.Execution.FAILED
    assert sum(s == pb.Execution.COMPLETE for s in states.values()) == 4
    assert len(store.get_artifacts_by_type("odh.HPOConfig")) == 6
    assert len(store.get_artifacts_by_type("odh.Metrics")) == 6
    events = store.get_events_by_execution_ids([e.id for e in executions])
    assert sorted(e.type for e in events) == [pb.Event.INPUT] * 6 + [pb.Event.OUTPUT] * 6
    for context in trials:
        assert len(store.get_executions_by_context(context.id)) == 1
        assert len(store.get_artifacts_by_context(context.id)) == 2


_CHROMIUM = shutil.which("chromium")


@pytest.mark.skipif(_CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_the_html_report_renders_with_its_plots_offline(
    scripted_run: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    import numpy
    from PIL import Image

    workdir, _ = scripted_run
    [page] = list(workdir.glob("scripted/*/artifacts/**/report/page"))
    text = page.read_text()
    assert len(text.encode()) < 1_000_000
    assert "http://" not in text and "https://" not in text  # nothing to fetch: air-gapped clusters
    assert (
        text.count("data:image/png;base64,") == 2
    )  # history, parallel coordinates (one parameter: no importance)
    html_file = tmp_path / "report.html"
    html_file.write_text(text)
    shot = tmp_path / "report.png"
    result = subprocess.run(
        [
            str(_CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1400,2000",
            "--enable-logging=stderr",
            "--log-level=0",
            f"--screenshot={shot}",
            html_file.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shot.exists(), result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    pixels = numpy.asarray(Image.open(shot).convert("RGB")).astype(int)
    colored = int(((pixels.max(axis=2) - pixels.min(axis=2)) > 60).sum())
    assert colored > 1_000  # the plots' lines and points drew: text and tables alone are grey (0)


def test_type_prefix_names_the_metadata_types(tmp_path: Path) -> None:
    from hpo_kfp.tracking.mlmd import MlmdTracker

    document = yaml.safe_load((_HERE / "scripted.yaml").read_text())
    document["spec"]["maxTrialCount"] = 2
    document["spec"]["parallelTrialCount"] = 2
    document["spec"]["maxFailedTrialCount"] = 2
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump(document))
    shutil.copy(_HERE / "scripted_trial.py", tmp_path)
    store = str(tmp_path / "mlmd.sqlite")
    run = _cli(
        "run", "experiment.yaml", "--local", "--mlmd", store, "--mlmd-type-prefix", "acme.", cwd=tmp_path
    )
    assert run.returncode == 0, run.stdout + run.stderr  # MaxTrialsReached (trial 1 crashes)

    mlmd = MlmdTracker("sqlite://" + store, prefix="acme.")._store
    names = {t.name for t in mlmd.get_context_types()} | {t.name for t in mlmd.get_artifact_types()}
    assert {"acme.HPOExperiment", "acme.HPOTrial", "acme.HPOConfig", "acme.Metrics"} <= names
    assert not any(name.startswith("odh.") for name in names)
    assert len(mlmd.get_contexts_by_type("acme.HPOTrial")) == 2

    # Reading needs the same prefix: from the flag or from the environment.
    assert _cli("report", "scripted", "--mlmd", store, cwd=tmp_path).returncode == 2
    shown = _cli("report", "scripted", "--mlmd", store, "--mlmd-type-prefix", "acme.", cwd=tmp_path)
    assert shown.returncode == 0 and "scripted-0001" in shown.stdout, shown.stderr
    environment = {**os.environ, "HPO_KFP_MLMD_TYPE_PREFIX": "acme."}
    listed = subprocess.run(
        [sys.executable, "-m", "hpo_kfp", "experiments", "--mlmd", store],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert listed.returncode == 0 and "scripted" in listed.stdout, listed.stderr

    bad = _cli("report", "scripted", "--mlmd", store, "--mlmd-type-prefix", "a b", cwd=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == [
        "--mlmd-type-prefix: the metadata type prefix must be letters, digits, '.', '_' or '-', but got 'a b'"
    ]
