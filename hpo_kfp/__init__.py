"""hpo-kfp: hyperparameter tuning inside Kubeflow Pipelines.

Katib ``Experiment`` YAML in, Optuna samplers for suggestions, ML Metadata for tracking,
and no tuning operator on the cluster.
"""

from __future__ import annotations

from hpo_kfp.decide import Decision, decide
from hpo_kfp.errors import (
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
from hpo_kfp.suggest import suggest

__all__ = [
    "Decision",
    "Experiment",
    "History",
    "HistoryError",
    "HpoKfpError",
    "MetricsUnavailable",
    "RunnerError",
    "SamplerUnavailable",
    "SpecError",
    "TemplateError",
    "TrackingError",
    "TrialRecord",
    "decide",
    "load_experiment",
    "parse_experiment",
    "report_metrics",
    "suggest",
]
