"""``report``, ``experiments`` and ``import``: what the metadata store holds."""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path
from typing import Any

from hpo_kfp.cli._common import UsageError, add_type_prefix_option, type_prefix
from hpo_kfp.decide import decide
from hpo_kfp.prior import read_prior_trials
from hpo_kfp.report import result_document, trials_table
from hpo_kfp.report_pages import html_page, markdown_summary
from hpo_kfp.spec import Experiment, load_experiment
from hpo_kfp.study_view import to_study
from hpo_kfp.tracking import Tracker, check_store_file, open_tracker, resolve_target

__all__ = ["register"]

_DEFAULT_STORE = "hpo-kfp-runs/mlmd.sqlite"


def _store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mlmd", help=f"metadata store file (default: {_DEFAULT_STORE})")
    parser.add_argument("--mlmd-host", help="ML Metadata gRPC service host (instead of a file)")
    parser.add_argument("--mlmd-port", type=int, help="its port (default 8080)")
    add_type_prefix_option(parser)


def register(commands: Any) -> None:
    report = commands.add_parser("report", help="a table of an experiment's trials, best first")
    report.add_argument("experiment", help="experiment name")
    _store_options(report)
    report.add_argument("--json", action="store_true", help="end with one JSON line describing the result")
    report.add_argument("--html", help="also write the HTML report (with plots) to this file")
    report.add_argument("--markdown", help="also write the Markdown summary to this file")
    report.set_defaults(handler=_report)

    listing = commands.add_parser("experiments", help="list the experiments in the store")
    _store_options(listing)
    listing.set_defaults(handler=_experiments)

    export = commands.add_parser("export", help="write an experiment's trials into an Optuna storage")
    export.add_argument("experiment", help="experiment name")
    export.add_argument("--optuna-storage", required=True, help="Optuna RDB URL, e.g. sqlite:///study.db")
    export.add_argument("--study-name", help="the study's name (default: the experiment's)")
    export.add_argument("--replace", action="store_true", help="replace a study of that name in the storage")
    _store_options(export)
    export.set_defaults(handler=_export)

    prior = commands.add_parser("import", help="add trials run elsewhere as prior data (JSON or CSV)")
    prior.add_argument(
        "experiment", help="an Experiment YAML file, or the name of an experiment in the store"
    )
    prior.add_argument("trials", help="trials.json or trials.csv")
    _store_options(prior)
    prior.set_defaults(handler=_import)


def _tracker(args: argparse.Namespace, *, create: bool = False) -> Tracker:
    if args.mlmd_host:
        return open_tracker(
            resolve_target(host=args.mlmd_host, port=args.mlmd_port), prefix=type_prefix(args)
        )
    path = Path(args.mlmd or _DEFAULT_STORE)
    if not create and (not path.is_file() or path.stat().st_size == 0):
        raise UsageError(
            f"--mlmd: the metadata store must exist, but {path} does not (run an experiment first)"
        )
    check_store_file(path)
    return open_tracker(resolve_target(str(path)), prefix=type_prefix(args))


def _experiment_named(tracker: Tracker, name: str) -> Experiment:
    experiment = tracker.load_experiment(name)
    if experiment is None:
        known = ", ".join(s.name for s in tracker.experiments()) or "none"
        raise UsageError(f"{name}: the store must hold this experiment, but it holds: {known}")
    return experiment


def _report(args: argparse.Namespace) -> int:
    tracker = _tracker(args)
    experiment = _experiment_named(tracker, args.experiment)
    history = tracker.load_history(experiment.name)
    decision = decide(experiment, history)
    counts = decision.counts
    print(trials_table(experiment.objective, history))
    print(
        f"{experiment.name}: {decision.status}{f' ({decision.reason})' if decision.reason else ''}; "
        f"{counts['succeeded']} succeeded, {counts['failed']} failed, {counts['metricsUnavailable']} without "
        f"metrics, {counts['imported']} imported; best: {decision.best.name if decision.best else 'none'}"
    )
    if args.html:
        Path(args.html).write_text(html_page(experiment, history, decision), encoding="utf-8")
        print(f"HTML report: {args.html}")
    if args.markdown:
        Path(args.markdown).write_text(markdown_summary(experiment, history, decision), encoding="utf-8")
        print(f"Markdown summary: {args.markdown}")
    if args.json:
        print(json.dumps(result_document(experiment.name, decision)))
    return 0


def _experiments(args: argparse.Namespace) -> int:
    summaries = _tracker(args).experiments()
    if not summaries:
        print("no experiments")
    for s in summaries:
        best = (
            f"best {s.best_trial} = {s.best_objective:.6g}" if s.best_objective is not None else "no result"
        )
        status = f"{s.status} ({s.reason})" if s.reason else s.status
        print(f"{s.name}  {status}  {s.trials} trials  {best}  {s.updated}")
    return 0


def _export(args: argparse.Namespace) -> int:
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    tracker = _tracker(args)
    experiment = _experiment_named(tracker, args.experiment)
    history = tracker.load_history(experiment.name)
    name = args.study_name or experiment.name
    args.error_source = args.optuna_storage
    try:
        if args.replace:
            with contextlib.suppress(KeyError):
                optuna.delete_study(study_name=name, storage=args.optuna_storage)
        study = to_study(experiment, history, storage=args.optuna_storage, study_name=name)
    except optuna.exceptions.DuplicatedStudyError:
        raise UsageError(
            f"--study-name: the storage already has a study {name!r}; choose another name or pass --replace"
        ) from None
    except (ValueError, ImportError, SQLAlchemyError) as error:  # a malformed URL, a database it cannot open
        raise UsageError(
            f"--optuna-storage: must be an Optuna RDB URL, but got {args.optuna_storage!r} "
            f"({str(error).splitlines()[0]})"
        ) from None
    print(
        f"{experiment.name}: {len(study.trials)} trials written to study {name!r} in {args.optuna_storage}; "
        f"open it with: optuna-dashboard {args.optuna_storage}"
    )
    return 0


def _import(args: argparse.Namespace) -> int:
    tracker = _tracker(args, create=True)
    if Path(args.experiment).is_file():
        args.error_source = args.experiment
        experiment = load_experiment(args.experiment)
    else:
        experiment = _experiment_named(tracker, args.experiment)
    history = tracker.load_history(experiment.name)
    args.error_source = args.trials
    records = read_prior_trials(args.trials, experiment, history)
    for record in records:
        tracker.save_trial(experiment, record)
    history = history.upsert(records)
    tracker.save_experiment(experiment, history, decide(experiment, history))
    print(
        f"{experiment.name}: imported {len(records)} trials from {args.trials}; "
        f"the store now holds {len(history.trials)}"
    )
    return 0
