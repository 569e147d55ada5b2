"""What ``run --local`` refuses, ``validate`` refuses first, with the same one line (issue 19)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hpo_kfp.cli import main
from tests.conftest import base_spec, with_field

_TRIAL = "spec.trialTemplate.trialSpec"


@pytest.mark.parametrize(
    ("field", "value", "line"),
    [
        ("spec.maxTrialCount", "1e9", "spec.maxTrialCount: must be an integer, but got '1e9'"),
        (
            f"{_TRIAL}.spec.activeDeadlineSeconds",
            "ten",
            f"{_TRIAL}.spec.activeDeadlineSeconds: must be a positive integer, but got 'ten'",
        ),
        (
            "spec.trialTemplate.primaryContainerName",
            "trainer",
            "spec.trialTemplate.primaryContainerName: must name a container of the trialSpec",
        ),
        (
            "spec.algorithm",
            {
                "algorithmName": "bayesianoptimization",
                "algorithmSettings": [{"name": "acq_func", "value": "EIps"}],
            },
            "spec.algorithm.algorithmSettings[0].value: acq_func must be one of gp_hedge, EI, PI, LCB",
        ),
    ],
    ids=["1e9", "deadline", "container", "acq-func"],
)
def test_validate_refuses_what_run_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, value: Any, line: str
) -> None:
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(with_field(base_spec(), field, value)))
    assert main(["validate", str(path)]) == 2
    refused = capsys.readouterr().err
    assert refused.startswith(f"{path}: {line}")
    assert refused.count("\n") == 1
    assert main(["run", str(path), "--local", "--workdir", str(tmp_path / "runs")]) == 2
    assert capsys.readouterr().err == refused


def test_runner_checks_are_asked_for_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = base_spec()
    container = f"{_TRIAL}.spec.template.spec.containers.0"
    with_field(
        document,
        f"{container}.args",
        [
            "--lr=${trialParameters.learningRate}",
            "--n=${trialParameters.numberLayers}",
            "--o=${trialParameters.optimizer}",
        ],
    )
    with_field(document, f"{container}.command", ...)
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(document))
    assert main(["validate", str(path)]) == 0  # an image's entrypoint is fine on a cluster
    capsys.readouterr()
    assert main(["validate", str(path), "--runner", "local"]) == 2
    assert "has no command: a local run needs one" in capsys.readouterr().err
    with_field(document, "spec.earlyStopping", {"algorithmName": "medianstop"})
    with_field(document, "spec.metricsCollectorSpec", {"collector": {"kind": "Push"}})
    path.write_text(yaml.safe_dump(document))
    assert main(["validate", str(path), "--runner", "kubernetes"]) == 2
    assert capsys.readouterr().err.startswith(f"{path}: spec.earlyStopping: on a cluster median stopping")
