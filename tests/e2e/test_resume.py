"""A run killed mid-round (kill -9 of the CLI) and started again loses no finished trial
and repeats no succeeded one."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hpo_kfp.history import History
from hpo_kfp.tracking import open_tracker, resolve_target

_SPEC = Path(__file__).parent / "slow.yaml"


def _finished(store: Path) -> History:
    if not store.exists():
        return History(experiment="slow")
    return open_tracker(resolve_target(str(store))).load_history("slow")


def test_kill_9_then_resume(tmp_path: Path) -> None:
    store = tmp_path / "mlmd.sqlite"
    command = [sys.executable, "-m", "hpo_kfp", "run", str(_SPEC), "--local", "--workdir", str(tmp_path)]
    first = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 180
        while len(_finished(store).trials) < 3:
            assert first.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no trials finished in time"
            time.sleep(0.2)
        os.kill(first.pid, signal.SIGKILL)  # the CLI only; its steps become orphans
        first.wait(timeout=10)
        time.sleep(3)  # let orphaned steps finish whatever they were writing
    finally:
        with contextlib.suppress(ProcessLookupError):  # no orphan left is fine too
            os.killpg(first.pid, signal.SIGKILL)
    before = {t.name: t for t in _finished(store).trials}
    assert 3 <= len(before) < 8

    second = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"slow: continuing with {len(before)} trials" in second.stdout
    after = _finished(store)
    by_name = {t.name: t for t in after.trials}
    # Nothing finished before the kill is lost or changed.
    for name, trial in before.items():
        assert by_name[name] == trial
    # The experiment's total is honoured, and no succeeded configuration was run twice.
    assert len(after.trials) == 8 and all(t.status == "Succeeded" for t in after.trials)
    configurations = [t.parameters["x"] for t in after.trials]
    assert len(set(configurations)) == len(configurations)
    assert len({t.number for t in after.trials}) == 8  # a trial lost mid-round leaves a gap, not a clash
