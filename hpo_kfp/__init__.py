"""hpo-kfp: hyperparameter tuning inside Kubeflow Pipelines.

Katib ``Experiment`` YAML in, Optuna samplers for suggestions, ML Metadata for tracking,
and no tuning operator on the cluster.
"""

from __future__ import annotations

from typing import Any

from hpo_kfp.builder import algorithm, categorical, discrete, double, experiment, integer, objective
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
from hpo_kfp.push import report_metrics
from hpo_kfp.spec import Experiment, load_experiment, parse_experiment
from hpo_kfp.steps.settings import StepSettings
from hpo_kfp.suggest import suggest


def tune(*args: Any, **kwargs: Any) -> Any:
    """Adds hyperparameter tuning to the KFP pipeline being defined; see :func:`pipelines.tune.tune`.

    Imported on first use: everything else in ``hpo_kfp`` works without KFP.
    """
    from pipelines.tune import tune as build

    return build(*args, **kwargs)


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
