"""The Argo Workflow each compiled shape becomes on a KFP 2.17 cluster, per trial and per run.

Estimated with the project's own estimator (``hpo_kfp/pipeline/argo_size.py``, ±40 % against
a real cluster; the mechanisms were read in KFP's argocompiler and driver and Argo's
controller), with KFP's default retry wrappers, for the sklearn example's Experiment (a
1.4 KB spec) and the same padded to 4.4 KB (a PyTorchJob-sized spec):

* ``lanes``: ``hpo-kfp compile`` (asynchronous lanes) at maxTrialCount 1000, 4 at a time: the
  share of trials one run holds, KiB per trial, the Workflow at the end of a run, the depth;
* ``rounds``: ``hpo-kfp compile --sync`` (synchronous rounds) with 12, 24 and 48 trials;
* ``generic``: the committed uploadable pipeline at its capacity (5 full lanes of 10).

Argo refuses a Workflow over 1 MiB (after gzipping its node status) and templates nested 100
deep; the project's budget is 700 KiB at the end of a run and depth under 60.
"""

from __future__ import annotations

import copy
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C

from hpo_kfp.errors import PipelineTooLarge
from hpo_kfp.pipeline.argo_size import (
    BUDGET_END_BYTES,
    LARGE_SPEC_BYTES,
    Values,
    default_values,
    estimate_run,
    load_ir,
    loop_names,
)
from hpo_kfp.pipeline.run_size import compile_run
from hpo_kfp.spec import parse_experiment
from hpo_kfp.steps.settings import StepSettings

SETTINGS = StepSettings(runner="kubernetes", store="grpc://metadata-grpc-service.kubeflow:8080")


def example(trials: int, parallel: int, padded: bool) -> Any:
    document = yaml.safe_load((C.ROOT / "examples" / "sklearn-digits" / "experiment.yaml").read_text())
    document = copy.deepcopy(document)
    document["spec"]["maxTrialCount"] = trials
    document["spec"]["parallelTrialCount"] = parallel
    if padded:
        container = document["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][
            0
        ]
        container["env"] = [{"name": f"PAD_{i}", "value": "x" * 90} for i in range(30)]
    return parse_experiment(document)


def main() -> None:
    args = C.parser(__doc__ or "").parse_args()
    info = C.machine()
    begun = time.perf_counter()
    rows: list[list[Any]] = []
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hpo-argo-size-") as name:
        folder = Path(name)
        for padded in (False, True):
            spec_kb = len(json.dumps(example(1000, 4, padded).source, separators=(",", ":"))) / 1000
            label = f"{spec_kb:.1f} KB spec"
            experiment = example(1000, 4, padded)
            plan = compile_run(experiment, SETTINGS, folder / "lanes.yaml")
            ir = load_ir(plan.path)
            [loop] = loop_names(ir)
            values = Values.for_experiment(experiment, settings=SETTINGS)
            lanes = -(-plan.share // plan.slots)
            check = estimate_run(ir, values, {loop: lanes})
            per_trial = (
                estimate_run(ir, values, {loop: 2}).compressed_bytes
                - estimate_run(ir, values, {loop: 1}).compressed_bytes
            ) / plan.slots
            rows.append(
                [
                    label,
                    "lanes, 1000 trials, 4 at a time",
                    plan.share,
                    f"{per_trial / 1024:.1f}",
                    f"{plan.end_bytes / 1024:.0f} (check: {check.end_bytes / 1024:.0f})",
                    plan.depth,
                    f"{plan.size_bytes / 1024:.0f}",
                ]
            )
            results.append(
                {
                    "spec": label,
                    "shape": "lanes",
                    "share": plan.share,
                    "per_trial_kib": per_trial / 1024,
                    "end_kib": plan.end_bytes / 1024,
                    "check_kib": check.end_bytes / 1024,
                    "depth": plan.depth,
                }
            )
            for trials in (12, 24, 48):
                try:
                    rounds = compile_run(
                        example(trials, 4, padded), SETTINGS, folder / "rounds.yaml", synchronous=True
                    )
                    rows.append(
                        [
                            label,
                            f"rounds, {trials} trials, 4 at a time",
                            trials,
                            "",
                            f"{rounds.end_bytes / 1024:.0f}",
                            rounds.depth,
                            f"{rounds.size_bytes / 1024:.0f}",
                        ]
                    )
                    results.append(
                        {
                            "spec": label,
                            "shape": "rounds",
                            "trials": trials,
                            "end_kib": rounds.end_bytes / 1024,
                            "depth": rounds.depth,
                        }
                    )
                except PipelineTooLarge as error:
                    rows.append(
                        [
                            label,
                            f"rounds, {trials} trials, 4 at a time",
                            "refused",
                            "",
                            str(error).split(": ", 1)[1][:70],
                            "",
                            "",
                        ]
                    )
                    results.append(
                        {"spec": label, "shape": "rounds", "trials": trials, "refused": str(error)}
                    )
            generic = load_ir(C.ROOT / "pipelines" / "hpo_experiment.yaml")
            [gloop] = loop_names(generic)
            estimate = estimate_run(generic, default_values(LARGE_SPEC_BYTES if padded else None), {gloop: 5})
            rows.append(
                [
                    label,
                    "generic pipeline, 50 trials (5 lanes of 10)",
                    50,
                    "",
                    f"{estimate.end_bytes / 1024:.0f}",
                    estimate.depth,
                    "",
                ]
            )
            results.append(
                {
                    "spec": label,
                    "shape": "generic",
                    "end_kib": estimate.end_bytes / 1024,
                    "depth": estimate.depth,
                }
            )
    text = C.table(
        [
            "spec",
            "shape",
            "trials per run",
            "KiB per trial",
            "KiB at the end of a run",
            "depth",
            "pipeline KiB",
        ],
        rows,
    )
    text += (
        f"\n\nBudget: {BUDGET_END_BYTES // 1024} KiB at the end of a run, depth < 60 (Argo: 1024 KiB, 100)."
    )
    elapsed = time.perf_counter() - begun
    C.publish(args, "argo_size", info, elapsed, text, results=results)
    if args.write:
        C.write_section(
            "argo_size",
            "Argo Workflow size per shape",
            f"`{C.command_line()}`\n\n{C.machine_text(info, elapsed)}\n\n{text}",
        )


if __name__ == "__main__":
    main()
