"""The report people read in the KFP UI: a Markdown summary and a self-contained HTML page.

The page's plots are Optuna's own (``optuna.visualization.matplotlib``: optimization
history, parallel coordinates, parameter importance, and the Pareto front when there are
several objectives), embedded as PNG images: no script, no network access (a cluster may be
air-gapped), a few hundred KB.
"""

from __future__ import annotations

import base64
import html
import importlib.util
import io
from collections.abc import Callable
from typing import Any

from hpo_kfp.compat import import_optuna_importance_without_sklearn
from hpo_kfp.decide import Decision
from hpo_kfp.history import History
from hpo_kfp.report import ranked
from hpo_kfp.spec import Experiment
from hpo_kfp.study_view import quiet_optuna, to_study

__all__ = ["html_page", "markdown_summary", "plotting_available"]

_TOP = 10


def markdown_summary(experiment: Experiment, history: History, decision: Decision) -> str:
    """Best trial, counts, reason, and the top trials as a table."""
    counts = decision.counts
    lines = [f"# {experiment.name}", ""]
    reason = f" ({decision.reason})" if decision.reason else ""
    lines.append(
        f"**{decision.status}**{reason}: {counts['total']} trials — {counts['succeeded']} succeeded, "
        f"{counts['failed']} failed, {counts['metricsUnavailable']} without metrics"
        + (f", {counts['imported']} imported" if counts["imported"] else "")
        + "."
    )
    lines.append("")
    best = decision.best
    metric = experiment.objective.metric
    if best is not None:
        parameters = ", ".join(f"`{k}={_show(v)}`" for k, v in best.parameters.items())
        lines += [f"Best trial **{best.name}**: {metric} = **{best.objective:.6g}** with {parameters}.", ""]
    names = [p.name for p in experiment.parameters]
    lines.append("| trial | status | " + " | ".join(names) + f" | {metric} |")
    lines.append("|---" * (len(names) + 3) + "|")
    for trial in ranked(experiment.objective, history.trials)[:_TOP]:
        values = " | ".join(_show(trial.parameters.get(n, "")) for n in names)
        objective = "" if trial.objective is None else f"{trial.objective:.6g}"
        lines.append(f"| {trial.name} | {trial.status} | {values} | {objective} |")
    return "\n".join(lines) + "\n"


def html_page(experiment: Experiment, history: History, decision: Decision) -> str:
    """A self-contained page: the summary, the top trials and the plots."""
    figures = _figures(experiment, history) if plotting_available() else None
    best = decision.best
    rows = []
    names = [p.name for p in experiment.parameters]
    for trial in ranked(experiment.objective, history.trials)[:_TOP]:
        cells = [
            trial.name,
            trial.status,
            *(_show(trial.parameters.get(n, "")) for n in names),
            "" if trial.objective is None else f"{trial.objective:.6g}",
        ]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    header = "".join(
        f"<th>{html.escape(h)}</th>" for h in ["trial", "status", *names, experiment.objective.metric]
    )
    counts = decision.counts
    reason = f" ({html.escape(decision.reason)})" if decision.reason else ""
    summary = (
        f"{html.escape(decision.status)}{reason}"
        f" &middot; {counts['total']} trials: {counts['succeeded']} succeeded, {counts['failed']} failed, "
        f"{counts['metricsUnavailable']} without metrics"
    )
    best_text = "no trial has succeeded yet"
    if best is not None:
        best_text = (
            f"best trial <b>{html.escape(best.name)}</b>: {html.escape(experiment.objective.metric)} = "
            f"<b>{best.objective:.6g}</b>"
        )
    images = "".join(
        f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{data}"/>'
        f"<figcaption>{html.escape(title)}</figcaption></figure>"
        for title, data in figures or ()
    )
    if figures is None:
        images = f"<p>{_NO_PLOTS}</p>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(experiment.name)}: tuning report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 0.3em 0.6em; }}
th {{ background: #f0f0f0; }} figure {{ display: inline-block; margin: 0.5em; }} img {{ max-width: 640px; }}
</style></head>
<body><h1>{html.escape(experiment.name)}</h1>
<p>{summary}</p><p>{best_text}</p>
<h2>Top trials</h2><table><tr>{header}</tr>{"".join(rows)}</table>
<h2>Plots</h2>{images or "<p>Not enough finished trials to plot.</p>"}
</body></html>
"""


def _show(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


_NO_PLOTS = "Plots need matplotlib: <code>pip install 'hpo-kfp[plot]'</code>."


def plotting_available() -> bool:
    """Whether the plot extra (matplotlib) is installed."""
    return importlib.util.find_spec("matplotlib") is not None


def _figures(experiment: Experiment, history: History) -> list[tuple[str, str]]:
    import_optuna_importance_without_sklearn()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.importance import PedAnovaImportanceEvaluator
    from optuna.visualization import matplotlib as plots

    study = to_study(experiment, history)
    completed = [t for t in study.trials if t.state.name == "COMPLETE"]
    if not completed:
        return []
    metric = experiment.objective.metric
    multi = experiment.objective.is_multi
    target: dict[str, Any] = {"target": (lambda t: t.values[0]), "target_name": metric} if multi else {}
    makers: list[tuple[str, Callable[[], Any]]] = [
        ("Optimization history", lambda: plots.plot_optimization_history(study, **target)),
        ("Parallel coordinates", lambda: plots.plot_parallel_coordinate(study, **target)),
    ]
    if len(completed) >= 2 and len(experiment.parameters) >= 2:
        # Optuna's importance looks at the trials with the *lowest* target: flip a maximised one.
        sign = 1.0 if experiment.objective.type == "minimize" else -1.0
        ranked: dict[str, Any] = (
            {"target": (lambda t: sign * t.values[0]), "target_name": metric} if multi else {}
        )
        importance = PedAnovaImportanceEvaluator()
        makers.append(
            (
                "Parameter importance",
                lambda: plots.plot_param_importances(study, evaluator=importance, **ranked),
            )
        )
    if multi:
        makers.append(("Pareto front", lambda: plots.plot_pareto_front(study)))
    figures = []
    with quiet_optuna():
        for title, make in makers:
            plt.close("all")
            axes = make()
            figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
            figure.set_size_inches(7, 4.2)
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
            figures.append((title, base64.b64encode(buffer.getvalue()).decode("ascii")))
    plt.close("all")
    return figures
