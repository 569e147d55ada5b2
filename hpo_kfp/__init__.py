"""hpo-kfp: hyperparameter tuning inside Kubeflow Pipelines.

Katib ``Experiment`` YAML in, Optuna samplers for suggestions, ML Metadata for tracking,
and no tuning operator on the cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpo_kfp.builder import algorithm, categorical, discrete, double, experiment, integer, objective
from hpo_kfp.collectors.push import report_metrics
from hpo_kfp.decide import Decision, decide
from hpo_kfp.errors import (
    BuildError,
    HistoryError,
    HpoKfpError,
    MetricsUnavailable,
    RunnerError,
    SamplerUnavailable,
    SpecError,
    TemplateError,
    TrackingError,
)
from hpo_kfp.history import History, TrialRecord
from hpo_kfp.spec import Experiment, load_experiment, parse_experiment
from hpo_kfp.steps.settings import StepSettings
from hpo_kfp.suggest import suggest

if TYPE_CHECKING:
    from hpo_kfp.pipeline.tune import tune


def __getattr__(name: str) -> Any:
    # ``tune`` needs KFP: it is imported when first used, so that ``import hpo_kfp`` (in a
    # training image calling ``report_metrics``, say) loads no KFP code.
    if name == "tune":
        from hpo_kfp.pipeline.tune import tune

        return tune
    raise AttributeError(f"module 'hpo_kfp' has no attribute {name!r}")


__all__ = [
    "BuildError",
    "Decision",
    "Experiment",
    "History",
    "HistoryError",
    "HpoKfpError",
    "MetricsUnavailable",
    "RunnerError",
    "SamplerUnavailable",
    "SpecError",
    "StepSettings",
    "TemplateError",
    "TrackingError",
    "TrialRecord",
    "algorithm",
    "categorical",
    "decide",
    "discrete",
    "double",
    "experiment",
    "integer",
    "objective",
    "load_experiment",
    "parse_experiment",
    "report_metrics",
    "suggest",
    "tune",
]
