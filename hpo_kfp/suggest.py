"""Stateless suggestion: (experiment, history, count) -> new trials, as Katib's GetSuggestions.

Each call rebuilds an in-memory Optuna study from the history — finished trials with their
values, failed ones as failed, pending ones as running (so TPE's constant liar and the
grid keep a batch apart) — restores what the sampler stored on trials and on the study,
then asks ``count`` times. What the sampler stores during those asks goes back into the
history, which is how CMA-ES and QMC keep learning although no process lives on.

The seed of each call is derived from the experiment's seed (``random_state``, else its
name) and the number of trials so far: the same history gives the same suggestions, and
two calls never replay the same random stream.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from hpo_kfp.algorithms import build_sampler
from hpo_kfp.compat import added_trial, set_study_system_attrs, study_system_attrs
from hpo_kfp.history import ACTIVE, History, TrialRecord, jsonable
from hpo_kfp.space import SearchSpace, grid_size
from hpo_kfp.spec import Experiment
from hpo_kfp.study_view import quiet_optuna

if TYPE_CHECKING:
    import optuna

__all__ = ["call_seed", "rebuild_study", "suggest", "trial_name"]

_REDRAWS = 10


def trial_name(experiment: str, number: int) -> str:
    """The name of trial ``number``: stable, so a retried step finds the same trial."""
    return f"{experiment}-{number:04d}"


def call_seed(experiment: Experiment, trials_so_far: int) -> int:
    base = experiment.algorithm.seed if experiment.algorithm.seed is not None else experiment.name
    digest = hashlib.sha256(f"{base}/{trials_so_far}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def suggest(experiment: Experiment, history: History, count: int) -> tuple[list[TrialRecord], History]:
    """Proposes up to ``count`` new trials.

    Fewer come back only when the search space is exhausted (grid).

    Returns:
        The new trials, status ``Pending``, and the history with them added.
    """
    if experiment.algorithm.name == "hyperband":
        return _suggest_hyperband(experiment, history, count)
    space = SearchSpace(experiment.parameters)
    if experiment.algorithm.name == "grid":
        count = min(count, grid_size(experiment.parameters) - len(history.trials))
    if count <= 0:
        return [], history
    with quiet_optuna():
        study = rebuild_study(experiment, history, space)
        asked = _ask_distinct(study, space, history, count, redraw=experiment.algorithm.name != "grid")
        stored = {t.number: t.system_attrs for t in study.get_trials(deepcopy=False)}
        study_attrs = study_system_attrs(study)
    first = history.next_number
    created = [
        TrialRecord(
            name=trial_name(experiment.name, first + index),
            number=first + index,
            parameters=space.to_external(trial.params),
            sampler_attrs=_plain(stored[trial.number]),
        )
        for index, trial in enumerate(asked)
    ]
    updated = replace(_compact(history.upsert(created)), study_attrs=_plain(study_attrs))
    return created, updated


def _suggest_hyperband(
    experiment: Experiment, history: History, count: int
) -> tuple[list[TrialRecord], History]:
    from hpo_kfp.hyperband import suggest_hyperband

    proposals = suggest_hyperband(experiment, history, count, seed=call_seed(experiment, len(history.trials)))
    first = history.next_number
    created = [
        TrialRecord(
            name=trial_name(experiment.name, first + index),
            number=first + index,
            parameters=parameters,
            sampler_attrs=attrs,
        )
        for index, (parameters, attrs) in enumerate(proposals)
    ]
    return created, history.upsert(created)


def _ask_distinct(
    study: optuna.Study, space: SearchSpace, history: History, count: int, *, redraw: bool
) -> list[optuna.trial.Trial]:
    """Asks ``count`` trials, redrawing one that repeats a configuration already tried.

    A repeat wastes a trial; samplers that recombine parents (NSGA-II) or work on small
    discrete spaces produce them. After a few redraws a repeat is accepted: the space may
    have nothing new left.
    """
    from optuna.trial import TrialState

    distributions = space.distributions()
    seen = {_key(space.to_internal(t.parameters)) for t in history.trials if space.contains(t.parameters)}
    asked = []
    for _ in range(count):
        for attempt in range(_REDRAWS):
            trial = study.ask(fixed_distributions=distributions)
            key = _key(trial.params)
            if not redraw or key not in seen or attempt == _REDRAWS - 1:
                break
            study.tell(trial, state=TrialState.FAIL)
        seen.add(key)
        asked.append(trial)
    return asked


def _key(parameters: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((name, repr(value)) for name, value in parameters.items()))


def rebuild_study(experiment: Experiment, history: History, space: SearchSpace) -> optuna.Study:
    """An in-memory Optuna study holding ``history``, with a sampler seeded for this call."""
    import optuna
    from optuna.trial import TrialState

    # A sequence that is continued call after call must keep its seed: the grid's order
    # (trial k takes the k-th point) and QMC's scrambling. Every other sampler gets a fresh
    # seed per call.
    grid = experiment.algorithm.name == "grid"
    fixed = grid or experiment.algorithm.name == "sobol"
    sampler = build_sampler(
        experiment.algorithm.name,
        experiment.algorithm.settings,
        seed=call_seed(experiment, 0 if fixed else len(history.trials)),
        grid=space.grid() if grid else None,
    )
    study = optuna.create_study(
        directions=[term.direction for term in experiment.objective.terms], sampler=sampler
    )
    set_study_system_attrs(study, history.study_attrs)
    distributions = space.distributions()
    for record in history.trials:
        if not space.contains(record.parameters):
            # Tried under another search space: it cannot inform this one, but it keeps its
            # place so that trial numbers match the history.
            study.add_trial(added_trial(TrialState.FAIL))
            continue
        state, values, intermediate = _state(record, experiment.objective.metric)
        trial = added_trial(
            state,
            params=space.to_internal(record.parameters),
            distributions=distributions,
            values=values if state == TrialState.COMPLETE else None,
            system_attrs=record.sampler_attrs,
            intermediate_values=intermediate,
        )
        study.add_trial(trial)
    return study


def _state(record: TrialRecord, metric: str) -> tuple[Any, list[float] | None, dict[int, float] | None]:
    from optuna.trial import TrialState

    if record.status == "Succeeded" and record.values is not None:
        return TrialState.COMPLETE, list(record.values), None
    if record.status in ("Pending", "Running"):
        return TrialState.RUNNING, None, None
    if record.status == "EarlyStopped":
        points = record.series.get(metric, [])
        return TrialState.PRUNED, None, {step: value for step, (_, value) in enumerate(points)}
    return TrialState.FAIL, None, None


_OPTIMIZER_CHUNK = re.compile(r"(^|:)optimizer:\d+$")


def _compact(history: History) -> History:
    """Drops copies of CMA-ES's pickled optimizer that Optuna will never read.

    CMA-ES stores its optimizer (a few KB) on the trial that starts each generation and
    restores it from the newest *completed* trial holding one. Only that copy, and those on
    trials still running (one may complete), are kept: a 1000-trial history stays small.
    """
    holders = [t for t in history.trials if any(_OPTIMIZER_CHUNK.search(k) for k in t.sampler_attrs)]
    succeeded = [t for t in holders if t.status == "Succeeded"]
    keep = {t.name for t in holders if t.status in ACTIVE}
    if succeeded:
        keep.add(max(succeeded, key=lambda t: t.number).name)
    stale = [t for t in holders if t.name not in keep]
    if not stale:
        return history
    return history.upsert(
        replace(t, sampler_attrs={k: v for k, v in t.sampler_attrs.items() if not _OPTIMIZER_CHUNK.search(k)})
        for t in stale
    )


def _plain(attrs: dict[str, Any]) -> dict[str, Any]:
    # Samplers may store tuples or numpy values; the history is JSON.
    return json.loads(json.dumps(attrs, default=jsonable))  # type: ignore[no-any-return]
