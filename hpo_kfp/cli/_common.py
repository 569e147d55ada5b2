"""Helpers shared by the commands: reading inputs with errors that name the file."""

from __future__ import annotations

import argparse
from pathlib import Path

from hpo_kfp.errors import HistoryError, HpoKfpError
from hpo_kfp.history import History
from hpo_kfp.spec import Experiment, load_experiment

__all__ = ["UsageError", "read_experiment", "read_history"]


class UsageError(HpoKfpError):
    """A command-line mistake; the message is printed as it is."""


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
    try:
        return History.from_json(text)
    except HistoryError as error:
        raise UsageError(f"{path}: {error}") from None
