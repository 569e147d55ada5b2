"""``run`` (a local tuning run) and ``compile`` (the pipeline YAML for a cluster)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from hpo_kfp.cli._common import UsageError, read_experiment
from hpo_kfp.cli._progress import Progress, parameters_text
from hpo_kfp.decide import Decision
from hpo_kfp.history import History
from hpo_kfp.launch import outcome, prepare_local_run, run_prepared

__all__ = ["register", "result_document"]


def register(commands: Any) -> None:
    run = commands.add_parser("run", help="run an experiment's tuning pipeline (--local: on this machine)")
    run.add_argument("file", help="Katib Experiment YAML")
    run.add_argument("--local", action="store_true", help="run with kfp.local, trials as local processes")
    run.add_argument("--workdir", default="hpo-kfp-runs", help="folder for runs (default: ./hpo-kfp-runs)")
    run.add_argument("--mlmd", help="metadata store file (default: WORKDIR/mlmd.sqlite)")
    run.add_argument("--json", action="store_true", help="end with one JSON line describing the result")
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    if not args.local:
        raise UsageError("run: --local is required (to run on a cluster, compile the pipeline and upload it)")
    experiment = read_experiment(args)
    workdir = Path(args.workdir)
    store = Path(args.mlmd) if args.mlmd else workdir / "mlmd.sqlite"
    prepared = prepare_local_run(experiment, Path(args.file), workdir=workdir, store=store)
    out = sys.stdout
    if prepared.prior.trials:
        out.write(f"{experiment.name}: continuing with {len(prepared.prior.trials)} trials from {store}\n")
    out.write(
        f"{experiment.name}: {prepared.rounds} rounds of up to {experiment.parallel_trial_count} trials; "
        f"run folder {prepared.directory}\n"
    )
    out.flush()
    started = time.monotonic()
    with Progress(prepared, out):
        run_prepared(prepared)
    history, decision = outcome(prepared)
    _summary(out, experiment.name, history, decision, time.monotonic() - started)
    if args.json:
        out.write(json.dumps(result_document(experiment.name, decision)) + "\n")
    return 0 if decision.status == "Succeeded" else 1


def result_document(name: str, decision: Decision) -> dict[str, Any]:
    """The ``--json`` line: status, reason, trial counts and the best trial."""
    best = decision.best
    counts = decision.counts
    return {
        "experiment": name,
        "status": decision.status,
        "reason": decision.reason,
        "trials": {key: counts[key] for key in ("succeeded", "failed", "metricsUnavailable")},
        "best": None
        if best is None
        else {
            "name": best.name,
            "parameters": best.parameters,
            "objective": best.objective,
            "metrics": best.metrics,
        },
    }


def _summary(out: Any, name: str, history: History, decision: Decision, elapsed: float) -> None:
    counts = decision.counts
    reason = f" ({decision.reason})" if decision.reason else ""
    out.write(
        f"{name}: {decision.status}{reason} with {counts['total']} "
        f"trials: {counts['succeeded']} succeeded, {counts['failed']} failed, "
        f"{counts['metricsUnavailable']} without metrics; {elapsed:.1f} s\n"
    )
    best = decision.best
    if best is not None:
        metrics = " ".join(f"{k}={v:.6g}" for k, v in best.metrics.items())
        out.write(f"best trial {best.name}: {metrics}; {parameters_text(best.parameters)}\n")
