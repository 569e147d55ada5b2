"""What people read about trials: counts that add up, reasons, durations, logs, learning
curves, the Pareto front, in the text table, the JSON, the Markdown and the HTML page (the
latter also rendered in headless Chromium, from its DOM)."""

from __future__ import annotations

import html
import json
import random
import re
import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hpo_kfp.decide import decide
from hpo_kfp.history import History, TrialRecord, TrialRun
from hpo_kfp.reports.pages import html_page, markdown_summary
from hpo_kfp.reports.summary import counts_text, log_tail, report_document, trial_logs, trials_table
from hpo_kfp.spec import Experiment, parse_experiment
from hpo_kfp.wire import NoTrial, RunResult, TrialItem
from tests.conftest import base_spec, wide_spec, with_field

_START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _at(seconds: float) -> str:
    return (_START + timedelta(seconds=seconds)).isoformat()


def chart_data_of(page: str) -> dict[str, Any]:
    """The data the page's charts draw (its JSON block)."""
    found = re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', page, re.DOTALL)
    assert found
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def _trial(number: int, status: str, *, start: float, seconds: float, **fields: object) -> TrialRecord:
    return TrialRecord(
        name=f"demo-{number:04d}",
        number=number,
        parameters={"lr": 0.01 + 0.004 * number, "layers": 2 + number % 4, "optimizer": "sgd"},
        status=status,  # type: ignore[arg-type]
        started=_at(start),
        finished=_at(start + seconds),
        **fields,  # type: ignore[arg-type]
    )


def _series(values: list[float]) -> list[tuple[str | None, float]]:
    return [(None, v) for v in values]


def single() -> tuple[Experiment, History]:
    """Minimize loss (goal 0.001), accuracy recorded: 2 succeeded, 1 early-stopped, 1 failed,
    1 without metrics, 1 imported."""
    experiment = parse_experiment(base_spec())
    trials = (
        _trial(
            0,
            "Succeeded",
            start=0,
            seconds=10,
            values=(0.30,),
            metrics={"loss": 0.30, "accuracy": 0.81},
            series={"loss": _series([0.9, 0.6, 0.4, 0.3]), "accuracy": _series([0.5, 0.7, 0.8, 0.81])},
        ),
        _trial(
            1,
            "Succeeded",
            start=0,
            seconds=12,
            values=(0.20,),
            metrics={"loss": 0.20, "accuracy": 0.9},
            series={"loss": _series([0.8, 0.5, 0.3, 0.2]), "accuracy": _series([0.6, 0.8, 0.85, 0.9])},
        ),
        _trial(
            2,
            "EarlyStopped",
            start=13,
            seconds=5,
            reason="best loss=0.7 is worse than the median",
            series={"loss": _series([0.95, 0.8, 0.7]), "accuracy": _series([0.4, 0.5, 0.52])},
        ),
        _trial(3, "Failed", start=13, seconds=1, reason="exit code 3"),
        _trial(4, "MetricsUnavailable", start=20, seconds=2, reason="no loss in the trial's output"),
        TrialRecord(
            name="demo-0005",
            number=5,
            parameters={"lr": 0.04, "layers": 3, "optimizer": "adam"},
            status="Succeeded",
            values=(0.1,),
            metrics={"loss": 0.1},
            origin="import",
        ),
    )
    return experiment, History(experiment="demo", trials=trials)


def multi() -> tuple[Experiment, History]:
    """Minimize loss, maximize accuracy: trials 0, 1 and 3 on the front, 2 dominated."""
    document = with_field(
        base_spec(), "spec.objective.additionalObjectives", [{"metricName": "accuracy", "type": "maximize"}]
    )
    with_field(document, "spec.objective.additionalMetricNames", ...)
    with_field(document, "spec.algorithm.algorithmName", "nsga2")
    experiment = parse_experiment(document)
    points = [(0.5, 0.9), (0.2, 0.6), (0.6, 0.5), (0.3, 0.8)]
    trials = tuple(
        _trial(
            i,
            "Succeeded",
            start=i * 3,
            seconds=4,
            values=p,
            metrics={"loss": p[0], "accuracy": p[1]},
            series={"loss": _series([p[0] + 0.3, p[0]]), "accuracy": _series([p[1] - 0.2, p[1]])},
        )
        for i, p in enumerate(points)
    )
    return experiment, History(experiment="demo", trials=trials)


def _logs(tmp_path: Path) -> dict[str, Path]:
    log = tmp_path / "demo-0003.log"
    log.write_text("epoch 1\n" + "".join(f"line {i}\n" for i in range(20)) + "Traceback: simulated crash\n")
    return {"demo-0003": log}


def test_counts_add_up_with_early_stopped_trials_apart() -> None:
    experiment, history = single()
    decision = decide(experiment, history)
    assert counts_text(decision.counts) == (
        "5 trials: 2 succeeded, 1 early-stopped, 1 failed, 1 without metrics (and 1 imported)"
    )
    trials = report_document(experiment, history, decision)["trials"]
    assert trials == {
        "succeeded": 2,
        "earlyStopped": 1,
        "failed": 1,
        "metricsUnavailable": 1,
        "active": 0,
        "total": 5,
        "imported": 1,
    }
    parts = ("succeeded", "earlyStopped", "failed", "metricsUnavailable", "active")
    assert sum(trials[k] for k in parts) == trials["total"]


def test_the_text_table_shows_every_trial_with_reason_seconds_and_failed_logs(tmp_path: Path) -> None:
    experiment, history = single()
    table = trials_table(experiment, history, _logs(tmp_path))
    lines = table.splitlines()
    assert lines[0].split() == [
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
    rows = {line.split()[0]: line for line in lines[1:7]}
    assert rows["demo-0001"].split()[-1] == "12.0"
    # An early-stopped trial shows the best it reached and why it stopped.
    assert rows["demo-0002"].split()[5:8] == [
        "0.7",
        "0.4",
        "5.0",
    ]  # accuracy: min, the strategy of this objective
    assert rows["demo-0002"].endswith("best loss=0.7 is worse than the median")
    assert rows["demo-0003"].split()[-4:] == ["1.0", "exit", "code", "3"]
    assert f"  log: {tmp_path / 'demo-0003.log'}" in lines
    assert "  | Traceback: simulated crash" in lines
    assert "  | line 9" not in lines  # only the tail
    assert "demo-0004 MetricsUnavailable: no loss in the trial's output" in lines


def test_the_json_lists_every_trial_with_reason_duration_log_and_tail(tmp_path: Path) -> None:
    experiment, history = single()
    history = History(
        experiment="demo", trials=(replace(history.trials[0], lane="run-1/lane-2"), *history.trials[1:])
    )
    document = report_document(experiment, history, decide(experiment, history), _logs(tmp_path))
    json.dumps(document)  # JSON-ready
    results = {r["name"]: r for r in document["results"]}
    assert [r["name"] for r in document["results"]][:3] == ["demo-0005", "demo-0001", "demo-0000"]
    assert results["demo-0003"]["reason"] == "exit code 3" and results["demo-0003"]["seconds"] == 1.0
    assert results["demo-0003"]["log"] == str(tmp_path / "demo-0003.log")
    assert results["demo-0003"]["logTail"].endswith("Traceback: simulated crash")
    assert results["demo-0002"]["metrics"] == {"loss": 0.7, "accuracy": 0.4}
    assert results["demo-0005"]["imported"] is True
    assert results["demo-0000"]["lane"] == "run-1/lane-2" and results["demo-0005"]["lane"] is None
    assert document["best"]["name"] == "demo-0005" and document["bestImported"] is True


def test_several_objectives_list_the_pareto_front_in_text_json_and_markdown() -> None:
    from hpo_kfp.reports.summary import pareto_text

    experiment, history = multi()
    decision = decide(experiment, history)
    text = pareto_text(experiment, decision).splitlines()
    assert text[0] == "Pareto front: 3 trials"
    assert text[1].split()[:5] == ["trial", "loss", "(min)", "accuracy", "(max)"]
    assert [line.split()[:3] for line in text[2:]] == [
        ["demo-0000", "0.5", "0.9"],
        ["demo-0001", "0.2", "0.6"],
        ["demo-0003", "0.3", "0.8"],
    ]
    document = report_document(experiment, history, decision)
    assert [(p["name"], p["objectives"]) for p in document["pareto"]] == [
        ("demo-0000", {"loss": 0.5, "accuracy": 0.9}),
        ("demo-0001", {"loss": 0.2, "accuracy": 0.6}),
        ("demo-0003", {"loss": 0.3, "accuracy": 0.8}),
    ]
    assert [r["pareto"] for r in document["results"]] == [True, True, True, False]  # best first by loss
    summary = markdown_summary(experiment, history, decision)
    assert "## Pareto front (3 trials)" in summary
    assert "| trial | loss (minimize) | accuracy (maximize) |" in summary
    assert "| demo-0003 | 0.3 | 0.8 |" in summary


def test_markdown_lists_every_trial_with_status_reason_and_every_metric() -> None:
    experiment, history = single()
    summary = markdown_summary(experiment, history, decide(experiment, history))
    assert "5 trials: 2 succeeded, 1 early-stopped, 1 failed, 1 without metrics (and 1 imported)" in summary
    assert "Best trial **demo-0005** (imported prior data)" in summary
    assert "| trial | status | lr | layers | optimizer | loss | accuracy | seconds | reason |" in summary
    assert "| demo-0003 | Failed | 0.022 | 5 | sgd |  |  | 1.0 | exit code 3 |" in summary
    assert "| demo-0002 | EarlyStopped | 0.018 | 4 | sgd | 0.7 | 0.4 | 5.0 | best" in summary


def test_the_page_has_every_trial_curves_goal_timeline_and_settings(tmp_path: Path) -> None:
    experiment, history = single()
    page = html_page(experiment, history, decide(experiment, history), logs=_logs(tmp_path), folder=tmp_path)
    rows = re.findall(r'<tr class="status-(\w+)" data-trial="([\w-]+)"', page)
    assert len(rows) == 6 and ("EarlyStopped", "demo-0002") in rows
    assert '<td class="reason">exit code 3</td>' in page
    assert '<a class="log" href="demo-0003.log">log</a>' in page
    assert "Traceback: simulated crash</pre>" in page
    data = chart_data_of(page)
    names = [t[1] for t in data["trials"]]
    for metric in ("loss", "accuracy"):  # the 3 trials with series, each step's value
        assert [(names[i], len(values)) for i, values in data["series"][metric]] == [
            ("demo-0000", 4),
            ("demo-0001", 4),
            ("demo-0002", 3),
        ]
    assert data["series"]["loss"][2][1] == [0.95, 0.8, 0.7]
    assert {names[int(i)]: reason for i, reason in data["stopped"].items()} == {
        "demo-0002": "best loss=0.7 is worse than the median"
    }
    assert data["goal"] == 0.001 and data["best"] == "demo-0005" and data["top"][0] == "demo-0005"
    spans = data["timeline"]["spans"]  # the imported trial has no times; no lane ran these
    assert [(names[i], lane, start, end) for i, lane, start, end in spans] == [
        ("demo-0000", -1, 0, 10),
        ("demo-0001", -1, 0, 12),
        ("demo-0002", -1, 13, 18),
        ("demo-0003", -1, 13, 14),
        ("demo-0004", -1, 20, 22),
    ]
    assert "random (defaults)" in page and "[0.01, 0.05] uniform" in page
    assert "8 trials, 2 at a time, failure limit 3" in page
    assert "<script" in page and "src=" not in page
    assert "http://" not in page and "https://" not in page


def test_trial_logs_maps_trial_names_to_the_run_trial_logs(tmp_path: Path) -> None:
    item = TrialItem(name="demo-0003", number=3, parameters={"lr": 0.02}, sampler_attrs={}, stop_rule=None)
    run = TrialRun(name="demo-0003", exit_code=3, started=_at(0), finished=_at(1), reason="exit code 3")
    for folder, output in (
        ("for-loop-1-iteration-0", RunResult(trial=item, run=run).to_json()),
        ("for-loop-2-iteration-0", NoTrial().to_json()),
    ):
        task = tmp_path / "hpo-demo-1" / folder / "run-trial"
        task.mkdir(parents=True)
        (task / "executor_output.json").write_text(json.dumps({"parameterValues": {"Output": output}}))
        (task / "log").write_text("simulated crash\n")
    logs = trial_logs(tmp_path)
    assert logs == {"demo-0003": tmp_path / "hpo-demo-1/for-loop-1-iteration-0/run-trial/log"}
    assert log_tail(logs["demo-0003"]) == "simulated crash"


_CHROMIUM = shutil.which("chromium")

# Helpers for the scripts below: the ECharts chart in an element, and what the learning
# curves' charts draw ("<metric>:<trial>" for each curve, and for each early-stop cross).
_CHARTS = """
function chart(id) { return echarts.getInstanceByDom(document.getElementById(id)); }
function drawn() {
  var found = {curves: [], stopped: []};
  document.querySelectorAll("[id^=curves-chart-]").forEach(function (place) {
    var metric = place.previousSibling.textContent.split(": ")[1];
    chart(place.id).getOption().series.forEach(function (series) {
      if (series.type === "line") { found.curves.push(metric + ":" + series.name); }
      if (series.type === "lines") {
        series.data.forEach(function (d) { found.curves.push(metric + ":" + d.name); });
      }
      if (series.name === "stopped early") {
        series.data.forEach(function (d) { found.stopped.push(metric + ":" + d.name.split(" ")[0]); });
      }
    });
  });
  return found;
}
"""

# Runs in the page once its charts are drawn: reads the DOM into one JSON object.
_FACTS = """
function texts(selector, read) {
  return Array.prototype.map.call(document.querySelectorAll(selector), read || function (node) {
    return node.textContent;
  });
}
function rows(table) {
  return texts("#" + table + " tbody tr", function (row) {
    return {
      trial: row.getAttribute("data-trial"),
      status: (row.querySelector("td.status") || {}).textContent,
      reason: (row.querySelector("td.reason") || {}).textContent
    };
  });
}
var facts = {
  status: document.getElementById("status").textContent,
  trials: rows("trials-table"),
  headers: texts("#trials-table thead th"),
  curves: drawn().curves,
  stopped: drawn().stopped,
  goal: chart("history-chart-0").getOption().series.filter(function (s) { return s.name === "best so far"; })[0]
    .markLine.data.map(function (d) { return d.yAxis; }),
  imported: chart("history-chart-0").getOption().series.filter(function (s) { return s.name === "imported"; })
    .map(function (s) { return s.data; }),
  timeline: chart("timeline-chart").getOption().series.filter(function (s) { return s.name === "trials"; })
    .map(function (s) { return s.data.length; }),
  failures: texts("#failures li", function (li) {
    return [li.getAttribute("data-trial"), li.querySelector(".reason").textContent,
            (li.querySelector("pre.log-tail") || {}).textContent || ""];
  }),
  paretoHeaders: texts("#pareto-table thead th"),
  pareto: texts("#pareto-table tbody tr", function (row) { return row.getAttribute("data-trial"); }),
  charts: texts("#chart-area .chart-box h3"),
  chartsNote: document.getElementById("charts-note").textContent
};
var seconds = Array.prototype.find.call(
  document.querySelectorAll("#trials-table thead th"), function (th) { return th.textContent === "seconds"; });
seconds.click();
seconds.click();
facts.bySecondsDescending = rows("trials-table").map(function (r) { return r.trial; });
facts.sorted = texts("#trials-table th[aria-sort=descending]");
var out = document.createElement("pre");
out.id = "facts";
out.textContent = JSON.stringify(facts);
document.body.appendChild(out);
"""


def _facts(page: str, tmp_path: Path, script: str = _FACTS, *, draw_all: bool = True) -> dict[str, Any]:
    """What the page's DOM shows once headless Chromium has run its scripts and (with
    ``draw_all``) drawn all its charts, those out of view too, then ``script`` (which leaves its findings as JSON in ``<pre id="facts">``)."""
    assert _CHROMIUM is not None
    path = tmp_path / "page.html"
    draw = "window.hpoDrawAll();" if draw_all else ""
    run = f"function facts() {{ {draw}{_CHARTS}{script} }}"
    # The charts are drawn once the library is unpacked, which the browser does in the background.
    after = (
        "if (window.hpoChartsReady !== undefined) { facts(); } "
        'else { document.addEventListener("hpo-charts-ready", facts); }'
    )
    path.write_text(page.replace("</body>", f"<script>{run}{after}</script></body>"))
    result = subprocess.run(
        [
            _CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--log-level=0",
            # Runs the page's background work (the charts) before the DOM is read.
            "--virtual-time-budget=60000",
            "--dump-dom",
            path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert [line for line in result.stderr.splitlines() if "Uncaught" in line] == []
    found = re.search(r'<pre id="facts">(.*?)</pre>', result.stdout, re.DOTALL)
    assert found, result.stdout[-2000:] + result.stderr[-2000:]
    facts: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return facts


@pytest.mark.skipif(_CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_chromium_renders_failed_and_early_stopped_trials_with_curves_and_reasons(tmp_path: Path) -> None:
    experiment, history = single()
    page = html_page(experiment, history, decide(experiment, history), logs=_logs(tmp_path), folder=tmp_path)
    facts = _facts(page, tmp_path)
    assert facts["status"].endswith(
        "5 trials: 2 succeeded, 1 early-stopped, 1 failed, 1 without metrics (and 1 imported)"
    )
    trials = {row["trial"]: (row["status"], row["reason"]) for row in facts["trials"]}
    assert len(trials) == 6
    assert trials["demo-0003"] == ("Failed", "exit code 3")
    assert trials["demo-0004"] == ("MetricsUnavailable", "no loss in the trial's output")
    assert trials["demo-0002"][0] == "EarlyStopped" and trials["demo-0002"][1].startswith("best")
    assert {"lr", "layers", "optimizer", "loss", "accuracy", "seconds", "reason"} <= set(facts["headers"])
    # Two clicks on "seconds": longest first, the imported trial (no times) last.
    assert facts["bySecondsDescending"] == [
        "demo-0001",
        "demo-0000",
        "demo-0002",
        "demo-0004",
        "demo-0003",
        "demo-0005",
    ]
    assert facts["sorted"] == ["seconds"]
    assert sorted(c for c in facts["curves"] if c.startswith("loss:")) == [
        f"loss:demo-000{i}" for i in range(3)
    ]
    assert facts["stopped"] == ["loss:demo-0002", "accuracy:demo-0002"]
    assert facts["goal"] == [0.001] and facts["timeline"] == [5]  # the imported trial has no times
    assert facts["imported"] == [[[5, 0.1]]]  # the imported trial apart, in grey
    assert facts["chartsNote"].startswith("Drag along an axis")  # not "could not be drawn"
    assert facts["charts"][:3] == [
        "Optimization history: loss (minimize)",
        "Parallel coordinates: parameters and loss",
        "Parameter importance: loss",
    ]
    assert [c for c in facts["charts"] if c.startswith("Slice")] == [
        "Slice: loss by lr",
        "Slice: loss by layers",
        "Slice: loss by optimizer",
    ]
    assert [f[:2] for f in facts["failures"]] == [
        ["demo-0003", "exit code 3"],
        ["demo-0004", "no loss in the trial's output"],
    ]
    assert facts["failures"][0][2].endswith("Traceback: simulated crash")
    assert facts["pareto"] == []


@pytest.mark.skipif(_CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_chromium_renders_the_pareto_front_of_several_objectives(tmp_path: Path) -> None:
    experiment, history = multi()
    facts = _facts(html_page(experiment, history, decide(experiment, history)), tmp_path)
    assert facts["paretoHeaders"][:3] == ["trial", "loss (minimize)", "accuracy (maximize)"]
    assert facts["pareto"] == ["demo-0000", "demo-0001", "demo-0003"]
    assert {"loss", "accuracy"} <= set(facts["headers"])
    assert len([c for c in facts["curves"] if c.startswith("accuracy:")]) == 4
    assert "Pareto front: loss and accuracy" in facts["charts"]
    # Issue 29: history, slices and importance covered the first objective only.
    for chart in ("Optimization history: loss (minimize)", "Parameter importance: loss", "Slice: loss by lr"):
        assert {chart, chart.replace("loss", "accuracy").replace("minimize", "maximize")} <= set(
            facts["charts"]
        ), facts["charts"]
    assert "Parallel coordinates: parameters and loss, accuracy" in facts["charts"]


def test_a_wide_experiment_plots_its_most_important_parameters_only() -> None:
    """1,000 parameters drew 1,000 axes in parallel coordinates: 174 s for the page."""
    experiment = parse_experiment(wide_spec(14))
    names = [p.name for p in experiment.parameters]
    trials = tuple(
        TrialRecord(
            name=f"demo-{i:04d}",
            number=i,
            parameters={n: random.Random(i * 100 + k).random() for k, n in enumerate(names)},
            status="Succeeded",
            values=(float(i % 7),),
            metrics={"loss": float(i % 7)},
        )
        for i in range(12)
    )
    history = History(experiment="demo", trials=trials)
    page = html_page(experiment, history, decide(experiment, history))
    data = chart_data_of(page)
    [(metric, scores)] = data["importance"]
    assert metric == "loss" and len(scores) == 12
    assert {p["name"] for p in data["parameters"]} == {n for n, _ in scores} and data["hidden"] == 2
    assert all(len(t[3]) == 12 for t in data["trials"])  # each trial's values of those only
    assert "most important of " in page  # the charts' titles say so


# Browses the trials table as a person would: the first page, a numeric sort on a parameter,
# a filter, a status, a click on a row.
_BROWSE = """
var table = document.getElementById("trials-table");
function visible() {
  return Array.prototype.filter.call(table.tBodies[0].rows, function (row) { return !row.hidden; });
}
function column(name) {
  return Array.prototype.findIndex.call(table.tHead.rows[0].cells, function (th) { return th.textContent === name; });
}
var facts = {firstPage: visible().length, pager: document.getElementById("trial-pager").textContent};
var units = column("units");
table.tHead.rows[0].cells[units].click();
facts.unitsAscending = Array.prototype.map.call(table.tBodies[0].rows, function (row) {
  return row.cells[units].textContent;
});
facts.firstShown = visible()[0].getAttribute("data-trial");
var filter = document.getElementById("trial-filter");
filter.value = "demo-0123";
filter.dispatchEvent(new Event("input"));
facts.filtered = visible().map(function (row) { return row.getAttribute("data-trial"); });
filter.value = "";
filter.dispatchEvent(new Event("input"));
var statusFilter = document.getElementById("status-filter");  // not "status": window.status
statusFilter.value = "Failed";
statusFilter.dispatchEvent(new Event("change"));
facts.failedShown = visible().map(function (row) { return row.querySelector("td.status").textContent; });
facts.failedPager = document.getElementById("trial-pager").textContent;
document.getElementById("page-next").click();
facts.failedPage2 = visible().length;
visible()[0].cells[1].click();
var detail = document.getElementById("trial-detail");
facts.detail = {
  hidden: detail.hidden,
  title: detail.querySelector("h3").textContent,
  fields: Array.prototype.map.call(detail.querySelectorAll("dt"), function (dt) { return dt.textContent; }),
  curves: detail.querySelectorAll("[id^=trial-curves-]").length,
  tail: (detail.querySelector("pre.log-tail") || {}).textContent || ""
};
statusFilter.value = "";
statusFilter.dispatchEvent(new Event("change"));
// Brushing units 1 to 50 in the parallel coordinates: the table lists the brushed trials.
window.hpoParallel.dispatchAction({type: "axisAreaSelect", parallelAxisId: "p" + 1, intervals: [[1, 50]]});
facts.brushedPager = document.getElementById("trial-pager").textContent;
facts.brushedUnits = visible().map(function (row) { return parseInt(row.cells[units].textContent, 10); });
window.hpoParallel.dispatchAction({type: "axisAreaSelect", parallelAxisId: "p" + 1, intervals: []});
facts.unbrushedPager = document.getElementById("trial-pager").textContent;
filter.value = "demo-0001";
filter.dispatchEvent(new Event("input"));
visible()[0].cells[1].click();
facts.succeededDetail = Array.prototype.map.call(detail.querySelectorAll("[id^=trial-curves-]"), function (place) {
  return chart(place.id).getOption().series.map(function (series) { return series.name; });
});
var out = document.createElement("pre");
out.id = "facts";
out.textContent = JSON.stringify(facts);
document.body.appendChild(out);
"""


@pytest.mark.skipif(_CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_chromium_pages_filters_sorts_numbers_and_details_a_thousand_trials(tmp_path: Path) -> None:
    """Issue 29: 1000 rows at once, a parameter column sorted as text (16 after 120), no way to
    find a trial or see one whole."""
    document = with_field(
        base_spec(),
        "spec.parameters.1",
        {"name": "units", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "200"}},
    )
    for reference in document["spec"]["trialTemplate"]["trialParameters"]:
        if reference["reference"] == "layers":
            reference["reference"] = "units"
    experiment = parse_experiment(document)
    rng = random.Random(7)
    trials = []
    for number in range(1000):
        failed = number % 20 == 3
        loss = rng.random()
        trials.append(
            TrialRecord(
                name=f"demo-{number:04d}",
                number=number,
                parameters={"lr": rng.uniform(0.01, 0.05), "units": rng.randint(1, 200), "optimizer": "sgd"},
                status="Failed" if failed else "Succeeded",
                values=None if failed else (loss,),
                metrics={} if failed else {"loss": loss},
                series={} if failed else {"loss": _series([loss + 0.5, loss + 0.1, loss])},
                started=_at(number),
                finished=_at(number + 3),
                reason="exit code 3" if failed else "",
                log_tail="Traceback: out of memory" if failed else "",
            )
        )
    history = History(experiment="demo", trials=tuple(trials))
    page = html_page(experiment, history, decide(experiment, history))
    assert len(page.encode()) < 1_500_000  # it was 1.76 MB for 1000 trials of 6 parameters
    facts = _facts(page, tmp_path, _BROWSE)
    assert facts["firstPage"] == 50 and facts["pager"] == "1\u201350 of 1000"
    units = [int(value) for value in facts["unitsAscending"]]
    assert units == sorted(units) and units[0] == min(t.parameters["units"] for t in trials)
    assert facts["filtered"] == ["demo-0123"]
    assert facts["failedShown"] == ["Failed"] * 50 and facts["failedPager"] == "1\u201350 of 50 (of 1000)"
    assert facts["failedPage2"] == 50  # one page of 50: "next" stays on it
    detail = facts["detail"]
    assert detail["hidden"] is False and detail["title"].startswith("demo-")
    assert {"trial", "status", "reason", "lr", "units", "started"} <= set(detail["fields"])
    assert detail["tail"] == "Traceback: out of memory" and detail["curves"] == 0
    brushed = [t for t in trials if t.status == "Succeeded" and t.parameters["units"] <= 50]
    assert (
        facts["brushedPager"] == f"1\u201350 of {len(brushed)} (of 1000), brushed in the parallel coordinates"
    )
    assert len(facts["brushedUnits"]) == 50 and all(1 <= u <= 50 for u in facts["brushedUnits"])
    assert facts["unbrushedPager"] == "1\u201350 of 1000"
    assert facts["succeededDetail"] == [["demo-0001"]]  # its learning curve alone


# Each axis's ticks as ECharts laid them out (its scale's ticks), for the history's and the
# loss curves' charts.
_TICKS = """
function ticks(id, axis) {
  return chart(id).getModel().getComponent(axis, 0).axis.scale.getTicks().map(function (t) { return t.value; });
}
var out = document.createElement("pre");
out.id = "facts";
out.textContent = JSON.stringify({
  trialNumbers: ticks("history-chart-0", "xAxis"), steps: ticks("curves-chart-0", "xAxis"),
  losses: ticks("history-chart-0", "yAxis").concat(ticks("curves-chart-0", "yAxis")),
  running: ticks("timeline-chart", "yAxis")
});
document.body.appendChild(out);
"""


@pytest.mark.skipif(_CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_chromium_charts_tick_trial_numbers_and_steps_whole_and_no_negative_losses(tmp_path: Path) -> None:
    """Issue 29: ticks at fractional trial numbers, steps and counts of trials running at
    once, and at negative losses."""
    experiment, history = single()
    facts = _facts(html_page(experiment, history, decide(experiment, history)), tmp_path, _TICKS)
    for axis in ("trialNumbers", "steps", "running"):
        assert len(facts[axis]) >= 2 and all(t == int(t) for t in facts[axis]), facts
    assert facts["losses"] and min(facts["losses"]) >= 0, facts  # every loss here is positive


def test_the_timeline_has_a_row_per_lane_named_by_run_only_when_runs_differ() -> None:
    experiment, history = single()
    lanes = ["r1/lane-2", "r1/lane-10", "r1/lane-2", "r2/lane-1", "r1/lane-10", ""]
    history = History(
        experiment="demo",
        trials=tuple(replace(t, lane=lane) for t, lane in zip(history.trials, lanes, strict=True)),
    )
    timeline = chart_data_of(html_page(experiment, history, decide(experiment, history)))["timeline"]
    assert timeline["lanes"] == ["r1/lane-2", "r1/lane-10", "r2/lane-1"]  # by run, then lane number
    assert [lane for _, lane, _, _ in timeline["spans"]] == [0, 1, 0, 2, 1]  # the imported trial: no times
    one_run = History(experiment="demo", trials=history.trials[:3])
    timeline = chart_data_of(html_page(experiment, one_run, decide(experiment, one_run)))["timeline"]
    assert timeline["lanes"] == ["lane-2", "lane-10"]


# Reads the timeline's rows and bars.
_LANES = """
var option = chart("timeline-chart").getOption();
var bars = option.series.filter(function (s) { return s.name === "trials"; })[0];
var out = document.createElement("pre");
out.id = "facts";
out.textContent = JSON.stringify({rows: option.yAxis[1].data, bars: bars.data.map(function (d) { return d[2]; }),
  title: document.getElementById("timeline-chart").previousSibling.textContent});
document.body.appendChild(out);
"""


@pytest.mark.skipif(_CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_chromium_draws_each_lanes_trials_in_its_row(tmp_path: Path) -> None:
    """Issue 29: the timeline was a row per trial (14,000 px for 1000); now a row per lane."""
    experiment, history = single()
    lanes = ["r1/lane-1", "r1/lane-2", "r1/lane-1", "r1/lane-2", "", ""]
    history = History(
        experiment="demo",
        trials=tuple(replace(t, lane=lane) for t, lane in zip(history.trials, lanes, strict=True)),
    )
    facts = _facts(html_page(experiment, history, decide(experiment, history)), tmp_path, _LANES)
    assert facts["rows"] == ["lane-1", "lane-2", "no lane"]
    assert facts["bars"] == [0, 1, 0, 1, 2]  # trials 0-4 (5 was imported: no times)
    assert facts["title"] == "Timeline: trials running at once, and each lane's trials"


# The loss curves' series: each one's type, name and number of points.
_ONCE = """
var out = document.createElement("pre");
out.id = "facts";
out.textContent = JSON.stringify(chart("curves-chart-0").getOption().series.map(function (s) {
  return [s.type, s.name, s.data.length];
}));
document.body.appendChild(out);
"""


@pytest.mark.skipif(_CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_chromium_draws_trials_that_reported_once_as_points(tmp_path: Path) -> None:
    """Issue 29: trials that report once drew empty learning-curve boxes (and ECharts' lines
    series refuses a line of one point)."""
    experiment = parse_experiment(base_spec())
    trials = tuple(
        _trial(
            i,
            "Succeeded",
            start=i,
            seconds=1,
            values=(i / 10,),
            metrics={"loss": i / 10, "accuracy": 1 - i / 10},
            series={
                "loss": _series([0.9, i / 10] if i == 7 else [i / 10]),
                "accuracy": _series([1 - i / 10]),
            },
        )
        for i in range(8)
    )
    history = History(experiment="demo", trials=trials)
    facts = _facts(
        html_page(experiment, history, decide(experiment, history)), tmp_path, "var facts = 0;" + _ONCE
    )
    lines = [f for f in facts if f[0] == "line"]
    assert [name for _, name, _ in lines] == [f"demo-000{i}" for i in range(5)]  # the 5 best
    assert ["scatter", "reported once", 2] in facts  # the others, each a point (7 has a line)
    assert ["lines", "others", 1] in facts
    page = html_page(experiment, history, decide(experiment, history))
    assert list(chart_data_of(page)["series"]) == ["loss"]  # accuracy: one value each, no chart


def test_values_that_look_like_markup_stay_inside_the_charts_data() -> None:
    """A categorical value "</script>" would end the data's script element, and "<!--<script>"
    would make the parser read past its end; both must come back as they were."""
    document = with_field(base_spec(), "spec.parameters.2.feasibleSpace.list", ["</script>", "<!--<script>"])
    experiment = parse_experiment(document)
    trials = tuple(
        TrialRecord(
            name=f"demo-{i:04d}",
            number=i,
            parameters={"lr": 0.02, "layers": 3, "optimizer": value},
            status="Succeeded",
            values=(0.5,),
            metrics={"loss": 0.5},
        )
        for i, value in enumerate(["</script>", "<!--<script>"])
    )
    history = History(experiment="demo", trials=trials)
    page = html_page(experiment, history, decide(experiment, history))
    data = chart_data_of(page)
    assert [t[3][2] for t in data["trials"]] == ["</script>", "<!--<script>"]
    assert page.count("<script") == page.count("</script>")  # every element closes where it should


# Out of view, the charts wait; printing draws them all.
_PRINT = """
var before = document.querySelectorAll("#chart-area canvas").length;
window.dispatchEvent(new Event("beforeprint"));
var out = document.createElement("pre");
out.id = "facts";
out.textContent = JSON.stringify({before: before, printed: document.querySelectorAll("#chart-area canvas").length,
  places: document.querySelectorAll("#chart-area .chart-box > div").length});
document.body.appendChild(out);
"""


@pytest.mark.skipif(_CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_chromium_draws_charts_as_they_come_into_view_and_all_of_them_for_printing(tmp_path: Path) -> None:
    experiment, history = single()
    page = html_page(experiment, history, decide(experiment, history))
    # The table comes first: out of an 800 x 600 view (and its 300 px margin), no chart is drawn.
    page = page.replace('<section id="charts">', '<div style="height: 3000px"></div><section id="charts">')
    facts = _facts(page, tmp_path, _PRINT, draw_all=False)
    assert facts["before"] == 0 and facts["places"] >= 5
    assert facts["printed"] >= facts["places"]  # a canvas (or more) for each chart
