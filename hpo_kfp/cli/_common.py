"""Helpers shared by the commands: reading inputs with errors that name the file."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from hpo_kfp.errors import HistoryError, InputError, SettingsError, SpecError, UsageError
from hpo_kfp.history import History
from hpo_kfp.runners import get_runner
from hpo_kfp.spec import Experiment, load_experiment
from hpo_kfp.spec.experiment import check_namespace
from hpo_kfp.steps.settings import StepSettings
from hpo_kfp.store import PREFIX_ENV, STORE_ENV, resolve_store, resolve_type_prefix

__all__ = [
    "namespace_argument",
    "UsageError",
    "add_store_options",
    "add_type_prefix_option",
    "read_experiment",
    "read_history",
    "store_url",
    "type_prefix",
]


def add_type_prefix_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mlmd-type-prefix",
        help=f"prefix of the ML Metadata type names (default: ${PREFIX_ENV}, else odh.)",
    )


def type_prefix(args: argparse.Namespace) -> str:
    """The ``--mlmd-type-prefix`` in effect (the flag, the environment, or ``odh.``)."""
    try:
        return resolve_type_prefix(args.mlmd_type_prefix)
    except InputError as error:
        raise UsageError(f"--mlmd-type-prefix: {error}") from None


def namespace_argument(flag: str) -> Callable[[str], str]:
    """An argparse ``type`` for a namespace option: "" (none) or a Kubernetes namespace.

    Raises (while the arguments are parsed):
        UsageError: Naming ``flag``, the rule and the value.
    """

    def checked(value: str) -> str:
        if value:
            try:
                check_namespace(flag, value)
            except SpecError as error:
                raise UsageError(str(error)) from None
        return value

    return checked


def add_store_secret_option(parser: argparse.ArgumentParser) -> None:
    """``--store-secret NAME``: the Kubernetes Secret the cluster steps read the store's password from."""

    def checked(value: str) -> str:
        try:
            StepSettings(store_secret=value)
        except SettingsError as error:
            raise UsageError(str(error).replace("settings.store_secret", "--store-secret", 1)) from None
        return value

    parser.add_argument(
        "--store-secret",
        default="",
        metavar="NAME",
        type=checked,
        help="a Secret in the run's namespace whose key `password` is the store's password: every step "
        "that opens the store gets it as HPO_KFP_STORE_PASSWORD (needs the `cluster` extra)",
    )


def add_timing_options(parser: argparse.ArgumentParser) -> None:
    """The Kubernetes runner's timings: ``--trial-deadline``, ``--unschedulable-seconds``,
    ``--start-grace`` (read back by :func:`timing_settings`)."""
    for flag, what in (
        (
            "--trial-deadline",
            "delete a trial still running after SECONDS (default: its own activeDeadlineSeconds "
            "and a minute, else 24 h)",
        ),
        ("--unschedulable-seconds", "fail a trial whose pod stays unschedulable SECONDS (default: 300)"),
        (
            "--start-grace",
            "fail a trial whose container keeps failing to pull its image or to be configured "
            "SECONDS (default: 60)",
        ),
    ):
        parser.add_argument(flag, type=int, default=0, metavar="SECONDS", help=what)


def with_timings(settings: StepSettings, args: argparse.Namespace) -> StepSettings:
    """``settings`` with the runner's timings :func:`add_timing_options` read.

    Raises:
        UsageError: A negative number of seconds.
    """
    chosen = {
        "--trial-deadline": args.trial_deadline,
        "--unschedulable-seconds": args.unschedulable_seconds,
        "--start-grace": args.start_grace,
    }
    for flag, value in chosen.items():
        if value < 0:
            raise UsageError(f"{flag}: must be 0 (the default) or more seconds, but got {value}")
    return replace(
        settings,
        trial_deadline_seconds=args.trial_deadline,
        unschedulable_seconds=args.unschedulable_seconds,
        start_grace_seconds=args.start_grace,
    )


def add_store_options(parser: argparse.ArgumentParser, default: str, *, namespace: bool = True) -> None:
    """``--store URL`` (default ``$HPO_KFP_STORE``, else ``default``), ``--mlmd-type-prefix``,
    and ``--namespace`` where an experiment is named."""
    parser.add_argument(
        "--store",
        help=f"the experiment store: sqlite:///PATH, postgresql://USER@HOST/DB, mysql://USER@HOST/DB, "
        f"grpc://HOST:PORT (ML Metadata) or mlmd+sqlite:///PATH (default: ${STORE_ENV}, else {default})",
    )
    parser.set_defaults(default_store=default)
    if namespace:
        parser.add_argument(
            "--namespace",
            default="",
            type=namespace_argument("--namespace"),
            help="the experiment's namespace in the store (default: none)",
        )
    add_type_prefix_option(parser)


def store_url(args: argparse.Namespace, runner: str | None = None) -> str:
    """The ``--store`` in effect (the flag, ``$HPO_KFP_STORE``, or the command's default),
    checked against the steps of a run whose trials ``runner`` runs, when named."""
    try:
        url = resolve_store(args.store, args.default_store)
    except InputError as error:
        raise UsageError(f"--store: {error}") from None
    problem = get_runner(runner).store_problem(url) if runner else None
    if problem is not None:
        raise UsageError(f"--store: {problem} (runner {runner}), but got {url!r}")
    return url


def read_experiment(args: argparse.Namespace) -> Experiment:
    args.error_source = args.file
    return load_experiment(args.file)


def read_history(path: str | None, experiment: Experiment) -> History:
    if path is None:
        return History(experiment=experiment.name)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"{path}: the history file must be readable, but got {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise UsageError(
            f"{path}: the history file must be UTF-8 text, but got byte 0x{error.object[error.start]:02x}"
        ) from None
    try:
        return History.from_json(text)
    except HistoryError as error:
        raise UsageError(f"{path}: {error}") from None
