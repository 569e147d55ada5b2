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

from hpo_kfp.claim import claim
from hpo_kfp.store import ExperimentKey, open_store
from tests.reports.test_html import chart_data_of

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
    # Three lanes: trial 1 crashes, trial 4 reports nothing, trial 5 is the first to meet the
    # goal; trials another lane started before trial 5 ended (6, 7) run to their end.
    assert outcome["status"] == "Succeeded" and outcome["reason"] == "GoalReached"
    trials = outcome["trials"]
    assert 6 <= trials["total"] <= 8
    assert (trials["failed"], trials["metricsUnavailable"], trials["active"], trials["imported"]) == (
        1,
        1,
        0,
        0,
    )
    assert trials["succeeded"] == trials["total"] - 2
    last = trials["total"] - 1
    assert outcome["best"]["name"] == f"scripted-{last:04d}" and outcome["best"]["objective"] == 10.0 - last
    assert 0 <= outcome["best"]["parameters"]["x"] <= 1

    history = open_store(f"sqlite:///{tmp_path / 'hpo-kfp.sqlite'}").history(ExperimentKey("", "scripted"))
    assert [t.status for t in history.trials][:6] == [
        "Succeeded",
        "Failed",
        "Succeeded",
        "Succeeded",
        "MetricsUnavailable",
        "Succeeded",
    ]
    assert history.trials[1].reason == "exit code 3"
    # The first three trials ran at the same time, one per lane.
    spans = [
        (datetime.fromisoformat(t.started or ""), datetime.fromisoformat(t.finished or ""))
        for t in history.trials[:3]
    ]
    assert max(start for start, _ in spans) < min(end for _, end in spans)
    # The run's log holds the failing trial's output.
    logs = list(tmp_path.glob("scripted/*/artifacts/**/log"))
    assert any("simulated crash" in path.read_text() for path in logs)
    assert "3 asynchronous lanes" in result.stdout and "trials finished" in result.stdout


_CHROMIUM = shutil.which("chromium")


@pytest.mark.skipif(_CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_the_html_report_renders_with_its_charts_offline(
    scripted_run: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    import numpy
    from PIL import Image

    workdir, _ = scripted_run
    [page] = list(workdir.glob("scripted/*/report.html"))  # the command's page, beside the logs
    text = page.read_text()
    assert len(text.encode()) < 1_000_000
    assert "http://" not in text and "https://" not in text  # nothing to fetch: air-gapped clusters
    assert len(chart_data_of(text)["trials"]) >= 1 and 'id="echarts-gz"' in text
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
            "--virtual-time-budget=30000",  # the charts draw once the page has unpacked ECharts
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


def test_an_ml_metadata_store_gets_the_odh_graph_under_a_type_prefix(tmp_path: Path) -> None:
    """The same run with ``--store mlmd+sqlite:///...``: ML Metadata with the ODH types."""
    pytest.importorskip("ml_metadata", reason="the mlmd extra is not installed")
    from ml_metadata.proto import metadata_store_pb2 as pb

    from hpo_kfp.store.mlmd import MlmdStore

    document = yaml.safe_load((_HERE / "scripted.yaml").read_text())
    document["spec"]["maxTrialCount"] = 3
    document["spec"]["parallelTrialCount"] = 3
    document["spec"]["maxFailedTrialCount"] = 2
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump(document))
    shutil.copy(_HERE / "scripted_trial.py", tmp_path)
    url = f"mlmd+sqlite:///{tmp_path / 'mlmd.sqlite'}"
    run = _cli(
        "run", "experiment.yaml", "--local", "--store", url, "--mlmd-type-prefix", "acme.", cwd=tmp_path
    )
    assert run.returncode == 0, run.stdout + run.stderr  # MaxTrialsReached (trial 1 crashes)

    mlmd = MlmdStore(url, prefix="acme.")._store
    names = {t.name for t in mlmd.get_context_types()} | {t.name for t in mlmd.get_artifact_types()}
    assert {"acme.HPOExperiment", "acme.HPOTrial", "acme.HPOConfig", "acme.Metrics"} <= names
    assert not any(name.startswith("odh.") for name in names)
    [experiment] = mlmd.get_contexts_by_type("acme.HPOExperiment")
    assert experiment.properties["status"].string_value == "Succeeded"
    assert experiment.properties["reason"].string_value == "MaxTrialsReached"
    trials = mlmd.get_contexts_by_type("acme.HPOTrial")
    assert len(trials) == 3
    assert {c.id for c in mlmd.get_children_contexts_by_context(experiment.id)} == {c.id for c in trials}
    executions = mlmd.get_executions_by_type("acme.Train")
    states = sorted(e.last_known_state for e in executions)
    assert states == sorted([pb.Execution.COMPLETE, pb.Execution.COMPLETE, pb.Execution.FAILED])

    # Reading needs the same prefix: from the flag or from the environment.
    assert _cli("report", "scripted", "--store", url, cwd=tmp_path).returncode == 2
    shown = _cli("report", "scripted", "--store", url, "--mlmd-type-prefix", "acme.", cwd=tmp_path)
    assert shown.returncode == 0 and "scripted-0001" in shown.stdout, shown.stderr
    environment = {**os.environ, "HPO_KFP_MLMD_TYPE_PREFIX": "acme."}
    listed = subprocess.run(
        [sys.executable, "-m", "hpo_kfp", "experiments", "--store", url],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert listed.returncode == 0 and "scripted" in listed.stdout, listed.stderr

    bad = _cli("report", "scripted", "--store", url, "--mlmd-type-prefix", "a b", cwd=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == [
        "--mlmd-type-prefix: the metadata type prefix must be letters, digits, '.', '_' or '-', but got 'a b'"
    ]


def test_a_second_run_of_a_running_experiment_is_refused(tmp_path: Path) -> None:
    """One local run of an experiment at a time per run folder: the second says who runs it."""
    from hpo_kfp.pipeline.launch import prepare_local_run
    from hpo_kfp.spec import load_experiment

    experiment = load_experiment(_HERE / "scripted.yaml")
    holder = prepare_local_run(
        experiment, _HERE / "scripted.yaml", workdir=tmp_path, store=f"sqlite:///{tmp_path / 's.sqlite'}"
    )
    second = _cli("run", str(_HERE / "scripted.yaml"), "--local", "--workdir", str(tmp_path), cwd=tmp_path)
    assert second.returncode == 1
    [line] = second.stderr.strip().splitlines()
    assert line.startswith(
        f"{_HERE / 'scripted.yaml'}: experiment scripted: another local run of it must not be running, "
        f"but pid {os.getpid()} since "
    )
    assert line.endswith(
        "is; wait for it to end or stop it (two runs of one experiment from different "
        "run folders share its budget instead)"
    )
    assert list(tmp_path.glob("scripted/*")) == [holder.directory]  # the refused run made no run folder
    holder.lock.close()  # as when the first run's process ends
    again = prepare_local_run(
        experiment, _HERE / "scripted.yaml", workdir=tmp_path, store=f"sqlite:///{tmp_path / 's.sqlite'}"
    )
    assert again.lock is not None


def test_a_run_from_another_folder_keeps_the_trials_a_live_run_holds(tmp_path: Path) -> None:
    """Runs from two folders share one store's budget: the second takes back only what its
    own folder's killed run left (and, at its start step, trials whose lease ran out), never
    a live run's."""
    from hpo_kfp.pipeline.launch import local_claimer, prepare_local_run
    from hpo_kfp.spec import load_experiment
    from hpo_kfp.store import ExperimentKey, open_store

    experiment = load_experiment(_HERE / "scripted.yaml")
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    store = open_store(url)
    key = ExperimentKey("", "scripted")
    store.open_experiment(experiment, key)
    claim(store, experiment, key, 2, owner=local_claimer(tmp_path / "a", key) + "run-1")
    second = prepare_local_run(experiment, _HERE / "scripted.yaml", workdir=tmp_path / "b", store=url)
    assert second.released == ()
    assert store.experiments()[0].stale == 0
    # The live run's claims survive the second run's first claim too.
    assert claim(store, experiment, key, 1, owner=second.settings.owner("run-2")).trials[0].number == 2
    second.lock.close()


def test_an_owner_fits_the_store_however_deep_the_run_folder(tmp_path: Path) -> None:
    """PostgreSQL and MariaDB refuse an owner longer than its 128-character column."""
    from hpo_kfp.pipeline.launch import local_claimer
    from hpo_kfp.steps.settings import StepSettings
    from hpo_kfp.store import ExperimentKey

    deep = tmp_path.joinpath(*["a-rather-long-folder-name"] * 12)
    claimer = local_claimer(deep, ExperimentKey("a-namespace", "an-experiment-" + "x" * 40))
    owner = StepSettings(claimer=claimer).owner("8f14e45f-ceea-467f-a0e6-0123456789ab")
    assert len(owner) <= 128 and owner.startswith(claimer)
    assert local_claimer(deep, ExperimentKey("", "other")) != claimer


def test_restart_starts_the_experiment_over(tmp_path: Path) -> None:
    from hpo_kfp.pipeline.launch import local_claimer, prepare_local_run
    from hpo_kfp.spec import load_experiment
    from hpo_kfp.store import ExperimentKey, open_store

    experiment = load_experiment(_HERE / "scripted.yaml")
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    store = open_store(url)
    key = ExperimentKey("", "scripted")
    store.open_experiment(experiment, key)
    claim(store, experiment, key, 2, owner=local_claimer(tmp_path, key) + "an-earlier-run")
    kept = prepare_local_run(experiment, _HERE / "scripted.yaml", workdir=tmp_path, store=url)
    assert len(kept.prior.trials) == 2 and len(kept.released) == 2
    kept.lock.close()
    fresh = prepare_local_run(experiment, _HERE / "scripted.yaml", workdir=tmp_path, store=url, restart=True)
    assert fresh.prior.trials == () and fresh.released == ()
    assert store.history(key).trials == () and store.experiments()[0].trials == 0
