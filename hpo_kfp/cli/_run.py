"""``run`` (a local tuning run) and ``compile`` (the pipeline YAML for a cluster)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from hpo_kfp.cli._common import (
    UsageError,
    add_store_options,
    add_type_prefix_option,
    read_experiment,
    store_url,
    type_prefix,
)
from hpo_kfp.cli._progress import Progress
from hpo_kfp.decide import Decision
from hpo_kfp.history import History
from hpo_kfp.pipeline.launch import outcome, prepare_local_run, run_prepared
from hpo_kfp.report import best_text, counts_text, pareto_text, report_document, trial_logs, trials_table
from hpo_kfp.report_pages import html_page
from hpo_kfp.runtime import RUNTIME_IMAGE
from hpo_kfp.spec import Experiment
from hpo_kfp.steps.settings import StepSettings
from hpo_kfp.store import CLUSTER_STORE, STORE_ENV

__all__ = ["register"]


def register(commands: Any) -> None:
    run = commands.add_parser("run", help="run an experiment's tuning pipeline (--local: on this machine)")
    run.add_argument("file", help="Katib Experiment YAML")
    run.add_argument("--local", action="store_true", help="run with kfp.local, trials as local processes")
    run.add_argument("--workdir", default="hpo-kfp-runs", help="folder for runs (default: ./hpo-kfp-runs)")
    run.add_argument(
        "--store",
        help=f"the experiment store (default: ${STORE_ENV}, else sqlite:///WORKDIR/hpo-kfp.sqlite); "
        "see `hpo-kfp report --help` for the forms",
    )
    run.add_argument("--restart", action="store_true", help="delete what the store holds of it, start over")
    run.add_argument(
        "--allow-space-change",
        action="store_true",
        help="go on although the search space changed (old trials stay, outside the new space)",
    )
    add_type_prefix_option(run)
    run.add_argument("--json", action="store_true", help="end with one JSON line describing the result")
    run.set_defaults(handler=_run)

    build = commands.add_parser(
        "compile", help="write the experiment's pipeline YAML (for a cluster by default)"
    )
    build.add_argument("file", help="Katib Experiment YAML")
    build.add_argument("-o", "--output", required=True, help="pipeline YAML to write")
    build.add_argument(
        "--runner",
        choices=("kubernetes", "local"),
        default="kubernetes",
        help="how trials run: as Kubernetes objects (default) or as local processes",
    )
    build.add_argument(
        "--image", default=RUNTIME_IMAGE, help=f"image of every step (default: {RUNTIME_IMAGE})"
    )
    build.add_argument("--namespace", default="", help="namespace of trial objects (default: the step's own)")
    add_store_options(build, CLUSTER_STORE, namespace=False)
    build.add_argument("--no-store", action="store_true", help="keep no store (the history lives in the run)")
    build.add_argument("--rounds", type=int, help="rounds to unroll (default: enough for maxTrialCount)")
    build.set_defaults(handler=_compile)


def _run(args: argparse.Namespace) -> int:
    if not args.local:
        raise UsageError("run: --local is required (to run on a cluster, compile the pipeline and upload it)")
    experiment = read_experiment(args)
    workdir = Path(args.workdir)
    args.default_store = f"sqlite:///{workdir / 'hpo-kfp.sqlite'}"
    store = store_url(args)
    prepared = prepare_local_run(
        experiment,
        Path(args.file),
        workdir=workdir,
        store=store,
        type_prefix=type_prefix(args),
        restart=args.restart,
        allow_space_change=args.allow_space_change,
    )
    out = sys.stdout
    if prepared.prior.trials:
        again = (
            f", {len(prepared.released)} left unfinished by a run that ended run again"
            if prepared.released
            else ""
        )
        out.write(
            f"{experiment.name}: continuing with {len(prepared.prior.trials)} trials from {store}{again}\n"
        )
    out.write(
        f"{experiment.name}: {prepared.rounds} rounds of up to {experiment.parallel_trial_count} trials; "
        f"run folder {prepared.directory}\n"
    )
    out.flush()
    started = time.monotonic()
    with Progress(prepared, out):
        run_prepared(prepared)
    history, decision = outcome(prepared)
    logs = trial_logs(prepared.directory / "artifacts")
    _summary(out, experiment, history, decision, logs, time.monotonic() - started)
    if any(prepared.directory.glob("artifacts/**/report/page")):
        # The report step's page has no .html suffix (a browser shows it as text) and knows
        # nothing of the logs: the page beside them links each trial's log.
        page = prepared.directory / "report.html"
        page.write_text(
            html_page(experiment, history, decision, logs=logs, folder=page.parent), encoding="utf-8"
        )
        out.write(f"report: {page}\n")
    if args.json:
        out.write(json.dumps(report_document(experiment, history, decision, logs)) + "\n")
    return 0 if decision.status == "Succeeded" else 1


def _compile(args: argparse.Namespace) -> int:
    from hpo_kfp.pipeline.compact import compact_file
    from hpo_kfp.pipeline.loop import build_pipeline, compile_pipeline, round_count

    experiment = read_experiment(args)
    output = Path(args.output)
    if output.suffix not in (".yaml", ".yml", ".json"):
        raise UsageError(f"-o: the pipeline file must end with .yaml, .yml or .json, but got {args.output}")
    if args.rounds is not None and args.rounds < 1:
        raise UsageError(f"--rounds: must be at least 1, but got {args.rounds}")
    settings = StepSettings(
        runner=args.runner,
        store="" if args.no_store else store_url(args),
        type_prefix=type_prefix(args),
        namespace=args.namespace,
    )
    rounds = args.rounds or round_count(experiment)
    compile_pipeline(
        build_pipeline(experiment, settings=settings, rounds=rounds, base_image=args.image), output
    )
    size = compact_file(output)
    print(
        f"{output}: {rounds} rounds of up to {experiment.parallel_trial_count} trials, runner {args.runner}, "
        f"image {args.image}, {size / 1024:.0f} KiB"
    )
    return 0


def _summary(
    out: Any,
    experiment: Experiment,
    history: History,
    decision: Decision,
    logs: dict[str, Path],
    elapsed: float,
) -> None:
    reason = f" ({decision.reason})" if decision.reason else ""
    out.write(
        f"{experiment.name}: {decision.status}{reason} with {counts_text(decision.counts)}; {elapsed:.1f} s\n"
    )
    out.write(best_text(experiment, decision) + "\n")
    front = pareto_text(experiment, decision)
    if front:
        out.write(front + "\n")
    out.write(trials_table(experiment, history, logs) + "\n")
