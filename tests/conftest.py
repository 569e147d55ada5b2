"""Shared fixtures: a valid Katib experiment to start from, and a way to change one field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.k8s_emulator import k8s  # noqa: F401 - the Kubernetes API emulator fixture
from tests.kfp_api_stub import kfp_api  # noqa: F401 - the KFP REST API stub fixture

_BASE: dict[str, Any] = {
    "apiVersion": "kubeflow.org/v1beta1",
    "kind": "Experiment",
    "metadata": {"name": "demo", "namespace": "kubeflow"},
    "spec": {
        "objective": {
            "type": "minimize",
            "goal": 0.001,
            "objectiveMetricName": "loss",
            "additionalMetricNames": ["accuracy"],
        },
        "algorithm": {"algorithmName": "random"},
        "parallelTrialCount": 2,
        "maxTrialCount": 8,
        "maxFailedTrialCount": 3,
        "parameters": [
            {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.01", "max": "0.05"}},
            {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": "2", "max": "5"}},
            {
                "name": "optimizer",
                "parameterType": "categorical",
                "feasibleSpace": {"list": ["sgd", "adam", "ftrl"]},
            },
        ],
        "trialTemplate": {
            "primaryContainerName": "training-container",
            "trialParameters": [
                {"name": "learningRate", "reference": "lr"},
                {"name": "numberLayers", "reference": "layers"},
                {"name": "optimizer", "reference": "optimizer"},
            ],
            "trialSpec": {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    "name": "training-container",
                                    "image": "python:3.11",
                                    "command": [
                                        "python3",
                                        "train.py",
                                        "--lr=${trialParameters.learningRate}",
                                        "--num-layers=${trialParameters.numberLayers}",
                                        "--optimizer=${trialParameters.optimizer}",
                                    ],
                                }
                            ],
                            "restartPolicy": "Never",
                        }
                    }
                },
            },
        },
    },
}


def base_spec() -> dict[str, Any]:
    """A fresh copy of a valid experiment document."""
    return copy.deepcopy(_BASE)


def wide_spec(parameters: int) -> dict[str, Any]:
    """:func:`base_spec` with ``parameters`` doubles ``p0``, ``p1``, … in [0, 1] (each its own
    mapping: no YAML aliases when dumped), all passed to the trial's command."""
    document = base_spec()
    names = [f"p{i}" for i in range(parameters)]
    document["spec"]["parameters"] = [
        {"name": n, "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}} for n in names
    ]
    template = document["spec"]["trialTemplate"]
    template["trialParameters"] = [{"name": n, "reference": n} for n in names]
    container = template["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = ["train", *(f"--{n}=${{trialParameters.{n}}}" for n in names)]
    return document


def with_field(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Sets (or, with value ``...``, deletes) the field at a dotted path like
    ``spec.parameters.0.feasibleSpace.min``."""
    keys = path.split(".")
    node: Any = document
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    last: Any = int(keys[-1]) if isinstance(node, list) else keys[-1]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return document


@pytest.fixture
def spec_doc() -> dict[str, Any]:
    return base_spec()
