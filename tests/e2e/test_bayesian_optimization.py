"""Katib's ``bayesianoptimization`` example, as Katib writes it, validates and runs without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hpo_kfp.store import ExperimentKey, open_store

# Katib's examples/v1beta1/hp-tuning/bayesian-optimization.yaml, with its trial swapped for a
# local script and every setting Katib's scikit-optimize service takes spelled out.
_EXPERIMENT = """\
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  namespace: kubeflow
  name: bayesian-optimization
spec:
  objective:
    type: minimize
    goal: 0.001
    objectiveMetricName: loss
  algorithm:
    algorithmName: bayesianoptimization
    algorithmSettings:
      - name: "random_state"
        value: "10"
      - name: "base_estimator"
        value: "GP"
      - name: "n_initial_points"
        value: "6"
      - name: "acq_func"
        value: "gp_hedge"
      - name: "acq_optimizer"
        value: "auto"
  parallelTrialCount: 3
  maxTrialCount: 12
  maxFailedTrialCount: 3
  parameters:
    - name: lr
      parameterType: double
      feasibleSpace:
        min: "0.01"
        max: "0.05"
    - name: momentum
      parameterType: double
      feasibleSpace:
        min: "0.5"
        max: "0.9"
  trialTemplate:
    primaryContainerName: training-container
    trialParameters:
      - name: learningRate
        description: Learning rate for the training model
        reference: lr
      - name: momentum
        description: Momentum for the training model
        reference: momentum
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: training-container
                command:
                  - python3
                  - trial.py
                  - "--lr=${trialParameters.learningRate}"
                  - "--momentum=${trialParameters.momentum}"
            restartPolicy: Never
"""

_TRIAL = """\
import argparse
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float)
parser.add_argument("--momentum", type=float)
args = parser.parse_args()
print(f"loss={(args.lr - 0.02) ** 2 * 1e4 + (args.momentum - 0.6) ** 2}")
"""


def test_katibs_example_validates_and_runs_with_torch_out_of_reach(tmp_path: Path) -> None:
    (tmp_path / "experiment.yaml").write_text(_EXPERIMENT)
    (tmp_path / "trial.py").write_text(_TRIAL)
    hidden = tmp_path / "no-torch" / "torch"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('torch is out of reach in this test')\n")
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(hidden.parent), os.environ.get("PYTHONPATH", "")]),
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hpo_kfp", *args],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    validated = cli("validate", "experiment.yaml")
    assert validated.returncode == 0, validated.stderr
    ran = cli("run", "experiment.yaml", "--local", "--json", "--workdir", "runs")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    outcome = json.loads(ran.stdout.strip().splitlines()[-1])
    assert outcome["trials"]["succeeded"] == outcome["trials"]["total"] == 12

    history = open_store(f"sqlite:///{tmp_path / 'runs' / 'hpo-kfp.sqlite'}").history(
        ExperimentKey("kubeflow", "bayesian-optimization")
    )
    # After 6 random trials the model proposes; gp_hedge keeps its portfolio on those trials.
    hedged = [t.number for t in history.trials if "hpo_kfp:gp_hedge" in t.sampler_attrs]
    assert hedged and min(hedged) >= 6
    assert len({(t.parameters["lr"], t.parameters["momentum"]) for t in history.trials}) == 12
