"""The report page's interactive charts, drawn in the browser by Apache ECharts.

The page carries the library (which the package carries: ``hatch_build.py`` takes it from the
npm registry at build time) compressed, and the history as one JSON block; its script
unpacks the library (the browser's ``DecompressionStream``) and draws, per objective, the
optimization history, parallel coordinates whose axes brush (the trials table then shows the
brushed trials only), a slice plot per parameter and the parameters' importance (Optuna's
PED-ANOVA, computed here), then the learning curves of every recorded metric (the best few
trials stand out, the rest fade) and, with several objectives, the Pareto front. A trial's
detail in the table draws its own curves.

Nothing loads from the network (a cluster may be air-gapped), and the KFP UI shows an HTML
artifact in an ``<iframe sandbox="allow-scripts">`` through ``srcdoc`` (kubeflow/pipelines
``frontend/src/components/viewers/HTMLViewer.tsx``): scripts run, with an opaque origin,
which none of this needs.
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
import math
import warnings
from datetime import datetime
from importlib import resources
from typing import Any

from hpo_kfp.compat import import_optuna_importance_without_sklearn
from hpo_kfp.decide import Decision
from hpo_kfp.history import History, TrialRecord
from hpo_kfp.reports.summary import metric_names, ranked
from hpo_kfp.spec import Experiment
from hpo_kfp.study_view import quiet_optuna, to_study

__all__ = ["charts_section", "prepare_charts"]

PLOTTED_PARAMETERS = 12
"""Parameters drawn (parallel coordinates, slices, importance) when an experiment has more:
the most important ones. A thousand axes took minutes to draw and showed nothing."""

TOP_CURVES = 5
"""Trials whose learning curves stand out when more trials have curves (the rest fade)."""

TIMELINE_BARS = 60
"""Most trials drawn a row each in the timeline when no lane ran them (a thousand rows were
14,000 px of page); with lanes, a row per lane."""


@functools.cache
def packed_echarts() -> str | None:
    """ECharts' script gzipped and in base64 (0.5 MB, not 1.1 MB), or None when this install
    lacks it (a source tree on ``PYTHONPATH`` that was never built)."""
    try:
        script = resources.files("hpo_kfp.reports").joinpath("static", "echarts.min.js").read_bytes()
    except FileNotFoundError:
        return None
    return base64.b64encode(gzip.compress(script, compresslevel=9, mtime=0)).decode("ascii")


def prepare_charts() -> None:
    """Does the page's slow parts that do not depend on the history (Optuna's importance
    module, packing the library: ~1 s), so that a caller can do it while it waits."""
    import_optuna_importance_without_sklearn()
    packed_echarts()


def charts_section(
    experiment: Experiment, history: History, decision: Decision, colors: dict[str, str]
) -> str:
    """The charts' section: their places, the data and the library, drawn by the script in
    the page's status ``colors``."""
    packed = packed_echarts()
    if packed is None:
        return (
            '<section id="charts"><h2>Charts</h2><p>The charts need Apache ECharts, which hpo-kfp\'s '
            "wheel carries; this install has none (built from a source tree without its build step): "
            "reinstall hpo-kfp.</p></section>"
        )
    # No "<" at all inside the script element: "</script>" would end it, and "<!--<script"
    # would make the HTML parser read past its real end tag ("script data double escaped").
    data = _json(chart_data(experiment, history, decision)).replace("<", "\\u003c")
    script = _SCRIPT % {"colors": _json(colors), "top": TOP_CURVES, "bars": TIMELINE_BARS}
    return (
        '<section id="charts"><h2>Charts</h2>'
        '<p id="charts-note">Drag along an axis of the parallel coordinates to brush: the trials '
        "table then lists the brushed trials only (drag elsewhere on the axis to clear).</p>"
        "<noscript><p>The charts are drawn by the page's script.</p></noscript>"
        '<div id="chart-area"></div>'
        f'<script type="application/json" id="chart-data">{data}</script>'
        f'<script type="text/plain" id="echarts-gz">{packed}</script>'
        f"<script>{script}</script></section>"
    )


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _number(value: Any) -> Any:
    """A value as the charts show it: six significant digits, null for what is no number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else None
    return value


def chart_data(experiment: Experiment, history: History, decision: Decision) -> dict[str, Any]:
    """What the script draws, compact (a 1000-trial history of 6 parameters: ~0.2 MB).

    ``trials``: ``[number, name, status, [parameter values], [objective values] or null,
    imported]`` by number; ``series``: per metric, ``[[trial index, [values by step]], ...]``.
    """
    objective = experiment.objective
    trials = sorted(history.trials, key=lambda t: t.number)
    index = {t.name: i for i, t in enumerate(trials)}
    names = [p.name for p in experiment.parameters]
    importance = _importance(experiment, history)
    shown = names
    if len(names) > PLOTTED_PARAMETERS:
        first = importance[0][1] if importance else []
        shown = [n for n, _ in first][:PLOTTED_PARAMETERS] or names[:PLOTTED_PARAMETERS]
    series: dict[str, list[tuple[int, list[Any]]]] = {}
    for metric in metric_names(experiment, history):
        curves = [
            (i, [_number(v) for _, v in t.series[metric]])
            for i, t in enumerate(trials)
            if t.series.get(metric)
        ]
        if any(len(values) > 1 for _, values in curves):  # one value each: nothing to follow
            series[metric] = curves
    return {
        "objectives": [{"metric": t.metric, "direction": t.direction} for t in objective.terms],
        "goal": objective.goal,
        "parameters": [
            {
                "name": p.name,
                "scale": "log" if p.distribution in ("logUniform", "logNormal") else "linear",
                "values": [_number(v) for v in p.values] if p.values else None,
            }
            for p in experiment.parameters
            if p.name in shown
        ],
        "hidden": len(names) - len(shown),
        "trials": [
            [
                t.number,
                t.name,
                t.status,
                [_number(t.parameters.get(n)) for n in shown],
                [_number(v) for v in t.values] if t.status == "Succeeded" and t.values else None,
                t.origin == "import",
            ]
            for t in trials
        ],
        "series": series,
        "stopped": {
            i: t.reason for i, t in enumerate(trials) if t.status == "EarlyStopped" and any(t.series.values())
        },
        "best": decision.best.name if decision.best is not None else None,
        "top": [t.name for t in ranked(objective, history.trials)[:TOP_CURVES] if t.objective is not None],
        "pareto": [index[t.name] for t in decision.pareto if t.name in index],
        "importance": [
            [metric, [[n, _number(s)] for n, s in scores[:PLOTTED_PARAMETERS]]]
            for metric, scores in importance
        ],
        "timeline": _timeline(trials),
    }


def _timeline(trials: list[TrialRecord]) -> dict[str, Any]:
    """When each timed trial ran, in seconds since the first started, and in which lane:
    ``spans`` ``[trial index, lane index or -1, start, end]``; ``lanes`` their names (by
    lane alone when one run ran them all, else with their runs)."""
    timed = [
        (i, t, datetime.fromisoformat(t.started), datetime.fromisoformat(t.finished))
        for i, t in enumerate(trials)
        if t.started and t.finished
    ]
    if not timed:
        return {"lanes": [], "spans": []}
    origin = min(start for _, _, start, _ in timed)
    lanes = sorted({t.lane for _, t, _, _ in timed if t.lane}, key=_lane_order)
    runs = {lane.rsplit("/", 1)[0] for lane in lanes}
    names = [lane.rsplit("/", 1)[-1] if len(runs) == 1 else lane for lane in lanes]
    place = {lane: i for i, lane in enumerate(lanes)}
    spans = [
        [
            i,
            place.get(t.lane, -1),
            round((start - origin).total_seconds(), 3),
            round((end - origin).total_seconds(), 3),
        ]
        for i, t, start, end in timed
    ]
    return {"lanes": names, "spans": spans}


def _lane_order(lane: str) -> tuple[str, int]:
    """A run's lanes by number (lane-10 after lane-9)."""
    run, _, name = lane.rpartition("/lane-")
    return (run, int(name)) if name.isdigit() else (lane, 0)


def _importance(experiment: Experiment, history: History) -> list[tuple[str, list[tuple[str, float]]]]:
    """Each objective's parameters by importance (Optuna's PED-ANOVA), most important first;
    empty with fewer than two finished trials or parameters."""
    if len(experiment.parameters) < 2:
        return []
    import_optuna_importance_without_sklearn()
    import optuna.importance

    study = to_study(experiment, history)
    if sum(1 for t in study.trials if t.state.name == "COMPLETE") < 2:
        return []
    scores = []
    # PED-ANOVA warns (a UserWarning) when few trials make every importance equal: the bars say so.
    with quiet_optuna(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for position, term in enumerate(experiment.objective.terms):
            # The evaluator looks at the trials with the *lowest* target: a maximised one flips.
            sign = 1.0 if term.direction == "minimize" else -1.0
            try:
                found = optuna.importance.get_param_importances(
                    study,
                    evaluator=optuna.importance.PedAnovaImportanceEvaluator(),
                    target=functools.partial(_signed, position, sign),
                )
            except (ValueError, RuntimeError):
                return []
            scores.append((term.metric, list(found.items())))
    return scores


def _signed(position: int, sign: float, trial: Any) -> float:
    return sign * float(trial.values[position])


_SCRIPT = """
(function () {
  var D = JSON.parse(document.getElementById("chart-data").textContent);
  var area = document.getElementById("chart-area"), note = document.getElementById("charts-note");
  var COLORS = %(colors)s;
  var T = D.trials, P = D.parameters, O = D.objectives;
  // A chart's place, drawn when it comes near the view (ECharts takes 20-130 ms a chart: a
  // 1000-trial page's 11 charts took ~0.6 s to draw before anyone had scrolled to them), or at
  // once ("now"); hpoDrawAll() draws every chart still waiting.
  var waiting = new Map();
  var watcher = new IntersectionObserver(function (seen) {
    seen.forEach(function (entry) { if (entry.isIntersecting) { made(waiting.get(entry.target)); } });
  }, {rootMargin: "300px"});
  function box(id, title, height, width, now) {
    var holder = document.createElement("div");
    holder.className = "chart-box";
    var head = document.createElement("h3");
    head.textContent = title;
    var place = document.createElement("div");
    place.id = id;
    place.style.width = (width || 640) + "px";
    place.style.height = (height || 300) + "px";
    holder.appendChild(head); holder.appendChild(place); area.appendChild(holder);
    var chart = {place: place, option: null, then: [], instance: null};
    chart.setOption = function (option) { chart.option = option; return now ? made(chart) : chart; };
    chart.whenMade = function (then) { chart.then.push(then); };
    if (!now) { waiting.set(place, chart); watcher.observe(place); }
    return chart;
  }
  function made(chart) {
    if (!chart || chart.instance) { return chart && chart.instance; }
    waiting.delete(chart.place);
    watcher.unobserve(chart.place);
    chart.instance = echarts.init(chart.place, null, {renderer: "canvas"});
    chart.instance.setOption(chart.option);
    chart.then.forEach(function (then) { then(chart.instance); });
    return chart.instance;
  }
  window.hpoDrawAll = function () { Array.from(waiting.values()).forEach(made); };
  window.addEventListener("beforeprint", window.hpoDrawAll);  // a printed page has every chart
  function axis(p) {
    if (p.values) { return {type: "category", data: p.values.map(String)}; }
    return {type: p.scale === "log" ? "log" : "value", scale: true};
  }
  function param(p, v) { return p.values ? String(v) : v; }
  var finished = T.filter(function (t) { return t[4] !== null; });
  var tip = {trigger: "item", confine: true};
  // The finished trials as scatter points, [x, y] by "at": the experiment's own, and
  // imported ones in grey; a point's tooltip names its trial (points as plain arrays draw
  // several times faster than as objects).
  function points(name, at, size) {
    return [false, true].map(function (imported) {
      var mine = finished.filter(function (t) { return t[5] === imported; });
      return {type: "scatter", name: imported ? "imported" : name, symbolSize: size, data: mine.map(at),
        itemStyle: {color: imported ? "#999" : COLORS.Succeeded, opacity: 0.75},
        tooltip: {formatter: function (x) {
          return mine[x.dataIndex][1] + ": " + x.value.join(" \\u2192 "); }}};
    }).filter(function (series) { return series.data.length; });
  }
  function historyChart(k) {
    var o = O[k], sign = o.direction === "minimize" ? 1 : -1, best = null, steps = [];
    finished.forEach(function (t) {
      var v = t[4][k];
      if (v !== null && (best === null || sign * v < sign * best)) { best = v; }
      steps.push([t[0], best]);
    });
    var line = {type: "line", name: "best so far", step: "end", symbol: "none", data: steps,
      lineStyle: {color: "#d62728", width: 2}};
    if (k === 0 && D.goal !== null) {
      line.markLine = {symbol: "none", label: {formatter: "goal " + D.goal},
        lineStyle: {color: "#2ca02c", type: "dashed"}, data: [{yAxis: D.goal}]};
    }
    box("history-chart-" + k, "Optimization history: " + o.metric + " (" + o.direction + ")").setOption({
      animation: false, tooltip: tip, grid: {left: 70, right: 60},
      xAxis: {type: "value", name: "trial number", nameLocation: "middle", nameGap: 25, minInterval: 1},
      yAxis: {type: "value", name: o.metric, scale: true},
      series: points(o.metric, function (t) { return [t[0], t[4][k]]; }, 6).concat([line])});
  }
  function parallelChart() {
    var dims = P.map(function (p, i) { return Object.assign({id: "p" + i, dim: i, name: p.name}, axis(p)); });
    O.forEach(function (o, k) {
      dims.push({id: "o" + k, dim: P.length + k, name: o.metric + " (" + o.direction.slice(0, 3) + ")",
        type: "value", scale: true});
    });
    var rows = finished.map(function (t) {
      return t[3].map(function (v, i) { return param(P[i], v); }).concat(t[4]);
    });
    var values = finished.map(function (t) { return t[4][0]; });
    var title = "Parallel coordinates: parameters and " + O.map(function (o) { return o.metric; }).join(", ");
    if (D.hidden) { title += " (the " + P.length + " most important of " + (P.length + D.hidden) + ")"; }
    var chart = box("parallel-chart", title, 360, Math.max(640, 110 * dims.length));
    chart.setOption({
      animation: false,
      parallelAxis: dims,
      parallel: {left: 60, right: 110, top: 40, bottom: 30,
        parallelAxisDefault: {nameTextStyle: {fontSize: 11}, areaSelectStyle: {width: 16}}},
      visualMap: {type: "continuous", dimension: P.length, min: Math.min.apply(null, values),
        max: Math.max.apply(null, values), inRange: {color: O[0].direction === "minimize" ?
          ["#08306b", "#9ecae1"] : ["#9ecae1", "#08306b"]}, right: 0, top: 40, calculable: false,
        text: [O[0].metric, ""]},
      tooltip: {trigger: "item", confine: true, formatter: function (x) { return finished[x.dataIndex][1]; }},
      series: [{type: "parallel", data: rows, lineStyle: {width: 1, opacity: 0.5},
        inactiveOpacity: 0.03, activeOpacity: 0.8, progressive: 0}]});
    chart.whenMade(function (drawn) {
      drawn.on("axisareaselected", function () {
        var series = drawn.getModel().getSeries()[0];  // no interval on any axis: every row "normal"
        window.hpoBrushed = series.getRawIndicesByActiveState("inactive").length ? new Set(
          series.getRawIndicesByActiveState("active").map(function (i) { return finished[i][1]; })) : null;
        document.dispatchEvent(new Event("hpo-brushed"));
      });
      window.hpoParallel = drawn;
    });
  }
  function sliceCharts(k) {
    var o = O[k];
    P.forEach(function (p, i) {
      box("slice-chart-" + k + "-" + i, "Slice: " + o.metric + " by " + p.name, 240, 320).setOption({
        animation: false, tooltip: tip, grid: {left: 60, right: 15, top: 15, bottom: 40},
        xAxis: Object.assign({name: p.name, nameLocation: "middle", nameGap: 25}, axis(p)),
        yAxis: {type: "value", scale: true},
        series: points(o.metric, function (t) { return [param(p, t[3][i]), t[4][k]]; }, 5)});
    });
  }
  function importanceChart(k) {
    var found = D.importance[k];
    if (!found) { return; }
    var scores = found[1].slice(0, P.length).reverse();
    box("importance-chart-" + k, "Parameter importance: " + found[0], 40 + 26 * scores.length).setOption({
      animation: false, tooltip: tip, grid: {left: 140, right: 30, top: 10, bottom: 30},
      xAxis: {type: "value", name: "importance (PED-ANOVA)", nameLocation: "middle", nameGap: 20},
      yAxis: {type: "category", data: scores.map(function (s) { return s[0]; })},
      series: [{type: "bar", data: scores.map(function (s) { return s[1]; }),
        itemStyle: {color: COLORS.Succeeded}}]});
  }
  var CROSS = "path://M0,0L10,10M10,0L0,10";
  function curveSeries(metric, only) {
    var faded = [], once = [], strong = [], stops = [], top = new Set(D.top);
    var many = D.series[metric].length > %(top)d;
    D.series[metric].forEach(function (c) {
      var t = T[c[0]];
      if (only && t[1] !== only) { return; }
      var coords = c[1].map(function (v, s) { return [s + 1, v]; })
        .filter(function (point) { return point[1] !== null; });
      var color = COLORS[t[2]] || "#777";
      if (!coords.length) { return; }
      if (only || !many || top.has(t[1])) {
        strong.push({type: "line", name: t[1], data: coords, symbol: coords.length > 1 ? "none" : "circle",
          lineStyle: {color: color, width: t[1] === D.best ? 3 : 1.5}, itemStyle: {color: color}});
      } else if (coords.length > 1) {
        faded.push({coords: coords, name: t[1], lineStyle: {color: color}});
      } else {  // one value: a point (a line of one point draws nothing; ECharts' lines refuse it)
        once.push({value: coords[0], name: t[1], itemStyle: {color: color}});
      }
      if (D.stopped[c[0]] !== undefined) {
        stops.push({value: coords[coords.length - 1], name: t[1] + " stopped: " + D.stopped[c[0]],
          itemStyle: {borderColor: color, color: color}});
      }
    });
    var out = strong;
    if (faded.length) {
      out.push({type: "lines", name: "others", coordinateSystem: "cartesian2d", polyline: true,
        data: faded, lineStyle: {width: 1, opacity: 0.15}, silent: true, progressive: 0});
    }
    if (once.length) {
      out.push({type: "scatter", name: "reported once", symbolSize: 4, data: once, itemStyle: {opacity: 0.3},
        tooltip: {formatter: function (x) { return x.name + ": " + x.value[1]; }}});
    }
    if (stops.length) {
      out.push({type: "scatter", name: "stopped early", symbol: CROSS, symbolSize: 8, data: stops,
        itemStyle: {borderWidth: 2}, tooltip: {formatter: function (x) { return x.name; }}});
    }
    return out;
  }
  function curvesChart(metric, id, only, width) {
    var series = curveSeries(metric, only);
    box(id, "Learning curves: " + metric, 300, width, Boolean(only)).setOption({
      animation: false, tooltip: {trigger: "item", confine: true}, grid: {left: 70, right: 20},
      legend: {type: "scroll", top: 0, data: series.filter(function (s) { return s.type === "line"; })
        .map(function (s) { return s.name; })},
      xAxis: {type: "value", name: "step (reported value)", nameLocation: "middle", nameGap: 25,
        minInterval: 1, min: 1},
      yAxis: {type: "value", name: metric, scale: true},
      series: series});
  }
  function paretoChart() {
    var front = new Set(D.pareto);
    var all = [], best = [];
    finished.forEach(function (t) {
      var i = T.indexOf(t), point = {value: [t[4][0], t[4][1]], name: t[1]};
      (front.has(i) ? best : all).push(point);
    });
    box("pareto-chart", "Pareto front: " + O[0].metric + " and " + O[1].metric +
      (O.length > 2 ? " (of " + O.length + " objectives)" : "")).setOption({
      animation: false, tooltip: {trigger: "item", formatter: function (x) {
        return x.name + ": " + x.value.join(", "); }},
      legend: {data: ["Pareto front", "other trials"]}, grid: {left: 70, right: 20},
      xAxis: {type: "value", name: O[0].metric, nameLocation: "middle", nameGap: 25, scale: true},
      yAxis: {type: "value", name: O[1].metric, scale: true},
      series: [{type: "scatter", name: "other trials", data: all, itemStyle: {color: "#bbb"}},
        {type: "scatter", name: "Pareto front", data: best, itemStyle: {color: "#d62728"}, symbolSize: 9}]});
  }
  // How many trials ran at once over time, above a bar per trial from its start to its end in
  // the row of the lane that ran it (without lanes: a row per trial, up to %(bars)d trials).
  function timelineChart() {
    var spans = D.timeline.spans, lanes = D.timeline.lanes, rows;
    if (!spans.length) { return; }
    var events = [];
    spans.forEach(function (s) { events.push([s[2], 1], [s[3], -1]); });
    events.sort(function (a, b) { return a[0] - b[0] || a[1] - b[1]; });  // an end before a start
    var count = 0, running = [[0, 0]];
    events.forEach(function (e) { count += e[1]; running.push([e[0], count]); });
    if (lanes.length) {
      rows = lanes.slice();
      if (spans.some(function (s) { return s[1] < 0; })) { rows.push("no lane"); }
    } else {
      rows = spans.length <= %(bars)d ? spans.map(function (s) { return T[s[0]][1]; }) : [];
    }
    var row = function (s, i) { return lanes.length ? (s[1] < 0 ? rows.length - 1 : s[1]) : i; };
    var grids = [{left: 70, right: 20, top: 30, height: 150}];
    var end = running[running.length - 1][0];
    var xAxes = [{type: "value", gridIndex: 0, name: "seconds since the first trial started",
      nameLocation: "middle", nameGap: 25, max: end}];
    var yAxes = [{type: "value", gridIndex: 0, name: "trials running", minInterval: 1}];
    var series = [{type: "line", name: "running", step: "end", symbol: "none", data: running,
      xAxisIndex: 0, yAxisIndex: 0, lineStyle: {color: COLORS.Succeeded}}];
    if (rows.length) {
      grids.push({left: 140, right: 20, top: 240, height: 16 * rows.length});
      xAxes.push({type: "value", gridIndex: 1, max: end});
      yAxes.push({type: "category", gridIndex: 1, data: rows, inverse: true,
        axisLabel: {fontSize: 10, interval: 0}});
      series.push({type: "custom", name: "trials", xAxisIndex: 1, yAxisIndex: 1,
        data: spans.map(function (s, i) { return [s[2], s[3], row(s, i), s[0]]; }),
        encode: {x: [0, 1], y: 2},
        renderItem: function (params, api) {
          var from = api.coord([api.value(0), api.value(2)]), to = api.coord([api.value(1), api.value(2)]);
          var t = T[api.value(3)], height = api.size([0, 1])[1] * 0.7;
          return {type: "rect", shape: {x: from[0], y: from[1] - height / 2,
            width: Math.max(to[0] - from[0], 1), height: height},
            style: {fill: COLORS[t[2]] || "#777"}};
        },
        tooltip: {formatter: function (x) {
          var t = T[x.value[3]];
          return t[1] + " " + t[2] + ": " + x.value[0] + " s to " + x.value[1] + " s";
        }}});
    }
    var title = rows.length && lanes.length ? "Timeline: trials running at once, and each lane's trials"
      : rows.length ? "Timeline: trials running at once, and each trial" : "Timeline: trials running at once";
    box("timeline-chart", title, rows.length ? 280 + 16 * rows.length : 220, 900).setOption({
      animation: false, tooltip: tip, grid: grids, xAxis: xAxes, yAxis: yAxes, series: series});
  }
  function draw() {
    if (finished.length) {
      O.forEach(function (o, k) { historyChart(k); });
      if (P.length) { parallelChart(); }
      O.forEach(function (o, k) { importanceChart(k); sliceCharts(k); });
      if (O.length > 1) { paretoChart(); }
    }
    Object.keys(D.series).forEach(function (metric, m) { curvesChart(metric, "curves-chart-" + m); });
    timelineChart();
    if (!area.children.length) {
      note.textContent = "No trial has finished with a result or reported a series yet.";
    }
    document.addEventListener("hpo-trial", function (event) {
      Object.keys(D.series).forEach(function (metric, m) {
        if (!D.series[metric].some(function (c) { return T[c[0]][1] === event.detail.name; })) { return; }
        var holder = event.detail.into, before = area;
        area = holder;
        curvesChart(metric, "trial-curves-" + m, event.detail.name, 560);
        area = before;
      });
    });
    // Set up ("hpo-charts-ready": a test then draws them all), then drawn: the charts in
    // view are drawn when the watcher first reports (before the next frame), and paint in
    // that frame (each series in one: none is progressive); the frame after it comes once
    // that is done.
    window.hpoChartsReady = performance.now();
    document.dispatchEvent(new Event("hpo-charts-ready"));
    requestAnimationFrame(function () {
      requestAnimationFrame(function () {
        window.hpoCharts = performance.now();
        document.dispatchEvent(new Event("hpo-charts"));
      });
    });
  }
  var packed = document.getElementById("echarts-gz").textContent;
  var text = atob(packed), bytes = new Uint8Array(text.length);
  for (var i = 0; i < text.length; i++) { bytes[i] = text.charCodeAt(i); }
  new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"))).text()
    .then(function (code) {
      var script = document.createElement("script");
      script.textContent = code;
      document.head.appendChild(script);
      draw();
    })
    .catch(function (error) {
      note.textContent = "The charts could not be drawn: " + error;
      window.hpoChartsReady = window.hpoCharts = performance.now();
      document.dispatchEvent(new Event("hpo-charts-ready"));
      document.dispatchEvent(new Event("hpo-charts"));
    });
})();
"""
