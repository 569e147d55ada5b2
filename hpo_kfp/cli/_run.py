"""``run`` (a local tuning run) and ``compile`` (the pipeline YAML for a cluster)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hpo_kfp.cli._common import (
    UsageError,
    add_store_options,
    add_store_secret_option,
    add_timing_options,
    add_type_prefix_option,
    namespace_argument,
    read_experiment,
    store_url,
    type_prefix,
    with_timings,
)
from hpo_kfp.cli._progress import Progress
from hpo_kfp.decide import Decision
from hpo_kfp.history import History
from hpo_kfp.pipeline.launch import outcome, prepare_local_run, run_to_end
from hpo_kfp.pipeline.local import start_warm_steps
from hpo_kfp.reports.charts import prepare_charts
from hpo_kfp.reports.pages import html_page
from hpo_kfp.reports.summary import (
    best_text,
    counts_text,
    pareto_text,
    report_document,
    trial_logs,
    trials_table,
)
from hpo_kfp.runners import RUNNERS
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
    run.add_argument(
        "--sync",
        action="store_true",
        help="run trials in synchronous rounds of parallelTrialCount (reproducible; slower when trials "
        "differ in length); hyperband always does",
    )
    run.add_argument(
        "--trials-per-run",
        type=int,
        default=0,
        metavar="N",
        help="new trials one pipeline run may start; runs follow one another until the experiment is done",
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
        choices=sorted(RUNNERS),
        default="kubernetes",
        help="how trials run: as Kubernetes objects (default) or as local processes",
    )
    build.add_argument(
        "--image", default=RUNTIME_IMAGE, help=f"image of every step (default: {RUNTIME_IMAGE})"
    )
    build.add_argument(
        "--namespace",
        default="",
        type=namespace_argument("--namespace"),
        help="namespace of trial objects (default: the step's own)",
    )
    add_timing_options(build)
    add_store_options(build, CLUSTER_STORE, namespace=False)
    add_store_secret_option(build)
    build.add_argument(
        "--sync",
        action="store_true",
        help="lanes in synchronous rounds of parallelTrialCount (reproducible; hyperband always)",
    )
    build.add_argument(
        "--trials-per-run",
        type=int,
        default=0,
        metavar="N",
        help="new trials one run may start (default: every trial the experiment has left)",
    )
    build.set_defaults(handler=_compile)


def _run(args: argparse.Namespace) -> int:
    if not args.local:
        raise UsageError("run: --local is required (to run on a cluster, compile the pipeline and upload it)")
    if args.trials_per_run < 0:
        raise UsageError(f"--trials-per-run: must be 0 (no limit) or more, but got {args.trials_per_run}")
    experiment = read_experiment(args)
    workdir = Path(args.workdir)
    args.default_store = f"sqlite:///{workdir / 'hpo-kfp.sqlite'}"
    store = store_url(args)
    start_warm_steps(store)  # its imports run while the pipeline is compiled
    prepared = prepare_local_run(
        experiment,
        Path(args.file),
        workdir=workdir,
        store=store,
        type_prefix=type_prefix(args),
        restart=args.restart,
        allow_space_change=args.allow_space_change,
        synchronous=args.sync,
        trials_per_run=args.trials_per_run,
    )
    out = sys.stdout
    if prepared.prior.trials:
        again = (
            f"; {len(prepared.released)} trials a stopped run left unfinished run again"
            if prepared.released
            else ""
        )
        out.write(
            f"{experiment.name}: continuing with {len(prepared.prior.trials)} trials from {store}{again}\n"
        )
    if prepared.lanes < experiment.parallel_trial_count:
        out.write(
            f"{experiment.name}: parallelTrialCount {experiment.parallel_trial_count} is more than this "
            f"machine runs at once: {prepared.lanes} lanes (4 per CPU) run the trials\n"
        )
    shape = (
        f"{prepared.lanes} lanes in synchronous rounds"
        if prepared.synchronous
        else f"{prepared.lanes} asynchronous lanes"
    )
    out.write(f"{experiment.name}: {shape}; run folder {prepared.directory}\n")
    out.flush()
    started = time.monotonic()
    # The page at the end: what it needs of Optuna and the charting library, while the trials run.
    threading.Thread(target=prepare_charts, name="hpo-kfp-charts", daemon=True).start()
    interrupted = False
    try:
        with Progress(prepared, out), _terminate_as_interrupt():
            run_to_end(prepared)
    except KeyboardInterrupt:
        interrupted = True  # the summary and the page of what finished, then exit 130
    history, decision = outcome(prepared)
    logs = trial_logs(prepared.directory / "artifacts")
    _summary(out, experiment, history, decision, logs, time.monotonic() - started)
    # The page beside the logs links each trial's log (a report step's page, in the KFP UI,
    # knows nothing of them; the asynchronous lanes have none locally).
    page = prepared.directory / "report.html"
    page.write_text(html_page(experiment, history, decision, logs=logs, folder=page.parent), encoding="utf-8")
    out.write(f"report: {page}\n")
    if args.json:
        out.write(json.dumps(report_document(experiment, history, decision, logs)) + "\n")
    if interrupted:
        raise KeyboardInterrupt
    return 0 if decision.status == "Succeeded" else 1


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a service manager, a CI's timeout, ``kill``) and a SIGINT sent to this process
    alone (``kill -INT``) stop the run as a terminal's Ctrl-C does: the steps get SIGINT,
    which stops their trials' process groups, and what they claimed runs again next time.

    A terminal's Ctrl-C reaches the whole foreground process group, the steps included; a
    ``kill`` reaches only this process, so the interrupt is passed on to every process under
    it -- unless this process leads the terminal's foreground group, where a SIGINT is a
    Ctrl-C the steps got too (a second one could cut their own clean-up short). Without the
    pass-on, kfp.local's pool would wait for every lane to run out of trials."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once is enough
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C, as Python's
        if signum != signal.SIGINT or not _group_interrupted():
            for pid in _descendants(os.getpid()):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGINT)
        raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, interrupt) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _group_interrupted() -> bool:
    """Whether a SIGINT here came from the terminal, to the whole foreground process group:
    this process's group is the foreground group of its terminal."""
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        try:
            if stream is not None and stream.isatty():
                return os.tcgetpgrp(stream.fileno()) == os.getpgrp()
        except (OSError, ValueError):
            continue
    return False


def _descendants(root: int) -> list[int]:
    """Every process under ``root`` (Linux's /proc; elsewhere none are found)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.parent.name))
    found: list[int] = []
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _compile(args: argparse.Namespace) -> int:
    from hpo_kfp.pipeline.run_size import compile_run

    experiment = read_experiment(args)
    output = Path(args.output)
    if output.suffix not in (".yaml", ".yml", ".json"):
        raise UsageError(f"-o: the pipeline file must end with .yaml, .yml or .json, but got {args.output}")
    if args.trials_per_run < 0:
        raise UsageError(f"--trials-per-run: must be 0 (no limit) or more, but got {args.trials_per_run}")
    settings = StepSettings(
        runner=args.runner,
        store=store_url(args, args.runner),
        type_prefix=type_prefix(args),
        namespace=args.namespace,
        store_secret=args.store_secret,
    )
    settings = with_timings(settings, args)
    plan = compile_run(
        experiment,
        settings,
        output,
        image=args.image,
        synchronous=args.sync,
        trials_per_run=args.trials_per_run,
    )
    print(
        f"{output}: {plan.describe()}; up to {experiment.parallel_trial_count} trials at a time, "
        f"runner {args.runner}, image {args.image}, {plan.size_bytes / 1024:.0f} KiB"
    )
    if plan.continues:
        print(
            f"{output}: one run starts {plan.share} of {plan.needed} trials (--trials-per-run); the next "
            "run of the pipeline continues what the store holds"
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
