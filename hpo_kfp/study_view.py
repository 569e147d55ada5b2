"""A history as an Optuna study in the trials' own values: for plots and for optuna-dashboard.

Unlike the study suggest rebuilds (which samples in its internal value space), this one
holds the values each trial received, with distributions that show them on their natural
scale (log for logUniform/logNormal), each trial's start and end times, the primary
objective's series as intermediate values, and its name, status, origin and reason as user
attributes.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from hpo_kfp.history import FINISHED, History, TrialRecord
from hpo_kfp.space import SearchSpace

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

    from hpo_kfp.spec import Experiment, Parameter

__all__ = ["add_finished_trials", "frozen_trial", "quiet_optuna", "to_study"]


def to_study(
    experiment: Experiment,
    history: History,
    *,
    storage: str | optuna.storages.BaseStorage | None = None,
    study_name: str | None = None,
) -> optuna.Study:
    """An Optuna study of the finished trials that fit the experiment's search space (one that
    was changed since leaves the older trials out), in memory or in ``storage`` (an RDB URL
    or a storage object).

    Raises:
        optuna.exceptions.DuplicatedStudyError: ``storage`` already has a study of that name.
    """
    import optuna

    with quiet_optuna():
        study = optuna.create_study(
            storage=storage,
            study_name=study_name or experiment.name,
            directions=[term.direction for term in experiment.objective.terms],
        )
        study.set_metric_names([term.metric for term in experiment.objective.terms])
    add_finished_trials(study, experiment, history.trials)
    return study


def add_finished_trials(
    study: optuna.Study, experiment: Experiment, trials: Iterable[TrialRecord]
) -> list[str]:
    """Adds the finished trials among ``trials`` that fit the search space; returns their names.

    A finished trial never changes again, so a live view adds each one once.
    """
    space = SearchSpace(experiment.parameters)
    added = []
    with quiet_optuna():
        for trial in trials:
            if trial.status not in FINISHED or not space.contains(trial.parameters):
                continue  # unfinished, or tried under a search space since changed
            study.add_trial(frozen_trial(experiment, trial))
            added.append(trial.name)
    return added


def frozen_trial(experiment: Experiment, trial: TrialRecord) -> optuna.trial.FrozenTrial:
    """``trial`` as Optuna keeps one (to add to a study): finished (complete, pruned or
    failed) or running; one outside the experiment's search space (changed since) is a failed
    trial without parameters. Built here rather than by ``create_trial``, which stamps every
    trial with the present time."""
    import optuna
    from optuna.trial import TrialState

    now = datetime.now()
    states = {"Succeeded": TrialState.COMPLETE, "EarlyStopped": TrialState.PRUNED}
    state = states.get(trial.status, TrialState.FAIL) if trial.status in FINISHED else TrialState.RUNNING
    attributes = _attributes(trial)
    params, distributions = trial.parameters, {p.name: _distribution(p) for p in experiment.parameters}
    if not SearchSpace(experiment.parameters).contains(trial.parameters):
        state, params, distributions = TrialState.FAIL, {}, {}
        attributes["outside_search_space"] = str(trial.parameters)
    return optuna.trial.FrozenTrial(
        number=-1,
        trial_id=-1,
        state=state,
        value=None,
        values=list(trial.values) if state == TrialState.COMPLETE and trial.values else None,
        datetime_start=_time(trial.started) or now,
        datetime_complete=(_time(trial.finished) or now) if state != TrialState.RUNNING else None,
        params=params,
        distributions=distributions,
        user_attrs=attributes,
        system_attrs={},
        intermediate_values=_intermediate(experiment, trial),
    )


def _distribution(parameter: Parameter) -> BaseDistribution:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if parameter.values:
        return CategoricalDistribution(list(parameter.values))
    assert parameter.min is not None and parameter.max is not None
    log = parameter.distribution in ("logUniform", "logNormal")
    if parameter.type == "int":
        return IntDistribution(int(parameter.min), int(parameter.max), log=log)
    return FloatDistribution(parameter.min, parameter.max, log=log)


def _time(text: str | None) -> datetime | None:
    """An ISO 8601 time as Optuna keeps them: naive, in local time."""
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment.astimezone().replace(tzinfo=None) if moment.tzinfo else moment


def _intermediate(experiment: Experiment, trial: TrialRecord) -> dict[int, float]:
    """The primary objective's series, step by step from 1: Optuna's intermediate values."""
    return {
        step: value for step, (_, value) in enumerate(trial.series.get(experiment.objective.metric, ()), 1)
    }


def _attributes(trial: TrialRecord) -> dict[str, Any]:
    attributes: dict[str, Any] = {"name": trial.name, "status": trial.status, "origin": trial.origin}
    if trial.reason:
        attributes["reason"] = trial.reason
    if trial.duration is not None:
        attributes["duration_seconds"] = trial.duration
    attributes.update({f"metric:{k}": v for k, v in trial.metrics.items()})
    return attributes


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Silences Optuna's INFO logs and experimental-feature warnings for the block."""
    import optuna

    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.filterwarnings("ignore", message=".*independent sampl.*")
            warnings.filterwarnings("ignore", message="PedAnovaImportanceEvaluator computes the importances")
            yield
    finally:
        optuna.logging.set_verbosity(previous)
