"""``kill -TERM`` or ``kill -INT`` of the ``hpo-kfp run`` process alone stops it as Ctrl-C
(SIGINT to the whole group) does, and even ``kill -9`` of it leaves no step or trial process."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from hpo_kfp.store import open_store
from tests.waiting import process_alive, wait_for

_HERE = Path(__file__).parent


@contextlib.contextmanager
def _running(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], list[int]]]:
    """``hpo-kfp run`` of two trials that sleep long, in a process group of its own (only the
    signal a test sends reaches it), once both trials started; and their process ids. Whatever
    is left is killed afterwards."""
    document = yaml.safe_load((_HERE / "slow.yaml").read_text())
    pid_file = tmp_path / "trial-pids"
    container = document["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = [
        sys.executable,
        str(_HERE / "sleepy_trial.py"),
        "--x=${trialParameters.x}",
        f"--pid-file={pid_file}",
    ]
    spec = tmp_path / "sleepy.yaml"
    spec.write_text(yaml.safe_dump(document))
    run = subprocess.Popen(
        [sys.executable, "-m", "hpo_kfp", "run", str(spec), "--local", "--workdir", str(tmp_path / "runs")],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for(
            lambda: pid_file.exists() and len(pid_file.read_text().split()) == 2,
            seconds=120,
            what="two trials",
        )
        yield run, [int(pid) for pid in pid_file.read_text().split()]
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
        for pid in [int(p) for p in pid_file.read_text().split()] if pid_file.exists() else []:
            if process_alive(pid):
                os.killpg(pid, signal.SIGKILL)


def _leftovers(tmp_path: Path) -> list[str]:
    """Processes whose command line names the test's folder: the run's steps and trials."""
    found = subprocess.run(["pgrep", "-f", str(tmp_path)], check=False, capture_output=True, text=True)
    return found.stdout.split()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_the_command_alone_stops_the_steps_and_their_trials(tmp_path: Path, signum: int) -> None:
    with _running(tmp_path) as (run, trials):
        run.send_signal(signum)
        out, err = run.communicate(timeout=60)
        assert run.returncode == 130, err
        assert err.splitlines()[-1] == "hpo-kfp: interrupted"
        assert "Traceback" not in err and "Logging error" not in err, err  # issue 31, item 4
        # The summary and the page of what finished are written all the same (issue 29).
        assert "slow: Running" in out and "report: " in out, out
        assert list((tmp_path / "runs" / "slow").glob("*/report.html"))
        wait_for(lambda: not any(process_alive(pid) for pid in trials), seconds=30, what="the trials to end")
        assert _leftovers(tmp_path) == [], "processes of the run are still running"
    # What the run held is given back at once (issue 29): the store's summary counts it as
    # released, to be claimed again, not as running under a run that is gone.
    [summary] = open_store(f"sqlite:///{tmp_path / 'runs' / 'hpo-kfp.sqlite'}").experiments()
    assert summary.stale == 2, summary


def test_a_killed_command_leaves_no_step_or_trial_running(tmp_path: Path) -> None:
    """``kill -9`` of ``hpo-kfp run``: its lanes, forked from its steps' server, are
    interrupted once it is gone, and stop their trials (issue 31)."""
    with _running(tmp_path) as (run, trials):
        run.kill()
        run.communicate(timeout=10)
        wait_for(lambda: not any(process_alive(pid) for pid in trials), seconds=30, what="the trials to end")
        wait_for(lambda: not _leftovers(tmp_path), seconds=30, what="every process of the run to end")
