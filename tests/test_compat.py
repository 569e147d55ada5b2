"""The compat module: trials added to the rebuilt study, the version ranges, and a test per
workaround that fails when upstream changes what it hooks."""

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from google.protobuf import json_format
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from hpo_kfp import compat
from hpo_kfp.compat import (
    UnsupportedDependency,
    added_trial,
    check_supported,
    component_from_source,
    kfp_compiler_libyaml,
    kfp_local_fixes,
    kfp_local_task_folders,
    load_pipeline_file,
    set_study_system_attrs,
    study_system_attrs,
)
from tests.kfp_api_stub import KfpApiStub

_SPACE = {"x": FloatDistribution(0, 1), "kind": CategoricalDistribution(["sgd", "adam"])}


def _fields(trial: optuna.trial.FrozenTrial) -> dict[str, object]:
    """Everything but the times (create_trial stamps its own)."""
    return {k: v for k, v in trial.__dict__.items() if "datetime" not in k}


def test_made_as_create_trial_makes_it() -> None:
    options = {
        "params": {"x": 0.25, "kind": "adam"},
        "distributions": _SPACE,
        "values": [1.5],
        "system_attrs": {"cma:generation": 2},
        "intermediate_values": {0: 3.0},
    }
    ours = added_trial(TrialState.COMPLETE, **options)  # type: ignore[arg-type]
    theirs = optuna.trial.create_trial(state=TrialState.COMPLETE, **options)  # type: ignore[arg-type]
    assert _fields(ours) == _fields(theirs)
    assert ours.datetime_complete == ours.datetime_start is not None
    running = added_trial(TrialState.RUNNING, params={"x": 0.5}, distributions={"x": _SPACE["x"]})
    assert running.datetime_start is not None and running.datetime_complete is None
    assert _fields(added_trial(TrialState.FAIL)) == _fields(optuna.trial.create_trial(state=TrialState.FAIL))


def test_a_copy_shares_the_distributions_but_not_what_can_change() -> None:
    original = added_trial(
        TrialState.COMPLETE,
        params={"x": 0.25, "kind": "adam"},
        distributions=_SPACE,
        values=[1.5],
        system_attrs={"chunks": ["a", "b"]},
        intermediate_values={0: 3.0},
    )
    copied = copy.deepcopy(original)
    assert copied == original and isinstance(copied, optuna.trial.FrozenTrial)
    assert copied.distributions["x"] is original.distributions["x"]
    copied.params["x"] = 0.75
    copied.system_attrs["chunks"].append("c")
    copied.intermediate_values[1] = 2.0
    copied.values = [9.0]
    assert original.params["x"] == 0.25
    assert original.system_attrs["chunks"] == ["a", "b"]
    assert original.intermediate_values == {0: 3.0}
    assert original.values == [1.5]


def test_a_study_of_added_trials_samples_as_one_of_created_trials() -> None:
    def study_with(make: object) -> optuna.Study:
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=3, n_startup_trials=2))
        for i in range(6):
            options = {
                "params": {"x": i / 6},
                "distributions": {"x": _SPACE["x"]},
                "values": [(i / 6 - 0.4) ** 2],
            }
            if make is added_trial:
                study.add_trial(added_trial(TrialState.COMPLETE, **options))  # type: ignore[arg-type]
            else:
                study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, **options))  # type: ignore[arg-type]
        return study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    created, added = study_with(None), study_with(added_trial)
    space = {"x": _SPACE["x"]}
    assert [created.ask(space).params for _ in range(3)] == [added.ask(space).params for _ in range(3)]
    assert [_fields(t) for t in added.trials] == [_fields(t) for t in created.trials]


# --- each workaround's hook, as upstream has it -------------------------------------------


def test_the_supported_ranges_hold_for_what_is_installed() -> None:
    check_supported("kfp")
    check_supported("optuna")


def test_a_version_outside_the_range_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(compat.SUPPORTED, "kfp", ((9, 0), (10,)))
    with pytest.raises(UnsupportedDependency) as caught:
        check_supported("kfp")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("kfp: hpo-kfp needs >=9.0,<10, but ")
    assert isinstance(caught.value, ImportError)


@pytest.mark.parametrize(
    ("text", "release"),
    [("2.17.3", (2, 17, 3)), ("5.0.0rc1", (5, 0, 0)), ("2.18.0.dev0", (2, 18, 0)), ("3", (3,))],
    ids=["plain", "rc", "dev", "major"],
)
def test_versions_compare_by_release(text: str, release: tuple[int, ...]) -> None:
    assert compat._release(text) == release


def test_kfp_local_still_caps_parallel_for_at_2_and_the_fix_lifts_it() -> None:
    from kfp.local.orchestrator.enhanced_dag_orchestrator import ParallelExecutor

    # When these two fail, kfp.local no longer caps loops: drop the ParallelExecutor patch.
    assert ParallelExecutor().max_workers == 2
    assert ParallelExecutor(8).max_workers == 2
    with kfp_local_fixes(6):
        assert ParallelExecutor(8).max_workers == 6
        assert ParallelExecutor().max_workers == 6
    assert ParallelExecutor(8).max_workers == 2  # restored


def test_kfp_local_still_swaps_print_and_the_fix_stops_it() -> None:
    import builtins

    from kfp.local import logging_utils

    original = builtins.print
    with logging_utils.indented_print():
        swapped = builtins.print is not original  # what leaks across threads
    assert swapped, "kfp.local no longer replaces print: drop the indented_print patch"
    with kfp_local_fixes(2), logging_utils.indented_print():
        assert builtins.print is original
    assert logging_utils.indented_print is not None and builtins.print is original


def test_overlapping_kfp_local_logger_contexts_still_leak_a_handler_and_the_fix_stops_it() -> None:
    import logging

    from kfp.local import logging_utils

    root = logging.getLogger()
    before = (root.handlers[:], root.level)

    def overlap() -> None:  # two tasks' contexts, as two threads interleave them
        first, second = logging_utils.local_logger_context(), logging_utils.local_logger_context()
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)
        second.__exit__(None, None, None)

    overlap()
    leaked = (root.handlers[:], root.level) != before
    root.handlers[:] = before[0]
    root.setLevel(before[1])
    assert leaked, "kfp.local's logger context no longer leaks: drop the local_logger_context patch"
    with kfp_local_fixes(2):
        overlap()
    assert (root.handlers[:], root.level) == before


def test_kfp_local_tasks_still_make_a_mktemp_folder_and_the_fix_keeps_and_removes_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kfp import dsl
    from kfp.local.subprocess_task_handler import run_local_subprocess

    @dsl.component
    def noop():  # type: ignore[no-untyped-def]  # annotated, "None" (a string here) reads as an artifact type
        pass

    # When this fails, components no longer make a folder with mktemp: drop the TMPDIR fix.
    assert any("$(mktemp -d)" in part for part in noop.component_spec.implementation.container.command)
    with kfp_local_task_folders(tmp_path) as folder:
        # kfp.local's subprocesses inherit this process's environment, TMPDIR included.
        assert run_local_subprocess(["sh", "-c", 'printf "made %s\\n" "$(mktemp -d)"']) == 0
        [made] = [
            line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("made ")
        ]
        assert Path(made).parent == folder and Path(made).is_dir()
    assert list(tmp_path.iterdir()) == []  # removed with what the tasks left in it
    assert os.environ.get("TMPDIR") == _TMPDIR  # restored


_TMPDIR = os.environ.get("TMPDIR")


def test_a_component_from_generated_source_has_its_typed_outputs() -> None:
    source = (
        "from typing import NamedTuple\n\n\n"
        'def pair(text: str) -> NamedTuple("Pair", [("a", int), ("b", str)]):\n'
        "    from collections import namedtuple\n\n"
        '    return namedtuple("Pair", ["a", "b"])(len(text), text)\n'
    )
    component = component_from_source(source, "pair", "python:3.11")
    outputs = component.component_spec.outputs
    assert {name: spec.type for name, spec in outputs.items()} == {"a": "Integer", "b": "String"}
    assert "len(text), text" in component.component_spec.implementation.container.command[-1]


@pytest.mark.parametrize("name", ["pipelines/hpo_experiment.yaml", "components/suggest/component.yaml"])
def test_a_pipeline_loaded_with_libyaml_is_the_one_kfp_loads(name: str) -> None:
    from kfp import components

    path = Path(__file__).resolve().parent.parent / name
    ours = load_pipeline_file(path)
    theirs = components.load_component_from_file(str(path))
    assert type(ours) is type(theirs)
    assert ours.component_spec.to_pipeline_spec() == theirs.component_spec.to_pipeline_spec()
    assert ours.component_spec.inputs == theirs.component_spec.inputs
    assert ours.component_spec.outputs == theirs.component_spec.outputs


def test_kfp_still_dumps_through_its_module_s_yaml_and_libyaml_writes_the_same_pipeline(
    tmp_path: Path,
) -> None:
    import yaml
    from kfp.compiler import pipeline_spec_builder

    from hpo_kfp.pipeline.lanes import build_lanes_pipeline
    from hpo_kfp.pipeline.tasks import compile_pipeline
    from hpo_kfp.spec import load_experiment
    from hpo_kfp.steps.settings import StepSettings

    assert pipeline_spec_builder.yaml is yaml  # the name the hook swaps
    experiment = load_experiment(
        Path(__file__).resolve().parent.parent / "examples/quadratic/experiment.yaml"
    )
    pipeline = build_lanes_pipeline(experiment, settings=StepSettings(store="sqlite:////tmp/x.sqlite"))
    compile_pipeline(pipeline, tmp_path / "kfp.yaml")
    with kfp_compiler_libyaml():
        assert pipeline_spec_builder.yaml is not yaml
        compile_pipeline(pipeline, tmp_path / "libyaml.yaml")
    assert pipeline_spec_builder.yaml is yaml
    theirs, ours = ((tmp_path / name).read_text() for name in ("kfp.yaml", "libyaml.yaml"))
    assert list(yaml.safe_load_all(ours)) == list(yaml.safe_load_all(theirs))
    assert ours.split("\n", 3)[:3] == theirs.split("\n", 3)[:3]  # KFP's comment header


def test_sampler_state_on_the_study_survives_a_rebuild() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = {"x": FloatDistribution(0, 1), "y": FloatDistribution(0, 1)}
    first = optuna.create_study(sampler=optuna.samplers.QMCSampler(seed=3, warn_independent_sampling=False))
    first.tell(first.ask(distributions), 1.0)
    first.ask(distributions)
    stored = study_system_attrs(first)
    assert stored, "QMC no longer stores its counter on the study"
    second = optuna.create_study()
    set_study_system_attrs(second, stored)
    assert study_system_attrs(second) == stored


def test_a_running_trial_of_a_kept_study_ends_as_an_added_one_would() -> None:
    # Through the storage, as Study.add_trial writes a trial, and without the sampler's
    # after_trial, which a rebuilt study never calls for the trials it is given.
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    ended: list[int] = []

    class Sampler(optuna.samplers.RandomSampler):
        def after_trial(self, study: optuna.Study, trial: object, state: object, values: object) -> None:
            ended.append(1)

    study = optuna.create_study(sampler=Sampler(seed=1))
    distributions = {"x": FloatDistribution(0, 1)}
    done, stopped = study.ask(distributions), study.ask(distributions)
    running = study.get_trials(deepcopy=False)
    compat.update_trial(
        study,
        running[0],
        system_attrs={"k": [1]},
        state=TrialState.COMPLETE,
        values=[0.5],
        intermediate_values={},
    )
    compat.update_trial(
        study, running[1], system_attrs={}, state=TrialState.PRUNED, values=None, intermediate_values={0: 2.0}
    )
    first, second = study.get_trials(deepcopy=False)
    assert (first.state, first.values, first.system_attrs) == (TrialState.COMPLETE, [0.5], {"k": [1]})
    assert (second.state, second.intermediate_values) == (TrialState.PRUNED, {0: 2.0})
    assert first.params == done.params and second.params == stopped.params
    assert ended == [] and study.best_trial.number == 0


@pytest.mark.slow
def test_optuna_importance_loads_without_scikit_learn() -> None:
    code = (
        "import sys\n"
        "from hpo_kfp.compat import import_optuna_importance_without_sklearn as load\n"
        "load()\n"
        "from optuna.importance import PedAnovaImportanceEvaluator\n"
        "print('sklearn' in sys.modules)\n"
        "import sklearn\n"  # hidden only while optuna.importance loaded
        "print(sklearn.__name__)\n"
    )
    hidden = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert hidden.stdout.split() == ["False", "sklearn"]
    plain = subprocess.run(
        [sys.executable, "-c", "import sys, optuna.importance; print('sklearn' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    # When this fails, Optuna stopped loading scikit-learn eagerly: the workaround can go.
    assert plain.stdout.strip() == "True"


def test_the_kfp_layer_refuses_an_unsupported_kfp_at_import() -> None:
    code = (
        "import hpo_kfp.compat as compat\n"
        "compat.SUPPORTED['kfp'] = ((9, 0), (10,))\n"
        "try:\n"
        "    import hpo_kfp.pipeline.tasks\n"
        "except compat.UnsupportedDependency as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("kfp: hpo-kfp needs >=9.0,<10, but ")
    assert result.stdout.count("\n") == 1


def test_the_kfp_client_still_drops_the_servers_release_and_the_raw_healthz_keeps_it(
    kfp_api: KfpApiStub,
) -> None:
    """kfp.Client's own healthz model has no tag_name; the API server sends it (main.go)."""
    import kfp

    kfp_api.version = "2.16.1"
    client = kfp.Client(host=kfp_api.url, namespace="kubeflow")
    assert not hasattr(client.get_kfp_healthz(), "tag_name")  # else use the public call instead
    healthz = compat.kfp_server_healthz(client)
    assert (healthz["tag_name"], healthz["multi_user"]) == ("2.16.1", False)


def test_kfp_local_tasks_still_start_a_new_interpreter_and_warm_tasks_fork_from_a_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A lightweight component's command is still ``sh -ec SCRIPT SOURCE ARGS`` running
    ``kfp.dsl.executor_main``; under the fix the same command's task runs in a process forked
    from the warm server (not this one, not a new shell), gets the task's environment and
    reports its exit status."""
    from kfp import local
    from kfp.local import subprocess_task_handler

    from hpo_kfp.compat import _lightweight_task, kfp_local_warm_tasks

    where = compat.component_from_source(
        """
def where(fail: bool) -> str:
    import os

    if fail:
        raise RuntimeError("this task fails")
    return f"{os.getpid()} {os.getppid()} {os.environ.get('_KFP_RUNTIME')}"
""",
        "where",
        "python:3.11",
    )

    command = where.component_spec.implementation.container.command
    assert command[:2] == ["sh", "-ec"] and "kfp.dsl.executor_main" in command[2]
    assert _lightweight_task([*command, "--executor_input", "{}"]) == (command[3], ["--executor_input", "{}"])
    assert _lightweight_task(["sh", "-c", "true"]) is None
    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path), raise_on_error=False
    )
    original = subprocess_task_handler.run_local_subprocess
    with kfp_local_warm_tasks(("json",)):
        pid, parent, runtime = where(fail=False).output.split()
        failed = where(fail=True)
    assert subprocess_task_handler.run_local_subprocess is original  # restored
    assert int(pid) != os.getpid() and int(parent) != os.getpid()  # the server's child, not ours
    assert "forkserver" in Path(f"/proc/{parent}/cmdline").read_text()  # not a shell's
    assert runtime == "true"
    assert "this task fails" in capsys.readouterr().out
    assert failed.outputs == {}  # kfp.local saw the failure


def test_warm_tasks_do_not_run_the_main_script_again(tmp_path: Path) -> None:
    """multiprocessing imports the parent's main script in a forkserver child (running it, when
    it has no ``__main__`` guard, as a user's script often has not); a warm task must not."""
    script = tmp_path / "unguarded.py"
    script.write_text(
        f"""
from pathlib import Path
from kfp import local
from hpo_kfp import compat

with open({str(tmp_path / "ran")!r}, "a") as stream:
    stream.write("ran\\n")
local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root={str(tmp_path / "root")!r})
task = compat.component_from_source("def one() -> int:\\n    return 1\\n", "one", "python:3.11")
with compat.kfp_local_warm_tasks(("json",)):
    assert task().output == 1
"""
    )
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "ran").read_text() == "ran\n"


def test_a_pipeline_being_defined_is_seen() -> None:
    """``defining_a_pipeline`` reads KFP's ``Pipeline.get_default_pipeline``, which a
    ``@dsl.pipeline`` function's definition sets (the ``Pipeline`` context it runs in)."""
    from kfp.dsl import pipeline_context

    from hpo_kfp.compat import defining_a_pipeline

    assert defining_a_pipeline() is False
    with pipeline_context.Pipeline("probe"):
        assert defining_a_pipeline() is True
    assert defining_a_pipeline() is False


def test_kfp_local_still_resolves_a_components_placeholders_as_the_launcher_does() -> None:
    """The whole executor input for ``{{$}}``, a value or path for an input or output
    placeholder, and an ``IfPresent`` structure its branch for a given input."""
    from kfp import dsl

    from hpo_kfp.compat import resolve_component_command

    @dsl.container_component
    def shell(lr: float, out: dsl.OutputPath(float), note: str = "") -> dsl.ContainerSpec:  # type: ignore[valid-type]
        return dsl.ContainerSpec(
            image="alpine",
            command=["run", lr, out, dsl.IfPresentPlaceholder(input_name="note", then=["--note", note])],
            args=["{{$}}"],
        )

    container = json_format.MessageToDict(shell.pipeline_spec)["deploymentSpec"]["executors"]["exec-shell"][
        "container"
    ]
    executor_input = {
        "inputs": {"parameterValues": {"lr": 0.5, "note": "hi"}},
        "outputs": {"parameters": {"out": {"outputFile": "/o/out"}}, "outputFile": "/o/executor_output.json"},
    }
    resolved = resolve_component_command(
        [*container["command"], *container["args"]], executor_input, pipeline="p", task="t", job_id="j"
    )
    assert resolved[:5] == ["run", "0.5", "/o/out", "--note", "hi"]
    assert json.loads(resolved[5]) == executor_input
    without = {**executor_input, "inputs": {"parameterValues": {"lr": 0.5}}}
    assert resolve_component_command(container["command"], without, pipeline="p", task="t", job_id="j") == [
        "run",
        "0.5",
        "/o/out",
    ]


def test_pipeline_channels_are_found_in_any_argument() -> None:
    from kfp import dsl

    from hpo_kfp.compat import holds_pipeline_channel

    found: list[bool] = []

    @dsl.component(base_image="python:3.11", install_kfp_package=False)
    def noop(text: str) -> None: ...

    @dsl.pipeline
    def pipeline(data: str = "x") -> None:
        noop(text=data)
        found.extend(
            holds_pipeline_channel(value)
            for value in (data, f"gs://{data}/y", {"k": [data]}, "plain", {"k": 1})
        )

    assert found == [True, True, True, False, False]
