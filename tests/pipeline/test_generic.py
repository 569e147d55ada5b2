"""The committed generic pipeline: current, loadable by KFP, runnable with a pasted spec."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from kfp import components

from hpo_kfp.errors import SpecError
from hpo_kfp.history import History
from hpo_kfp.pipeline.local import run_pipeline_locally
from hpo_kfp.pipeline.publish import GENERIC_PIPELINE as _RELATIVE
from hpo_kfp.spec import parse_experiment
from hpo_kfp.steps import StepSettings, suggest_step
from tests.conftest import base_spec

_E2E = Path(__file__).parents[1] / "e2e"
GENERIC_PIPELINE = Path(__file__).parents[2] / _RELATIVE


def test_kfp_loads_it_and_it_states_its_capacity() -> None:
    pipeline = components.load_component_from_file(str(GENERIC_PIPELINE))
    assert set(pipeline.component_spec.inputs or {}) == {"spec", "settings"}
    assert "up to 30 rounds of up to 10 trials at a time" in (pipeline.component_spec.description or "")
    settings = StepSettings.from_json(pipeline.component_spec.inputs["settings"].default)
    assert (settings.runner, settings.capacity_rounds, settings.capacity_parallelism) == (
        "kubernetes",
        30,
        10,
    )


def test_it_runs_locally_with_a_pasted_spec(tmp_path: Path) -> None:
    pasted = (_E2E / "scripted.yaml").read_text()
    settings = StepSettings(trial_cwd=str(_E2E), capacity_rounds=30, capacity_parallelism=10)
    with (tmp_path / "kfp.log").open("w") as log:
        output = run_pipeline_locally(
            GENERIC_PIPELINE,
            {"spec": pasted, "settings": settings.to_json()},
            pipeline_root=tmp_path / "root",
            max_parallelism=10,
            log=log,
        )
    decision = json.loads(output)
    assert (decision["status"], decision["reason"]) == ("Succeeded", "GoalReached")
    assert decision["best"]["name"] == "scripted-0005"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "parallelTrialCount",
            12,
            r"^spec.parallelTrialCount: must be at most 10, this pipeline's capacity; "
            r"compile a pipeline for this experiment with `hpo-kfp compile`, but got 12$",
        ),
        (
            "maxTrialCount",
            400,
            r"^spec.maxTrialCount: must fit in this pipeline's 30 rounds .* but got 200 rounds$",
        ),
    ],
    ids=["too-parallel", "too-many-rounds"],
)
def test_an_experiment_over_capacity_fails_at_the_first_step(
    tmp_path: Path, field: str, value: int, message: str
) -> None:
    document = base_spec()
    document["spec"][field] = value
    if field == "parallelTrialCount":
        document["spec"]["maxTrialCount"] = 24
    settings = StepSettings(capacity_rounds=30, capacity_parallelism=10).to_json()
    with pytest.raises(SpecError, match=message):
        suggest_step(yaml.safe_dump(document), None, str(tmp_path / "h.json"), settings)
    assert parse_experiment(document).name == "demo"  # the spec itself is valid


def test_an_empty_spec_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        SpecError, match=r"^spec: must hold a Katib Experiment \(YAML or JSON\), but got nothing$"
    ):
        suggest_step("", None, str(tmp_path / "h.json"))
    assert not (tmp_path / "h.json").exists() or History.from_json((tmp_path / "h.json").read_text())
