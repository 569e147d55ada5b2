"""The committed generic pipeline: current, loadable by KFP, runnable with a pasted spec."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import yaml
from kfp import components

from hpo_kfp.errors import SettingsError, SpecError
from hpo_kfp.history import History
from hpo_kfp.pipeline.local import run_pipeline_locally
from hpo_kfp.pipeline.publish import GENERIC_PIPELINE as _RELATIVE
from hpo_kfp.spec import parse_experiment
from hpo_kfp.steps import StepSettings, suggest_step
from hpo_kfp.steps.lanes import start_step
from tests.conftest import base_spec

_E2E = Path(__file__).parents[1] / "e2e"
GENERIC_PIPELINE = Path(__file__).parents[2] / _RELATIVE


def test_kfp_loads_it_and_it_states_its_capacity() -> None:
    pipeline = components.load_component_from_file(str(GENERIC_PIPELINE))
    assert set(pipeline.component_spec.inputs or {}) == {"spec", "settings"}
    description = pipeline.component_spec.description or ""
    assert "Up to 32 trials at a time" in description and "one run holds the whole experiment" in description
    settings = StepSettings.from_json(pipeline.component_spec.inputs["settings"].default)
    assert (settings.runner, settings.capacity_parallelism, settings.run_budget) == ("kubernetes", 32, 0)


@pytest.mark.slow
def test_it_runs_locally_with_a_pasted_spec(tmp_path: Path) -> None:
    pasted = (_E2E / "scripted.yaml").read_text()
    settings = StepSettings(
        trial_cwd=str(_E2E),
        capacity_parallelism=32,
        store=f"sqlite:///{tmp_path / 's.sqlite'}",
    )
    handlers = logging.getLogger().handlers[:]
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
    # Trial 5 is the first to meet the goal; lanes still running trials finish them.
    assert decision["best"]["name"] in {"scripted-0005", "scripted-0006", "scripted-0007"}
    # Lane tasks ran the trials, each logging one line per trial as it ended.
    logged = re.findall(
        r"^lane \d: (scripted-\d{4}) \(x=", (tmp_path / "kfp.log").read_text(errors="replace"), re.MULTILINE
    )
    assert "scripted-0000" in logged and len(logged) == len(set(logged)) >= 6
    # kfp.local's per-task logger contexts overlapped in the lanes: none is left behind.
    assert logging.getLogger().handlers == handlers


def test_an_experiment_over_capacity_fails_at_the_first_step(tmp_path: Path) -> None:
    document = base_spec()
    document["spec"]["parallelTrialCount"] = 12
    document["spec"]["maxTrialCount"] = 24
    settings = StepSettings(capacity_parallelism=10, store=f"sqlite:///{tmp_path / 's.sqlite'}").to_json()
    with pytest.raises(
        SpecError,
        match=r"^spec.parallelTrialCount: must be at most 10, this pipeline's capacity; "
        r"compile a pipeline for this experiment with `hpo-kfp compile`, but got 12$",
    ):
        start_step(yaml.safe_dump(document), settings, "run", str(tmp_path / "run.json"))
    assert parse_experiment(document).name == "demo"  # the spec itself is valid


def test_without_a_store_the_first_step_says_the_lanes_need_one(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^settings.store: must name an experiment store"):
        start_step(yaml.safe_dump(base_spec()), "", "run", str(tmp_path / "run.json"))


def test_an_empty_spec_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        SpecError, match=r"^spec: must hold a Katib Experiment \(YAML or JSON\), but got nothing$"
    ):
        suggest_step("", None, str(tmp_path / "h.json"))
    assert not (tmp_path / "h.json").exists() or History.from_json((tmp_path / "h.json").read_text())
