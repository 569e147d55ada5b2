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

Optuna is imported only when a sampler is built.
"""

from __future__ import annotations

import importlib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from hpo_kfp.algorithms.base import Setting, call_seed, numbered
from hpo_kfp.compat import added_trial, set_study_system_attrs, study_system_attrs
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
        from hpo_kfp.space import SearchSpace, grid_size
        from hpo_kfp.study_view import quiet_optuna

        space = SearchSpace(experiment.parameters)
        if self.enumerates_grid:
            count = min(count, grid_size(experiment.parameters) - len(history.trials))
        if count <= 0:
            return [], history
        with quiet_optuna():
            study = self.rebuild_study(experiment, history, space)
            # GridSampler never proposes a point twice by itself; redrawing would only
            # spend grid points on failed asks.
            asked = _ask_distinct(study, space, history, count, redraw=not self.enumerates_grid)
            stored = {t.number: t.system_attrs for t in study.get_trials(deepcopy=False)}
            study_attrs = study_system_attrs(study)
        created = numbered(
            experiment,
            history,
            ((space.to_external(trial.params), _plain(stored[trial.number])) for trial in asked),
        )
        updated = replace(_compact(history.upsert(created)), study_attrs=_plain(study_attrs))
        return created, updated

    def rebuild_study(self, experiment: Experiment, history: History, space: SearchSpace) -> optuna.Study:
        """An in-memory Optuna study holding ``history``, with this sampler seeded for this call."""
        import optuna
        from optuna.trial import TrialState

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
