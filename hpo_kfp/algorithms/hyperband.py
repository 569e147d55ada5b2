"""Hyperband (Katib's ``hyperband``): successive halving over brackets, one rung per round.

The schedule is the published one (Li et al., 2018, Algorithm 1), with Katib's settings:
``r_l`` the largest resource R, ``eta`` the halving rate (default 3), ``resource_name`` the
parameter that carries the resource (epochs, say). With ``s_max = floor(log_eta R)``, each
bracket ``s = s_max .. 0`` starts ``n = ceil((s_max+1)/(s+1) * eta^s)`` random
configurations at resource ``r = R * eta^-s``; rung ``i`` runs ``floor(n * eta^-i)`` of
them at ``r * eta^i``, and the best ``floor(n_i / eta)`` go on to the next rung, their
other parameters unchanged. (Katib's own service rounds some of these up and sizes its
first rung by the request count; the rung sizes here are the paper's.)

Each rung is one round, so a rung must fit in one round: Katib's constraint,
``parallelTrialCount >= eta^s_max``, is checked when the spec is read. The rung a trial
belongs to is stored with it, so suggest stays stateless.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from hpo_kfp.algorithms.base import SEED, Setting, call_seed, float_setting, int_setting, numbered
from hpo_kfp.errors import SpecError
from hpo_kfp.history import ACTIVE, History, TrialRecord

if TYPE_CHECKING:
    from hpo_kfp.spec import Experiment, Parameter

__all__ = ["Hyperband", "Rung", "next_rung", "placement", "s_max", "schedule", "suggest_hyperband"]

_ATTR = "hyperband"

_SETTINGS: Mapping[str, Setting] = MappingProxyType(
    {
        "resource_name": Setting(str, "must name a parameter", bool, "resource_name"),
        "r_l": float_setting("must be a number > 0", lambda v: v > 0, "r_l"),
        "eta": int_setting("must be an integer >= 2", lambda v: v >= 2, "eta"),
        "random_state": SEED,
        "seed": SEED,
    }
)


@dataclass(frozen=True, kw_only=True)
class Hyperband:
    """Katib's ``hyperband``: the schedule of this module; its first rungs sample at random."""

    name: str = "hyperband"
    """The registry key."""
    settings: Mapping[str, Setting] = field(default_factory=lambda: _SETTINGS)
    """Katib's settings: ``resource_name`` and ``r_l`` are required, ``eta`` defaults to 3."""
    multi_objective: bool = False
    """Promotion ranks trials on one objective."""
    synchronous: bool = True
    """A rung is promoted from the whole rung before it."""

    def validate(self, experiment: Experiment, at: Callable[[str], str]) -> None:
        """See :meth:`hpo_kfp.algorithms.Algorithm.validate`: the settings and Katib's constraint."""
        settings = experiment.algorithm.settings
        path = at("algorithm.algorithmSettings")
        for required in ("resource_name", "r_l"):
            if required not in settings:
                raise SpecError(path, f"{self.name} needs the setting {required}", "nothing")
        names = [p.name for p in experiment.parameters]
        resource = settings["resource_name"]
        if resource not in names or experiment.parameter(resource).type not in ("int", "double"):
            raise SpecError(
                path,
                f"resource_name must name an int or double parameter ({', '.join(names)})",
                repr(resource),
            )
        eta = int(settings.get("eta", 3))
        needed = eta ** s_max(float(settings["r_l"]), eta)
        if experiment.parallel_trial_count < needed:
            raise SpecError(
                at("parallelTrialCount"),
                f"must be at least eta^s_max = {needed} with {self.name} "
                f"(r_l={settings['r_l']:g}, eta={eta}): each rung runs in one round",
                str(experiment.parallel_trial_count),
            )

    def rounds_needed(self, experiment: Experiment, history: History, budget: int) -> int:
        """See :meth:`hpo_kfp.algorithms.Algorithm.rounds_needed`: the rungs still to run.

        A rung is one round, so this counts the rungs not yet proposed that the budget
        reaches (the last one may be cut short).
        """
        _, r_l, eta = _settings(experiment)
        proposed = {_rung_of(t) for t in history.trials}
        rounds = 0
        for rung in schedule(r_l, eta):
            if (rung.bracket, rung.index) in proposed:
                continue
            if budget <= 0:
                break
            budget -= rung.size
            rounds += 1
        return max(rounds, 1)

    def exhausted(self, experiment: Experiment, history: History, total: int) -> bool:
        """See :meth:`hpo_kfp.algorithms.Algorithm.exhausted`: every rung has been proposed."""
        return next_rung(experiment, history) is None

    def seed(self, experiment: Experiment, history: History) -> int:
        """See :meth:`hpo_kfp.algorithms.Algorithm.seed`: fresh per call."""
        return call_seed(experiment, len(history.trials))

    def require_dependencies(self) -> None:
        """See :meth:`hpo_kfp.algorithms.Algorithm.require_dependencies`: Optuna only."""

    def suggest(
        self, experiment: Experiment, history: History, count: int
    ) -> tuple[list[TrialRecord], History]:
        """See :meth:`hpo_kfp.algorithms.Algorithm.suggest`: the next rung, once the last one ended."""
        proposals = suggest_hyperband(experiment, history, count, seed=self.seed(experiment, history))
        created = numbered(experiment, history, proposals)
        return created, history.upsert(created)


@dataclass(frozen=True)
class Rung:
    """One rung of one bracket."""

    bracket: int
    """``s``: brackets run from ``s_max`` down to 0."""
    index: int
    """``i``: 0 for the bracket's first rung."""
    size: int
    """Trials in the rung: ``floor(n * eta^-i)``."""
    resource: float
    """Resource of each trial: ``r * eta^i``."""


def s_max(r_l: float, eta: int) -> int:
    """The largest ``s`` with ``eta^s <= r_l`` (in integers, to avoid log rounding)."""
    s = 0
    while eta ** (s + 1) <= r_l * (1 + 1e-12):
        s += 1
    return s


def schedule(r_l: float, eta: int = 3) -> list[Rung]:
    """Every rung of every bracket, in the order they run."""
    top = s_max(r_l, eta)
    rungs = []
    for s in range(top, -1, -1):
        n = math.ceil((top + 1) / (s + 1) * eta**s - 1e-9)
        r = r_l * eta ** (-s)
        for i in range(s + 1):
            rungs.append(
                Rung(bracket=s, index=i, size=math.floor(n * eta ** (-i) + 1e-9), resource=r * eta**i)
            )
    return rungs


def _settings(experiment: Experiment) -> tuple[str, float, int]:
    settings = experiment.algorithm.settings
    return str(settings["resource_name"]), float(settings["r_l"]), int(settings.get("eta", 3))


def placement(trial: TrialRecord) -> tuple[int, int, str] | None:
    """Where Hyperband put a trial: its bracket, its rung in it, and the trial of the rung
    before whose configuration it runs again ("" in a bracket's first rung); None for a
    trial Hyperband did not propose."""
    rung = _rung_of(trial)
    if rung is None:
        return None
    return rung[0], rung[1], str(trial.sampler_attrs.get("hyperband_from") or "")


def _rung_of(trial: TrialRecord) -> tuple[int, int] | None:
    value = trial.sampler_attrs.get(_ATTR)
    return (int(value[0]), int(value[1])) if value else None


def next_rung(experiment: Experiment, history: History) -> Rung | None:
    """The first rung not yet proposed, or None when the schedule is done."""
    _, r_l, eta = _settings(experiment)
    proposed = {_rung_of(t) for t in history.trials}
    for rung in schedule(r_l, eta):
        if (rung.bracket, rung.index) not in proposed:
            return rung
    return None


def suggest_hyperband(
    experiment: Experiment, history: History, count: int, *, seed: int
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The next rung's assignments with what to store on each trial, at most ``count``.

    Returns nothing while the previous rung still runs, or when the schedule is done.
    """
    if any(t.status in ACTIVE for t in history.trials):
        return []
    rung = next_rung(experiment, history)
    if rung is None:
        return []
    resource_name = _settings(experiment)[0]
    resource = _resource_value(experiment.parameter(resource_name), rung.resource)
    size = min(rung.size, count)
    if rung.index == 0:
        configurations = _random(experiment, size, seed)
    else:
        configurations = _promoted(experiment, history, rung, size)
    return [
        ({**config, resource_name: resource}, {_ATTR: [rung.bracket, rung.index], "hyperband_from": origin})
        for config, origin in configurations
    ]


def _resource_value(parameter: Parameter, value: float) -> int | float:
    return max(1, round(value)) if parameter.type == "int" else float(value)


def _random(experiment: Experiment, size: int, seed: int) -> list[tuple[dict[str, Any], str]]:
    import optuna

    from hpo_kfp.space import SearchSpace
    from hpo_kfp.study_view import quiet_optuna

    space = SearchSpace(experiment.parameters)
    with quiet_optuna():
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        distributions = space.distributions()
        return [(space.to_external(study.ask(distributions).params), "") for _ in range(size)]


def _promoted(
    experiment: Experiment, history: History, rung: Rung, size: int
) -> list[tuple[dict[str, Any], str]]:
    previous = [t for t in history.trials if _rung_of(t) == (rung.bracket, rung.index - 1)]
    succeeded = [t for t in previous if t.status == "Succeeded" and t.objective is not None]
    sign = 1.0 if experiment.objective.type == "minimize" else -1.0
    best = sorted(succeeded, key=lambda t: (sign * (t.objective or 0.0), t.number))[:size]
    return [(dict(t.parameters), t.name) for t in best]
