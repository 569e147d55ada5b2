"""Trainer's OptimizationJob read into the same Experiment: fields, placeholders, errors with the
job's own field paths, and a TrainJob trial run locally from ``spec.trainer``."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpo_kfp.cli import main
from hpo_kfp.errors import SpecError
from hpo_kfp.history import TrialRecord
from hpo_kfp.render import render
from hpo_kfp.runners.local import local_command
from hpo_kfp.spec import parse_experiment

# The KEP's sample, with every field the KEP defines.
_JOB: dict[str, Any] = yaml.safe_load(
    """
apiVersion: trainer.kubeflow.org/v1alpha1
kind: OptimizationJob
metadata:
  name: tune-bert
spec:
  objectives:
    - {metric: accuracy, direction: maximize}
    - {metric: latency, direction: minimize}
  algorithm:
    name: nsga2
    provider: optuna
    settings:
      - {name: random_state, value: "3"}
  parameters:
    - name: learning_rate
      searchSpace: {type: double, min: "0.001", max: "0.1"}
    - name: batch_size
      searchSpace: {type: categorical, list: ["16", "32", "64"]}
    - name: epochs
      searchSpace: {type: int, min: "1", max: "4"}
  trialConfig: {numTrials: 10, parallelTrials: 2, maxFailedTrials: 3}
  trainJobTemplate:
    metadata:
      labels: {hpo-experiment: tune-bert, batch: "{{.batch_size}}"}
    spec:
      runtimeRef: {name: torch-distributed, apiGroup: trainer.kubeflow.org, kind: ClusterTrainingRuntime}
      trainer:
        image: docker.io/my-org/bert-tuner:latest
        command: ["python", "train.py", "--lr={{.learning_rate}}", "--batch-size={{ .batch_size }}"]
        env: [{name: EPOCHS, value: "{{.epochs}}"}]
"""
)


def _job(**changes: Any) -> dict[str, Any]:
    """A copy of the sample; keys are dotted paths (list indexes as numbers), ``...`` deletes."""
    document = copy.deepcopy(_JOB)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node: Any = document
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if value is ...:
            del node[int(last) if isinstance(node, list) else last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return document


def test_every_field_maps_onto_the_experiment() -> None:
    experiment = parse_experiment(_job())
    assert experiment.name == "tune-bert"
    assert [(t.metric, t.direction) for t in experiment.objective.terms] == [
        ("accuracy", "maximize"),
        ("latency", "minimize"),
    ]
    assert experiment.objective.strategies == {"accuracy": "latest", "latency": "latest"}
    assert (experiment.algorithm.name, experiment.algorithm.seed) == ("nsga2", 3)
    assert [(p.name, p.type) for p in experiment.parameters] == [
        ("learning_rate", "double"),
        ("batch_size", "categorical"),
        ("epochs", "int"),
    ]
    assert experiment.parameter("batch_size").values == ("16", "32", "64")
    counts = (experiment.max_trial_count, experiment.parallel_trial_count, experiment.max_failed_trial_count)
    assert counts == (10, 2, 3)
    assert experiment.template.kind == "TrainJob"
    assert experiment.template.primary_container_name == "node"
    assert experiment.source == _JOB  # the steps read the job itself again


def test_placeholders_are_substituted_as_values_anywhere() -> None:
    template = parse_experiment(_job()).template
    assert template.trial_spec is not None
    assignment = {"learning_rate": 0.01, "batch_size": "32", "epochs": 2}
    rendered = render(template.trial_spec, template.references, assignment, name="t-1", namespace="ns")
    trainer = rendered["spec"]["trainer"]
    assert trainer["command"] == ["python", "train.py", "--lr=0.01", "--batch-size=32"]
    assert trainer["env"] == [{"name": "EPOCHS", "value": "2"}]  # an env value stays a string
    assert rendered["metadata"]["labels"]["batch"] == "32"
    assert (rendered["apiVersion"], rendered["kind"]) == ("trainer.kubeflow.org/v1alpha1", "TrainJob")


def test_a_value_cannot_inject_structure() -> None:
    template = parse_experiment(_job()).template
    assert template.trial_spec is not None
    evil = {"learning_rate": 0.01, "batch_size": '16"]\n  image: evil', "epochs": 1}
    rendered = render(template.trial_spec, template.references, evil, name="t", namespace=None)
    assert rendered["spec"]["trainer"]["image"] == "docker.io/my-org/bert-tuner:latest"
    assert rendered["spec"]["trainer"]["command"][3] == '--batch-size=16"]\n  image: evil'


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"spec.trialConfig.numTrials": ...}, r"^spec.trialConfig.numTrials: must be specified"),
        (
            {"spec.trialConfig.parallelTrials": 20},
            r"^spec.trialConfig.parallelTrials: `parallelTrials <= numTrials` must hold, but got "
            r"parallelTrials=20, numTrials=10$",
        ),
        ({"spec.trialConfig.storage": {"pvcName": "x"}}, r"^spec.trialConfig.storage: must be omitted"),
        ({"spec.objectives": []}, r"^spec.objectives: must list at least one objective"),
        (
            {"spec.objectives.0.direction": "Maximize"},
            r"^spec.objectives\[0\].direction: must be one of minimize, maximize, but got 'Maximize'$",
        ),
        ({"spec.objectives.1.metric": "accuracy"}, r"^spec.objectives\[1\].metric: must name each objective"),
        ({"spec.algorithm.name": "bogus"}, r"^spec.algorithm.name: must be one of random, grid"),
        ({"spec.algorithm.provider": "vizier"}, r"^spec.algorithm.provider: must be optuna"),
        (
            {"spec.algorithm.settings.0.value": "-1"},
            r"^spec.algorithm.settings\[0\].value: random_state must be",
        ),
        (
            {"spec.parameters.0.searchSpace.min": "5"},
            r"^spec.parameters\[0\].searchSpace.min: `min <= max` must hold, but got min=5, max=0.1$",
        ),
        (
            {"spec.parameters.0.searchSpace.type": "discrete"},
            r"^spec.parameters\[0\].searchSpace.type: must be one of int, double, categorical",
        ),
        ({"spec.parameters.0.name": "learning-rate"}, r"^spec.parameters\[0\].name: must be letters, digits"),
        (
            {"spec.trainJobTemplate.spec.trainer.env": []},
            r"^spec.parameters\[2\].name: must appear as \{\{.epochs\}\} in spec.trainJobTemplate, "
            r"but got 'epochs'$",
        ),
        (
            {"spec.trainJobTemplate.spec.trainer.image": "img:{{.tag}}"},
            r"^spec.trainJobTemplate.spec.trainer.image: every \{\{.name\}\} placeholder must name a "
            r"parameter in spec.parameters, but got '\{\{.tag\}\}'$",
        ),
        (
            {"spec.trainJobTemplate.spec.trainer.image": "img:{{ printf .epochs }}"},
            r"^spec.trainJobTemplate.spec.trainer.image: must use placeholders of the form",
        ),
        (
            {"spec.trainJobTemplate.metadata.labels": {"{{.epochs}}": "x"}},
            r"^spec.trainJobTemplate.metadata.labels.\{\{.epochs\}\}: placeholders must be in values",
        ),
        (
            {"spec.trainJobTemplate.metadata.name": "fixed"},
            r"^spec.trainJobTemplate.metadata.name: must be omitted: the runner names each trial",
        ),
        ({"spec.trainJobTemplate": ...}, r"^spec.trainJobTemplate: must be specified"),
        ({"spec.nasConfig": {}}, r"^spec.nasConfig: must be one of the fields objectives, algorithm"),
        ({"kind": "Experiment"}, r"^apiVersion: must be kubeflow.org/v1beta1 \(a Katib Experiment\) or"),
    ],
    ids=[
        "no-num-trials",
        "parallel-gt-num",
        "storage",
        "no-objectives",
        "direction-case",
        "duplicate-metric",
        "unknown-algorithm",
        "provider",
        "bad-setting",
        "min-gt-max",
        "katib-only-type",
        "not-an-identifier",
        "unused-parameter",
        "undeclared-placeholder",
        "go-function",
        "placeholder-in-key",
        "fixed-name",
        "no-template",
        "unknown-field",
        "kind-of-other-api",
    ],
)
def test_errors_name_the_jobs_own_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_experiment(_job(**changes))


def test_grid_takes_a_step_and_early_stopping_applies() -> None:
    document = _job(
        **{
            "spec.objectives": [{"metric": "loss", "direction": "minimize"}],
            "spec.algorithm": {"name": "grid"},
            "spec.parameters.0.searchSpace.step": "0.033",
            "spec.trialConfig.numTrials": 36,
            "spec.trialConfig.parallelTrials": ...,
            "spec.earlyStopping": {"name": "medianstop", "settings": [{"name": "start_step", "value": "2"}]},
        }
    )
    experiment = parse_experiment(document)
    assert experiment.early_stopping is not None and experiment.early_stopping.start_step == 2
    assert experiment.parallel_trial_count == 3  # Katib's default
    with pytest.raises(SpecError, match=r"^spec.earlyStopping.name: must be one of medianstop"):
        parse_experiment(_job(**{"spec.earlyStopping": {"name": "hyperband"}}))


def test_a_trainjob_trial_runs_its_trainers_command_locally(tmp_path: Path) -> None:
    experiment = parse_experiment(_job())
    trial = TrialRecord(
        name="tune-bert-0001", number=1, parameters={"learning_rate": 0.5, "batch_size": "16", "epochs": 3}
    )
    command = local_command(experiment, trial, tmp_path / "metrics")
    assert command.argv == [sys.executable, "train.py", "--lr=0.5", "--batch-size=16"]
    assert command.env["EPOCHS"] == "3"


def test_validate_accepts_a_job_and_names_its_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(_job()))
    assert main(["validate", str(path)]) == 0
    assert "experiment tune-bert, algorithm nsga2, 3 parameters" in capsys.readouterr().out
    # Asynchronous runs hold a share each: no trial count is too many for a pipeline.
    path.write_text(
        yaml.safe_dump(_job(**{"spec.trialConfig.numTrials": 4000, "spec.trialConfig.parallelTrials": 1}))
    )
    assert main(["validate", str(path)]) == 0
