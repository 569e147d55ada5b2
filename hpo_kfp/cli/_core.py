"""``validate`` and ``suggest``: the core, without any pipeline."""

from __future__ import annotations

import argparse
import json
from typing import Any

from hpo_kfp.cli._common import read_experiment, read_history
from hpo_kfp.errors import UsageError
from hpo_kfp.rounds import check_startable
from hpo_kfp.runners import RUNNERS, get_runner
from hpo_kfp.suggest import suggest

__all__ = ["register"]

_MOST = 10_000  # suggestions in one call


def register(commands: Any) -> None:
    validate = commands.add_parser(
        "validate", help="check an Experiment YAML as run and compile would, and print a summary"
    )
    validate.add_argument(
        "file",
        help="Katib kubeflow.org/v1beta1 Experiment or Trainer trainer.kubeflow.org/v1alpha1 "
        "OptimizationJob YAML",
    )
    validate.add_argument(
        "--runner",
        choices=tuple(RUNNERS),
        help="also check what this runner needs: local (run --local: a command to run as a process) "
        "or kubernetes (compile's default: collectors and early stopping a cluster supports)",
    )
    validate.set_defaults(handler=_validate)

    propose = commands.add_parser("suggest", help="print the next assignments as JSON")
    propose.add_argument("file", help="Experiment YAML")
    propose.add_argument("--history", help="history JSON (default: no trials yet)")
    propose.add_argument("--count", type=int, default=None, help="how many (default: parallelTrialCount)")
    propose.set_defaults(handler=_suggest)


def _validate(args: argparse.Namespace) -> int:
    experiment = read_experiment(args)
    check_startable(experiment)
    if args.runner:
        get_runner(args.runner).check(experiment)
    kind = experiment.template.kind or "configMap template"
    print(
        f"{args.file}: ok: experiment {experiment.name}, algorithm {experiment.algorithm.name}, "
        f"{len(experiment.parameters)} parameters, maxTrialCount {experiment.max_trial_count}, "
        f"parallelTrialCount {experiment.parallel_trial_count}, objective "
        f"{experiment.objective.type} {experiment.objective.metric}, trial kind {kind}"
    )
    return 0


def _suggest(args: argparse.Namespace) -> int:
    experiment = read_experiment(args)
    count = experiment.parallel_trial_count if args.count is None else args.count
    if not 1 <= count <= _MOST:
        raise UsageError(f"--count: must be between 1 and {_MOST}, but got {count}")
    history = read_history(args.history, experiment)
    try:
        created, _ = suggest(experiment, history, count)
    except (KeyError, IndexError, TypeError, ValueError) as error:  # what a sampler makes of odd state
        raise UsageError(
            f"{args.history}: the history's trials cannot inform this experiment's sampler ({error!r})"
        ) from None
    print(json.dumps([{"name": t.name, "parameters": t.parameters} for t in created], indent=2))
    return 0
