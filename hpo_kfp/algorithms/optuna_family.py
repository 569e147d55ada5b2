"""Every algorithm that an Optuna sampler runs: one class, parametrised per algorithm.

Suggesting is stateless, as Katib's GetSuggestions: each call rebuilds an in-memory Optuna
study from the history — finished trials with their values, failed ones as failed, pending
ones as running (so TPE's constant liar and the grid keep a batch apart) — restores what
the sampler stored on trials and on the study, then asks ``count`` times. What the sampler
stores during those asks goes back into the history, which is how CMA-ES and QMC keep
learning although no process lives on.

The seed of each call is derived from the experiment's seed (``random_state``, else its
name) and the number of trials so far: the same history gives the same suggestions, and
two calls never replay the same random stream. Samplers that continue one sequence across
calls keep one seed instead (:attr:`OptunaSampler.continues_sequence`).

Rebuilding costs more than asking once the history is long (1000 trials: ~10 ms of
``add_trial`` a call). So a process keeps the study of each experiment's last call, with the
trial records it mirrors, and the next call brings it up to date instead: trials that ended
since are ended in it, new ones added, a fresh sampler seeded for the call. It is kept only
while it holds exactly what a rebuilt study would (one Optuna trial per history trial, the
same states, parameters, values and attributes); anything else (a redrawn ask, a trial that
changed otherwise, a search space edited) and the next call rebuilds. So the same history
still gives the same suggestions, kept or not.

Optuna is imported only when a sampler is built.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from hpo_kfp.algorithms.base import Setting, call_seed, numbered
from hpo_kfp.compat import added_trial, set_study_system_attrs, study_system_attrs, update_trial
from hpo_kfp.errors import SamplerUnavailable, SpecError
from hpo_kfp.history import ACTIVE, History, TrialRecord, jsonable

if TYPE_CHECKING:
    import optuna

    from hpo_kfp.space import SearchSpace
    from hpo_kfp.spec import Experiment

__all__ = ["MAX_GRID_POINTS", "OptunaSampler"]

MAX_GRID_POINTS = 1_000_000
"""Most points a grid may have: Optuna's GridSampler lists them all, in every call."""

_REDRAWS = 10

# Settings that only shape Katib's own service and have no counterpart to set here.
_NOT_SAMPLER_ARGUMENTS = frozenset({"base_estimator", "seed"})

_COUNTS = ("no", "one", "two", "three", "four")

_KEPT = 8
"""Experiments whose last study a process keeps (a 1000-trial study is a few MB)."""


@dataclass(frozen=True, kw_only=True)
class OptunaSampler:
    """An algorithm run by one Optuna sampler class, with its fixed arguments and quirks."""

    name: str
    """The registry key (Katib's ``algorithmName``)."""
    sampler: str
    """The sampler class that runs it, in :attr:`module`."""
    module: str = "optuna.samplers"
    """The module holding :attr:`sampler`: Optuna's, or hpo-kfp's own."""
    settings: Mapping[str, Setting]
    """The settings it accepts, by Katib's names."""
    multi_objective: bool = True
    """Whether it can optimise several objectives at once."""
    synchronous: bool = False
    """Proposes from whatever has finished, with running trials as pending."""
    fixed: Mapping[str, Any] = field(default_factory=dict)
    """Sampler arguments that are always set."""
    continues_sequence: bool = False
    """Whether one seed serves every call, because the sampler continues a sequence across
    calls (the grid's order: trial k takes the k-th point; QMC's scrambling)."""
    enumerates_grid: bool = False
    """Whether it walks the grid of the search space: every double needs a step, the grid
    bounds ``maxTrialCount``, and the search ends when every point has been proposed."""
    min_ranged_parameters: int = 0
    """Fewest double or int parameters it works on (CMA-ES adapts a covariance: one
    dimension is no search for it)."""
    dependencies: tuple[str, ...] = ()
    """Optional modules the sampler imports."""
    install_hint: str = ""
    """How to install :attr:`dependencies`, for the error message."""

    def validate(self, experiment: Experiment, at: Callable[[str], str]) -> None:
        """See :meth:`hpo_kfp.algorithms.Algorithm.validate`."""
        if self.min_ranged_parameters:
            ranged = sum(1 for p in experiment.parameters if p.is_numeric_range)
            if ranged < self.min_ranged_parameters:
                fewest = _count(self.min_ranged_parameters)
                raise SpecError(
                    at("algorithm.algorithmName"),
                    f"{self.name} needs at least {fewest} double or int parameters",
                    f"{ranged}",
                )
        if self.enumerates_grid:
            self._validate_grid(experiment, at)

    def _validate_grid(self, experiment: Experiment, at: Callable[[str], str]) -> None:
        from hpo_kfp.space import grid_size

        for index, parameter in enumerate(experiment.parameters):
            if parameter.type == "double" and parameter.step is None:
                raise SpecError(
                    at(f"parameters[{index}].feasibleSpace.step"),
                    f"must be set for every double parameter with {self.name}",
                    "nothing",
                )
        size = grid_size(experiment.parameters)
        if size > MAX_GRID_POINTS:
            raise SpecError(
                at("parameters"),
                f"must make at most {MAX_GRID_POINTS:,} points with {self.name} (Optuna lists them all)",
                f"{size:,} points",
            )
        if experiment.max_trial_count > size:
            raise SpecError(
                at("maxTrialCount"),
                f"`maxTrialCount <= number of grid points` must hold with {self.name}",
                f"maxTrialCount={experiment.max_trial_count}, grid points={size}",
            )

    def rounds_needed(self, experiment: Experiment, history: History, budget: int) -> int:
        """See :meth:`hpo_kfp.algorithms.Algorithm.rounds_needed`: full rounds of parallel trials."""
        return max(math.ceil(budget / experiment.parallel_trial_count), 1)

    def exhausted(self, experiment: Experiment, history: History, total: int) -> bool:
        """See :meth:`hpo_kfp.algorithms.Algorithm.exhausted`: only a grid runs out."""
        if not self.enumerates_grid:
            return False
        from hpo_kfp.space import grid_size

        return total >= grid_size(experiment.parameters)

    def seed(self, experiment: Experiment, history: History) -> int:
        """See :meth:`hpo_kfp.algorithms.Algorithm.seed`."""
        return call_seed(experiment, 0 if self.continues_sequence else len(history.trials))

    def require_dependencies(self) -> None:
        """See :meth:`hpo_kfp.algorithms.Algorithm.require_dependencies`."""
        missing = []
        for module in self.dependencies:
            try:
                __import__(module)
            except ImportError:
                missing.append(module)
        if missing:
            raise SamplerUnavailable(
                f"algorithm {self.name} runs Optuna's {self.sampler}, which needs "
                f"{' and '.join(missing)}; {self.install_hint}"
            )

    def suggest(
        self, experiment: Experiment, history: History, count: int
    ) -> tuple[list[TrialRecord], History]:
        """See :meth:`hpo_kfp.algorithms.Algorithm.suggest`.

        Fewer than ``count`` come back only when the grid is exhausted.
        """
        from optuna.trial import TrialState

        from hpo_kfp.space import SearchSpace, grid_size
        from hpo_kfp.study_view import quiet_optuna

        space = SearchSpace(experiment.parameters)
        if self.enumerates_grid:
            count = min(count, grid_size(experiment.parameters) - len(history.trials))
        if count <= 0:
            return [], history
        with quiet_optuna():
            study, seen = self._kept_study(experiment, history, space)
            # GridSampler never proposes a point twice by itself; redrawing would only
            # spend grid points on failed asks.
            asked = _ask_distinct(study, space, seen, count, redraw=not self.enumerates_grid)
            trials = study.get_trials(deepcopy=False)
            study_attrs = _plain(study_system_attrs(study))
            created = numbered(
                experiment,
                history,
                (
                    (space.to_external(trial.params), _plain(trials[trial.number].system_attrs))
                    for trial in asked
                ),
            )
            if len(trials) == len(history.trials) + len(created):  # no ask was redrawn
                # As a rebuilt study would hold them: JSON's lists, not the sampler's tuples.
                for trial, record in zip(asked, created, strict=True):
                    update_trial(
                        study,
                        trials[trial.number],
                        system_attrs=record.sampler_attrs,
                        state=TrialState.RUNNING,
                        values=None,
                        intermediate_values={},
                    )
                set_study_system_attrs(study, study_attrs)
                _keep(
                    experiment, _Kept(study, experiment, history.trials + tuple(created), study_attrs, seen)
                )
        updated = replace(_compact(history.upsert(created)), study_attrs=study_attrs)
        return created, updated

    def _kept_study(
        self, experiment: Experiment, history: History, space: SearchSpace
    ) -> tuple[optuna.Study, set[tuple[tuple[str, str], ...]]]:
        """The study this process kept for the experiment, brought up to ``history`` with a
        sampler seeded for this call (a rebuilt one when none is kept or it cannot be), and
        the configurations the history holds (see :func:`_ask_distinct`)."""
        kept = _take(experiment)
        if kept is None or not _bring_up_to_date(kept, experiment, history, space):
            study = self.rebuild_study(experiment, history, space)
            return study, _configurations(space, history.trials)
        kept.study.sampler = self.build_sampler(
            experiment.algorithm.settings,
            seed=self.seed(experiment, history),
            grid=space.grid() if self.enumerates_grid else None,
        )
        return kept.study, kept.seen | _configurations(space, history.trials[len(kept.records) :])

    def rebuild_study(self, experiment: Experiment, history: History, space: SearchSpace) -> optuna.Study:
        """An in-memory Optuna study holding ``history``, with this sampler seeded for this call."""
        import optuna

        sampler = self.build_sampler(
            experiment.algorithm.settings,
            seed=self.seed(experiment, history),
            grid=space.grid() if self.enumerates_grid else None,
        )
        study = optuna.create_study(
            directions=[term.direction for term in experiment.objective.terms], sampler=sampler
        )
        set_study_system_attrs(study, history.study_attrs)
        distributions = space.distributions()
        for record in history.trials:
            study.add_trial(_study_trial(record, space, distributions, experiment.objective.metric))
        return study

    def build_sampler(
        self, settings: Mapping[str, Any], *, seed: int, grid: Mapping[str, list[Any]] | None = None
    ) -> optuna.samplers.BaseSampler:
        """The Optuna sampler with validated ``settings``.

        Args:
            settings: Parsed settings keyed by sampler argument (see :attr:`Setting.target`).
            seed: The seed for this call (see :meth:`seed`).
            grid: The grid of the search space, when :attr:`enumerates_grid`.

        Raises:
            SamplerUnavailable: The sampler needs a library that is not installed.
        """
        import optuna

        if self.enumerates_grid:
            assert grid is not None
            return optuna.samplers.GridSampler(dict(grid), seed=seed)
        kwargs: dict[str, Any] = dict(self.fixed)
        kwargs.update({k: v for k, v in settings.items() if k not in _NOT_SAMPLER_ARGUMENTS})
        kwargs["seed"] = seed
        if "gamma" in kwargs:
            kwargs["gamma"] = _quantile_gamma(kwargs["gamma"])
        if kwargs.get("restart_strategy") in ("none", "None"):
            kwargs["restart_strategy"] = None
        self.require_dependencies()
        sampler_class = getattr(importlib.import_module(self.module), self.sampler)
        return sampler_class(**kwargs)  # type: ignore[no-any-return]


def _count(number: int) -> str:
    return _COUNTS[number] if number < len(_COUNTS) else str(number)


def _quantile_gamma(fraction: float) -> Callable[[int], int]:
    # hyperopt's gamma is the fraction of trials taken as "good"; Optuna wants a count.
    def gamma(n: int) -> int:
        return min(math.ceil(fraction * n), 25)

    return gamma


def _configurations(space: SearchSpace, trials: tuple[TrialRecord, ...]) -> set[tuple[tuple[str, str], ...]]:
    """The configurations of ``trials`` inside the search space, as :func:`_ask_distinct` compares them."""
    return {_key(space.to_internal(t.parameters)) for t in trials if space.contains(t.parameters)}


def _ask_distinct(
    study: optuna.Study,
    space: SearchSpace,
    seen: set[tuple[tuple[str, str], ...]],
    count: int,
    *,
    redraw: bool,
) -> list[optuna.trial.Trial]:
    """Asks ``count`` trials, redrawing one that repeats a configuration of ``seen`` (the
    history's), to which it adds them.

    A repeat wastes a trial; samplers that recombine parents (NSGA-II) or work on small
    discrete spaces produce them. After a few redraws a repeat is accepted: the space may
    have nothing new left.
    """
    from optuna.trial import TrialState

    distributions = space.distributions()
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


def _study_trial(
    record: TrialRecord, space: SearchSpace, distributions: dict[str, Any], metric: str
) -> optuna.trial.FrozenTrial:
    """The Optuna trial a history record becomes in the study."""
    from optuna.trial import TrialState

    if not space.contains(record.parameters):
        # Tried under another search space: it cannot inform this one, but it keeps its
        # place so that trial numbers match the history.
        return added_trial(TrialState.FAIL)
    state, values, intermediate = _state(record, metric)
    return added_trial(
        state,
        params=space.to_internal(record.parameters),
        distributions=distributions,
        values=values if state == TrialState.COMPLETE else None,
        system_attrs=record.sampler_attrs,
        intermediate_values=intermediate,
    )


@dataclass(frozen=True)
class _Kept:
    """A study kept between calls, and what it mirrors."""

    study: optuna.Study
    experiment: Experiment
    records: tuple[TrialRecord, ...]
    """The history trials the study holds, one Optuna trial each, in order."""
    study_attrs: dict[str, Any]
    seen: set[tuple[tuple[str, str], ...]]
    """The configurations of :attr:`records` (their parameters never change)."""


_KEPT_STUDIES: dict[tuple[str, str], _Kept] = {}
_KEPT_GUARD = threading.Lock()


def _take(experiment: Experiment) -> _Kept | None:
    """The experiment's kept study, taken out of the cache: one caller uses it at a time."""
    with _KEPT_GUARD:
        return _KEPT_STUDIES.pop((experiment.namespace or "", experiment.name), None)


def _keep(experiment: Experiment, kept: _Kept) -> None:
    with _KEPT_GUARD:
        _KEPT_STUDIES[(experiment.namespace or "", experiment.name)] = kept
        while len(_KEPT_STUDIES) > _KEPT:
            del _KEPT_STUDIES[next(iter(_KEPT_STUDIES))]


def _bring_up_to_date(kept: _Kept, experiment: Experiment, history: History, space: SearchSpace) -> bool:
    """Changes the kept study into what :meth:`OptunaSampler.rebuild_study` would build from
    ``history`` (but the sampler); False, leaving it unusable, when that cannot be done."""
    from optuna.trial import TrialState

    if kept.experiment is not experiment and kept.experiment != experiment:
        return False
    if len(history.trials) < len(kept.records) or set(kept.study_attrs) - set(history.study_attrs):
        return False
    study = kept.study
    trials = study.get_trials(deepcopy=False)
    distributions = space.distributions()
    metric = experiment.objective.metric
    for index, (old, new) in enumerate(zip(kept.records, history.trials, strict=False)):
        if new is old or new == old:
            continue
        now, want = trials[index], _study_trial(new, space, distributions, metric)
        if new.number != old.number or now.params != want.params:
            return False
        if now.state != TrialState.RUNNING:
            if (now.state, now.values, now.system_attrs, now.intermediate_values) != (
                want.state,
                want.values,
                want.system_attrs,
                want.intermediate_values,
            ):
                return False
            continue
        if set(now.system_attrs) - set(want.system_attrs):
            return False
        update_trial(
            study,
            now,
            system_attrs=want.system_attrs,
            state=want.state,
            values=want.values,
            intermediate_values=want.intermediate_values,
        )
    for record in history.trials[len(kept.records) :]:
        study.add_trial(_study_trial(record, space, distributions, metric))
    if history.study_attrs != kept.study_attrs:
        set_study_system_attrs(study, history.study_attrs)
    return True


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
