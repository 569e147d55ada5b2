"""tune()'s build-time checks: a trial component that does not fit gets an error naming the parameter."""

# No `from __future__ import annotations`: KFP reads the components' annotations.
from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp import compiler, dsl
from kfp.dsl import Metrics, Output

import hpo_kfp
from hpo_kfp.errors import BuildError, SpecError
from tests.conftest import base_spec

_STORE = hpo_kfp.StepSettings(store="sqlite:////nonexistent/compiled-only.sqlite")
"""A store for pipelines that are only compiled (a store is opened by the steps, never here)."""


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def good(lr: float, layers: int, optimizer: str, data: str, metrics: Output[Metrics]) -> None:
    metrics.log_metric("loss", lr)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def returns_value(lr: float, layers: int, optimizer: str) -> float:
    return lr


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def misnamed(learning_rate: float, layers: int, optimizer: str) -> float:
    return learning_rate


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def wrong_type(lr: str, layers: int, optimizer: str) -> float:
    return 0.0


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def no_metrics(lr: float, layers: int, optimizer: str) -> str:
    return "done"


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def two_metrics(lr: float, layers: int, optimizer: str, a: Output[Metrics], b: Output[Metrics]) -> None:
    a.log_metric("loss", lr)


def _native_spec() -> dict[str, Any]:
    document = base_spec()
    del document["spec"]["trialTemplate"]
    return document


def _build(trial: Any, **kwargs: Any) -> str:
    @dsl.pipeline(name="p")
    def pipeline(data: str = "x") -> None:
        hpo_kfp.tune(_native_spec(), trial=trial, settings=_STORE, **kwargs)

    return compiler.Compiler().compile(pipeline, "/dev/null") or "compiled"


@pytest.mark.parametrize(
    ("trial", "kwargs", "message"),
    [
        (
            misnamed,
            {},
            r"^spec.parameters\[0\] 'lr': trial component 'misnamed' must have an input named 'lr'",
        ),
        (
            wrong_type,
            {},
            r"^spec.parameters\[0\] 'lr': input 'lr' of trial component 'wrong-type' must be of type "
            r"Float, but it is String$",
        ),
        (
            no_metrics,
            {},
            r"^trial: component 'no-metrics' must report its metrics, through an Output\[Metrics\] "
            r"or a float return value",
        ),
        (two_metrics, {}, r"^metrics_output: must name one of trial component 'two-metrics'"),
        (
            two_metrics,
            {"metrics_output": "c"},
            r"^metrics_output: .* must have a system.Metrics output named 'c'",
        ),
        (good, {}, r"^trial_arguments: input 'data' of trial component 'good' needs a value$"),
        (good, {"trial_arguments": {"data": "x", "lr": 0.1}}, r"^trial_arguments: 'lr' is a tuned parameter"),
        (
            good,
            {"trial_arguments": {"data": "x", "epochs": 3}},
            r"^trial_arguments: trial component 'good' must "
            r"have an input named 'epochs'",
        ),
        ("not a component", {}, r"^trial: must be a KFP component, but got str"),
    ],
    ids=[
        "unknown-input",
        "wrong-type",
        "no-metrics",
        "ambiguous-metrics",
        "unknown-metrics-output",
        "missing-argument",
        "argument-is-a-parameter",
        "unknown-argument",
        "not-a-component",
    ],
)
def test_build_time_mistakes_name_the_parameter(trial: Any, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(BuildError, match=message):
        _build(trial, **kwargs)


def test_a_float_return_is_the_objective_and_outputs_are_typed(tmp_path: Path) -> None:
    @dsl.pipeline(name="p")
    def pipeline() -> float:
        return hpo_kfp.tune(_native_spec(), trial=returns_value, settings=_STORE).outputs["best_objective"]

    compiler.Compiler().compile(pipeline, str(tmp_path / "p.yaml"))
    compiled = yaml.safe_load((tmp_path / "p.yaml").read_text())
    # The trial is no task of the pipeline: start hands its container to the lanes.
    assert "comp-returns-value" not in compiled["components"]
    component = _trial_component(compiled)
    assert (component.name, component.image, component.outputs) == (
        "returns-value",
        "python:3.11",
        ["Output"],
    )
    assert component.command[-4:] == ["--executor_input", "{{$}}", "--function_to_execute", "returns_value"]
    outputs = compiled["components"]["comp-best"]["outputDefinitions"]["parameters"]
    assert {k: v["parameterType"] for k, v in outputs.items()} == {
        "best_parameters": "STRUCT",
        "best_parameters_json": "STRING",
        "best_objective": "NUMBER_DOUBLE",
        "best_trial": "STRING",
        "decision": "STRING",
        "best_lr": "NUMBER_DOUBLE",
        "best_layers": "NUMBER_INTEGER",
        "best_optimizer": "STRING",
    }


def test_experiment_forms_and_template_rules(tmp_path: Path) -> None:
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(base_spec()))

    @dsl.pipeline(name="p")
    def from_file() -> str:
        return hpo_kfp.tune(str(path), settings=_STORE).outputs["best_trial"]  # the trial template runs

    compiler.Compiler().compile(from_file, str(tmp_path / "p.yaml"))
    with pytest.raises(
        SpecError, match=r"^spec.trialTemplate: must be omitted when the trial is a KFP component"
    ):
        _build_with(base_spec(), good)
    with pytest.raises(
        BuildError, match=r"^trial: needs a KFP component, as the experiment has no trialTemplate"
    ):
        _build_with(
            hpo_kfp.experiment(
                "demo",
                objective=hpo_kfp.objective("loss"),
                max_trials=4,
                parameters=[hpo_kfp.double("lr", 0.01, 0.05)],
            ),
            None,
        )


def _build_with(experiment: Any, trial: Any, settings: Any = _STORE) -> None:
    @dsl.pipeline(name="p")
    def pipeline() -> None:
        hpo_kfp.tune(
            experiment,
            trial=trial,
            trial_arguments={"data": "x"} if trial is good else None,
            settings=settings,
        )

    compiler.Compiler().compile(pipeline, "/dev/null")


def test_early_stopping_needs_a_template_trial() -> None:
    document = _native_spec()
    document["spec"]["earlyStopping"] = {"algorithmName": "medianstop"}
    with pytest.raises(
        BuildError,
        match=r"^spec.earlyStopping: a KFP-native trial reports its metrics only when it ends, so it cannot be stopped early",
    ):
        _build_with(document, good)


def test_builder_helpers_validate_like_yaml() -> None:
    with pytest.raises(
        SpecError,
        match=r"^spec.parameters\[0\].feasibleSpace.min: `min <= max` must hold, but got "
        r"min=5, max=2$",
    ):
        hpo_kfp.experiment(
            "demo",
            objective=hpo_kfp.objective("loss"),
            max_trials=4,
            parameters=[hpo_kfp.integer("layers", 5, 2)],
        )
    built = hpo_kfp.experiment(
        "demo",
        objective=hpo_kfp.objective("accuracy", "maximize", goal=0.9),
        algorithm=hpo_kfp.algorithm("tpe", n_startup_trials=5),
        max_trials=10,
        parallel=2,
        parameters=[
            hpo_kfp.double("C", 0.1, 100, log=True),
            hpo_kfp.discrete("k", [1, 3, 5]),
            hpo_kfp.categorical("kernel", ["rbf", "poly"]),
        ],
    )
    assert built.parameter("C").distribution == "logUniform"
    assert built.parameter("k").values == (1, 3, 5)
    assert built.algorithm.settings == {"n_startup_trials": 5}
    assert built.trial_template is None


class _Path:
    """What a component function sees of an artifact: its local path."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)


def _decision(best: bool) -> Any:
    from hpo_kfp.wire import BestTrial, DecisionDocument

    return DecisionDocument(
        done=True,
        experiment="demo",
        status="Succeeded" if best else "Failed",
        reason="GoalReached" if best else "MaxTrialsReached",
        trials={"succeeded": int(best)},
        best=BestTrial(name="demo-0001", parameters={"lr": 0.02, "layers": 3}, objective=0.25)
        if best
        else None,
    )


def _trial_component(compiled: dict[str, Any]) -> Any:
    """The trial component the compiled pipeline's start task is given."""
    from hpo_kfp.wire import TrialComponent

    start = compiled["root"]["dag"]["tasks"]["start"]["inputs"]["parameters"]["trial_component"]
    return TrialComponent.from_json(start["runtimeValue"]["constant"])


def test_arguments_known_at_run_time_reach_the_trial_component(tmp_path: Path) -> None:
    """A pipeline parameter as a trial argument: a small step adds its value to the trial
    component at run time; a constant is in it from the start."""
    from hpo_kfp.pipeline.generated import trial_component_op
    from hpo_kfp.wire import TrialComponent

    compiler.Compiler().compile(_pipeline_with_data("constant"), str(tmp_path / "constant.yaml"))
    constant = yaml.safe_load((tmp_path / "constant.yaml").read_text())
    assert "trial-component" not in constant["root"]["dag"]["tasks"]  # no channel, no step
    assert _trial_component(constant).arguments == {"data": "constant"}
    compiler.Compiler().compile(_pipeline_with_data(None), str(tmp_path / "p.yaml"))
    compiled = yaml.safe_load((tmp_path / "p.yaml").read_text())
    task = compiled["root"]["dag"]["tasks"]["trial-component"]
    assert task["inputs"]["parameters"]["data"] == {"componentInputParameter": "data"}
    start = compiled["root"]["dag"]["tasks"]["start"]["inputs"]["parameters"]["trial_component"]
    assert start["taskOutputParameter"]["producerTask"] == "trial-component"
    merge = trial_component_op([("data", "data", "str")], "image").python_func
    given = TrialComponent(name="t", image="i", command=["run"], arguments={"other": 1})
    merged = TrialComponent.from_json(merge(trial_component_json=given.to_json(), data="digits"))
    assert merged.arguments == {"other": 1, "data": "digits"} and merged.command == ["run"]


def _pipeline_with_data(value: Any) -> Any:
    """A pipeline passing its parameter ``data`` (or ``value``, when given) to the trial."""

    @dsl.pipeline(name="p")
    def pipeline(data: str = "x") -> None:
        given = data if value is None else value
        hpo_kfp.tune(_native_spec(), trial=good, trial_arguments={"data": given}, settings=_STORE)

    return pipeline


def test_best_passes_the_decision_and_history_through_the_wire_format(tmp_path: Path) -> None:
    from hpo_kfp.errors import StepFailed
    from hpo_kfp.pipeline.generated import best_op
    from hpo_kfp.wire import DecisionDocument

    (tmp_path / "split").write_text('{"version":1}')
    (tmp_path / "decision").write_text(_decision(True).to_json())
    fields = [("best_lr", "lr", "float"), ("best_layers", "layers", "int")]
    best = best_op(fields, "image").python_func
    outputs = best(
        decided=(tmp_path / "decision").read_text(),
        tuning_history=_Path(tmp_path / "split"),
        history=_Path(tmp_path / "out"),
    )
    assert outputs.best_parameters == {"lr": 0.02, "layers": 3}
    assert outputs.best_parameters_json == '{"lr":0.02,"layers":3}'
    assert (outputs.best_objective, outputs.best_trial, outputs.best_lr, outputs.best_layers) == (
        0.25,
        "demo-0001",
        0.02,
        3,
    )
    assert DecisionDocument.from_json(outputs.decision) == _decision(True)
    assert (tmp_path / "out").read_text() == '{"version":1}'
    (tmp_path / "empty").write_text("{}")
    with pytest.raises(StepFailed, match=r"^no trial succeeded, so there is no best: \{"):
        best(
            decided=_decision(False).to_json(),
            tuning_history=_Path(tmp_path / "empty"),
            history=_Path(tmp_path / "out2"),
        )
    assert (tmp_path / "out2").read_text() == "{}"


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def _score_x(x: float) -> float:
    return (x - 0.3) ** 2


def test_tune_takes_an_optimization_job_with_its_template_or_a_kfp_trial(tmp_path: Path) -> None:
    job_file = Path(__file__).parents[2] / "examples" / "optimization-job" / "job.yaml"
    job = yaml.safe_load(job_file.read_text())
    without_template = {**job, "spec": {k: v for k, v in job["spec"].items() if k != "trainJobTemplate"}}
    without_template["spec"].pop("earlyStopping")  # a KFP-native trial cannot be stopped while it runs

    @dsl.pipeline(name="optimization-jobs")
    def both() -> None:
        hpo_kfp.tune(job_file, settings=_STORE)
        hpo_kfp.tune(without_template, _score_x, settings=_STORE)

    compiler.Compiler().compile(both, str(tmp_path / "p.yaml"))
    compiled = yaml.safe_load((tmp_path / "p.yaml").read_text())
    assert "comp-lane" in compiled["components"] and "comp-score-x" not in compiled["components"]
    with pytest.raises(BuildError, match=r"^settings.store: tune\(\) must be given an experiment store"):
        _build_with(without_template, _score_x, settings=None)


def test_hyperband_runs_in_the_lanes_in_synchronous_rounds(tmp_path: Path) -> None:
    """Hyperband promotes whole rungs: tune() runs it in the lanes with the store as the
    rounds' barrier (issue 26: no nested rounds, no limit of 25)."""
    document = _native_spec()
    document["spec"]["parallelTrialCount"] = 9
    document["spec"]["maxTrialCount"] = 200
    document["spec"]["algorithm"] = {
        "algorithmName": "hyperband",
        "algorithmSettings": [
            {"name": "resource_name", "value": "layers"},
            {"name": "r_l", "value": "9"},
            {"name": "eta", "value": "3"},
        ],
    }

    @dsl.pipeline(name="p")
    def pipeline() -> float:
        return hpo_kfp.tune(document, trial=returns_value, settings=_STORE).outputs["best_objective"]

    compiler.Compiler().compile(pipeline, str(tmp_path / "p.yaml"))
    compiled = yaml.safe_load((tmp_path / "p.yaml").read_text())
    assert "comp-start" in compiled["components"] and not any("round" in c for c in compiled["components"])
    settings = compiled["root"]["dag"]["tasks"]["start"]["inputs"]["parameters"]["settings"]
    assert hpo_kfp.StepSettings.from_json(settings["runtimeValue"]["constant"]).synchronous


def test_tune_outside_a_pipeline_says_where_it_belongs() -> None:
    """KFP would run the first component at once and fail with "Local environment not initialized"."""
    with pytest.raises(BuildError) as refused:
        hpo_kfp.tune(base_spec(), trial=good, settings=hpo_kfp.StepSettings(store="sqlite:////x.sqlite"))
    assert str(refused.value).startswith("tune() must be called inside a @dsl.pipeline function")


@pytest.mark.parametrize("native", [False, True], ids=["trial-template", "trial-component"])
def test_tune_is_the_same_tasks_for_100_and_10000_trials(tmp_path: Path, native: bool) -> None:
    """Issue 26: no unrolled slots; the author's pipeline does not grow with maxTrialCount,
    whether the trials are a template's or the author's component."""
    job_file = Path(__file__).parents[2] / "examples" / "optimization-job" / "job.yaml"
    counts = []
    for trials in (100, 10_000):
        job = yaml.safe_load(job_file.read_text())
        job["spec"]["trialConfig"]["numTrials"] = trials
        if native:
            job["spec"] = {
                k: v for k, v in job["spec"].items() if k not in ("trainJobTemplate", "earlyStopping")
            }

        @dsl.pipeline(name="p")
        def pipeline() -> float:
            trial = _score_x if native else None
            return hpo_kfp.tune(job, trial, settings=_STORE).outputs["best_objective"]  # noqa: B023

        compiler.Compiler().compile(pipeline, str(tmp_path / f"{trials}.yaml"))
        compiled = yaml.safe_load((tmp_path / f"{trials}.yaml").read_text())
        counts.append(
            sum(
                len(c.get("dag", {}).get("tasks", {}))
                for c in [compiled["root"], *compiled["components"].values()]
            )
        )
    assert counts[0] == counts[1] <= 8, counts
