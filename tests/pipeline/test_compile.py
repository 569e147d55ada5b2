"""Compiled pipelines: compiling for a cluster, compaction, and that KFP's own loader reads
a compacted pipeline (one an author wires from the separate components, in rounds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp import components

from hpo_kfp.pipeline.compact import compact_file, compact_spec
from hpo_kfp.pipeline.lanes import build_lanes_pipeline
from hpo_kfp.pipeline.tasks import compile_pipeline
from hpo_kfp.rounds import rounds_needed
from hpo_kfp.spec import load_experiment
from hpo_kfp.steps.settings import StepSettings
from tests.pipeline.rounds_pipeline import build_rounds_pipeline

_ROOT = Path(__file__).parents[2]
_EXAMPLES = sorted(_ROOT.glob("examples/*/experiment.yaml"))


def _compiled(tmp_path: Path, rounds: int, runner: str = "local") -> Path:
    experiment = load_experiment(_ROOT / "examples/quadratic/experiment.yaml")
    path = tmp_path / f"p{rounds}.yaml"
    compile_pipeline(
        build_rounds_pipeline(experiment, settings=StepSettings(runner=runner), rounds=rounds), path
    )
    return path


def _tasks(spec: dict[str, Any]) -> list[str]:
    names = list(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        names += list((component.get("dag") or {}).get("tasks") or {})
    return names


def test_rounds_cover_max_trials() -> None:
    experiment = load_experiment(_ROOT / "examples/quadratic/experiment.yaml")
    assert rounds_needed(experiment) == 8  # 32 trials, 4 at a time


def test_each_round_is_suggest_loop_decide(tmp_path: Path) -> None:
    spec = yaml.safe_load(_compiled(tmp_path, 3).read_text())
    tasks = _tasks(spec)
    for prefix in ("suggest", "run-trial", "collect-metrics", "decide"):
        assert len([t for t in tasks if t.startswith(prefix)]) == 3, prefix
    loops = [t for t in spec["root"]["dag"]["tasks"].values() if "parameterIterator" in t]
    assert [loop["iteratorPolicy"]["parallelismLimit"] for loop in loops] == [4, 4, 4]
    steps = [t for name, t in spec["root"]["dag"]["tasks"].items() if name.startswith(("suggest", "decide"))]
    assert len(steps) == 6 and all(t["cachingOptions"] == {} for t in steps)  # caching off


def test_compaction_keeps_every_reference_valid(tmp_path: Path) -> None:
    path = _compiled(tmp_path, 4)
    before = yaml.safe_load(path.read_text())
    after = compact_spec(yaml.safe_load(path.read_text()))
    assert len(after["deploymentSpec"]["executors"]) == 5  # suggest, run_trial, collect, decide, report
    assert len(after["components"]) < len(before["components"])
    assert _tasks(after) == _tasks(before)
    refs: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "componentRef":
                    refs.append(value["name"])
                else:
                    collect(value)
        elif isinstance(node, list):
            for item in node:
                collect(item)

    collect(after["root"])
    collect(after["components"])
    assert set(refs) <= set(after["components"])
    labels = {c["executorLabel"] for c in after["components"].values() if "executorLabel" in c}
    assert labels == set(after["deploymentSpec"]["executors"])


def test_fifty_rounds_stay_small_and_linear(tmp_path: Path) -> None:
    sizes = {}
    for rounds in (10, 50):
        path = _compiled(tmp_path, rounds)
        sizes[rounds] = compact_file(path)
    assert sizes[50] < 450_000
    per_round = (sizes[50] - sizes[10]) / 40
    assert per_round < 8_000


def test_kfp_loader_reads_the_compacted_pipeline(tmp_path: Path) -> None:
    path = _compiled(tmp_path, 2)
    compact_file(path)
    pipeline = components.load_component_from_file(str(path))
    assert set(pipeline.component_spec.inputs or {}) == {"spec", "settings"}
    assert pipeline.component_spec.outputs["Output"].type == "String"


@pytest.mark.parametrize("example", _EXAMPLES, ids=[p.parent.name for p in _EXAMPLES])
def test_compile_for_a_cluster_uses_the_kubernetes_runner(tmp_path: Path, example: Path) -> None:
    from hpo_kfp.cli import main

    output = tmp_path / "pipeline.yaml"
    assert main(["compile", str(example), "-o", str(output), "--image", "registry.example/hpo-kfp:1"]) == 0
    spec = yaml.safe_load(output.read_text())
    settings = StepSettings.from_json(
        spec["root"]["inputDefinitions"]["parameters"]["settings"]["defaultValue"]
    )
    assert settings.runner == "kubernetes"
    assert settings.store == "grpc://metadata-grpc-service.kubeflow:8080"
    assert settings.type_prefix == "odh."
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {"registry.example/hpo-kfp:1"}
    [lane] = [e for name, e in spec["deploymentSpec"]["executors"].items() if name == "exec-lane"]
    assert "lane" in lane["container"]["args"]


def test_compile_carries_the_metadata_type_prefix(tmp_path: Path) -> None:
    from hpo_kfp.cli import main

    output = tmp_path / "pipeline.yaml"
    assert main(["compile", str(_EXAMPLES[0]), "-o", str(output), "--mlmd-type-prefix", "acme."]) == 0
    spec = yaml.safe_load(output.read_text())
    settings = spec["root"]["inputDefinitions"]["parameters"]["settings"]["defaultValue"]
    assert StepSettings.from_json(settings).type_prefix == "acme."


def test_a_cluster_pipeline_refuses_median_stopping_without_a_log(tmp_path: Path) -> None:
    from hpo_kfp.errors import SpecError
    from hpo_kfp.spec import parse_experiment
    from tests.conftest import base_spec

    document = base_spec()
    document["spec"]["earlyStopping"] = {"algorithmName": "medianstop"}
    document["spec"]["metricsCollectorSpec"] = {"collector": {"kind": "Push"}}
    experiment = parse_experiment(document)
    store = "postgresql://hpo@db/hpo"
    build_lanes_pipeline(experiment, settings=StepSettings(runner="local", store=store))  # a file is followed
    with pytest.raises(
        SpecError, match=r"^spec.earlyStopping: on a cluster median stopping reads the trial's log"
    ):
        build_lanes_pipeline(experiment, settings=StepSettings(runner="kubernetes", store=store))


def test_hyperband_gets_one_round_per_rung() -> None:
    from hpo_kfp.spec import parse_experiment
    from tests.conftest import base_spec

    document = base_spec()
    document["spec"].update(
        parallelTrialCount=9,
        maxTrialCount=22,
        algorithm={
            "algorithmName": "hyperband",
            "algorithmSettings": [
                {"name": "resource_name", "value": "layers"},
                {"name": "r_l", "value": "9"},
            ],
        },
    )
    assert rounds_needed(parse_experiment(document)) == 6
