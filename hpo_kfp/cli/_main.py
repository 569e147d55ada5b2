"""Argument parsing and the one place where errors become one line and an exit code:
2 for the user's input (:class:`~hpo_kfp.errors.InputError`, a path that cannot be used),
1 when the experiment, a step, a trial's launch, the store or the cluster failed."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Sequence

from hpo_kfp.cli import _cluster, _core, _dashboard, _run, _serve, _store
from hpo_kfp.errors import HpoKfpError, InputError, StepFailed, UsageError

__all__ = ["main"]

_USER_ERROR = 2
_FAILED = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hpo-kfp",
        description="Hyperparameter tuning inside Kubeflow Pipelines, from Katib Experiment YAML.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _core.register(commands)
    _run.register(commands)
    _store.register(commands)
    _cluster.register(commands)
    _dashboard.register(commands)
    _serve.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # ML Metadata logs every connection at INFO through absl; a command line shows results.
    logging.getLogger("absl").setLevel(logging.WARNING)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as error:  # an argument's own check (a namespace, say)
        print(str(error), file=sys.stderr)
        return _USER_ERROR
    try:
        return int(args.handler(args))
    except UsageError as error:
        print(str(error), file=sys.stderr)
        return _USER_ERROR
    except InputError as error:
        where = getattr(args, "error_source", None) or getattr(args, "file", None) or "hpo-kfp"
        print(f"{where}: {error}", file=sys.stderr)
        return _USER_ERROR
    except OSError as error:  # a path the user gave: a missing folder, a file where a folder goes
        where = error.filename or getattr(args, "file", None) or "hpo-kfp"
        print(f"{where}: {error.strerror or error}", file=sys.stderr)
        return _USER_ERROR
    except StepFailed as error:
        print(f"{getattr(args, 'file', 'hpo-kfp')}: {error}", file=sys.stderr)
        return _FAILED
    except HpoKfpError as error:
        where = getattr(args, "error_source", None) or getattr(args, "file", None) or "hpo-kfp"
        print(f"{where}: {error}", file=sys.stderr)
        return _FAILED
    except KeyboardInterrupt:
        print("hpo-kfp: interrupted", file=sys.stderr)
        return 130


def console_main() -> None:
    """The ``hpo-kfp`` program: :func:`main`, then exit.

    The objects of a process that imported kfp, Optuna, SQLAlchemy and matplotlib are frozen
    first (``gc.freeze``): Python's finalisation would otherwise collect them one by one,
    ~0.4 s at the end of every command on 2 cores, for memory the OS takes back at once.
    (Not in :func:`main`, which a program of the user's may call and go on.)
    """
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    console_main()
