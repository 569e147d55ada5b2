"""``report``, ``experiments``, ``export``, ``import``, ``delete`` and ``migrate``: what the
experiment store holds."""

from __future__ import annotations

import argparse
import contextlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from hpo_kfp.cli._common import add_store_options, store_url, type_prefix
from hpo_kfp.decide import decide
from hpo_kfp.errors import UsageError
from hpo_kfp.history import History
from hpo_kfp.prior import export_trials, read_optuna_study, read_prior_trials
from hpo_kfp.reports.pages import html_page, markdown_summary
from hpo_kfp.reports.summary import best_text, counts_text, pareto_text, report_document, trials_table
from hpo_kfp.spec import Experiment, load_experiment
from hpo_kfp.store import LOCAL_STORE, ExperimentKey, Store, open_store
from hpo_kfp.study_view import to_study

__all__ = ["register"]


def register(commands: Any) -> None:
    report = commands.add_parser("report", help="a table of an experiment's trials, best first")
    report.add_argument("experiment", help="experiment name")
    add_store_options(report, LOCAL_STORE)
    report.add_argument("--json", action="store_true", help="end with one JSON line describing the result")
    report.add_argument(
        "--all",
        action="store_true",
        help="show every trial and parameter (default: the best 25, 10 parameters)",
    )
    report.add_argument("--html", help="also write the HTML report (with plots) to this file")
    report.add_argument("--markdown", help="also write the Markdown summary to this file")
    report.set_defaults(handler=_report)

    listing = commands.add_parser("experiments", help="list the experiments in the store")
    add_store_options(listing, LOCAL_STORE, namespace=False)
    listing.set_defaults(handler=_experiments)

    export = commands.add_parser(
        "export",
        help="write an experiment's trials into an Optuna storage, or as JSON or CSV that import reads",
    )
    export.add_argument("experiment", help="experiment name")
    target = export.add_mutually_exclusive_group(required=True)
    target.add_argument("--optuna-storage", help="Optuna RDB URL, e.g. sqlite:///study.db")
    target.add_argument(
        "--json", metavar="FILE", help="the finished trials as JSON (hpo-kfp import reads it)"
    )
    target.add_argument("--csv", metavar="FILE", help="the finished trials as CSV (hpo-kfp import reads it)")
    export.add_argument("--study-name", help="the study's name (default: the experiment's)")
    export.add_argument("--replace", action="store_true", help="replace a study of that name in the storage")
    add_store_options(export, LOCAL_STORE)
    export.set_defaults(handler=_export)

    prior = commands.add_parser(
        "import", help="add trials run elsewhere as prior data (JSON, CSV or an Optuna study)"
    )
    prior.add_argument(
        "experiment", help="an Experiment YAML file, or the name of an experiment in the store"
    )
    prior.add_argument("trials", nargs="?", help="trials.json or trials.csv (see the README for the columns)")
    prior.add_argument(
        "--optuna-storage", help="import the finished trials of an Optuna study in this RDB storage instead"
    )
    prior.add_argument("--study-name", help="the Optuna study (default: the storage's only one)")
    add_store_options(prior, LOCAL_STORE)
    prior.set_defaults(handler=_import)

    delete = commands.add_parser("delete", help="remove an experiment and its trials from the store")
    delete.add_argument("experiment", help="experiment name")
    add_store_options(delete, LOCAL_STORE)
    delete.set_defaults(handler=_delete)

    migrate = commands.add_parser(
        "migrate", help="copy every experiment of another store (e.g. an ML Metadata file) into this one"
    )
    migrate.add_argument(
        "source", help="the store to copy from, e.g. mlmd+sqlite:///hpo-kfp-runs/mlmd.sqlite"
    )
    add_store_options(migrate, LOCAL_STORE, namespace=False)
    migrate.set_defaults(handler=_migrate)


def _open(args: argparse.Namespace, *, create: bool = False, read_only: bool = False) -> Store:
    """The store ``--store`` names; a command that does not create refuses a missing SQLite
    file rather than making an empty store, and one that only reads opens it read-only."""
    url = store_url(args)
    path = _store_file(url)
    if path is not None and not create:
        if path.is_dir():
            raise UsageError(f"--store: the store must be a file, but {path} is a folder")
        if not path.is_file() or path.stat().st_size == 0:
            raise UsageError(f"--store: the store must exist, but {path} does not (run an experiment first)")
    return open_store(url, type_prefix=type_prefix(args), read_only=read_only)


def _store_file(url: str) -> Path | None:
    """The SQLite file a store URL names (SQL or ML Metadata); None for a database server."""
    for scheme in ("sqlite:///", "mlmd+sqlite:///"):
        if url.startswith(scheme):
            return Path(url.removeprefix(scheme))
    return None


def _experiment_named(store: Store, args: argparse.Namespace, name: str) -> tuple[Experiment, ExperimentKey]:
    """The experiment ``name`` in ``--namespace``; without one, in whichever namespace holds
    the only experiment of that name."""
    key = _key(store, args, name)
    experiment = store.load_experiment(key)
    if experiment is None:
        known = ", ".join(str(ExperimentKey(s.namespace, s.name)) for s in store.experiments()) or "none"
        raise UsageError(f"{key}: the store must hold this experiment, but it holds: {known}")
    return experiment, key


def _key(store: Store, args: argparse.Namespace, name: str) -> ExperimentKey:
    if args.namespace:
        return ExperimentKey(args.namespace, name)
    namespaces = [s.namespace for s in store.experiments() if s.name == name]
    if len(namespaces) > 1:
        raise UsageError(
            f"--namespace: must say which {name!r} is meant, as namespaces {', '.join(sorted(namespaces))} "
            "each hold one, but got nothing"
        )
    return ExperimentKey(namespaces[0] if namespaces else "", name)


def _report(args: argparse.Namespace) -> int:
    store = _open(args, read_only=True)
    experiment, key = _experiment_named(store, args, args.experiment)
    history = store.history(key)
    decision = decide(experiment, history)
    print(trials_table(experiment, history, every=args.all))
    front = pareto_text(experiment, decision)
    if front:
        print(front)
    stale = next(
        (s.stale for s in store.experiments() if (s.namespace, s.name) == (key.namespace, key.name)), 0
    )
    print(
        f"{experiment.name}: {decision.status}{f' ({decision.reason})' if decision.reason else ''}; "
        + counts_text(decision.counts)
        + (f"; {stale} stale (left by a run that ended; the next run runs them)" if stale else "")
    )
    print(best_text(experiment, decision))
    if args.html:
        Path(args.html).write_text(html_page(experiment, history, decision), encoding="utf-8")
        print(f"HTML report: {args.html}")
    if args.markdown:
        Path(args.markdown).write_text(markdown_summary(experiment, history, decision), encoding="utf-8")
        print(f"Markdown summary: {args.markdown}")
    if args.json:
        print(json.dumps(report_document(experiment, history, decision)))
    return 0


def _experiments(args: argparse.Namespace) -> int:
    summaries = _open(args, read_only=True).experiments()
    if not summaries:
        print("no experiments")
    for s in summaries:
        best = (
            f"best {s.best_trial} = {s.best_objective:.6g}" if s.best_objective is not None else "no result"
        )
        status = f"{s.status} ({s.reason})" if s.reason else s.status
        stale = f" ({s.stale} stale)" if s.stale else ""
        print(
            f"{ExperimentKey(s.namespace, s.name)}  {status}  {s.trials} trials{stale}  {best}  {s.updated}"
        )
    return 0


def _export(args: argparse.Namespace) -> int:
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    store = _open(args, read_only=True)
    experiment, key = _experiment_named(store, args, args.experiment)
    history = store.history(key)
    if args.json or args.csv:
        path, kind = (args.json, "json") if args.json else (args.csv, "csv")
        try:
            written = export_trials(experiment, history.trials, path, kind)
        except OSError as error:
            raise UsageError(f"--{kind}: {path} must be writable, but {error.strerror}") from None
        left = len(history.trials) - written
        print(
            f"{experiment.name}: {written} finished trials written to {path}"
            + (f" ({left} still active left out)" if left else "")
        )
        return 0
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
    store = _open(args, create=True)
    if Path(args.experiment).is_file():
        args.error_source = args.experiment
        experiment = load_experiment(args.experiment)
        key = ExperimentKey.of(experiment, args.namespace)
    else:
        experiment, key = _experiment_named(store, args, args.experiment)
    if (args.trials is None) == (args.optuna_storage is None):
        raise UsageError("import: give either a trials file or --optuna-storage, but got both or neither")
    if args.optuna_storage:
        args.error_source = args.optuna_storage
        source = f"study {args.study_name or '(the only one)'} in {args.optuna_storage}"
        records = read_optuna_study(args.optuna_storage, args.study_name, experiment)
    else:
        args.error_source = source = args.trials
        records = read_prior_trials(args.trials, experiment)
    added = store.import_trials(experiment, key, records)
    if added:
        after = store.history(key)
        _save_best(store, experiment, key, after)
        total = len(after.trials)
    else:
        total = next(
            s.trials for s in store.experiments() if (s.namespace, s.name) == (key.namespace, key.name)
        )
    skipped = f" ({len(records) - added} already there)" if added < len(records) else ""
    print(f"{experiment.name}: imported {added} trials from {source}{skipped}; the store now holds {total}")
    return 0


def _save_best(store: Store, experiment: Experiment, key: ExperimentKey, history: History) -> None:
    """Records what imported trials changed of the decision (a better best, say), so that
    ``experiments`` agrees with ``report``; an experiment they do not end keeps its status."""
    decision = decide(experiment, history)
    if not decision.done:
        stored = next(
            (s for s in store.experiments() if (s.namespace, s.name) == (key.namespace, key.name)), None
        )
        status = stored.status if stored is not None else decision.status
        decision = replace(decision, status=status, reason=None)  # type: ignore[arg-type]
    store.save_decision(key, decision, history.study_attrs)


def _delete(args: argparse.Namespace) -> int:
    store = _open(args)
    key = _key(store, args, args.experiment)
    if not store.delete(key):
        raise UsageError(f"{key}: the store must hold this experiment, but it does not")
    print(f"{key}: deleted with its trials")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from hpo_kfp.migrate import copy_store

    target = _open(args, create=True)
    source = open_store(args.source, type_prefix=type_prefix(args))
    args.error_source = args.source
    for key, added in copy_store(source, target):
        print(f"{key}: {added} trials copied")
    return 0
