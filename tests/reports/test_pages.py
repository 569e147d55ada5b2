"""The report's pages: the Markdown summary and the HTML page's charts' data."""

from __future__ import annotations

import base64
import gzip
import importlib.util
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from hpo_kfp.decide import decide
from hpo_kfp.history import History, TrialRecord
from hpo_kfp.reports import charts
from hpo_kfp.reports.pages import html_page, markdown_summary
from hpo_kfp.spec import parse_experiment
from hpo_kfp.suggest import suggest
from tests.conftest import base_spec, with_field
from tests.reports.test_html import chart_data_of

ROOT = Path(__file__).resolve().parents[2]


def _history(values: list[tuple[float, ...]]) -> History:
    trials = [
        TrialRecord(
            name=f"demo-{i:04d}",
            number=i,
            status="Succeeded",
            values=v,
            parameters={"lr": 0.01 + 0.004 * i, "layers": 2 + i % 4, "optimizer": ["sgd", "adam"][i % 2]},
            metrics={"loss": v[0]},
        )
        for i, v in enumerate(values)
    ]
    return History(experiment="demo", trials=tuple(trials))


def test_several_objectives_get_a_pareto_front_and_charts_for_each() -> None:
    document = with_field(
        base_spec(), "spec.objective.additionalObjectives", [{"metricName": "accuracy", "type": "maximize"}]
    )
    with_field(document, "spec.algorithm.algorithmName", "nsga2")
    experiment = parse_experiment(document)
    history = _history([(0.5, 0.7), (0.4, 0.6), (0.3, 0.9), (0.6, 0.95), (0.2, 0.5)])
    page = html_page(experiment, history, decide(experiment, history))
    data = chart_data_of(page)
    assert [o["metric"] for o in data["objectives"]] == ["loss", "accuracy"]
    assert [t[4] for t in data["trials"]] == [[0.5, 0.7], [0.4, 0.6], [0.3, 0.9], [0.6, 0.95], [0.2, 0.5]]
    assert sorted(data["pareto"]) == [2, 3, 4]  # (0.3, 0.9), (0.6, 0.95), (0.2, 0.5)
    assert [metric for metric, _ in data["importance"]] == ["loss", "accuracy"]
    assert len(page.encode()) < 1_000_000


def test_summary_and_page_without_any_success() -> None:
    experiment = parse_experiment(base_spec())
    failed = TrialRecord(
        name="demo-0000", number=0, status="Failed", parameters={"lr": 0.02, "layers": 3, "optimizer": "sgd"}
    )
    history = History(experiment="demo", trials=(failed,))
    decision = decide(experiment, history)
    assert "no trial has succeeded yet" in html_page(experiment, history, decision)
    summary = markdown_summary(experiment, history, decision)
    assert "**Running**: 1 trials: 0 succeeded, 0 early-stopped, 1 failed, 0 without metrics." in summary
    assert summary.splitlines()[-1] == "| demo-0000 | Failed | 0.02 | 3 | sgd |  |  |  |  |"


@pytest.mark.slow
def test_importance_plot_does_not_load_scikit_learn() -> None:
    """Optuna's importance package imports scikit-learn eagerly (seconds); the page must not."""
    script = """
import sys
from hpo_kfp.reports import charts
from hpo_kfp.decide import decide
from hpo_kfp.spec import parse_experiment
from hpo_kfp.reports.pages import html_page
from tests.conftest import base_spec
from tests.reports.test_pages import _history
from tests.reports.test_html import chart_data_of
experiment = parse_experiment(base_spec())
history = _history([(0.5,), (0.4,), (0.3,), (0.6,), (0.2,), (0.45,)])
page = html_page(experiment, history, decide(experiment, history))
print(bool(chart_data_of(page)["importance"]), "sklearn" in sys.modules)
import sklearn.ensemble
print(sklearn.ensemble.RandomForestRegressor.__name__)
"""
    assert importlib.util.find_spec("sklearn") is not None, "scikit-learn is a project dependency"
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True, timeout=300
    )
    assert done.stdout.split() == ["True", "False", "RandomForestRegressor"], done.stderr


def test_trials_outside_a_changed_search_space_are_left_out_of_the_plots() -> None:
    history = _history([(0.5,), (0.4,), (0.3,), (0.6,), (0.2,)])  # lr 0.01 .. 0.026
    changed = parse_experiment(
        with_field(base_spec(), "spec.parameters.0.feasibleSpace", {"min": "0.02", "max": "0.05"})
    )
    page = html_page(changed, history, decide(changed, history))
    assert page.count('<tr class="status-Succeeded"') == 5  # every trial in the table
    [(metric, scores)] = chart_data_of(page)["importance"]  # from the 2 trials inside the space
    assert metric == "loss" and {n for n, _ in scores} == {"lr", "layers", "optimizer"}
    assert markdown_summary(changed, history, decide(changed, history))


def test_the_page_carries_the_charting_library_and_says_so_when_an_install_lacks_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    experiment = parse_experiment(base_spec())
    history = _history([(0.5,), (0.4,), (0.3,)])
    page = html_page(experiment, history, decide(experiment, history))
    packed = re.search(r'<script type="text/plain" id="echarts-gz">([^<]+)</script>', page)
    assert packed is not None
    library = gzip.decompress(base64.b64decode(packed.group(1)))
    assert library == (ROOT / "hpo_kfp" / "reports" / "static" / "echarts.min.js").read_bytes()
    assert b"Apache Software Foundation" in library[:2000]  # its licence header, kept
    monkeypatch.setattr(charts, "packed_echarts", lambda: None)
    page = html_page(experiment, history, decide(experiment, history))
    assert "The charts need Apache ECharts" in page and 'id="chart-data"' not in page
    assert "demo-0002" in page  # the table is still there


def test_hyperbands_brackets_and_rungs_show_where_each_promoted_trial_came_from() -> None:
    """Issue 29: hyperband's rungs and promoted configurations were invisible."""
    from tests.algorithms.test_contract import _experiment as contract_experiment

    experiment = contract_experiment("hyperband")  # r_l 9, eta 3, resource y
    history = History(experiment=experiment.name)
    for _ in range(3):  # bracket 2's three rungs: 9, 3 and 1 trials
        created, history = suggest(experiment, history, 9)
        history = history.upsert(
            replace(
                t,
                status="Succeeded",
                values=(t.parameters["x"] ** 2,),
                metrics={"loss": t.parameters["x"] ** 2},
            )
            for t in created
        )
    page = html_page(experiment, history, decide(experiment, history))
    table = page.split('id="hyperband-table"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr><td>(\d+)</td><td>(\d+)</td><td>([^<]*)</td>", table)
    assert rows == [("2", "0", "1"), ("2", "1", "3"), ("2", "2", "9")]
    promoted = dict(
        re.findall(r'<span data-trial="([\w-]+)">[^<]*<span class="from">from ([\w-]+)</span>', table)
    )
    assert len(promoted) == 3 + 1
    by_name = {t.name: t for t in history.trials}
    for trial, origin in promoted.items():
        assert by_name[trial].parameters["x"] == by_name[origin].parameters["x"]
        assert by_name[origin].parameters["y"] < by_name[trial].parameters["y"]
