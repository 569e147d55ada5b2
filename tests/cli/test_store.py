"""``report``, ``experiments`` and ``import`` against a real SQLite-backed store."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpo_kfp.claim import claim
from hpo_kfp.cli import main
from hpo_kfp.decide import decide
from hpo_kfp.history import History, TrialRecord
from hpo_kfp.spec import load_experiment, parse_experiment
from hpo_kfp.store import ExperimentKey, Store, open_store
from hpo_kfp.suggest import suggest
from tests.conftest import base_spec, wide_spec
from tests.reports.test_html import chart_data_of


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(base_spec()))  # minimize loss; lr [0.01, 0.05], layers [2, 5], optimizer
    return path


def _store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.sqlite'}"


def test_import_csv_then_report_ranks_and_counts(
    tmp_path: Path, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trials = tmp_path / "prior.csv"
    trials.write_text(
        "lr,layers,optimizer,loss,accuracy,status\n"
        "0.02,3,adam,0.40,0.8,\n"
        "0.03,4,sgd,0.20,0.9,\n"
        "0.04,2,ftrl,,,Failed\n"
    )
    assert main(["import", str(spec_file), str(trials), "--store", _store(tmp_path)]) == 0
    assert "imported 3 trials" in capsys.readouterr().out
    assert main(["report", "demo", "--store", _store(tmp_path), "--json"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == [
        "trial",
        "status",
        "lr",
        "layers",
        "optimizer",
        "loss",
        "accuracy",
        "seconds",
        "reason",
    ]
    assert out[1].split()[:2] == ["demo-0001", "*"]  # best first: loss 0.20
    assert out[3].split()[:3] == ["demo-0002", "*", "Failed"]
    document = json.loads(out[-1])
    assert document["best"]["name"] == "demo-0001" and document["best"]["parameters"]["layers"] == 4
    assert document["bestImported"] is True
    # Imported trials spend none of the budget.
    assert document["trials"] == {
        "succeeded": 0,
        "earlyStopped": 0,
        "failed": 0,
        "metricsUnavailable": 0,
        "active": 0,
        "total": 0,
        "imported": 3,
    }
    assert [(r["name"], r["status"], r["imported"]) for r in document["results"]] == [
        ("demo-0001", "Succeeded", True),
        ("demo-0000", "Succeeded", True),
        ("demo-0002", "Failed", True),
    ]
    assert "0 trials: 0 succeeded, 0 early-stopped, 0 failed, 0 without metrics (and 3 imported)" in out[-3]
    assert out[-2].startswith("best trial demo-0001 (imported prior data): loss=0.2")


def test_imported_trials_feed_suggest(tmp_path: Path, spec_file: Path) -> None:
    trials = tmp_path / "prior.json"
    trials.write_text(
        json.dumps([{"parameters": {"lr": 0.02, "layers": 3, "optimizer": "adam"}, "metrics": {"loss": 0.5}}])
    )
    assert main(["import", str(spec_file), str(trials), "--store", _store(tmp_path)]) == 0
    history = open_store(_store(tmp_path)).history(ExperimentKey("kubeflow", "demo"))
    assert [(t.origin, t.status, t.values) for t in history.trials] == [("import", "Succeeded", (0.5,))]
    created, _ = suggest(parse_experiment(base_spec()), history, 2)
    assert [t.name for t in created] == ["demo-0001", "demo-0002"]


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        (
            "lr,layers,optimizer,loss\n0.5,3,adam,0.1\n",
            ".csv",
            r"row 2: lr: must be a number within \[0.01, 0.05\], but got '0.5'",
        ),
        (
            "lr,layers,optimizer,loss\n0.02,3.5,adam,0.1\n",
            ".csv",
            r"row 2: layers: must be a whole number, but got '3.5'",
        ),
        (
            "lr,layers,optimizer,loss\n0.02,3,rmsprop,0.1\n",
            ".csv",
            r"row 2: optimizer: must be one of \['sgd', 'adam', 'ftrl'\], but got 'rmsprop'",
        ),
        ("lr,layers,optimizer\n0.02,3,adam\n", ".csv", r"row 2: status: must be one of Succeeded, Failed"),
        (
            "lr,layers,optimizer,loss,f1\n0.02,3,adam,0.1,0.3\n",
            ".csv",
            r"row 2: f1: must be a metric of the experiment \(loss, accuracy\)",
        ),
        (
            '[{"parameters": {"lr": 0.02, "layers": 3}, "metrics": {"loss": 0.1}}]',
            ".json",
            r"trials\[0\]: optimizer: must be given",
        ),
        ("{not json", ".json", r"the file must be JSON"),
        (
            '[{"parameters": {"lr": 0.02, "layers": 3, "optimizer": "adam"}, "metrics": {"loss": "NaN"}}]',
            ".json",
            r"trials\[0\]: loss: must be a finite number",
        ),
        (
            "lr,layers,optimizer,loss\n0.02,3,adam,0.1,0.7,x\n",
            ".csv",
            r"row 2: must have the header's 4 fields, but it has 6$",
        ),
        ("", ".csv", r"the file must hold at least one trial, but it holds none$"),
        ("lr,layers,optimizer,loss\n", ".csv", r"the file must hold at least one trial, but it holds none$"),
        ("[]", ".json", r"the file must hold at least one trial, but it holds none$"),
    ],
    ids=[
        "out-of-range",
        "fractional-int",
        "unknown-choice",
        "no-objective-no-status",
        "unknown-column",
        "missing-parameter",
        "not-json",
        "nan",
        "extra-fields",
        "empty-csv",
        "header-only",
        "empty-json",
    ],
)
def test_bad_prior_data_is_one_line_naming_the_file(
    tmp_path: Path,
    spec_file: Path,
    capsys: pytest.CaptureFixture[str],
    content: str,
    suffix: str,
    message: str,
) -> None:
    trials = tmp_path / f"prior{suffix}"
    trials.write_text(content)
    assert main(["import", str(spec_file), str(trials), "--store", _store(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{trials}: ") and err.count("\n") == 1
    assert re.search(message, err), err
    assert open_store(_store(tmp_path)).history(ExperimentKey("kubeflow", "demo")).trials == ()


def _one_trial(url: str, key: ExperimentKey) -> None:
    """A store at ``url`` whose experiment ``key`` has one trial, succeeded with loss 0.3."""
    store = open_store(url)
    experiment = parse_experiment(base_spec())
    store.open_experiment(experiment, key)
    trial = TrialRecord(
        name="demo-0000",
        number=0,
        parameters={"lr": 0.02, "layers": 3, "optimizer": "sgd"},
        status="Succeeded",
        values=(0.3,),
        metrics={"loss": 0.3},
    )
    store.record(key, trial)
    store.save_decision(key, decide(experiment, History(experiment="demo", trials=(trial,))), {})


def test_experiments_lists_and_report_refuses_unknown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _one_trial(_store(tmp_path), ExperimentKey("kubeflow", "demo"))
    assert main(["experiments", "--store", _store(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("kubeflow/demo  Running  1 trials  best demo-0000 = 0.3")
    assert main(["report", "other", "--store", _store(tmp_path)]) == 2
    assert (
        capsys.readouterr().err == "other: the store must hold this experiment, but it holds: kubeflow/demo\n"
    )


def test_one_name_in_two_namespaces_needs_the_namespace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_store(_store(tmp_path))
    experiment = parse_experiment(base_spec())
    for namespace in ("team-a", "team-b"):
        store.open_experiment(experiment, ExperimentKey(namespace, "demo"))
    assert main(["report", "demo", "--store", _store(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        "--namespace: must say which 'demo' is meant, as namespaces team-a, team-b each hold one, but got nothing\n"
    )
    assert main(["report", "demo", "--namespace", "team-b", "--store", _store(tmp_path)]) == 0
    assert main(["delete", "demo", "--namespace", "team-a", "--store", _store(tmp_path)]) == 0
    assert "team-a/demo: deleted" in capsys.readouterr().out
    assert [s.namespace for s in store.experiments()] == ["team-b"]
    assert main(["report", "demo", "--store", _store(tmp_path)]) == 0  # now the only one


def test_report_without_a_store_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.sqlite"
    assert main(["report", "demo", "--store", f"sqlite:///{missing}"]) == 2
    assert "the store must exist" in capsys.readouterr().err
    assert not missing.exists()


@pytest.mark.parametrize(
    ("store", "message"),
    [
        (
            "mysql://",
            "--store: the store must name a database: mysql://USER@HOST/DATABASE, but got 'mysql://'",
        ),
        (
            "postgresql://hpo@db.example",
            "--store: the store must name a database: postgresql://USER@HOST/DATABASE, but got "
            "'postgresql://hpo@db.example'",
        ),
        (
            "sqlite://relative.sqlite",
            "--store: the store must be sqlite:///PATH (three slashes before a relative path, four "
            "before an absolute one), but got 'sqlite://relative.sqlite'",
        ),
        ("grpc://metadata", "--store: the store must be grpc://HOST:PORT, but got 'grpc://metadata'"),
    ],
    ids=["mysql-nothing", "postgresql-no-database", "sqlite-two-slashes", "grpc-no-port"],
)
def test_a_malformed_store_is_one_line(store: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Each was a traceback of the driver's or SQLAlchemy's (39 to 52 lines)."""
    assert main(["experiments", "--store", store]) == 2
    assert capsys.readouterr().err == message + "\n"


def test_a_folder_is_no_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiments", "--store", f"sqlite:///{tmp_path}"]) == 2
    assert capsys.readouterr().err == f"--store: the store must be a file, but {tmp_path} is a folder\n"


def test_report_writes_the_html_page_and_markdown_summary(
    tmp_path: Path, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trials = tmp_path / "prior.csv"
    trials.write_text("lr,layers,optimizer,loss\n0.02,3,adam,0.40\n0.03,4,sgd,0.20\n0.04,2,ftrl,0.30\n")
    assert main(["import", str(spec_file), str(trials), "--store", _store(tmp_path)]) == 0
    page, summary = tmp_path / "r.html", tmp_path / "r.md"
    assert (
        main(["report", "demo", "--store", _store(tmp_path), "--html", str(page), "--markdown", str(summary)])
        == 0
    )
    assert f"HTML report: {page}" in capsys.readouterr().out
    html = page.read_text()
    assert 'data-trial="demo-0001"' in html
    charts = chart_data_of(html)  # the charts draw the three imported trials
    assert [(t[1], t[4], t[5]) for t in charts["trials"]] == [
        ("demo-0000", [0.4], True),
        ("demo-0001", [0.2], True),
        ("demo-0002", [0.3], True),
    ]
    markdown = summary.read_text()
    assert "Best trial **demo-0001** (imported prior data): loss = **0.2**" in markdown
    assert markdown.splitlines()[-3].startswith("| demo-0001 (imported) | Succeeded | 0.03 | 4 | sgd | 0.2 |")


def test_export_opens_in_optuna_with_the_same_trials_and_best(
    tmp_path: Path, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import optuna

    trials = tmp_path / "prior.csv"
    trials.write_text(
        "lr,layers,optimizer,loss,status\n0.02,3,adam,0.40,\n0.03,4,sgd,0.20,\n0.04,2,ftrl,,Failed\n"
    )
    assert main(["import", str(spec_file), str(trials), "--store", _store(tmp_path)]) == 0
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    assert main(["export", "demo", "--optuna-storage", storage, "--store", _store(tmp_path)]) == 0
    assert "3 trials written to study 'demo'" in capsys.readouterr().out
    study = optuna.load_study(study_name="demo", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "FAIL"]
    assert study.best_value == 0.2
    assert study.best_params == {"lr": 0.03, "layers": 4, "optimizer": "sgd"}
    assert study.best_trial.user_attrs["name"] == "demo-0001"
    assert study.metric_names == ["loss"]
    # A second export refuses to overwrite, unless asked to.
    assert main(["export", "demo", "--optuna-storage", storage, "--store", _store(tmp_path)]) == 2
    assert "already has a study 'demo'" in capsys.readouterr().err
    assert (
        main(["export", "demo", "--optuna-storage", storage, "--store", _store(tmp_path), "--replace"]) == 0
    )
    assert len(optuna.load_study(study_name="demo", storage=storage).trials) == 3
    # Storage URLs it cannot use are one line each.
    for bad in ("not-a-url", f"sqlite:///{tmp_path}/no-such-folder/s.db"):
        assert main(["export", "demo", "--optuna-storage", bad, "--store", _store(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert (
            err.startswith(f"--optuna-storage: must be an Optuna RDB URL, but got {bad!r}")
            and err.count("\n") == 1
        )


def test_imported_metrics_that_are_not_an_object_are_one_line(
    tmp_path: Path, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trials = tmp_path / "prior.json"
    parameters = {"lr": 0.02, "layers": 3, "optimizer": "adam"}
    trials.write_text(json.dumps([{"parameters": parameters, "metrics": [1]}]))
    assert main(["import", str(spec_file), str(trials), "--store", _store(tmp_path)]) == 2
    assert capsys.readouterr().err.endswith("metrics: must be an object of name: value, but got [1]\n")


def test_a_file_that_is_not_a_store_is_refused_and_left_as_it_was(
    tmp_path: Path, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    text = tmp_path / "notes.sqlite"
    text.write_text("not a database\n")
    other = tmp_path / "optuna.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE studies (id INTEGER)")
    before = other.read_bytes()
    for store, reason in ((text, "it is not an SQLite database"), (other, "it is another database")):
        for command in (["report", "demo"], ["experiments"]):
            assert main([*command, "--store", f"sqlite:///{store}"]) == 2
            err = capsys.readouterr().err
            assert err.endswith(
                f"{store}: must be an hpo-kfp store, but {reason} (1 other tables)\n"
                if store == other
                else f"{store}: must be an hpo-kfp store, but {reason}\n"
            )
            assert err.count("\n") == 1
    assert other.read_bytes() == before and text.read_text() == "not a database\n"
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    assert main(["experiments", "--store", f"sqlite:///{empty}"]) == 2
    assert "the store must exist" in capsys.readouterr().err
    assert empty.stat().st_size == 0


@pytest.mark.parametrize(
    ("encoding", "delimiter"),
    [("utf-8-sig", ","), ("utf-8", ";"), ("utf-8-sig", "\t")],
    ids=["excel-bom", "semicolons", "tabs"],
)
def test_a_spreadsheets_csv_imports_once(
    tmp_path: Path, spec_file: Path, capsys: pytest.CaptureFixture[str], encoding: str, delimiter: str
) -> None:
    rows = [
        ["lr", "layers", "optimizer", "loss"],
        ["0.02", "3", "adam", "0.40"],
        ["0.03", "4", "sgd", "0.20"],
    ]
    trials = tmp_path / "prior.csv"
    trials.write_text("\r\n".join(delimiter.join(row) for row in rows) + "\r\n", encoding=encoding)
    assert main(["import", str(spec_file), str(trials), "--store", _store(tmp_path)]) == 0
    assert "imported 2 trials" in capsys.readouterr().out
    assert main(["import", str(spec_file), str(trials), "--store", _store(tmp_path)]) == 0
    assert "imported 0 trials from" in capsys.readouterr().out  # the same file again adds nothing
    history = open_store(_store(tmp_path)).history(ExperimentKey("kubeflow", "demo"))
    assert [(t.parameters["lr"], t.values) for t in history.trials] == [(0.02, (0.4,)), (0.03, (0.2,))]


def test_report_and_export_read_an_experiment_whose_trials_were_a_kfp_component(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """tune() with a KFP component records an experiment with no trialTemplate."""
    document = base_spec()
    del document["spec"]["trialTemplate"]
    experiment = parse_experiment(document, trial_template=False)
    store = open_store(_store(tmp_path))
    key = ExperimentKey("kubeflow", "demo")
    store.open_experiment(experiment, key)
    (trial,), _ = claim(store, experiment, key, 1, owner="run-1")
    store.record(key, replace(trial, status="Succeeded", values=(0.2,), metrics={"loss": 0.2}))
    assert main(["report", "demo", "--store", _store(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["best"]["name"] == "demo-0000"
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    assert main(["export", "demo", "--optuna-storage", storage, "--store", _store(tmp_path)]) == 0
    assert "1 trials written" in capsys.readouterr().out


def test_export_keeps_start_and_end_times_and_the_series_as_intermediate_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import optuna

    experiment = parse_experiment(base_spec())
    store = open_store(_store(tmp_path))
    key = ExperimentKey("kubeflow", "demo")
    store.open_experiment(experiment, key)
    parameters = {"lr": 0.02, "layers": 3, "optimizer": "sgd"}
    for record in (
        TrialRecord(
            name="demo-0000",
            number=0,
            parameters=parameters,
            status="Succeeded",
            values=(0.3,),
            metrics={"loss": 0.3},
            series={"loss": [(None, 0.9), (None, 0.5), (None, 0.3)]},
            started="2026-01-01T12:00:00+00:00",
            finished="2026-01-01T12:00:12.5+00:00",
        ),
        TrialRecord(
            name="demo-0001",
            number=1,
            parameters=parameters,
            status="EarlyStopped",
            series={"loss": [(None, 0.95), (None, 0.8)]},
            reason="best loss=0.8 after 2 steps is worse than the median",
            started="2026-01-01T12:00:13+00:00",
            finished="2026-01-01T12:00:16+00:00",
        ),
    ):
        store.record(key, record)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    assert main(["export", "demo", "--optuna-storage", storage, "--store", _store(tmp_path)]) == 0
    capsys.readouterr()
    done, stopped = optuna.load_study(study_name="demo", storage=storage).trials
    assert done.duration is not None and done.duration.total_seconds() == 12.5
    assert stopped.datetime_start is not None and done.datetime_start is not None
    assert (stopped.datetime_start - done.datetime_start).total_seconds() == 13
    assert done.intermediate_values == {1: 0.9, 2: 0.5, 3: 0.3}
    assert (stopped.state.name, stopped.intermediate_values) == ("PRUNED", {1: 0.95, 2: 0.8})


def test_an_imported_better_trial_is_the_best_that_experiments_lists(
    tmp_path: Path, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``experiments`` read the stored decision, ``report`` the history: they must agree."""
    experiment = load_experiment(spec_file)
    key = ExperimentKey("kubeflow", "demo")
    store = open_store(_store(tmp_path))
    store.open_experiment(experiment, key)
    (trial,), _ = claim(store, experiment, key, 1, owner="run-1")
    store.record(key, replace(trial, status="Succeeded", values=(0.5,), metrics={"loss": 0.5}))
    history = store.history(key)
    store.save_decision(key, decide(experiment, history), history.study_attrs)
    prior = tmp_path / "prior.csv"
    prior.write_text("lr,layers,optimizer,loss\n0.03,4,sgd,0.1\n")
    assert main(["import", str(spec_file), str(prior), "--store", _store(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["experiments", "--store", _store(tmp_path)]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert "best demo-0001 = 0.1" in line and "Running" in line


def test_a_namespace_option_is_a_kubernetes_namespace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "demo", "--namespace", "../../tmp/evil", "--store", _store(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        "--namespace: must be a Kubernetes namespace: lower-case letters, digits and '-', at most 63, "
        "starting and ending with a letter or digit, but got '../../tmp/evil'\n"
    )


def _as_nobody() -> list[str]:
    """The command prefix that runs a program as user ``nobody`` (root can write anything, so a
    read-only store is only read-only to another user); skips where that cannot be done."""
    import os
    import shutil
    import subprocess
    import sys

    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to run a command as another user")
    prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", "import hpo_kfp"], check=False, capture_output=True
    )
    if probe.returncode:
        pytest.skip("user nobody cannot reach this checkout's Python")
    return prefix


def test_report_and_experiments_read_a_store_this_user_cannot_write(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A store in a folder the user cannot write (a shared volume mounted read-only, a
    colleague's results): before, even the reading commands failed ("attempt to write a
    readonly database"); writing ones still refuse in one line."""
    import gc
    import shutil
    import subprocess
    import sys
    import tempfile

    prefix = _as_nobody()
    folder = Path(tempfile.mkdtemp(prefix="hpo-kfp-read-only-"))
    try:
        folder.chmod(0o755)
        url = f"sqlite:///{folder / 'store.sqlite'}"
        _one_trial(url, ExperimentKey("", "demo"))
        gc.collect()  # the last connection closes: SQLite folds the -wal file in and removes -shm
        assert sorted(p.name for p in folder.iterdir()) == ["store.sqlite"]
        (folder / "store.sqlite").chmod(0o444)
        folder.chmod(0o555)
        before = (folder / "store.sqlite").read_bytes()

        def hpo_kfp(*args: str) -> subprocess.CompletedProcess[str]:
            main = "import sys; from hpo_kfp.cli import main; sys.exit(main(sys.argv[1:]))"
            command = [*prefix, sys.executable, "-c", main, *args, "--store", url]
            return subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)

        listed = hpo_kfp("experiments")
        assert (listed.returncode, listed.stderr) == (0, "")
        assert listed.stdout.startswith("demo  Running  1 trials  best demo-0000 = 0.3")
        report = hpo_kfp("report", "demo")
        assert (report.returncode, report.stderr) == (0, "")
        assert "best trial demo-0000: loss=0.3" in report.stdout
        deleted = hpo_kfp("delete", "demo")
        assert deleted.returncode == 1
        assert deleted.stderr.startswith(f"hpo-kfp: the store at {url} ")
        assert (
            deleted.stderr.endswith("attempt to write a readonly database\n")
            and deleted.stderr.count("\n") == 1
        )
        assert (folder / "store.sqlite").read_bytes() == before
        assert sorted(p.name for p in folder.iterdir()) == ["store.sqlite"]
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder, ignore_errors=True)


def test_an_import_of_many_rows_numbers_them_densely_and_skips_repeats_across_chunks(
    tmp_path: Path, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rows go in 500 at a time: a row repeated in another chunk, or within one, is one trial;
    numbers follow the trials already there (a running experiment's own trial included)."""
    store = open_store(_store(tmp_path))
    experiment = load_experiment(spec_file)
    key = ExperimentKey("kubeflow", "demo")
    store.open_experiment(experiment, key)
    store.record(
        key, TrialRecord(name="demo-0000", number=0, parameters={"lr": 0.02, "layers": 3, "optimizer": "sgd"})
    )
    unique = [f"{0.01 + i * 1e-5:.5f},{2 + i % 4},adam,{i / 1000}" for i in range(1200)]
    rows = ["lr,layers,optimizer,loss", *unique, unique[0], unique[700], unique[1199]]
    trials = tmp_path / "prior.csv"
    trials.write_text("\n".join(rows) + "\n")
    assert main(["import", str(spec_file), str(trials), "--store", _store(tmp_path)]) == 0
    assert "imported 1200 trials from" in capsys.readouterr().out
    history = open_store(_store(tmp_path)).history(key)
    assert [t.number for t in history.trials] == list(range(1201))
    assert [t.name for t in history.trials[-2:]] == ["demo-1199", "demo-1200"]
    assert history.trials[1].metrics == {"loss": 0.0} and history.trials[-1].metrics == {"loss": 1.199}
    assert main(["import", str(spec_file), str(trials), "--store", _store(tmp_path)]) == 0
    assert "imported 0 trials from" in capsys.readouterr().out


def test_report_shows_the_best_trials_and_first_parameters_unless_asked_for_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """1,000 trials printed 1,225 lines; 10,000 parameters a megabyte a row."""
    document = wide_spec(12)
    names = [p["name"] for p in document["spec"]["parameters"]]
    spec = tmp_path / "wide.yaml"
    spec.write_text(yaml.safe_dump(document))
    rows = [",".join([*names, "loss"])] + [",".join(["0.5"] * 12 + [str(i / 100)]) for i in range(30)]
    for i in range(30):  # distinct rows: the first parameter differs
        rows[i + 1] = f"{i / 100}," + rows[i + 1].split(",", 1)[1]
    trials = tmp_path / "prior.csv"
    trials.write_text("\n".join(rows) + "\n")
    assert main(["import", str(spec), str(trials), "--store", _store(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["report", "demo", "--store", _store(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    header = out[0].split()
    assert header[2:12] == names[:10] and "p10" not in header
    assert out[1].startswith("demo-0000 *")  # the best first
    assert sum(1 for line in out if line.startswith("demo-")) == 25
    assert "(5 more trials and 2 more parameters not shown: `hpo-kfp report demo --all` shows them)" in out
    assert main(["report", "demo", "--store", _store(tmp_path), "--all"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[2:14] == names
    assert sum(1 for line in out if line.startswith("demo-")) == 30
    assert not any("not shown" in line for line in out)


def test_report_json_results_import_back_with_times_series_reasons_and_early_stops(
    tmp_path: Path, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 29: `report --json` was refused by import; its results lost times, series and
    reasons; an EarlyStopped trial was refused outright."""
    source = _store(tmp_path)
    store = open_store(source)
    experiment = load_experiment(spec_file)
    key = ExperimentKey("kubeflow", "demo")
    store.open_experiment(experiment, key)
    claimed, _ = claim(store, experiment, key, 3, owner="run-1")
    times = {"started": "2026-01-02T03:04:05+00:00", "finished": "2026-01-02T03:05:05+00:00"}
    series = {"loss": [("2026-01-02T03:04:30+00:00", 0.5), (None, 0.25)]}
    store.record(
        key,
        replace(
            claimed[0], status="Succeeded", values=(0.25,), metrics={"loss": 0.25}, series=series, **times
        ),
    )
    store.record(
        key, replace(claimed[1], status="EarlyStopped", reason="best loss=0.9 after 2 steps", **times)
    )
    store.record(key, replace(claimed[2], status="Failed", reason="exit code 3", **times))
    assert main(["report", "demo", "--store", source, "--json"]) == 0
    exported = tmp_path / "report.json"
    exported.write_text(capsys.readouterr().out.splitlines()[-1])
    target = f"sqlite:///{tmp_path / 'other.sqlite'}"
    assert main(["import", str(spec_file), str(exported), "--store", target]) == 0
    assert "imported 3 trials" in capsys.readouterr().out
    before = {t.parameters["lr"]: t for t in store.history(key).trials}
    after = open_store(target).history(key).trials
    assert len(after) == 3
    for trial in after:
        original = before[trial.parameters["lr"]]
        assert (trial.status, trial.reason, trial.values, trial.metrics) == (
            original.status,
            original.reason,
            original.values,
            original.metrics,
        )
        assert (trial.started, trial.finished, trial.series) == (
            original.started,
            original.finished,
            original.series,
        )
        assert trial.origin == "import"


@pytest.mark.parametrize("kind", ["json", "csv"])
def test_export_json_or_csv_imports_back_whole(
    tmp_path: Path, spec_file: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    """Issue 29: no CSV export; an export must come back with its times, series, reasons,
    names and statuses (EarlyStopped and MetricsUnavailable too)."""
    times = {"started": "2026-01-02T03:04:05+00:00", "finished": "2026-01-02T03:05:05.250000+00:00"}
    series = {"loss": [("2026-01-02T03:04:30+00:00", 0.5), (None, 0.1 + 0.2)]}
    ends = [
        {"status": "Succeeded", "values": (0.1 + 0.2,), "metrics": {"loss": 0.1 + 0.2}, "series": series},
        {
            "status": "EarlyStopped",
            "reason": "best loss=0.9 after 2 steps",
            "series": {"loss": [(None, 0.9)]},
        },
        {"status": "Failed", "reason": 'exit code 3: "quoted", with a comma'},
        {"status": "MetricsUnavailable", "reason": "no loss in the log"},
    ]
    source, store, key = _ended_trials(tmp_path, spec_file, times, ends, running=1)
    exported = tmp_path / f"trials.{kind}"
    assert main(["export", "demo", "--store", source, f"--{kind}", str(exported)]) == 0
    assert (
        capsys.readouterr().out
        == f"demo: 4 finished trials written to {exported} (1 still active left out)\n"
    )
    target = f"sqlite:///{tmp_path / 'other.sqlite'}"
    assert main(["import", str(spec_file), str(exported), "--store", target]) == 0
    assert "imported 4 trials" in capsys.readouterr().out
    after = open_store(target).history(key).trials
    fields = ("name", "parameters", "status", "values", "metrics", "series", "started", "finished", "reason")
    assert [tuple(getattr(t, f) for f in fields) for t in after] == [
        tuple(getattr(t, f) for f in fields) for t in store.history(key).trials[:4]
    ]


def test_an_optuna_study_imports(tmp_path: Path, spec_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 29: an exported Optuna study (export --optuna-storage) could not be imported; a
    study made by Optuna itself imports too."""
    import optuna

    times = {"started": "2026-01-02T03:04:05+00:00", "finished": "2026-01-02T03:05:05+00:00"}
    ends = [
        {
            "status": "Succeeded",
            "values": (0.25,),
            "metrics": {"loss": 0.25},
            "series": {"loss": [(None, 0.5)]},
        },
        {
            "status": "EarlyStopped",
            "reason": "best loss=0.9 after 2 steps",
            "series": {"loss": [(None, 0.9)] * 2},
        },
        {"status": "Failed", "reason": "exit code 3"},
        {"status": "MetricsUnavailable", "reason": "no loss in the log"},
    ]
    source, store, key = _ended_trials(tmp_path, spec_file, times, ends)
    optuna_url = f"sqlite:///{tmp_path / 'study.db'}"
    assert main(["export", "demo", "--store", source, "--optuna-storage", optuna_url]) == 0
    target = f"sqlite:///{tmp_path / 'other.sqlite'}"
    assert main(["import", str(spec_file), "--optuna-storage", optuna_url, "--store", target]) == 0
    assert "imported 4 trials from study (the only one)" in capsys.readouterr().out
    fields = ("parameters", "status", "values", "metrics", "series", "started", "finished", "reason")
    assert [tuple(getattr(t, f) for f in fields) for t in open_store(target).history(key).trials] == [
        tuple(getattr(t, f) for f in fields) for t in store.history(key).trials
    ]

    # A study Optuna made itself: its values are the experiment's objective.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    theirs = optuna.create_study(study_name="theirs", storage=f"sqlite:///{tmp_path / 'theirs.db'}")
    theirs.optimize(
        lambda t: (
            t.suggest_float("lr", 0.01, 0.05) * t.suggest_int("layers", 2, 5)
            + (t.suggest_categorical("optimizer", ["sgd", "adam"]) == "sgd")
        ),
        n_trials=3,
    )
    third = f"sqlite:///{tmp_path / 'third.sqlite'}"
    theirs_url = f"sqlite:///{tmp_path / 'theirs.db'}"
    args = [
        "import",
        str(spec_file),
        "--optuna-storage",
        theirs_url,
        "--study-name",
        "theirs",
        "--store",
        third,
    ]
    assert main(args) == 0
    imported = open_store(third).history(key).trials
    assert [t.values for t in imported] == [(t.value,) for t in theirs.trials]
    assert all(t.status == "Succeeded" and t.origin == "import" for t in imported)
    assert (
        main(["import", str(spec_file), "extra.json", "--optuna-storage", theirs_url, "--store", third]) == 2
    )
    assert capsys.readouterr().err.endswith(
        "give either a trials file or --optuna-storage, but got both or neither\n"
    )


def _ended_trials(
    tmp_path: Path, spec_file: Path, times: dict[str, str], ends: list[dict[str, Any]], *, running: int = 0
) -> tuple[str, Store, ExperimentKey]:
    """A store of the spec's experiment whose claimed trials ended as ``ends`` say (with
    ``times``), and ``running`` more still running: its URL, the store, the key."""
    source = _store(tmp_path)
    store = open_store(source)
    experiment = load_experiment(spec_file)
    key = ExperimentKey("kubeflow", "demo")
    store.open_experiment(experiment, key)
    claimed, _ = claim(store, experiment, key, len(ends) + running, owner="run-1")
    for trial, end in zip(claimed, ends, strict=False):
        store.record(key, replace(trial, **times, **end))
    return source, store, key
