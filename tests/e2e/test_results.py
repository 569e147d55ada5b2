"""End to end: what ``run`` shows of a real local run (every trial, its reason, its log and
the log's tail, counts that add up, the page as ``.html``), and that kfp.local's tasks leave
no temporary folder behind. The run uses synchronous rounds (``--sync``), whose outcome is
exact: the trials of the round after the goal's never start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_HERE = Path(__file__).parent


def test_run_shows_every_trial_with_reason_and_log_and_leaves_no_temporary_folder(tmp_path: Path) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hpo_kfp",
            "run",
            str(_HERE / "scripted.yaml"),
            "--local",
            "--json",
            "--workdir",
            str(tmp_path / "runs"),
            "--sync",  # synchronous rounds: the other end-to-end runs are asynchronous
        ],
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(temporary)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    # Trial 1 crashes (exit 3), trial 4 prints no loss, trial 5 meets the goal.
    assert (
        "scripted: Succeeded (GoalReached) with 6 trials: 4 succeeded, 0 early-stopped, 1 failed, "
        "1 without metrics; "
    ) in result.stdout
    assert any(line.startswith("best trial scripted-0005: loss=5; x=") for line in lines)
    rows: dict[str, str] = {}
    for line in lines:  # the table's rows, before the failures' details
        if line.startswith("scripted-000"):
            rows.setdefault(line.split()[0], line)
    assert rows["scripted-0001"].split()[1] == "Failed" and rows["scripted-0001"].endswith("exit code 3")
    assert rows["scripted-0004"].split()[1] == "MetricsUnavailable"
    failed = lines.index("scripted-0001 Failed: exit code 3")
    assert lines[failed + 1].startswith("  log: ") and lines[failed + 1].endswith("/trials/scripted-0001/log")
    assert Path(lines[failed + 1].removeprefix("  log: ")).read_text().strip() == "simulated crash"
    assert lines[failed + 2] == "  | simulated crash"

    [page] = [line.removeprefix("report: ") for line in lines if line.startswith("report: ")]
    assert page.endswith(".html") and 'id="trials-table"' in Path(page).read_text()
    assert 'href="artifacts/' in Path(page).read_text()  # each trial's log, beside the page

    document = json.loads(lines[-1])
    assert document["trials"] == {
        "succeeded": 4,
        "earlyStopped": 0,
        "failed": 1,
        "metricsUnavailable": 1,
        "active": 0,
        "total": 6,
        "imported": 0,
    }
    results = {r["name"]: r for r in document["results"]}
    assert results["scripted-0001"]["reason"] == "exit code 3"
    assert results["scripted-0001"]["logTail"] == "simulated crash"
    assert results["scripted-0001"]["seconds"] > 0.9  # it sleeps 1 s before it crashes
    # Every trial's log, failed or not: each lane keeps its trials' logs (issue 26).
    assert all(r["log"] and r["log"].endswith(f"/trials/{name}/log") for name, r in results.items())

    # From another folder, where no run's files are: the store kept where each log is and
    # the failed trials' last lines (issue 29).
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    store = f"sqlite:///{tmp_path / 'runs' / 'hpo-kfp.sqlite'}"  # the store beside --workdir's runs
    report = subprocess.run(
        [sys.executable, "-m", "hpo_kfp", "report", "scripted", "--store", store, "--json"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert report.returncode == 0, report.stdout + report.stderr
    again = {r["name"]: r for r in json.loads(report.stdout.splitlines()[-1])["results"]}
    assert again["scripted-0001"]["logTail"] == "simulated crash"
    assert again["scripted-0004"]["logTail"] == results["scripted-0004"]["logTail"]
    assert all(again[name]["log"] == r["log"] for name, r in results.items())
    text = subprocess.run(
        [sys.executable, "-m", "hpo_kfp", "report", "scripted", "--store", store],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.splitlines()
    failed = text.index("scripted-0001 Failed: exit code 3")
    assert text[failed + 1 : failed + 3] == [
        f"  log: {results['scripted-0001']['log']}",
        "  | simulated crash",
    ]

    # Every kfp.local task made a folder with mktemp (69 in this run): all removed.
    assert list(temporary.iterdir()) == []
    assert not list((tmp_path / "runs").glob("scripted/*/artifacts/kfp-local-tasks-*"))
