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
from importlib import resources
from typing import Any

from hpo_kfp.compat import import_optuna_importance_without_sklearn
from hpo_kfp.decide import Decision
from hpo_kfp.history import History
from hpo_kfp.reports.summary import metric_names, ranked
from hpo_kfp.spec import Experiment
from hpo_kfp.study_view import quiet_optuna, to_study

__all__ = ["charts_section", "prepare_charts"]

PLOTTED_PARAMETERS = 12
"""Parameters drawn (parallel coordinates, slices, importance) when an experiment has more:
the most important ones. A thousand axes took minutes to draw and showed nothing."""

TOP_CURVES = 5
"""Trials whose learning curves stand out when more trials have curves (the rest fade)."""


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
    data = _json(chart_data(experiment, history, decision)).replace("</", "<\\/")
    return (
        '<section id="charts"><h2>Charts</h2>'
        '<p id="charts-note">Drag along an axis of the parallel coordinates to brush: the trials '
        "table then lists the brushed trials only (drag elsewhere on the axis to clear).</p>"
        "<noscript><p>The charts are drawn by the page's script.</p></noscript>"
        '<div id="chart-area"></div>'
        f'<script type="application/json" id="chart-data">{data}</script>'
        f'<script type="text/plain" id="echarts-gz">{packed}</script>'
        f"<script>{_SCRIPT % {'colors': _json(colors), 'top': TOP_CURVES}}</script></section>"
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
    series = {}
    for metric in metric_names(experiment, history):
        curves = [
            [i, [_number(v) for _, v in t.series[metric]]]
            for i, t in enumerate(trials)
            if t.series.get(metric)
        ]
        if curves:
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
    }


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
    with quiet_optuna():
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
  function box(id, title, height, width) {
    var holder = document.createElement("div");
    holder.className = "chart-box";
    var head = document.createElement("h3");
    head.textContent = title;
    var place = document.createElement("div");
    place.id = id;
    place.style.width = (width || 640) + "px";
    place.style.height = (height || 300) + "px";
    holder.appendChild(head); holder.appendChild(place); area.appendChild(holder);
    return echarts.init(place, null, {renderer: "canvas"});
  }
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
      animation: false, tooltip: tip, grid: {left: 70, right: 20},
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
    chart.on("axisareaselected", function () {
      var series = chart.getModel().getSeries()[0];  // no interval on any axis: every row "normal"
      window.hpoBrushed = series.getRawIndicesByActiveState("inactive").length ? new Set(
        series.getRawIndicesByActiveState("active").map(function (i) { return finished[i][1]; })) : null;
      document.dispatchEvent(new Event("hpo-brushed"));
    });
    window.hpoParallel = chart;
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
    var faded = [], strong = [], stops = [], top = new Set(D.top);
    var many = D.series[metric].length > %(top)d;
    D.series[metric].forEach(function (c) {
      var t = T[c[0]];
      if (only && t[1] !== only) { return; }
      var coords = c[1].map(function (v, s) { return [s + 1, v]; });
      var color = COLORS[t[2]] || "#777";
      if (only || !many || top.has(t[1])) {
        strong.push({type: "line", name: t[1], data: coords, symbol: "none",
          lineStyle: {color: color, width: t[1] === D.best ? 3 : 1.5}, itemStyle: {color: color}});
      } else {
        faded.push({coords: coords, name: t[1], lineStyle: {color: color}});
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
    if (stops.length) {
      out.push({type: "scatter", name: "stopped early", symbol: CROSS, symbolSize: 8, data: stops,
        itemStyle: {borderWidth: 2}, tooltip: {formatter: function (x) { return x.name; }}});
    }
    return out;
  }
  function curvesChart(metric, id, only, width) {
    var series = curveSeries(metric, only);
    box(id, "Learning curves: " + metric, 300, width).setOption({
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
  function draw() {
    if (finished.length) {
      O.forEach(function (o, k) { historyChart(k); });
      if (P.length) { parallelChart(); }
      O.forEach(function (o, k) { importanceChart(k); sliceCharts(k); });
      if (O.length > 1) { paretoChart(); }
    }
    Object.keys(D.series).forEach(function (metric, m) { curvesChart(metric, "curves-chart-" + m); });
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
    // Drawn: the charts paint in the next animation frame (each series in one: none is
    // progressive); the frame after it comes once that is done.
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
      document.dispatchEvent(new Event("hpo-charts"));
    });
})();
"""
