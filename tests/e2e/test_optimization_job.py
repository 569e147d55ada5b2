"""An OptimizationJob runs end to end on kfp.local with TPE and median stopping."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hpo_kfp.store import ExperimentKey, open_store

_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "optimization-job" / "job.yaml"


def test_an_optimization_job_runs_locally_with_tpe_and_median_stopping(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hpo_kfp", "run", str(_EXAMPLE), "--local", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    history = open_store(f"sqlite:///{tmp_path / 'hpo-kfp.sqlite'}").history(
        ExperimentKey("", "optimization-job")
    )
    assert len(history.trials) == 6
    assert {t.status for t in history.trials} <= {"Succeeded", "EarlyStopped"}
    assert all(t.parameters.keys() == {"x"} for t in history.trials)
    best = min((t for t in history.trials if t.objective is not None), key=lambda t: t.objective or 0)
    # The last reported loss (the KEP's final metric): (x - 0.35)^2 * 10 + 1/6.
    assert best.metrics["loss"] == round((best.parameters["x"] - 0.35) ** 2 * 10 + 1 / 6, 6)
