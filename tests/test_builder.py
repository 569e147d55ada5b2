"""The Python builders: typed parts that become the same Katib document a YAML file holds."""

from __future__ import annotations

import pytest

import hpo_kfp
from hpo_kfp.builder import AlgorithmChoice, ObjectiveChoice, SearchParameter
from hpo_kfp.errors import SpecError


def test_the_helpers_return_typed_parts() -> None:
    rate = hpo_kfp.double("lr", 0.001, 0.1, log=True)
    assert isinstance(rate, SearchParameter) and (rate.type, rate.distribution) == ("double", "logUniform")
    assert hpo_kfp.discrete("k", [1, 3]).values == ("1", "3")
    assert isinstance(hpo_kfp.objective("loss"), ObjectiveChoice)
    assert hpo_kfp.algorithm("tpe", n_startup_trials=5) == AlgorithmChoice(
        name="tpe", settings={"n_startup_trials": "5"}
    )


def test_typed_parts_and_katib_documents_build_the_same_experiment() -> None:
    typed = hpo_kfp.experiment(
        "same",
        objective=hpo_kfp.objective("acc", "maximize", goal=0.9, strategies={"acc": "max"}),
        algorithm=hpo_kfp.algorithm("tpe", n_startup_trials=5),
        parameters=[
            hpo_kfp.double("C", 0.1, 100, log=True),
            hpo_kfp.integer("layers", 1, 4, step=1),
            hpo_kfp.categorical("kernel", ["rbf", "poly"]),
        ],
        max_trials=6,
        parallel=2,
    )
    documents = hpo_kfp.experiment(
        "same",
        objective={
            "type": "maximize",
            "objectiveMetricName": "acc",
            "goal": 0.9,
            "metricStrategies": [{"name": "acc", "value": "max"}],
        },
        algorithm={"algorithmName": "tpe", "algorithmSettings": [{"name": "n_startup_trials", "value": "5"}]},
        parameters=[
            {
                "name": "C",
                "parameterType": "double",
                "feasibleSpace": {"min": "0.1", "max": "100", "distribution": "logUniform"},
            },
            {
                "name": "layers",
                "parameterType": "int",
                "feasibleSpace": {"min": "1", "max": "4", "step": "1", "distribution": "uniform"},
            },
            {"name": "kernel", "parameterType": "categorical", "feasibleSpace": {"list": ["rbf", "poly"]}},
        ],
        max_trials=6,
        parallel=2,
    )
    assert typed.source == documents.source
    assert typed.parameters == documents.parameters and typed.objective == documents.objective


def test_a_mistake_names_the_field_as_for_a_file() -> None:
    with pytest.raises(SpecError, match=r"^spec.parameters\[0\].feasibleSpace.min: `min <= max` must hold"):
        hpo_kfp.experiment(
            "bad", objective=hpo_kfp.objective("loss"), parameters=[hpo_kfp.integer("n", 5, 2)], max_trials=3
        )


@pytest.mark.parametrize(
    ("parameter", "kind"),
    [(hpo_kfp.categorical("act", []), "categorical"), (hpo_kfp.discrete("n", []), "discrete")],
    ids=["categorical", "discrete"],
)
def test_an_empty_list_of_choices_is_refused_as_such(parameter: SearchParameter, kind: str) -> None:
    """Not as a range's missing bounds ("feasibleSpace.min ... 'None'")."""
    with pytest.raises(SpecError) as refused:
        hpo_kfp.experiment("x", objective=hpo_kfp.objective("loss"), parameters=[parameter], max_trials=3)
    assert str(refused.value) == (
        f"spec.parameters[0].feasibleSpace.list: must list the choices of a {kind} parameter, but got nothing"
    )
