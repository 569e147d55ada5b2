"""A user's pipeline: tune with a KFP-native trial component, then train with the best
parameters — compiled, and run end to end with kfp.local."""

# No `from __future__ import annotations`: KFP reads the components' annotations.
import json
from pathlib import Path
from typing import Any

import yaml
from kfp import compiler, dsl, local
from kfp.dsl import Metrics, Output

import hpo_kfp
from hpo_kfp.compat import kfp_local_fixes


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def train_trial(lr: float, layers: int, optimizer: str, data: str, metrics: Output[Metrics]) -> None:
    """A trial: pretend to train; loss is best at lr=0.03, layers=3, optimizer=adam."""
    loss = (lr - 0.03) ** 2 * 1000 + abs(layers - 3) + (0.0 if optimizer == "adam" else 0.5)
    metrics.log_metric("loss", loss)
    metrics.log_metric("dataset-length", float(len(data)))


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def final_train(lr: float, layers: int, optimizer: str, data: str, parameters: dict) -> str:
    import json

    return json.dumps({"lr": lr, "layers": layers, "optimizer": optimizer, "data": data, "dict": parameters})


def _experiment() -> hpo_kfp.Experiment:
    return hpo_kfp.experiment(
        "native",
        objective=hpo_kfp.objective("loss", "minimize", goal=0.2, additional_metrics=["dataset-length"]),
        algorithm=hpo_kfp.algorithm("tpe", n_startup_trials=4, random_state=3),
        parameters=[
            hpo_kfp.double("lr", 0.01, 0.05),
            hpo_kfp.integer("layers", 1, 5),
            hpo_kfp.categorical("optimizer", ["sgd", "adam"]),
        ],
        max_trials=8,
        parallel=2,
    )


def _tune_then_train(store: str) -> Any:
    @dsl.pipeline(name="tune-then-train")
    def tune_then_train(data: str = "digits") -> str:
        tuning = hpo_kfp.tune(
            _experiment(),
            trial=train_trial,
            trial_arguments={"data": data},
            settings=hpo_kfp.StepSettings(store=store),
        )
        final = final_train(
            lr=tuning.outputs["best_lr"],
            layers=tuning.outputs["best_layers"],
            optimizer=tuning.outputs["best_optimizer"],
            data=data,
            parameters=tuning.outputs["best_parameters"],
        )
        return final.output

    return tune_then_train


def test_tune_then_train_compiles_and_runs_locally(tmp_path: Path) -> None:
    tune_then_train = _tune_then_train(f"sqlite:///{tmp_path / 'tune.sqlite'}")
    compiler.Compiler().compile(tune_then_train, str(tmp_path / "pipeline.yaml"))
    compiled = yaml.safe_load((tmp_path / "pipeline.yaml").read_text())
    # The trial component is no task of the pipeline: the lanes run its container per trial.
    assert {"comp-start", "comp-lane", "comp-for-loop-1"} <= set(compiled["components"])
    assert "comp-train-trial" not in compiled["components"]
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "root"),
        raise_on_error=True,
    )
    # kfp.local's print wrapper is not thread-safe: with loops of 2 it leaks into this process
    # (every later print indented) unless its fix is on, as run_pipeline_locally puts it.
    with kfp_local_fixes(2):
        result = json.loads(tune_then_train(data="digits").output)
    assert result["data"] == "digits"
    assert 0.01 <= result["lr"] <= 0.05 and isinstance(result["layers"], int)
    assert result["dict"] == {
        "lr": result["lr"],
        "layers": result["layers"],
        "optimizer": result["optimizer"],
    }
    # The best trial really is the best of the recorded trials, and the history was kept.
    histories = list((tmp_path / "root").glob("**/best/history"))
    assert len(histories) == 1
    history = hpo_kfp.History.from_json(histories[0].read_text())
    losses = {t.name: t.objective for t in history.trials if t.objective is not None}
    assert 1 <= len(history.trials) <= 8
    best_name = min(losses, key=lambda name: losses[name])
    best = history.get(best_name)
    assert best is not None and best.parameters["lr"] == result["lr"]
    assert best.metrics["dataset-length"] == 6.0


def test_a_rerun_of_a_done_experiment_hands_the_stored_best_on(tmp_path: Path) -> None:
    """Issue 15: a scheduled pipeline runs tune() again once its experiment is done; the run
    must succeed with the best the store holds, training nothing."""
    tune_then_train = _tune_then_train(f"sqlite:///{tmp_path / 'tune.sqlite'}")
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "root"),
        raise_on_error=True,
    )
    with kfp_local_fixes(2):
        first = json.loads(tune_then_train(data="digits").output)
        again = json.loads(tune_then_train(data="digits").output)
    assert again == first
    trial_runs = list((tmp_path / "root").glob("**/trials/native-*/metrics"))
    store = hpo_kfp.store.open_store(f"sqlite:///{tmp_path / 'tune.sqlite'}")
    [key] = store.experiments()
    assert len(trial_runs) == len(store.history(key).trials)  # the second run trained nothing
