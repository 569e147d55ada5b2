"""Every bad input gets a SpecError naming the field path, the rule and the value."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from hpo_kfp.errors import SpecError
from hpo_kfp.spec import parse_experiment
from tests.conftest import base_spec, wide_spec, with_field

# (id, field path to change, new value or ... to delete, expected message regex)
_CASES: list[tuple[str, str, Any, str]] = [
    ("wrong-kind", "kind", "Trial", r"^kind: must be Experiment, but got 'Trial'$"),
    (
        "unknown-top-level",
        "parameters",
        [],
        r"^parameters: must be one of the fields apiVersion, kind, metadata, spec, status \(unknown field\), "
        r"but got a list \[\]$",
    ),
    ("wrong-api", "apiVersion", "kubeflow.org/v1alpha3", r"^apiVersion: must be kubeflow.org/v1beta1"),
    ("missing-name", "metadata.name", ..., r"^metadata.name: must be specified"),
    (
        "namespace-path",
        "metadata.namespace",
        "../../tmp/evil",
        r"^metadata.namespace: must be a Kubernetes namespace: .*, but got '../../tmp/evil'$",
    ),
    (
        "namespace-accent",
        "metadata.namespace",
        "Équipe",
        r"^metadata.namespace: must be a Kubernetes namespace",
    ),
    (
        "namespace-long",
        "metadata.namespace",
        "a" * 300,
        r"^metadata.namespace: must be a Kubernetes namespace",
    ),
    (
        "bad-name",
        "metadata.name",
        "My_Experiment",
        r"^metadata.name: must be lower case .* but got 'My_Experiment'",
    ),
    ("missing-objective", "spec.objective", ..., r"^spec.objective: must be specified, but got nothing$"),
    (
        "metric-with-a-newline",
        "spec.objective.objectiveMetricName",
        "loss\naccuracy",
        r"^spec.objective.objectiveMetricName: must be a metric name: no white space, line break or '=', "
        r"but got 'loss\\naccuracy'$",
    ),
    (
        "additional-metric-with-a-space",
        "spec.objective.additionalMetricNames",
        ["accuracy", "val loss"],
        r"^spec.objective.additionalMetricNames\[1\]: must be a metric name.*, but got 'val loss'$",
    ),
    (
        "bad-objective-type",
        "spec.objective.type",
        "maximise",
        r"^spec.objective.type: must be one of minimize, maximize, but got 'maximise'$",
    ),
    (
        "missing-metric",
        "spec.objective.objectiveMetricName",
        ...,
        r"^spec.objective.objectiveMetricName: must be specified",
    ),
    (
        "objective-in-additional",
        "spec.objective.additionalMetricNames",
        ["loss"],
        r"^spec.objective.additionalMetricNames: must not contain the objectiveMetricName",
    ),
    (
        "bad-strategy",
        "spec.objective.metricStrategies",
        [{"name": "loss", "value": "mean"}],
        r"^spec.objective.metricStrategies\[0\].value: must be one of min, max, latest, but got 'mean'$",
    ),
    (
        "strategy-unknown-metric",
        "spec.objective.metricStrategies",
        [{"name": "f1", "value": "max"}],
        r"^spec.objective.metricStrategies\[0\].name: must name the objective metric",
    ),
    ("bad-goal", "spec.objective.goal", "high", r"^spec.objective.goal: must be a number, but got 'high'$"),
    (
        "min-gt-max",
        "spec.parameters.1.feasibleSpace",
        {"min": "5", "max": "2"},
        r"^spec.parameters\[1\].feasibleSpace.min: `min <= max` must hold, but got min=5, max=2$",
    ),
    (
        "non-numeric-min",
        "spec.parameters.0.feasibleSpace.min",
        "small",
        r"^spec.parameters\[0\].feasibleSpace.min: must be a number, but got 'small'$",
    ),
    (
        "non-numeric-max",
        "spec.parameters.0.feasibleSpace.max",
        [1],
        r"^spec.parameters\[0\].feasibleSpace.max: must be a number",
    ),
    (
        "int-fraction",
        "spec.parameters.1.feasibleSpace.max",
        "4.5",
        r"^spec.parameters\[1\].feasibleSpace.max: must be a whole number for an int parameter",
    ),
    (
        "count-beyond-int32",
        "spec.maxTrialCount",
        2**31,
        r"^spec.maxTrialCount: must be at most 2147483647 \(an int32, as in Katib's API\), but got 2147483648$",
    ),
    (
        "int-beyond-doubles",
        "spec.parameters.1.feasibleSpace.max",
        "1e40",
        r"^spec.parameters\[1\].feasibleSpace.max: must be within ±2\*\*53 \(9007199254740992\) for an int "
        r"parameter: .*, but got '1e40'$",
    ),
    (
        "missing-max",
        "spec.parameters.0.feasibleSpace.max",
        ...,
        r"^spec.parameters\[0\].feasibleSpace.max: must be specified for a double parameter",
    ),
    (
        "zero-step",
        "spec.parameters.0.feasibleSpace.step",
        "0",
        r"^spec.parameters\[0\].feasibleSpace.step: must be greater than 0, but got '0'$",
    ),
    (
        "categorical-without-list",
        "spec.parameters.2.feasibleSpace",
        {"min": "1", "max": "2"},
        r"^spec.parameters\[2\].feasibleSpace.min: must be omitted for a categorical parameter",
    ),
    (
        "categorical-empty-list",
        "spec.parameters.2.feasibleSpace",
        {"list": []},
        r"^spec.parameters\[2\].feasibleSpace.list: must list the choices of a categorical parameter",
    ),
    (
        "double-with-list",
        "spec.parameters.0.feasibleSpace.list",
        ["0.1"],
        r"^spec.parameters\[0\].feasibleSpace.list: must be omitted for a double parameter",
    ),
    (
        "bad-parameter-type",
        "spec.parameters.0.parameterType",
        "float",
        r"^spec.parameters\[0\].parameterType: must be one of double, int, discrete, categorical, but got 'float'$",
    ),
    (
        "bad-distribution",
        "spec.parameters.0.feasibleSpace.distribution",
        "gaussian",
        r"^spec.parameters\[0\].feasibleSpace.distribution: must be one of uniform, logUniform, normal, logNormal",
    ),
    (
        "log-nonpositive",
        "spec.parameters.0.feasibleSpace",
        {"min": "0", "max": "1", "distribution": "logUniform"},
        r"^spec.parameters\[0\].feasibleSpace.min: must be greater than 0 for distribution logUniform",
    ),
    (
        "duplicate-parameter",
        "spec.parameters.1.name",
        "lr",
        r"^spec.parameters\[1\].name: must be unique among spec.parameters, but got 'lr'$",
    ),
    ("no-parameters", "spec.parameters", [], r"^spec.parameters: must list at least one parameter"),
    (
        "parallel-gt-max",
        "spec.parallelTrialCount",
        9,
        r"^spec.parallelTrialCount: `parallelTrialCount <= maxTrialCount` must hold, but got "
        r"parallelTrialCount=9, maxTrialCount=8$",
    ),
    (
        "negative-failed",
        "spec.maxFailedTrialCount",
        -1,
        r"^spec.maxFailedTrialCount: must not be negative, but got -1$",
    ),
    ("zero-max", "spec.maxTrialCount", 0, r"^spec.maxTrialCount: must be at least 1, but got 0$"),
    (
        "zero-parallel",
        "spec.parallelTrialCount",
        0,
        r"^spec.parallelTrialCount: must be at least 1, but got 0$",
    ),
    ("string-count", "spec.maxTrialCount", "12", r"^spec.maxTrialCount: must be an integer, but got '12'$"),
    ("missing-max-trials", "spec.maxTrialCount", ..., r"^spec.maxTrialCount: must be specified"),
    (
        "failed-gt-max",
        "spec.maxFailedTrialCount",
        9,
        r"^spec.maxFailedTrialCount: `maxFailedTrialCount <= maxTrialCount` must hold",
    ),
    (
        "unknown-algorithm",
        "spec.algorithm.algorithmName",
        "bohb",
        r"^spec.algorithm.algorithmName: must be one of random, grid, tpe, .*, but got 'bohb'$",
    ),
    (
        "unknown-setting",
        "spec.algorithm.algorithmSettings",
        [{"name": "n_startup_trials", "value": "5"}],
        r"^spec.algorithm.algorithmSettings\[0\].name: must be a setting of random: random_state, seed",
    ),
    (
        "bad-resume-policy",
        "spec.resumePolicy",
        "Always",
        r"^spec.resumePolicy: must be one of Never, LongRunning, FromVolume, but got 'Always'$",
    ),
    (
        "unknown-spec-field",
        "spec.maxTrailCount",
        3,
        r"^spec.maxTrailCount: must be one of the fields .* \(unknown field\), but got 3$",
    ),
    (
        "nas",
        "spec.nasConfig",
        {"graphConfig": {"numLayers": 8}},
        r"^spec.nasConfig: neural architecture search is not supported by hpo-kfp",
    ),
    (
        "pbt",
        "spec.algorithm.algorithmName",
        "pbt",
        r"^spec.algorithm.algorithmName: population based training is not supported by hpo-kfp, but got 'pbt'$",
    ),
    (
        "enas",
        "spec.algorithm.algorithmName",
        "enas",
        r"^spec.algorithm.algorithmName: neural architecture search",
    ),
    (
        "darts",
        "spec.algorithm.algorithmName",
        "darts",
        r"^spec.algorithm.algorithmName: neural architecture search",
    ),
    (
        "custom-collector",
        "spec.metricsCollectorSpec",
        {"collector": {"kind": "Custom"}},
        r"^spec.metricsCollectorSpec.collector.kind: a custom metrics collector is not supported by hpo-kfp",
    ),
    (
        "bad-collector",
        "spec.metricsCollectorSpec",
        {"collector": {"kind": "Stdout"}},
        r"^spec.metricsCollectorSpec.collector.kind: must be one of StdOut, File, Push, TensorFlowEvent, "
        r"TrainJobStatus, but got 'Stdout'$",
    ),
    (
        "filter-one-group",
        "spec.metricsCollectorSpec",
        {"source": {"filter": {"metricsFormat": ["loss=(\\d+)"]}}},
        r"^spec.metricsCollectorSpec.source.filter.metricsFormat\[0\]: must have two groups",
    ),
    (
        "filter-invalid-regex",
        "spec.metricsCollectorSpec",
        {"source": {"filter": {"metricsFormat": ["([a-z+)=(\\d+)"]}}},
        r"^spec.metricsCollectorSpec.source.filter.metricsFormat\[0\]: must be a valid regular expression",
    ),
    (
        "file-relative-path",
        "spec.metricsCollectorSpec",
        {
            "collector": {"kind": "File"},
            "source": {"fileSystemPath": {"path": "out/metrics.log", "kind": "File"}},
        },
        r"^spec.metricsCollectorSpec.source.fileSystemPath.path: must be an absolute path",
    ),
    (
        "undeclared-placeholder",
        "spec.trialTemplate.trialSpec.spec.template.spec.containers.0.command.1",
        "--momentum=${trialParameters.momentum}",
        r"^spec.trialTemplate.trialSpec.spec.template.spec.containers\[0\].command\[1\]: every "
        r"\$\{trialParameters.x\} must be declared .*, but got '\$\{trialParameters.momentum\}'$",
    ),
    (
        "unused-trial-parameter",
        "spec.trialTemplate.trialSpec.spec.template.spec.containers.0.command.4",
        "--optimizer=sgd",
        r"^spec.trialTemplate.trialParameters\[2\].name: must be used as \$\{trialParameters.optimizer\}",
    ),
    (
        "reference-to-nothing",
        "spec.trialTemplate.trialParameters.0.reference",
        "learning_rate",
        r"^spec.trialTemplate.trialParameters\[0\].reference: must name a parameter in spec.parameters .*"
        r"but got 'learning_rate'$",
    ),
    (
        "bad-meta-reference",
        "spec.trialTemplate.trialParameters.0.reference",
        "${trialSpec.Uid}",
        r"^spec.trialTemplate.trialParameters\[0\].reference: must name a parameter",
    ),
    (
        "missing-reference",
        "spec.trialTemplate.trialParameters.0.reference",
        ...,
        r"^spec.trialTemplate.trialParameters\[0\].reference: must be specified",
    ),
    (
        "duplicate-trial-parameter",
        "spec.trialTemplate.trialParameters.1.name",
        "learningRate",
        r"^spec.trialTemplate.trialParameters\[1\].name: must be unique among trialParameters",
    ),
    (
        "no-template",
        "spec.trialTemplate.trialSpec",
        ...,
        r"^spec.trialTemplate.trialSpec: trialSpec or configMap must be specified",
    ),
    (
        "template-with-name",
        "spec.trialTemplate.trialSpec.metadata",
        {"name": "fixed"},
        r"^spec.trialTemplate.trialSpec.metadata.name: must be omitted: the runner names each trial",
    ),
    (
        "template-without-kind",
        "spec.trialTemplate.trialSpec.kind",
        ...,
        r"^spec.trialTemplate.trialSpec.kind: must be specified",
    ),
    (
        "missing-primary-container",
        "spec.trialTemplate.primaryContainerName",
        ...,
        r"^spec.trialTemplate.primaryContainerName: must be specified",
    ),
    (
        "custom-kind-without-conditions",
        "spec.trialTemplate.trialSpec.kind",
        "Workflow",
        r"^spec.trialTemplate.successCondition: must be specified for a trial of kind Workflow",
    ),
    ("bad-retain", "spec.trialTemplate.retain", "yes", r"^spec.trialTemplate.retain: must be true or false"),
    (
        "bad-early-stopping",
        "spec.earlyStopping",
        {"algorithmName": "asha"},
        r"^spec.earlyStopping.algorithmName: must be one of medianstop, but got 'asha'$",
    ),
    (
        "bound-too-large-for-a-float",
        "spec.parameters.0.feasibleSpace.max",
        10**400,
        r"^spec.parameters\[0\].feasibleSpace.max: must be a finite number, but got 1000",
    ),
    (
        "range-too-wide",
        "spec.parameters.0.feasibleSpace",
        {"min": "-1e308", "max": "1e308"},
        r"^spec.parameters\[0\].feasibleSpace.max: `max - min` must be a finite number",
    ),
    (
        "too-many-steps",
        "spec.parameters.0.feasibleSpace",
        {"min": "0.01", "max": "0.05", "step": "1e-300"},
        r"^spec.parameters\[0\].feasibleSpace.step: `\(max - min\) / step <= 1e\+15` must hold",
    ),
]


@pytest.mark.parametrize(("path", "value", "message"), [c[1:] for c in _CASES], ids=[c[0] for c in _CASES])
def test_bad_field_is_refused_with_path_rule_and_value(path: str, value: Any, message: str) -> None:
    document = with_field(base_spec(), path, value)
    with pytest.raises(SpecError, match=message):
        parse_experiment(document)


def test_placeholder_in_a_key_is_refused() -> None:
    document = base_spec()
    document["spec"]["trialTemplate"]["trialSpec"]["metadata"] = {
        "labels": {"${trialParameters.optimizer}": "x"}
    }
    with pytest.raises(SpecError, match=r"placeholders must be in values, not in keys"):
        parse_experiment(document)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("spec: [unclosed\n", r"^line \d+, column \d+: the file must be valid YAML, but got"),
        ("- just\n- a list\n", r"^\(document\): must be a mapping, but got a list"),
        ("", r"must hold exactly one YAML document, but got 0"),
        ("a: 1\n---\nb: 2\n", r"must hold exactly one YAML document, but got 2"),
    ],
    ids=["malformed", "not-a-mapping", "empty", "two-documents"],
)
def test_malformed_documents_are_refused(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_experiment(text)


def test_a_leading_document_marker_is_accepted() -> None:
    text = "---\n" + yaml.safe_dump(base_spec())
    assert parse_experiment(text).name == "demo"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            [{"name": "n_startup_trials", "value": "-1"}],
            r"n_startup_trials must be an integer >= 0, but got '-1'",
        ),
        (
            [{"name": "n_ei_candidates", "value": "many"}],
            r"n_ei_candidates must be an integer >= 1, but got 'many'",
        ),
        ([{"name": "gamma", "value": "1.5"}], r"gamma must be a number in \(0, 1\), but got '1.5'"),
        ([{"name": "random_state", "value": "1.5"}], r"random_state must be an integer >= 0, but got '1.5'"),
    ],
    ids=["negative", "not-a-number", "out-of-range", "fractional-seed"],
)
def test_out_of_range_tpe_settings_are_refused(settings: list[dict[str, str]], message: str) -> None:
    document = with_field(
        base_spec(), "spec.algorithm", {"algorithmName": "tpe", "algorithmSettings": settings}
    )
    with pytest.raises(SpecError, match=r"^spec.algorithm.algorithmSettings\[0\].value: " + message):
        parse_experiment(document)


def test_cmaes_needs_two_ranged_parameters() -> None:
    document = with_field(base_spec(), "spec.algorithm.algorithmName", "cmaes")
    document["spec"]["parameters"][1] = {
        "name": "layers",
        "parameterType": "discrete",
        "feasibleSpace": {"list": ["2", "3"]},
    }
    with pytest.raises(SpecError, match=r"cmaes needs at least two double or int parameters, but got 1"):
        parse_experiment(document)


def test_grid_needs_a_step_on_doubles_and_enough_points() -> None:
    document = with_field(base_spec(), "spec.algorithm.algorithmName", "grid")
    with pytest.raises(SpecError, match=r"^spec.parameters\[0\].feasibleSpace.step: must be set"):
        parse_experiment(document)
    with_field(document, "spec.parameters.0.feasibleSpace.step", "0.04")  # 2 x 4 x 3 = 24 points
    with_field(document, "spec.maxTrialCount", 25)
    with pytest.raises(SpecError, match=r"maxTrialCount=25, grid points=24"):
        parse_experiment(document)
    with_field(document, "spec.maxTrialCount", 24)
    assert parse_experiment(document).max_trial_count == 24


def test_several_objectives_need_an_algorithm_that_supports_them() -> None:
    document = with_field(
        base_spec(), "spec.objective.additionalObjectives", [{"metricName": "latency", "type": "minimize"}]
    )
    with_field(document, "spec.algorithm.algorithmName", "cmaes")
    with pytest.raises(
        SpecError, match=r"must be an algorithm that supports several objectives, but got 'cmaes'"
    ):
        parse_experiment(document)


def test_a_grid_too_large_to_list_is_refused_without_listing_it() -> None:
    document = with_field(base_spec(), "spec.algorithm.algorithmName", "grid")
    with_field(document, "spec.parameters.0.feasibleSpace", {"min": "-4", "max": "4", "step": "1e-9"})
    with pytest.raises(SpecError, match=r"^spec.parameters: must make at most 1,000,000 points with grid"):
        parse_experiment(document)


def _alias_bomb(levels: int) -> str:
    """A document whose aliases stand for 9**levels strings in a few hundred bytes."""
    lines = ["metadata: {name: bomb}", "spec:", '  l0: &l0 ["x","x","x","x","x","x","x","x","x"]']
    for level in range(1, levels):
        lines.append(f"  l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_at_once_naming_what_it_expands_to() -> None:
    """Issue 31: nine levels of nine aliases (2 KB) hung validate, run and the server."""
    with pytest.raises(
        SpecError,
        match=r"^\(document\): must have aliases that stand for at most 100000 YAML nodes in all \(each use "
        r"counts the whole node it names\), but got 4\d{8} nodes$",
    ):
        parse_experiment(_alias_bomb(9))  # counted, not expanded: it returns at once


def test_a_large_document_without_aliases_is_not_limited_by_the_alias_bound() -> None:
    """10,000 parameters written out are 170,000 nodes: only what aliases add is bounded."""
    document = wide_spec(10_000)
    text = yaml.dump(document, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper))
    assert len(parse_experiment(text).parameters) == 10_000


def test_aliases_that_stay_small_are_read_as_before() -> None:
    document = base_spec()
    text = yaml.safe_dump(document).replace(
        "  parallelTrialCount: 2\n", "  parallelTrialCount: &p 2\n  maxFailedTrialCount: *p\n", 1
    )
    text = text.replace("  maxFailedTrialCount: 3\n", "", 1)
    assert parse_experiment(text).max_failed_trial_count == 2


@pytest.mark.parametrize("depth", [101, 5000])
def test_deep_nesting_is_one_line(depth: int) -> None:
    with pytest.raises(
        SpecError, match=r"^\(document\): must nest at most 100 mappings or sequences deep, but got deeper$"
    ):
        parse_experiment("metadata: {name: deep}\nspec: " + "[" * depth + "]" * depth + "\n")


def test_a_mapping_nested_too_deep_is_refused_without_recursion() -> None:
    """A JSON body is parsed before it reaches the spec (Python 3.13's json reads 5,000 levels)."""
    document = base_spec()
    node: dict[str, Any] = document["spec"]["trialTemplate"]["trialSpec"]
    for _ in range(5000):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(SpecError, match=r"^\(document\): must nest at most 100 mappings or sequences deep"):
        parse_experiment(document)
