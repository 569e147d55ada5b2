"""Katib's defaults are applied to what the file leaves out."""

from __future__ import annotations

import pytest

from hpo_kfp.spec import parse_experiment
from hpo_kfp.spec._reader import Node
from hpo_kfp.spec.algorithm import parse_early_stopping
from tests.conftest import base_spec, with_field

_COMPLETE = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
_SUCCEEDED = 'status.conditions.#(type=="Succeeded")#|#(status=="True")#'
_FAILED = 'status.conditions.#(type=="Failed")#|#(status=="True")#'


def test_counts_policy_collector_and_distribution_defaults() -> None:
    document = with_field(base_spec(), "spec.parallelTrialCount", ...)
    experiment = parse_experiment(document)
    assert experiment.parallel_trial_count == 3
    assert experiment.resume_policy == "Never"
    assert experiment.metrics_collector.kind == "StdOut"
    assert experiment.early_stopping is None
    assert {p.distribution for p in experiment.parameters} == {"uniform"}
    assert experiment.parameter("layers").step == 1


@pytest.mark.parametrize(
    ("direction", "expected"), [("minimize", "min"), ("maximize", "max")], ids=["minimize", "maximize"]
)
def test_metric_strategies_follow_the_objective_type(direction: str, expected: str) -> None:
    document = with_field(base_spec(), "spec.objective.type", direction)
    objective = parse_experiment(document).objective
    assert objective.strategies == {"loss": expected, "accuracy": expected}


def test_explicit_metric_strategy_is_kept() -> None:
    document = with_field(
        base_spec(), "spec.objective.metricStrategies", [{"name": "accuracy", "value": "latest"}]
    )
    assert parse_experiment(document).objective.strategies == {"accuracy": "latest", "loss": "min"}


@pytest.mark.parametrize(
    ("api_version", "kind", "success", "labels"),
    [
        ("batch/v1", "Job", _COMPLETE, {}),
        ("kubeflow.org/v1", "TFJob", _SUCCEEDED, {"training.kubeflow.org/job-role": "master"}),
        ("kubeflow.org/v1", "PyTorchJob", _SUCCEEDED, {"training.kubeflow.org/job-role": "master"}),
        ("kubeflow.org/v1", "XGBoostJob", _SUCCEEDED, {"training.kubeflow.org/job-role": "master"}),
        ("kubeflow.org/v2beta1", "MPIJob", _SUCCEEDED, {"training.kubeflow.org/job-role": "master"}),
        (
            "trainer.kubeflow.org/v1alpha1",
            "TrainJob",
            _COMPLETE,
            {"batch.kubernetes.io/job-completion-index": "0"},
        ),
    ],
    ids=["Job", "TFJob", "PyTorchJob", "XGBoostJob", "MPIJob", "TrainJob"],
)
def test_conditions_and_primary_pod_labels_by_trial_kind(
    api_version: str, kind: str, success: str, labels: dict[str, str]
) -> None:
    document = with_field(base_spec(), "spec.trialTemplate.trialSpec.kind", kind)
    with_field(document, "spec.trialTemplate.trialSpec.apiVersion", api_version)
    template = parse_experiment(document).trial_template
    assert template.success_condition == success
    assert template.failure_condition == _FAILED
    assert template.primary_pod_labels == labels


def test_custom_kind_keeps_its_own_conditions() -> None:
    document = with_field(base_spec(), "spec.trialTemplate.trialSpec.kind", "Workflow")
    with_field(document, "spec.trialTemplate.successCondition", 'status.[@this].#(phase=="Succeeded")#')
    with_field(document, "spec.trialTemplate.failureCondition", 'status.[@this].#(phase=="Failed")#')
    template = parse_experiment(document).trial_template
    assert template.success_condition == 'status.[@this].#(phase=="Succeeded")#'
    assert template.primary_pod_labels == {}


def test_file_collector_defaults_to_katib_path_and_text() -> None:
    document = with_field(base_spec(), "spec.metricsCollectorSpec", {"collector": {"kind": "File"}})
    collector = parse_experiment(document).metrics_collector
    assert (collector.kind, collector.path, collector.format) == (
        "File",
        "/var/log/katib/metrics.log",
        "TEXT",
    )


def test_numbers_as_strings_or_numbers_read_the_same() -> None:
    as_numbers = with_field(base_spec(), "spec.parameters.0.feasibleSpace", {"min": 0.01, "max": 0.05})
    assert parse_experiment(as_numbers).parameters == parse_experiment(base_spec()).parameters


def test_discrete_values_keep_their_numeric_type() -> None:
    document = with_field(
        base_spec(),
        "spec.parameters.1",
        {"name": "layers", "parameterType": "discrete", "feasibleSpace": {"list": ["2", "4", 8, "0.5"]}},
    )
    assert parse_experiment(document).parameter("layers").values == (2, 4, 8, 0.5)


def test_multi_objective_extension_adds_terms_and_metrics() -> None:
    document = with_field(
        base_spec(),
        "spec.objective.additionalObjectives",
        [{"metricName": "latency", "type": "minimize"}, {"metricName": "accuracy", "type": "maximize"}],
    )
    objective = parse_experiment(document).objective
    assert [(t.metric, t.direction) for t in objective.terms] == [
        ("loss", "minimize"),
        ("latency", "minimize"),
        ("accuracy", "maximize"),
    ]
    assert objective.metrics == ("loss", "accuracy", "latency")
    # An objective's strategy follows its own direction, not the primary's.
    assert objective.strategies["accuracy"] == "max"
    assert objective.strategies["latency"] == "min"


def test_medianstop_settings_are_read() -> None:
    settings = [{"name": "min_trials_required", "value": "2"}, {"name": "start_step", "value": "5"}]
    node = Node({"earlyStopping": {"algorithmName": "medianstop", "algorithmSettings": settings}}, "spec")
    early = parse_early_stopping(node)
    assert early is not None and (early.min_trials_required, early.start_step) == (2, 5)


def test_early_stopping_defaults() -> None:
    document = with_field(base_spec(), "spec.earlyStopping", {"algorithmName": "medianstop"})
    early = parse_experiment(document).early_stopping
    assert early is not None and (early.min_trials_required, early.start_step) == (3, 4)


def test_algorithm_settings_are_typed_and_seed_is_kept() -> None:
    document = with_field(
        base_spec(),
        "spec.algorithm",
        {
            "algorithmName": "tpe",
            "algorithmSettings": [
                {"name": "n_startup_trials", "value": "5"},
                {"name": "random_state", "value": "10"},
            ],
        },
    )
    algorithm = parse_experiment(document).algorithm
    assert algorithm.settings == {"n_startup_trials": 5, "seed": 10}
    assert algorithm.seed == 10


def test_trial_metadata_references_are_accepted() -> None:
    document = base_spec()
    template = document["spec"]["trialTemplate"]
    template["trialParameters"].append({"name": "trialName", "reference": "${trialSpec.Name}"})
    template["trialParameters"].append({"name": "owner", "reference": "${trialSpec.Labels[owner]}"})
    container = template["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [
        {"name": "TRIAL", "value": "${trialParameters.trialName}"},
        {"name": "OWNER", "value": "${trialParameters.owner}"},
    ]
    references = parse_experiment(document).trial_template.references
    assert references["trialName"] == "${trialSpec.Name}"
    assert references["owner"] == "${trialSpec.Labels[owner]}"
