"""A run killed mid-round (kill -9 of the CLI) and started again loses no finished trial,
repeats no succeeded one, and runs the trials the killed run had claimed with their own
numbers and parameters."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from hpo_kfp.history import ACTIVE, FINISHED, History
from hpo_kfp.store import ExperimentKey, open_store
from tests.waiting import group_alive, wait_for

_SPEC = Path(__file__).parent / "slow.yaml"


def _all(store: Path) -> History:
    if not store.exists():
        return History(experiment="slow")
    return open_store(f"sqlite:///{store}").history(ExperimentKey("", "slow"))


def _finished(store: Path) -> list[str]:
    return [t.name for t in _all(store).trials if t.status in FINISHED]


def test_kill_9_then_resume(tmp_path: Path) -> None:
    store = tmp_path / "hpo-kfp.sqlite"
    command = [sys.executable, "-m", "hpo_kfp", "run", str(_SPEC), "--local", "--workdir", str(tmp_path)]
    first = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:

        def three_finished() -> bool:
            assert first.poll() is None, "the run ended before it could be killed"
            return len(_finished(store)) >= 3

        wait_for(three_finished, seconds=180, what="three finished trials")
        os.kill(first.pid, signal.SIGKILL)  # the CLI only; its steps become orphans
        first.wait(timeout=10)
    finally:
        with contextlib.suppress(ProcessLookupError):  # no orphan left is fine too
            os.killpg(first.pid, signal.SIGKILL)  # the orphans, mid-write: a store write is atomic
    wait_for(lambda: not group_alive(first.pid), seconds=30, what="the killed run's processes to end")
    left = _all(store)
    before = {t.name: t for t in left.trials if t.status in FINISHED}
    claimed = {t.name: t for t in left.trials if t.status in ACTIVE}
    assert 3 <= len(before) < 8

    second = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert second.returncode == 0, second.stdout + second.stderr
    again = f"; {len(claimed)} trials a stopped run left unfinished run again" if claimed else ""
    assert f"slow: continuing with {len(left.trials)} trials from sqlite:///{store}{again}\n" in second.stdout
    after = _all(store)
    by_name = {t.name: t for t in after.trials}
    # Nothing finished before the kill is lost or changed.
    for name, trial in before.items():
        assert by_name[name] == trial
    # What the killed run had claimed ran under the same name, with the same parameters.
    for name, trial in claimed.items():
        assert by_name[name].parameters == trial.parameters and by_name[name].status == "Succeeded"
    # The experiment's total is honoured, and no succeeded configuration was run twice.
    assert len(after.trials) == 8 and all(t.status == "Succeeded" for t in after.trials)
    configurations = [t.parameters["x"] for t in after.trials]
    assert len(set(configurations)) == len(configurations)
    assert [t.number for t in after.trials] == list(range(8))  # dense: nothing lost, nothing twice
