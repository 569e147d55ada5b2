"""``hpo-kfp validate`` and ``hpo-kfp suggest``: one line and exit 2 for every user mistake."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpo_kfp.cli import main
from hpo_kfp.history import History
from tests.conftest import base_spec, with_field


def _write(tmp_path: Path, document: Any, name: str = "experiment.yaml") -> Path:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return path


def test_validate_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, base_spec())
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert out == (
        f"{path}: ok: experiment demo, algorithm random, 3 parameters, maxTrialCount 8, "
        "parallelTrialCount 2, objective minimize loss, trial kind Job\n"
    )


@pytest.mark.parametrize(
    ("document", "line"),
    [
        (
            with_field(base_spec(), "spec.parameters.1.feasibleSpace", {"min": "5", "max": "2"}),
            "spec.parameters[1].feasibleSpace.min: `min <= max` must hold, but got min=5, max=2",
        ),
        (
            "spec: [",
            "line 1, column 8: the file must be valid YAML, but got a syntax error: expected the node content",
        ),
        (with_field(base_spec(), "kind", "Suggestion"), "kind: must be Experiment, but got 'Suggestion'"),
    ],
    ids=["min-gt-max", "malformed", "wrong-kind"],
)
def test_validate_error_is_one_line_with_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], document: Any, line: str
) -> None:
    path = _write(tmp_path, document)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}: {line}")
    assert err.count("\n") == 1


def test_missing_file_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "the file must be readable, but got No such file or directory" in capsys.readouterr().err


def test_a_real_process_shows_no_traceback(tmp_path: Path) -> None:
    path = _write(tmp_path, with_field(base_spec(), "spec.parallelTrialCount", -3))
    result = subprocess.run(
        [sys.executable, "-m", "hpo_kfp", "validate", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert result.stderr == f"{path}: spec.parallelTrialCount: must be at least 1, but got -3\n"
    assert "Traceback" not in result.stdout + result.stderr


def test_the_program_exits_with_main_s_code_and_leaves_its_objects_to_the_os(tmp_path: Path) -> None:
    path = _write(tmp_path, base_spec())
    probe = (
        "import atexit, gc, runpy, sys\n"
        "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0))\n"
        f"sys.argv = ['hpo-kfp', 'validate', {str(path)!r}]\n"
        "runpy.run_module('hpo_kfp', run_name='__main__')\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("frozen True\n")
    bad = _write(tmp_path, with_field(base_spec(), "spec.parallelTrialCount", -3))
    failed = subprocess.run(
        [sys.executable, "-m", "hpo_kfp", "validate", str(bad)], capture_output=True, check=False
    )
    assert failed.returncode == 2


def test_suggest_prints_assignments_and_continues_a_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, base_spec())
    assert main(["suggest", str(path), "--count", "3"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in first] == ["demo-0000", "demo-0001", "demo-0002"]
    assert set(first[0]["parameters"]) == {"lr", "layers", "optimizer"}
    history = History(experiment="demo").upsert([])
    from hpo_kfp.spec import load_experiment
    from hpo_kfp.suggest import suggest as core_suggest

    _, history = core_suggest(load_experiment(path), history, 3)
    history_path = tmp_path / "history.json"
    history_path.write_text(history.to_json())
    assert main(["suggest", str(path), "--history", str(history_path)]) == 0
    nxt = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in nxt] == ["demo-0003", "demo-0004"]  # parallelTrialCount is 2


@pytest.mark.parametrize(
    ("content", "message"),
    [("{", "must be JSON"), ('{"version": 9, "trials": []}', "reads history version 1, but got 9")],
    ids=["not-json", "newer-version"],
)
def test_suggest_bad_history_names_the_history_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = _write(tmp_path, base_spec())
    history = tmp_path / "h.json"
    history.write_text(content)
    assert main(["suggest", str(path), "--history", str(history)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{history}: ") and message in err


def test_suggest_bad_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, base_spec())
    assert main(["suggest", str(path), "--count", "0"]) == 2
    assert capsys.readouterr().err == "--count: must be between 1 and 10000, but got 0\n"


def test_files_that_are_not_text_or_paths_that_cannot_be_written_are_user_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    assert main(["validate", str(binary)]) == 2
    assert (
        capsys.readouterr().err
        == f"{binary}: (file): the file must be UTF-8 text, but got byte 0xff at offset 0\n"
    )
    spec = _write(tmp_path, base_spec())
    assert main(["suggest", str(spec), "--history", str(binary)]) == 2
    assert "the history file must be UTF-8 text, but got byte 0xff" in capsys.readouterr().err
    missing = tmp_path / "no-such-folder" / "p.yaml"
    assert main(["compile", str(spec), "-o", str(missing)]) == 2
    assert capsys.readouterr().err == f"{missing}: No such file or directory\n"
    assert main(["compile", str(spec), "-o", str(tmp_path / "p.txt")]) == 2
    assert "-o: the pipeline file must end with .yaml, .yml or .json" in capsys.readouterr().err


def test_an_experiment_of_any_length_compiles_to_one_run_of_lanes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Lane tasks hold any number of trials in one run, asynchronous or in synchronous
    rounds (issue 26; unrolled rounds stopped at 1000, issue 15)."""
    document = with_field(base_spec(), "spec.maxTrialCount", 2**31 - 1)  # the most Katib takes (int32)
    with_field(document, "spec.parallelTrialCount", 1)
    spec = _write(tmp_path, document)
    assert main(["validate", str(spec)]) == 0
    capsys.readouterr()
    assert main(["compile", str(spec), "-o", str(tmp_path / "p.yaml")]) == 0
    out = capsys.readouterr().out
    assert "asynchronous lanes, every trial in one run" in out and "--trials-per-run" not in out
    assert main(["compile", str(spec), "-o", str(tmp_path / "p.yaml"), "--sync"]) == 0
    assert "lanes in synchronous rounds, every trial in one run" in capsys.readouterr().out
    for gone in ("--rounds=5", "--no-store"):
        with pytest.raises(SystemExit) as stopped:
            main(["compile", str(spec), "-o", str(tmp_path / "p.yaml"), gone])
        assert stopped.value.code == 2


def test_a_history_that_does_not_fit_the_experiment_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _write(tmp_path, base_spec())
    history = tmp_path / "h.json"
    trial = {"name": "demo-0000", "number": 0, "status": "Succeeded", "values": [0.1, 0.2]}
    trial["parameters"] = {"lr": 0.02, "layers": 3, "optimizer": "adam"}
    history.write_text(json.dumps({"version": 1, "experiment": "demo", "trials": [trial]}))
    assert main(["suggest", str(spec), "--history", str(history)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{history}: the history's trials cannot inform this experiment's sampler")
    assert err.count("\n") == 1


def test_compile_for_a_cluster_refuses_event_files_it_cannot_reach(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = base_spec()
    document["spec"]["metricsCollectorSpec"] = {
        "collector": {"kind": "TensorFlowEvent"},
        "source": {"fileSystemPath": {"path": "/var/log/tb", "kind": "Directory"}},
    }
    spec = tmp_path / "tb.yaml"
    spec.write_text(yaml.safe_dump(document))
    assert main(["compile", str(spec), "-o", str(tmp_path / "p.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{spec}: spec.metricsCollectorSpec.collector.kind: ") and err.count("\n") == 1
    assert not (tmp_path / "p.yaml").exists()
    assert main(["compile", str(spec), "-o", str(tmp_path / "p.yaml"), "--runner", "local"]) == 0


def test_an_optimization_job_compiles_for_a_cluster_and_keeps_its_own_document(tmp_path: Path) -> None:
    """The compiled steps receive the OptimizationJob as written: each step reads it again."""
    job = Path(__file__).parents[2] / "examples" / "optimization-job" / "job.yaml"
    output = tmp_path / "p.yaml"
    assert main(["compile", str(job), "-o", str(output)]) == 0
    spec_default = yaml.safe_load(output.read_text())["root"]["inputDefinitions"]["parameters"]["spec"]
    document = json.loads(spec_default["defaultValue"])
    assert document["kind"] == "OptimizationJob"
    from hpo_kfp.spec import parse_experiment

    experiment = parse_experiment(document)
    assert experiment.metrics_collector.kind == "TrainJobStatus"
    assert experiment.trial_template is not None and experiment.trial_template.kind == "TrainJob"


@pytest.mark.parametrize("store", ["sqlite:////runs/s.sqlite", "mlmd+sqlite:////runs/m.sqlite"])
def test_a_file_store_is_refused_for_a_cluster_naming_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], store: str
) -> None:
    """Each step of a cluster run is a pod of its own: a file store would be one file per pod."""
    spec = _write(tmp_path, base_spec())
    assert main(["compile", str(spec), "-o", str(tmp_path / "p.yaml"), "--store", store]) == 2
    assert capsys.readouterr().err == (
        "--store: must be a store every step's pod reaches on a cluster (postgresql://, mysql:// or "
        f"grpc://), not a file in one pod (runner kubernetes), but got {store!r}\n"
    )
    assert not (tmp_path / "p.yaml").exists()
    local = ["compile", str(spec), "-o", str(tmp_path / "p.yaml"), "--store", store, "--runner", "local"]
    assert main(local) == 0
