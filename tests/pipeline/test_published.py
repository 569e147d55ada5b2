"""The committed component.yaml files: current, and usable as KFP users use reusable components."""

# No `from __future__ import annotations`: KFP reads the pipeline function's annotations.
import json
from pathlib import Path

import yaml
from kfp import compiler, components, dsl

from hpo_kfp.history import History
from hpo_kfp.pipeline.local import run_pipeline_locally
from hpo_kfp.pipeline.publish import COMPONENTS, check
from hpo_kfp.steps.settings import StepSettings

_ROOT = Path(__file__).parents[2]
_EXAMPLE = _ROOT / "examples" / "quadratic"


def test_every_committed_file_is_current() -> None:
    stale = check(_ROOT)
    assert stale == [], f"stale: {stale}; regenerate with `uv run python -m hpo_kfp.pipeline.publish`"


def test_a_changed_file_is_reported_stale(tmp_path: Path) -> None:
    (tmp_path / "components" / "decide").mkdir(parents=True)
    (tmp_path / "components" / "decide" / "component.yaml").write_text("# old\n")
    assert Path("components/decide/component.yaml") in check(tmp_path)


def test_each_component_file_loads_with_kfp() -> None:
    for name in COMPONENTS:
        component = components.load_component_from_file(str(_ROOT / "components" / name / "component.yaml"))
        assert component.name == name.replace("_", "-")
        inputs = set(component.component_spec.inputs or {})
        # The lanes read the Experiment from the run document, but start.
        assert {"spec"} <= inputs if not name.startswith("lane") else "run" in inputs


def test_the_loaded_lane_components_run_lanes_on_kfp_local(tmp_path: Path) -> None:
    """start -> ParallelFor(lane) -> lane_decide -> report, from the YAML files only."""
    loaded = {
        name: components.load_component_from_file(str(_ROOT / "components" / name / "component.yaml"))
        for name in ("start", "lane", "lane_decide", "report")
    }
    document = yaml.safe_load((_EXAMPLE / "experiment.yaml").read_text())
    document["spec"]["maxTrialCount"] = 5
    document["spec"]["parallelTrialCount"] = 2
    document["spec"]["maxFailedTrialCount"] = 1
    document["spec"]["objective"].pop("goal")
    spec_text = json.dumps(document)
    settings_text = StepSettings(
        trial_cwd=str(_EXAMPLE), store=f"sqlite:///{tmp_path / 's.sqlite'}"
    ).to_json()

    @dsl.pipeline(name="lanes")
    def lanes(spec: str = spec_text, settings: str = settings_text) -> str:
        started = loaded["start"](spec=spec, settings=settings, run_id="test")
        run = started.outputs["run"]
        with dsl.ParallelFor(started.outputs["Output"], parallelism=2) as lane:
            ran = loaded["lane"](run=run, run_id="test", lane=lane)
        decided = loaded["lane_decide"](run=run, lanes=dsl.Collected(ran.outputs["Output"]))
        loaded["report"](spec=spec, history=decided.outputs["history"])
        return decided.outputs["decision"]  # type: ignore[no-any-return]

    package = tmp_path / "lanes.yaml"
    compiler.Compiler().compile(lanes, str(package))
    with (tmp_path / "kfp.log").open("w") as log:
        output = run_pipeline_locally(
            package, {}, pipeline_root=tmp_path / "root", max_parallelism=2, log=log
        )
    decision = json.loads(output)
    assert (decision["done"], decision["reason"], decision["trials"]["succeeded"]) == (
        True,
        "MaxTrialsReached",
        5,
    )
    [decided] = tmp_path.glob("root/**/lane-decide/executor_output.json")
    shown = json.loads(decided.read_text())["artifacts"]["best"]["artifacts"][0]["metadata"]
    assert shown["trial-number"] == float(decision["best"]["name"].rsplit("-", 1)[1])
    kept = sorted(path.parent.name for path in tmp_path.glob("root/**/lane/trials/*/log"))
    assert kept == [f"quadratic-{n:04d}" for n in range(5)]
    assert list(tmp_path.glob("root/**/report/page"))


def test_the_loaded_components_run_a_round_on_kfp_local(tmp_path: Path) -> None:
    """suggest -> ParallelFor(run_trial -> collect_metrics) -> decide -> report, from the YAML files only."""
    loaded = {
        name: components.load_component_from_file(str(_ROOT / "components" / name / "component.yaml"))
        for name in ("suggest", "run_trial", "collect_metrics", "decide", "report")
    }
    document = yaml.safe_load((_EXAMPLE / "experiment.yaml").read_text())
    document["spec"]["maxTrialCount"] = 2
    document["spec"]["parallelTrialCount"] = 2
    document["spec"]["maxFailedTrialCount"] = 1
    spec_text = json.dumps(document)
    settings_text = StepSettings(trial_cwd=str(_EXAMPLE)).to_json()

    @dsl.pipeline(name="one-round")
    def one_round(spec: str = spec_text, settings: str = settings_text) -> str:
        proposed = loaded["suggest"](spec=spec, settings=settings)
        with dsl.ParallelFor(proposed.outputs["Output"], parallelism=2) as item:
            ran = loaded["run_trial"](spec=spec, settings=settings, trial=item)
            record = loaded["collect_metrics"](
                spec=spec,
                settings=settings,
                run_id="test",
                result=ran.outputs["Output"],
                log=ran.outputs["log"],
                metrics_file=ran.outputs["metrics_file"],
            )
        decided = loaded["decide"](
            spec=spec,
            settings=settings,
            previous=proposed.outputs["history"],
            results=dsl.Collected(record.outputs["Output"]),
        )
        loaded["report"](spec=spec, history=decided.outputs["history"])
        return decided.outputs["decision"]  # type: ignore[no-any-return]

    package = tmp_path / "one-round.yaml"
    compiler.Compiler().compile(one_round, str(package))
    with (tmp_path / "kfp.log").open("w") as log:
        output = run_pipeline_locally(
            package, {}, pipeline_root=tmp_path / "root", max_parallelism=2, log=log
        )
    decision = json.loads(output)
    assert (decision["done"], decision["reason"], decision["trials"]["succeeded"]) == (
        True,
        "MaxTrialsReached",
        2,
    )
    histories = [History.from_json(p.read_text()) for p in tmp_path.glob("root/**/decide/history")]
    assert [len(h.trials) for h in histories] == [2]
    assert list(tmp_path.glob("root/**/report/page"))
