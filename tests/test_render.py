"""Trial templates are rendered by substituting into parsed YAML values only."""

from __future__ import annotations

import pytest
import yaml

from hpo_kfp.errors import TemplateError
from hpo_kfp.render import find_placeholders, format_value, render
from hpo_kfp.spec import parse_experiment
from tests.conftest import base_spec


def _render(assignment: dict[str, object], **extra: object) -> dict[str, object]:
    template = parse_experiment(base_spec()).trial_template
    assert template.trial_spec is not None
    return render(
        template.trial_spec,
        template.references,
        assignment,
        name="demo-0001",
        namespace="team-a",
        labels={"hpo-kfp/trial": "demo-0001"},
        **extra,
    )  # type: ignore[arg-type]


def _command(manifest: dict[str, object]) -> list[str]:
    return manifest["spec"]["template"]["spec"]["containers"][0]["command"]  # type: ignore[index,no-any-return]


def test_values_are_substituted_and_identity_set() -> None:
    manifest = _render({"lr": 0.025, "layers": 3, "optimizer": "adam"})
    assert _command(manifest) == ["python3", "train.py", "--lr=0.025", "--num-layers=3", "--optimizer=adam"]
    assert manifest["metadata"] == {
        "name": "demo-0001",
        "namespace": "team-a",
        "labels": {"hpo-kfp/trial": "demo-0001"},
    }


@pytest.mark.parametrize(
    "hostile",
    [
        "adam\n  - --inject",
        'adam", "--inject": "x',
        "adam\nkind: Pod",
        "${trialParameters.learningRate}",
        "$(rm -rf /)",
    ],
    ids=["newline-list-item", "quote-break", "new-key", "nested-placeholder", "shell"],
)
def test_a_value_can_never_change_the_manifest_structure(hostile: str) -> None:
    manifest = _render({"lr": 0.025, "layers": 3, "optimizer": hostile})
    command = _command(manifest)
    assert len(command) == 5
    assert command[4] == "--optimizer=" + hostile
    assert manifest["kind"] == "Job"
    # The rendered object survives a YAML round trip with the same shape.
    assert yaml.safe_load(yaml.safe_dump(manifest)) == manifest


def test_metadata_references_resolve_from_the_rendered_object() -> None:
    document = base_spec()
    template_doc = document["spec"]["trialTemplate"]
    template_doc["trialSpec"]["metadata"] = {"labels": {"team": "vision"}, "annotations": {"note": "n1"}}
    template_doc["trialParameters"] += [
        {"name": "n", "reference": "${trialSpec.Name}"},
        {"name": "ns", "reference": "${trialSpec.Namespace}"},
        {"name": "k", "reference": "${trialSpec.Kind}"},
        {"name": "v", "reference": "${trialSpec.APIVersion}"},
        {"name": "team", "reference": "${trialSpec.Labels[team]}"},
        {"name": "note", "reference": "${trialSpec.Annotations[note]}"},
    ]
    container = template_doc["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [
        {"name": x.upper(), "value": f"${{trialParameters.{x}}}"}
        for x in ("n", "ns", "k", "v", "team", "note")
    ]
    template = parse_experiment(document).trial_template
    assert template.trial_spec is not None
    manifest = render(
        template.trial_spec,
        template.references,
        {"lr": 0.02, "layers": 2, "optimizer": "sgd"},
        name="demo-0007",
        namespace="ns1",
    )
    env = {e["name"]: e["value"] for e in manifest["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env == {"N": "demo-0007", "NS": "ns1", "K": "Job", "V": "batch/v1", "TEAM": "vision", "NOTE": "n1"}


def test_missing_label_reference_is_an_error() -> None:
    with pytest.raises(TemplateError, match=r"has no label 'team'"):
        render(
            {"apiVersion": "v1", "kind": "Pod", "x": "${trialParameters.t}"},
            {"t": "${trialSpec.Labels[team]}"},
            {},
            name="a",
            namespace=None,
        )


def test_placeholders_are_found_with_their_paths() -> None:
    found = list(find_placeholders({"a": ["x", "--y=${trialParameters.y} ${trialParameters.z}"]}, "t"))
    assert found == [("t.a[1]", "y"), ("t.a[1]", "z")]


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.1, "0.1"), (3, "3"), (1e-05, "1e-05"), ("adam", "adam"), (2.0, "2.0")],
    ids=["float", "int", "small-float", "str", "integral-float"],
)
def test_value_formatting(value: object, text: str) -> None:
    assert format_value(value) == text


_CONFIG_MAP_TEMPLATE = yaml.safe_load(
    """
apiVersion: batch/v1
kind: Job
spec:
  parallelism: ${trialParameters.workers}
  template:
    spec:
      containers:
        - name: train
          image: train:1
          command: ["python", "train.py", "--lr=${trialParameters.lr}"]
          env:
            - {name: LR, value: "${trialParameters.lr}"}
            - {name: FLAG, value: "${trialParameters.flag}"}
            - {name: OPT, value: "${trialParameters.opt}"}
"""
)


@pytest.mark.parametrize("typed", [True, False], ids=["configmap-like-katib", "trialspec"])
def test_a_value_that_is_one_placeholder_takes_the_parameters_type_in_a_configmap(typed: bool) -> None:
    references = {"workers": "workers", "lr": "lr", "flag": "flag", "opt": "opt"}
    assignment = {"workers": 4, "lr": 0.02, "flag": "true", "opt": "[1, {a: 2}]"}
    manifest = render(_CONFIG_MAP_TEMPLATE, references, assignment, name="t", namespace="ns", typed=typed)
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    if typed:  # as Katib's text substitution then YAML parsing gives
        assert manifest["spec"]["parallelism"] == 4 and env["LR"] == 0.02 and env["FLAG"] is True
    else:
        assert manifest["spec"]["parallelism"] == "4" and env["LR"] == "0.02" and env["FLAG"] == "true"
    assert env["OPT"] == "[1, {a: 2}]"  # never structure
    assert container["command"][2] == "--lr=0.02"  # inside a longer string: always text
