"""The local runner runs the primary container's command as a process group."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hpo_kfp.collectors.collect import collect_trial
from hpo_kfp.containers import expand_variables, primary_container
from hpo_kfp.errors import RunnerError
from hpo_kfp.history import History, TrialRecord, TrialRun
from hpo_kfp.runners.local import local_command, run_local
from hpo_kfp.spec import Experiment, parse_experiment
from tests.conftest import base_spec, with_field
from tests.waiting import process_alive, wait_for

_TRIAL = TrialRecord(name="demo-0003", number=3, parameters={"lr": 0.02, "layers": 4, "optimizer": "adam"})


def _experiment(command: list[str], **fields: Any) -> Experiment:
    document = base_spec()
    container = document["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = command
    for path, value in fields.items():
        with_field(document, path, value)
    return parse_experiment(document)


def _run(experiment: Experiment, tmp_path: Path) -> TrialRun:
    """Runs the experiment's trial command for `_TRIAL` in tmp_path, logging to log.txt."""
    return run_local(
        local_command(experiment, _TRIAL, tmp_path / "m"),
        name="t",
        cwd=tmp_path,
        log_path=tmp_path / "log.txt",
    )


def _script_experiment(script: str) -> Experiment:
    """An experiment whose trial runs the Python script ``script`` of the trial's folder."""
    return _experiment(
        [
            "python3",
            script,
            "${trialParameters.learningRate}",
            "${trialParameters.numberLayers}",
            "${trialParameters.optimizer}",
        ]
    )


_PRINTER = [
    "python3",
    "-c",
    "import os, sys; print('args', sys.argv[1:]); print('cwd', os.getcwd()); "
    "print('env', os.environ.get('OPT'), os.environ.get('HPO_KFP_TRIAL_NAME')); print('loss=0.125')",
    "--lr=${trialParameters.learningRate}",
    "--layers=${trialParameters.numberLayers}",
    "--opt=${trialParameters.optimizer}",
]


def test_runs_command_with_substituted_args_env_and_cwd(tmp_path: Path) -> None:
    experiment = _experiment(
        _PRINTER,
        **{
            "spec.trialTemplate.trialSpec.spec.template.spec.containers.0.env": [
                {"name": "OPT", "value": "${trialParameters.optimizer}"}
            ]
        },
    )
    command = local_command(experiment, _TRIAL, tmp_path / "metrics.log")
    assert command.argv[0] == sys.executable
    run = run_local(command, name=_TRIAL.name, cwd=tmp_path, log_path=tmp_path / "log.txt")
    log = (tmp_path / "log.txt").read_text()
    assert run.succeeded and run.reason == ""
    assert "args ['--lr=0.02', '--layers=4', '--opt=adam']" in log
    assert f"cwd {tmp_path}" in log
    assert "env adam demo-0003" in log
    record = collect_trial(experiment, _TRIAL, run, log)
    assert (record.status, record.values, record.metrics) == ("Succeeded", (0.125,), {"loss": 0.125})
    assert record.duration is not None and record.duration >= 0


def test_non_zero_exit_is_a_failed_trial_with_partial_metrics(tmp_path: Path) -> None:
    experiment = _experiment(
        [
            "python3",
            "-c",
            "print('loss=0.5'); raise SystemExit(3)",
            "${trialParameters.learningRate}",
            "${trialParameters.numberLayers}",
            "${trialParameters.optimizer}",
        ]
    )
    run = _run(experiment, tmp_path)
    assert (run.exit_code, run.reason) == (3, "exit code 3")
    record = collect_trial(experiment, _TRIAL, run, (tmp_path / "log.txt").read_text())
    assert (record.status, record.reason, record.values) == ("Failed", "exit code 3", None)
    assert record.series["loss"] == [(None, 0.5)]


def test_missing_program_is_a_failed_trial(tmp_path: Path) -> None:
    experiment = _experiment(
        [
            "no-such-program-xyz",
            "${trialParameters.learningRate}",
            "${trialParameters.numberLayers}",
            "${trialParameters.optimizer}",
        ]
    )
    run = _run(experiment, tmp_path)
    assert run.exit_code == 127
    assert "could not start 'no-such-program-xyz'" in run.reason


def test_clean_exit_without_objective_is_metrics_unavailable(tmp_path: Path) -> None:
    experiment = _experiment(
        [
            "python3",
            "-c",
            "print('accuracy=0.9')",
            "${trialParameters.learningRate}",
            "${trialParameters.numberLayers}",
            "${trialParameters.optimizer}",
        ]
    )
    run = _run(experiment, tmp_path)
    record = collect_trial(experiment, _TRIAL, run, (tmp_path / "log.txt").read_text())
    assert record.status == "MetricsUnavailable"
    assert "'loss' was not found" in record.reason


def test_deadline_kills_the_whole_process_group(tmp_path: Path) -> None:
    script = tmp_path / "spawn.py"
    script.write_text(
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "open('child.pid', 'w').write(str(child.pid))\n"
        "print('started', flush=True)\n"
        "time.sleep(60)\n"
    )
    experiment = _experiment(
        [
            "python3",
            "spawn.py",
            "${trialParameters.learningRate}",
            "${trialParameters.numberLayers}",
            "${trialParameters.optimizer}",
        ],
        **{"spec.trialTemplate.trialSpec.spec.activeDeadlineSeconds": 2},
    )
    began = time.monotonic()
    run = _run(experiment, tmp_path)
    assert time.monotonic() - began < 20
    assert run.exit_code is None
    assert run.reason.startswith("DeadlineExceeded")
    child = int((tmp_path / "child.pid").read_text())
    wait_for(lambda: not process_alive(child), seconds=5, what="the trial's child to end")


def test_nothing_a_successful_trial_started_outlives_it(tmp_path: Path) -> None:
    """A child left in the trial's process group, and a daemon in a session of its own (which
    no process-group signal reaches), end with the trial (issue 31)."""
    script = tmp_path / "leave.py"
    script.write_text(
        "import os, subprocess, sys\n"
        "sleep = [sys.executable, '-c', 'import time; time.sleep(60)']\n"
        "grouped = subprocess.Popen(sleep)\n"
        "daemon = subprocess.Popen(sleep, start_new_session=True)\n"
        "open('children', 'w').write(f'{grouped.pid} {daemon.pid}')\n"
        "print('loss=0.5')\n"
        "os._exit(0)\n"
    )
    experiment = _script_experiment("leave.py")
    run = _run(experiment, tmp_path)
    assert run.succeeded
    children = [int(pid) for pid in (tmp_path / "children").read_text().split()]
    wait_for(
        lambda: not any(process_alive(pid) for pid in children), seconds=5, what="the trial's children to end"
    )


def test_a_flood_of_output_is_capped_keeping_the_metrics_and_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 31: 300 MB of output a trial filled the run folder and every reader's memory.
    Past the cap the log keeps the lines naming a metric, in order, and the output's end."""
    from hpo_kfp.runners import _output

    monkeypatch.setattr(_output, "MAX_LOG_BYTES", 2**20)
    monkeypatch.setattr(_output, "TAIL_BYTES", 2**14)
    script = tmp_path / "flood.py"
    script.write_text(
        "import sys\n"
        "junk = 'x' * 99 + '\\n'\n"
        "for step in range(8):\n"
        "    sys.stdout.write(junk * 5000)\n"  # 500 KB between metric lines: 4 MB in all
        "    print(f'step={step} loss={1 - step / 10}', flush=True)\n"
        "print('RuntimeError: the end is kept')\n"
    )
    experiment = _script_experiment("flood.py")
    run = _run(experiment, tmp_path)
    log = (tmp_path / "log.txt").read_text()
    assert run.succeeded
    assert len(log) < 2**20 + 2**14 + 4096, len(log)
    assert [line for line in log.splitlines() if "loss=" in line] == [
        f"step={step} loss={1 - step / 10}" for step in range(8)
    ]
    assert log.splitlines()[-1] == "RuntimeError: the end is kept"
    assert "[hpo-kfp: output past 1 MiB is left out but for the lines naming a metric" in log
    record = collect_trial(experiment, _TRIAL, run, log)
    assert record.values == (1 - 7 / 10,)


def test_a_line_without_end_is_capped_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hpo_kfp.runners import _output

    monkeypatch.setattr(_output, "MAX_LOG_BYTES", 2**20)
    monkeypatch.setattr(_output, "TAIL_BYTES", 2**14)
    (tmp_path / "line.py").write_text("import sys\nsys.stdout.write('y' * 4_000_000)\nprint('\\nloss=0.5')\n")
    experiment = _script_experiment("line.py")
    run = _run(experiment, tmp_path)
    log = (tmp_path / "log.txt").read_text()
    assert len(log) < 2 * 2**20 + 2**14 + 4096, len(log)
    assert "loss=0.5" in log.splitlines()  # the metric line stays whole; the end of the rest follows it
    assert log.rstrip("\n").endswith("y" * 1000)
    assert collect_trial(experiment, _TRIAL, run, log).values == (0.5,)


def test_file_collector_path_is_mapped_to_a_per_trial_file(tmp_path: Path) -> None:
    experiment = _experiment(
        [
            "python3",
            "-c",
            "import sys; open(sys.argv[1], 'w').write('loss=0.3\\nloss=0.2\\n')",
            "/var/log/katib/metrics.log",
            "${trialParameters.learningRate}",
            "${trialParameters.numberLayers}",
            "${trialParameters.optimizer}",
        ],
        **{"spec.metricsCollectorSpec": {"collector": {"kind": "File"}}},
    )
    metrics = tmp_path / "trial-metrics.log"
    run = run_local(
        local_command(experiment, _TRIAL, metrics), name="t", cwd=tmp_path, log_path=tmp_path / "log"
    )
    record = collect_trial(experiment, _TRIAL, run, "", metrics.read_text())
    assert record.values == (0.2,)


def test_push_collector_reads_report_metrics(tmp_path: Path) -> None:
    experiment = _experiment(
        [
            "python3",
            "-c",
            "from hpo_kfp.collectors.push import report_metrics\n"
            "for v in (0.4, 0.3): report_metrics(loss=v, accuracy=1 - v)",
            "${trialParameters.learningRate}",
            "${trialParameters.numberLayers}",
            "${trialParameters.optimizer}",
        ],
        **{"spec.metricsCollectorSpec": {"collector": {"kind": "Push"}}},
    )
    metrics = tmp_path / "pushed.jsonl"
    run = run_local(
        local_command(experiment, _TRIAL, metrics), name="t", cwd=tmp_path, log_path=tmp_path / "log"
    )
    assert run.succeeded, (tmp_path / "log").read_text()
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [line["loss"] for line in lines] == [0.4, 0.3]
    record = collect_trial(experiment, _TRIAL, run, "", metrics.read_text())
    # Katib reduces additional metrics by the objective type too: min for minimize.
    assert record.values == (0.3,) and record.metrics["accuracy"] == 0.6


def test_container_without_command_or_with_value_from_cannot_run_locally(tmp_path: Path) -> None:
    no_command = _experiment(_PRINTER)
    spec = no_command.trial_template.trial_spec
    assert spec is not None
    spec["spec"]["template"]["spec"]["containers"][0].pop("command")
    spec["spec"]["template"]["spec"]["containers"][0]["args"] = ["${trialParameters.learningRate}"]
    with pytest.raises(RunnerError, match=r"has no command: a local run needs one"):
        local_command(no_command, _TRIAL, tmp_path / "m")
    secret = _experiment(
        _PRINTER,
        **{
            "spec.trialTemplate.trialSpec.spec.template.spec.containers.0.env": [
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
            ]
        },
    )
    with pytest.raises(RunnerError, match=r"env 'TOKEN' of the primary container uses valueFrom"):
        local_command(secret, _TRIAL, tmp_path / "m")


def test_primary_container_of_replicated_and_argo_kinds() -> None:
    tfjob = {
        "spec": {
            "tfReplicaSpecs": {
                "Worker": {
                    "template": {"spec": {"containers": [{"name": "tensorflow", "command": ["worker"]}]}}
                },
                "Chief": {
                    "template": {"spec": {"containers": [{"name": "tensorflow", "command": ["chief"]}]}}
                },
            }
        }
    }
    assert primary_container(tfjob, "tensorflow")["command"] == ["chief"]
    workflow = {"spec": {"templates": [{"name": "train", "container": {"image": "x", "command": ["go"]}}]}}
    assert primary_container(workflow, "main")["command"] == ["go"]
    with pytest.raises(RunnerError, match=r"no container named 'trainer'"):
        primary_container(workflow, "trainer")


def test_kubernetes_variable_expansion() -> None:
    env = {"EPOCHS": "3"}
    assert (
        expand_variables("--epochs=$(EPOCHS) $(MISSING) $$(EPOCHS)", env) == "--epochs=3 $(MISSING) $(EPOCHS)"
    )


def test_a_value_too_large_for_a_float_is_left_out_and_the_record_stays_json(tmp_path: Path) -> None:
    huge = "9" * 400  # parses to inf
    for code in (0, 3):
        experiment = _experiment(
            [
                "python3",
                "-c",
                f"print('loss={huge}'); raise SystemExit({code})",
                "${trialParameters.learningRate}",
                "${trialParameters.numberLayers}",
                "${trialParameters.optimizer}",
            ]
        )
        run = _run(experiment, tmp_path)
        record = collect_trial(experiment, _TRIAL, run, (tmp_path / "log.txt").read_text())
        assert record.status == ("MetricsUnavailable" if code == 0 else "Failed")
        assert record.series == {}
        History(experiment="demo", trials=(record,)).to_json()  # no ValueError for inf


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("env", "OPT=adam", r"^env of the primary container must be a list, but got 'OPT=adam'$"),
        ("env", ["OPT=adam"], r"^env of the primary container must list \{name: \.\.\., value: \.\.\.\}"),
        ("command", "python3 train.py", r"^command of the primary container must be a list"),
    ],
)
def test_a_container_of_the_wrong_shape_is_a_clear_error(
    tmp_path: Path, field: str, value: Any, message: str
) -> None:
    experiment = _experiment(_PRINTER)
    container = experiment.template.trial_spec["spec"]["template"]["spec"]["containers"][0]
    container[field] = value
    with pytest.raises(RunnerError, match=message):
        local_command(experiment, _TRIAL, tmp_path / "m")


def test_a_deadline_that_is_not_a_positive_number_is_a_clear_error(tmp_path: Path) -> None:
    # The spec reader refuses this already (with the field's path); the runner still guards
    # against a template changed after it was read.
    experiment = _experiment(_PRINTER)
    assert experiment.trial_template is not None and experiment.trial_template.trial_spec is not None
    experiment.trial_template.trial_spec["spec"]["activeDeadlineSeconds"] = "abc"
    with pytest.raises(
        RunnerError, match=r"activeDeadlineSeconds of the trial must be a positive number, but got 'abc'"
    ):
        local_command(experiment, _TRIAL, tmp_path / "m")
