"""The Katib ``kubeflow.org/v1beta1`` Experiment, read into typed, validated dataclasses."""

from __future__ import annotations

from hpo_kfp.spec.algorithm import AlgorithmSpec, EarlyStopping
from hpo_kfp.spec.collector import CollectorSpec
from hpo_kfp.spec.experiment import Experiment, load_experiment, parse_experiment
from hpo_kfp.spec.objective import Objective, ObjectiveTerm
from hpo_kfp.spec.parameters import Parameter
from hpo_kfp.spec.template import TrialParameter, TrialTemplate

__all__ = [
    "AlgorithmSpec",
    "EarlyStopping",
    "Experiment",
    "CollectorSpec",
    "Objective",
    "ObjectiveTerm",
    "Parameter",
    "TrialParameter",
    "TrialTemplate",
    "load_experiment",
    "parse_experiment",
]
