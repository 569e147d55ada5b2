"""The report people read in the KFP UI: a Markdown summary and a self-contained HTML page.

The page holds every trial in a table (pages of 50, sorted by a header's click, filtered by
text, status or the parallel coordinates' brush, a trial's detail on a row's click), the
reasons and log tails of failed trials, the experiment's settings and search space, the
interactive charts of :mod:`hpo_kfp.reports.charts` (Apache ECharts, carried in the page),
among them the trials running at once over time and each lane's trials, and Hyperband's
rungs. It loads nothing (a cluster may be air-gapped): 1000 trials of 6 parameters make
~1.3 MB.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hpo_kfp.decide import Decision
from hpo_kfp.history import History, TrialRecord
from hpo_kfp.reports.charts import charts_section
from hpo_kfp.reports.summary import FAILURES, counts_text, metric_names, ranked, shown_metrics, trial_log
from hpo_kfp.spec import Experiment, Parameter

__all__ = ["html_page", "markdown_summary"]

_COLORS = {
    "Succeeded": "#1f77b4",
    "EarlyStopped": "#ff7f0e",
    "Failed": "#d62728",
    "MetricsUnavailable": "#9467bd",
    "Running": "#7f7f7f",
    "Pending": "#bbbbbb",
}


def markdown_summary(experiment: Experiment, history: History, decision: Decision) -> str:
    """Status and counts, the best trial, the Pareto front (several objectives) and every
    trial with its status, reason, every metric and duration."""
    lines = [f"# {experiment.name}", ""]
    reason = f" ({decision.reason})" if decision.reason else ""
    lines += [f"**{decision.status}**{reason}: {counts_text(decision.counts)}.", ""]
    best = decision.best
    metric = experiment.objective.metric
    if best is not None:
        parameters = ", ".join(f"`{k}={_show(v)}`" for k, v in best.parameters.items())
        imported = " (imported prior data)" if best.origin == "import" else ""
        lines += [
            f"Best trial **{best.name}**{imported}: {metric} = **{best.objective:.6g}** with {parameters}.",
            "",
        ]
    terms = experiment.objective.terms
    if experiment.objective.is_multi:
        lines += [f"## Pareto front ({len(decision.pareto)} trials)", ""]
        lines.append("| trial | " + " | ".join(f"{t.metric} ({t.direction})" for t in terms) + " |")
        lines.append("|---" * (len(terms) + 1) + "|")
        for trial in decision.pareto:
            objectives = " | ".join(_show(v) for v in trial.values or ())
            lines.append(f"| {_cell(_marked(trial))} | {objectives} |")
        lines.append("")
    names = [p.name for p in experiment.parameters]
    metrics = metric_names(experiment, history)
    lines += ["## Trials", ""]
    lines.append("| trial | status | " + " | ".join([*names, *metrics]) + " | seconds | reason |")
    lines.append("|---" * (len(names) + len(metrics) + 4) + "|")
    for trial in ranked(experiment.objective, history.trials):
        values = shown_metrics(experiment, trial)
        cells = [
            _marked(trial),
            trial.status,
            *(_show(trial.parameters.get(n, "")) for n in names),
            *("" if values.get(m) is None else f"{values[m]:.6g}" for m in metrics),
            "" if trial.duration is None else f"{trial.duration:.1f}",
            trial.reason,
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _marked(trial: TrialRecord) -> str:
    return trial.name + (" (imported)" if trial.origin == "import" else "")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def html_page(
    experiment: Experiment,
    history: History,
    decision: Decision,
    *,
    logs: Mapping[str, Path] | None = None,
    folder: Path | None = None,
) -> str:
    """A self-contained page: summary, settings, every trial, failures, charts and plots.

    Args:
        logs: Trial name -> its log (a local run's), to link and to quote for failures.
        folder: Where the page will be, for links to the logs relative to it.
    """
    logs = logs or {}
    e = html.escape
    counts = decision.counts
    reason = f" ({e(decision.reason)})" if decision.reason else ""
    best = decision.best
    best_html = "no trial has succeeded yet"
    if best is not None:
        imported = ' <span class="imported">(imported prior data)</span>' if best.origin == "import" else ""
        best_html = (
            f'best trial <b id="best-trial">{e(best.name)}</b>{imported}: '
            f"{e(experiment.objective.metric)} = <b>{best.objective:.6g}</b>"
        )
    sections = [
        f'<section id="summary"><p id="status"><b>{e(decision.status)}</b>{reason} &middot; '
        f"{e(counts_text(counts))}</p><p>{best_html}</p></section>",
        _settings_section(experiment, history, decision),
        _pareto_section(experiment, decision),
        _trials_section(experiment, history, logs, folder),
        _failures_section(history, logs, folder),
        charts_section(experiment, history, decision, _COLORS),
        _hyperband_section(experiment, history),
    ]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(experiment.name)}: tuning report</title>
<style>{_STYLE}</style></head>
<body><h1>{e(experiment.name)}</h1>
{"".join(sections)}
<script>{_SORT_SCRIPT}{_TRIALS_SCRIPT % _PAGE_ROWS}</script>
</body></html>
"""


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } table.sortable th { cursor: pointer; user-select: none; }
th[aria-sort=ascending]::after { content: " \\25B2"; } th[aria-sort=descending]::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.partial { font-style: italic; color: #a55; }
tr.status-Failed td.status, tr.status-MetricsUnavailable td.status { color: #d62728; font-weight: bold; }
tr.status-EarlyStopped td.status { color: #c60; } .imported { color: #777; font-style: italic; }
pre.log-tail { background: #f7f7f7; border: 1px solid #ddd; padding: 0.5em; max-height: 14em;
  overflow: auto; }
div.scroll { overflow-x: auto; max-width: 100%; } #trials-table tbody tr { cursor: pointer; }
tr.chosen td { background: #fff6d6; } .controls input { width: 20em; }
#trial-detail { border: 1px solid #ccc; padding: 0.5em 1em; margin: 1em 0; background: #fafafa; }
#trial-detail dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
#trial-detail dt { font-weight: bold; } #trial-detail dd { margin: 0; }
.chart-box { display: inline-block; vertical-align: top; margin: 0.5em; }
.chart-box h3 { font-size: 0.95em; margin: 0.2em 0; }
"""

# Sorts a table.sortable by the clicked column: numbers by data-sort (blank cells last),
# text by its content; a second click reverses.
_SORT_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var headers = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(headers, function (th, column) {
    th.addEventListener("click", function () {
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(headers, function (other) { other.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var numeric = th.getAttribute("data-type") === "number";
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[column];
        var text = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent;
        return numeric ? (text === "" ? null : parseFloat(text)) : text;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === null || y === null) { return x === y ? 0 : (x === null ? 1 : -1); }
        var order = numeric ? x - y : String(x).localeCompare(String(y));
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
      table.dispatchEvent(new Event("sorted"));
    });
  });
});
"""

# The trials table a page at a time, filtered by text, status and the parallel coordinates'
# brush; a click on a row shows the trial: its row's cells, its learning curves (the charts'
# script draws them on the event) and its log's tail.
_TRIALS_SCRIPT = """
(function () {
  var table = document.getElementById("trials-table");
  if (!table) { return; }
  var PAGE = %d, page = 0;
  var filter = document.getElementById("trial-filter"), status = document.getElementById("status-filter");
  var pager = document.getElementById("trial-pager"), detail = document.getElementById("trial-detail");
  var rows = function () { return Array.prototype.slice.call(table.tBodies[0].rows); };
  function matching() {
    var text = filter.value.trim().toLowerCase(), wanted = status.value;
    var brushed = window.hpoBrushed;
    return rows().filter(function (row) {
      return (!wanted || row.className === "status-" + wanted) &&
        (!brushed || brushed.has(row.getAttribute("data-trial"))) &&
        (!text || row.textContent.toLowerCase().indexOf(text) >= 0);
    });
  }
  function show() {
    var found = matching(), pages = Math.max(Math.ceil(found.length / PAGE), 1);
    page = Math.min(Math.max(page, 0), pages - 1);
    var shown = new Set(found.slice(page * PAGE, (page + 1) * PAGE));
    rows().forEach(function (row) { row.hidden = !shown.has(row); });
    var first = found.length ? page * PAGE + 1 : 0;
    pager.textContent = first + "\u2013" + Math.min((page + 1) * PAGE, found.length) + " of " +
      found.length + (found.length < rows().length ? " (of " + rows().length + ")" : "") +
      (window.hpoBrushed ? ", brushed in the parallel coordinates" : "");
  }
  document.addEventListener("hpo-brushed", function () { page = 0; show(); });
  filter.addEventListener("input", function () { page = 0; show(); });
  status.addEventListener("change", function () { page = 0; show(); });
  document.getElementById("page-back").addEventListener("click", function () { page -= 1; show(); });
  document.getElementById("page-next").addEventListener("click", function () { page += 1; show(); });
  table.addEventListener("sorted", function () { page = 0; show(); });
  table.tBodies[0].addEventListener("click", function (event) {
    var row = event.target.closest("tr");
    if (!row || event.target.closest("a")) { return; }
    var name = row.getAttribute("data-trial"), heads = table.tHead.rows[0].cells;
    var list = document.createElement("dl");
    Array.prototype.forEach.call(row.cells, function (cell, i) {
      if (!cell.textContent) { return; }
      var dt = document.createElement("dt"), dd = document.createElement("dd");
      dt.textContent = heads[i].textContent;
      dd.innerHTML = cell.innerHTML;
      list.appendChild(dt); list.appendChild(dd);
    });
    detail.innerHTML = "";
    var title = document.createElement("h3");
    title.textContent = name;
    detail.appendChild(title);
    detail.appendChild(list);
    detail.dispatchEvent(new CustomEvent("hpo-trial", {bubbles: true, detail: {name: name, into: detail}}));
    var failure = document.querySelector('#failures li[data-trial="' + name + '"] pre');
    if (failure) { detail.appendChild(failure.cloneNode(true)); }
    detail.hidden = false;
    rows().forEach(function (other) { other.classList.toggle("chosen", other === row); });
  });
  show();
})();
"""


def _settings_section(experiment: Experiment, history: History, decision: Decision) -> str:
    e = html.escape
    algorithm = experiment.algorithm
    settings = ", ".join(f"{k}={_show(v)}" for k, v in algorithm.settings.items()) or "defaults"
    objectives = "; ".join(
        f"{t.direction} {t.metric}"
        + (
            f" (goal {experiment.objective.goal:g})"
            if i == 0 and experiment.objective.goal is not None
            else ""
        )
        for i, t in enumerate(experiment.objective.terms)
    )
    stopping = "none"
    if experiment.early_stopping is not None:
        rule = experiment.early_stopping
        stopping = (
            f"{rule.algorithm} (min_trials_required={rule.min_trials_required}, start_step={rule.start_step})"
        )
    failures = experiment.max_failed_trial_count
    budget = (
        f"{experiment.max_trial_count} trials, {experiment.parallel_trial_count} at a time, "
        f"failure limit {'none' if failures is None else failures}"
    )
    if history.run_limit is not None:
        budget += f"; this run: up to {history.run_limit} trials"
    rows = [
        (
            "algorithm",
            f"{algorithm.name} ({settings})"
            + (f", seed {algorithm.seed}" if algorithm.seed is not None else ""),
        ),
        ("objective", objectives),
        ("additional metrics", ", ".join(experiment.objective.additional_metrics) or "none"),
        ("early stopping", stopping),
        ("budget", budget),
        ("stop reason", decision.reason or ("still running" if not decision.done else "")),
    ]
    table = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows)
    space = "".join(
        f"<tr><td>{e(p.name)}</td><td>{e(p.type)}</td><td>{e(_space(p))}</td></tr>"
        for p in experiment.parameters
    )
    return (
        f'<section id="experiment"><h2>Experiment</h2><table class="settings">{table}</table>'
        '<h3>Search space</h3><table id="space"><thead><tr><th>parameter</th><th>type</th>'
        f"<th>values</th></tr></thead><tbody>{space}</tbody></table></section>"
    )


def _space(parameter: Parameter) -> str:
    if parameter.values:
        return ", ".join(_show(v) for v in parameter.values)
    text = f"[{_show(parameter.min)}, {_show(parameter.max)}] {parameter.distribution}"
    return text + (f", step {_show(parameter.step)}" if parameter.step is not None else "")


def _pareto_section(experiment: Experiment, decision: Decision) -> str:
    if not experiment.objective.is_multi:
        return ""
    e = html.escape
    terms = experiment.objective.terms
    header = "".join(f'<th data-type="number">{e(t.metric)} ({e(t.direction)})</th>' for t in terms)
    names = [p.name for p in experiment.parameters]
    header += "".join(f"<th>{e(n)}</th>" for n in names)
    rows = []
    for trial in decision.pareto:
        cells = "".join(f'<td class="num" data-sort="{v!r}">{v:.6g}</td>' for v in trial.values or ())
        cells += "".join(f"<td>{e(_show(trial.parameters.get(n, '')))}</td>" for n in names)
        rows.append(f'<tr data-trial="{e(trial.name)}"><td>{e(_marked(trial))}</td>{cells}</tr>')
    return (
        f'<section id="pareto"><h2>Pareto front ({len(decision.pareto)} trials)</h2>'
        f'<table id="pareto-table" class="sortable"><thead><tr><th>trial</th>{header}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _link(log: str | Path | None, folder: Path | None) -> str:
    """A link to a log file, or where a log is when it is no file here (an object store's URI)."""
    if not log:
        return ""
    if isinstance(log, str):
        if "://" in log:
            return f'<span class="log">{html.escape(log)}</span>'
        log = Path(log)
    target = Path(os.path.relpath(log, folder)).as_posix() if folder is not None else log.as_uri()
    return f'<a class="log" href="{html.escape(target)}">log</a>'


def _trials_section(
    experiment: Experiment, history: History, logs: Mapping[str, Path], folder: Path | None
) -> str:
    e = html.escape
    names = [p.name for p in experiment.parameters]
    metrics = metric_names(experiment, history)
    with_logs = bool(logs) or any(t.log for t in history.trials)
    number = ' data-type="number"'
    numeric = {p.name for p in experiment.parameters if p.type in ("int", "double") or _numbers(p.values)}
    header = (
        f"<th{number}>#</th><th>trial</th><th>status</th><th>reason</th>"
        + "".join(f"<th{number if n in numeric else ''}>{e(n)}</th>" for n in names)
        + "".join(f"<th{number}>{e(m)}</th>" for m in metrics)
        + f"<th{number}>seconds</th><th>started</th>"
        + ("<th>log</th>" if with_logs else "")
    )
    rows = []
    for index, trial in enumerate(ranked(experiment.objective, history.trials)):
        values = shown_metrics(experiment, trial)
        partial = trial.status == "EarlyStopped" and not trial.metrics
        cells = [
            f'<td class="num">{trial.number}</td>',
            f"<td>{e(_marked(trial))}</td>",
            f'<td class="status">{e(trial.status)}</td>',
            f'<td class="reason">{e(trial.reason)}</td>',
        ]
        for n in names:
            value = trial.parameters.get(n, "")
            sort = f' data-sort="{_key(value)}"' if isinstance(value, int | float) else ""
            cells.append(f"<td{sort}>{e(_show(value))}</td>")
        for m in metrics:
            value = values.get(m)
            if value is None:
                cells.append('<td class="num" data-sort=""></td>')
                continue
            kind = ' partial" title="the best it reached before it was stopped' if partial else ""
            cells.append(f'<td class="num{kind}" data-sort="{_key(value)}">{value:.6g}</td>')
        seconds = trial.duration
        cells.append(
            f'<td class="num" data-sort="{"" if seconds is None else repr(seconds)}">'
            f"{'' if seconds is None else f'{seconds:.1f}'}</td>"
        )
        cells.append(f"<td>{e(trial.started or '')}</td>")
        if with_logs:
            cells.append(f"<td>{_link(trial_log(trial, logs)[0], folder)}</td>")
        # Past the first page, hidden from the start: a browser that lays out 1000 rows while
        # it reads the page took 1.2 s to show it, 0.3 s with the rows hidden (the script pages).
        hidden = " hidden" if index >= _PAGE_ROWS else ""
        rows.append(
            f'<tr class="status-{e(trial.status)}" data-trial="{e(trial.name)}"{hidden}>{"".join(cells)}</tr>'
        )
    statuses = "".join(
        f'<option value="{e(s)}">{e(s)}</option>'
        for s in _COLORS
        if any(t.status == s for t in history.trials)
    )
    return (
        f'<section id="trials"><h2>Trials ({len(history.trials)})</h2>'
        "<p>Best first; click a column's header to sort by it, a row to see the trial. Italic values "
        "of early-stopped trials are the best they reached before they were stopped.</p>"
        '<p class="controls"><input id="trial-filter" type="search" placeholder="filter: any text of a row" '
        'aria-label="filter the trials"> <select id="status-filter" aria-label="status">'
        f'<option value="">every status</option>{statuses}</select> '
        '<button id="page-back" type="button">&lt;</button> <span id="trial-pager"></span> '
        '<button id="page-next" type="button">&gt;</button></p>'
        f'<div class="scroll"><table id="trials-table" class="sortable"><thead><tr>{header}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
        '<div id="trial-detail" hidden></div></section>'
    )


def _key(value: float) -> str:
    """A number to sort a column by: nine significant digits, three more than a cell shows
    (the shortest exact form takes up to 17, a fifth of a 1000-trial page)."""
    return f"{value:.9g}"


def _numbers(values: Sequence[Any]) -> bool:
    """Whether a discrete parameter's values are all numbers (its column sorts as numbers)."""
    return bool(values) and all(isinstance(v, int | float) for v in values)


def _failures_section(history: History, logs: Mapping[str, Path], folder: Path | None) -> str:
    e = html.escape
    failed = [t for t in history.trials if t.status in FAILURES]
    if not failed:
        return ""
    items = []
    for trial in failed:
        log, tail = trial_log(trial, logs)
        body = f'<pre class="log-tail">{e(tail)}</pre>' if tail else ""
        items.append(
            f'<li data-trial="{e(trial.name)}"><b>{e(trial.name)}</b> {e(trial.status)}: '
            f'<span class="reason">{e(trial.reason or "no reason recorded")}</span> '
            f"{_link(log, folder)}{body}</li>"
        )
    return f'<section id="failures"><h2>Failed trials ({len(failed)})</h2><ul>{"".join(items)}</ul></section>'


def _hyperband_section(experiment: Experiment, history: History) -> str:
    """Hyperband's brackets and rungs: each rung's trials with their results, a promoted
    trial naming the trial of the rung before whose configuration it runs again."""
    from hpo_kfp.algorithms.hyperband import placement

    e = html.escape
    rungs: dict[tuple[int, int], list[tuple[TrialRecord, str]]] = {}
    for trial in history.trials:
        placed = placement(trial)
        if placed is not None:
            rungs.setdefault(placed[:2], []).append((trial, placed[2]))
    if not rungs:
        return ""
    resource = str(experiment.algorithm.settings.get("resource_name", ""))
    rows = []
    for (bracket, rung), members in sorted(rungs.items(), key=lambda item: (-item[0][0], item[0][1])):
        cells = []
        for trial, origin in members:
            value = f" = {trial.objective:.4g}" if trial.objective is not None else f" ({trial.status})"
            came = f' <span class="from">from {e(origin)}</span>' if origin else ""
            cells.append(f'<span data-trial="{e(trial.name)}">{e(trial.name)}{e(value)}{came}</span>')
        resources = sorted({_show(t.parameters[resource]) for t, _ in members if resource in t.parameters})
        rows.append(
            f"<tr><td>{bracket}</td><td>{rung}</td><td>{e(', '.join(resources))}</td>"
            f"<td>{'; '.join(cells)}</td></tr>"
        )
    return (
        '<section id="hyperband"><h2>Hyperband</h2><p>Each bracket runs its rungs in turn; a rung '
        "runs the best configurations of the rung before with more of the resource.</p>"
        '<table id="hyperband-table"><thead><tr><th>bracket</th><th>rung</th><th>resource</th>'
        f"<th>trials</th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _show(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


_PAGE_ROWS = 50
"""Rows of the trials table a page shows."""
