"""The live progress of a local run: one redrawn line on a terminal, plain lines otherwise."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from hpo_kfp.cli import _progress as progress_module
from hpo_kfp.cli._progress import Progress, describe
from hpo_kfp.history import History, TrialRecord
from hpo_kfp.pipeline.launch import LocalRun
from hpo_kfp.spec import parse_experiment
from hpo_kfp.steps import StepSettings
from hpo_kfp.store import ExperimentKey, open_store
from tests.conftest import base_spec
from tests.waiting import wait_for


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(tmp_path: Path) -> LocalRun:
    experiment = parse_experiment(base_spec())  # 8 trials, 2 at a time
    settings = StepSettings(store=f"sqlite:///{tmp_path}/store.sqlite")
    store = open_store(settings.store)
    key = ExperimentKey("kubeflow", "demo")
    store.open_experiment(experiment, key)
    for number, value in enumerate((0.5, 0.25, None)):
        status = "Succeeded" if value is not None else "Failed"
        store.record(
            key,
            TrialRecord(
                name=f"demo-{number:04d}",
                number=number,
                parameters={"lr": 0.02, "layers": 3, "optimizer": "sgd"},
                status=status,
                values=(value,) if value is not None else None,
            ),
        )  # type: ignore[arg-type]
    return LocalRun(
        experiment=experiment,
        directory=tmp_path,
        pipeline=tmp_path / "p.yaml",
        synchronous=True,
        settings=settings,
        prior=History(experiment="demo"),
        key=key,
    )


def test_describe_names_round_counts_best_and_time(tmp_path: Path) -> None:
    run = _run(tmp_path)
    history = open_store(run.settings.store).history(run.key)
    assert describe(run, history, 12.34) == (
        "round 2: 3/8 trials finished (2 ok, 1 failed), best loss=0.25 (demo-0001), 12.3 s"
    )


def _counting_reports(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The lines the progress loop makes, one per report (written or not)."""
    made: list[str] = []

    def counted(*args: Any) -> str:
        made.append(describe(*args))
        return made[-1]

    monkeypatch.setattr(progress_module, "describe", counted)
    return made


def test_a_terminal_gets_one_redrawn_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = _Terminal()
    reports = _counting_reports(monkeypatch)
    with Progress(_run(tmp_path), stream, interval=0.05):
        wait_for(lambda: len(reports) >= 3, what="three reports")
    text = stream.getvalue()
    assert text.count("\r") >= 3 and text.count("\n") == 1  # redrawn in place, one newline at the end
    assert "3/8 trials finished" in text


def test_a_pipe_gets_a_plain_line_per_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    reports = _counting_reports(monkeypatch)
    with Progress(_run(tmp_path), stream, interval=0.05):
        wait_for(lambda: len(reports) >= 4, what="four reports of one unchanged state")
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert len(lines) == 1 and lines[0].startswith("round 2: 3/8 trials finished")


def test_describe_counts_early_stopped_apart_and_agrees_with_the_summary(tmp_path: Path) -> None:
    """The line's counts are the summary's: early-stopped trials are not "ok", and trials
    without metrics are not counted as failed; imported trials are no trials of this run."""
    from hpo_kfp.decide import decide
    from hpo_kfp.reports.summary import counts_text

    run = _run(tmp_path)
    parameters = {"lr": 0.02, "layers": 3, "optimizer": "sgd"}
    trials = [
        TrialRecord(name="demo-0000", number=0, parameters=parameters, status="Succeeded", values=(0.5,)),
        TrialRecord(name="demo-0001", number=1, parameters=parameters, status="EarlyStopped"),
        TrialRecord(name="demo-0002", number=2, parameters=parameters, status="Failed"),
        TrialRecord(name="demo-0003", number=3, parameters=parameters, status="MetricsUnavailable"),
        TrialRecord(
            name="demo-0004",
            number=4,
            parameters=parameters,
            status="Succeeded",
            values=(0.1,),
            origin="import",
        ),
    ]
    history = History(experiment="demo", trials=tuple(trials))
    assert describe(run, history, 1.0) == (
        "round 3: 4/8 trials finished (1 ok, 1 early-stopped, 1 failed, 1 without metrics), "
        "best loss=0.1 (demo-0004, imported), 1.0 s"
    )
    assert counts_text(decide(run.experiment, history).counts) == (
        "4 trials: 1 succeeded, 1 early-stopped, 1 failed, 1 without metrics (and 1 imported)"
    )
