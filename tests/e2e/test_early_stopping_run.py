"""Median stopping in a real local run: bad trials stop at the right step, the best is the
same as without it, and the trials take fewer seconds in all."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from hpo_kfp.history import History
from hpo_kfp.store import ExperimentKey, open_store

_HERE = Path(__file__).parent


def _run(tmp_path: Path, name: str, early_stopping: bool) -> History:
    document = yaml.safe_load((_HERE / "stepwise.yaml").read_text())
    document["metadata"]["name"] = name
    if not early_stopping:
        del document["spec"]["earlyStopping"]
    spec = _HERE / f"_{name}.yaml"  # beside the trial script, which runs from the spec's folder
    spec.write_text(yaml.safe_dump(document))
    try:
        result = subprocess.run(
            [sys.executable, "-m", "hpo_kfp", "run", str(spec), "--local", "--workdir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        spec.unlink()
    assert result.returncode == 0, result.stdout + result.stderr
    return open_store(f"sqlite:///{tmp_path / 'hpo-kfp.sqlite'}").history(ExperimentKey("", name))


def _seconds(history: History) -> float:
    return sum(t.duration or 0.0 for t in history.trials)


def test_median_stopping_saves_trial_seconds_and_keeps_the_best(tmp_path: Path) -> None:
    plain = _run(tmp_path, "stepwise-plain", early_stopping=False)
    stopping = _run(tmp_path, "stepwise-stopping", early_stopping=True)
    # The grid proposes the same configurations in the same order in both runs.
    assert [t.parameters for t in plain.trials] == [t.parameters for t in stopping.trials]
    stopped = [t for t in stopping.trials if t.status == "EarlyStopped"]
    assert stopped, "median stopping stopped no trial"
    for trial in stopped:
        # Stopped at step start_step (3), once two trials had succeeded, and for being worse.
        assert len(trial.series["loss"]) == 3, trial.series
        assert trial.number >= 2
        assert trial.reason.startswith("best loss=")
    best_plain = min((t for t in plain.trials if t.objective is not None), key=lambda t: t.objective or 0)
    best_stopping = min(
        (t for t in stopping.trials if t.objective is not None), key=lambda t: t.objective or 0
    )
    assert best_plain.parameters == best_stopping.parameters
    assert best_plain.objective == best_stopping.objective
    assert _seconds(stopping) < _seconds(plain) - 0.4 * len(stopped)  # each stop saves ~0.6 s of 1.2 s
