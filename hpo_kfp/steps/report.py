"""The report step: the experiment's summary (Markdown) and page with plots (HTML)."""

from __future__ import annotations

from pathlib import Path

from hpo_kfp.decide import decide
from hpo_kfp.history import History
from hpo_kfp.reports.pages import html_page, markdown_summary
from hpo_kfp.spec import parse_experiment

__all__ = ["report_step"]


def report_step(spec: str, history_path: str, summary_path: str, page_path: str) -> None:
    """Writes the summary and the page of the experiment as ``history_path`` holds it."""
    experiment = parse_experiment(spec, trial_template=None)
    history = History.from_json(Path(history_path).read_text(encoding="utf-8"))
    decision = decide(experiment, history)
    Path(summary_path).write_text(markdown_summary(experiment, history, decision), encoding="utf-8")
    Path(page_path).write_text(html_page(experiment, history, decision), encoding="utf-8")
