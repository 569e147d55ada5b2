"""Helpers shared by the commands: reading inputs with errors that name the file."""

from __future__ import annotations

import argparse
from pathlib import Path

from hpo_kfp.errors import HistoryError, InputError, TrackingError
from hpo_kfp.history import History
from hpo_kfp.spec import Experiment, load_experiment
from hpo_kfp.tracking import resolve_type_prefix
from hpo_kfp.tracking.base import PREFIX_ENV

__all__ = ["UsageError", "add_type_prefix_option", "read_experiment", "read_history", "type_prefix"]


class UsageError(InputError):
    """A command-line mistake; the message is printed as it is."""


def add_type_prefix_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mlmd-type-prefix",
        help=f"prefix of the ML Metadata type names (default: ${PREFIX_ENV}, else odh.)",
    )


def type_prefix(args: argparse.Namespace) -> str:
    """The ``--mlmd-type-prefix`` in effect (the flag, the environment, or ``odh.``)."""
    try:
        return resolve_type_prefix(args.mlmd_type_prefix)
    except TrackingError as error:
        raise UsageError(f"--mlmd-type-prefix: {error}") from None


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
