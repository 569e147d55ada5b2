"""The contract every search algorithm keeps, and what its implementations share.

An algorithm is looked up by its Katib name in :data:`hpo_kfp.algorithms.ALGORITHMS` and
used only through :class:`Algorithm`: reading the spec checks its settings and validates
the experiment against it, planning asks how many rounds it needs, deciding asks whether
it has anything left, and suggesting asks it for trials. Nothing outside this package
compares algorithm names.

This module imports neither Optuna nor :mod:`hpo_kfp.spec` at run time: the spec reader
imports the registry to check settings.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from hpo_kfp.history import History, TrialRecord, trial_name

if TYPE_CHECKING:
    from hpo_kfp.spec import Experiment

__all__ = [
    "SEED",
    "Algorithm",
    "Setting",
    "call_seed",
    "choice_setting",
    "float_setting",
    "int_setting",
    "numbered",
    "trial_name",
]


@dataclass(frozen=True)
class Setting:
    """One ``algorithmSettings`` entry an algorithm accepts."""

    parse: Callable[[str], Any]
    """Turns the string value into the typed value (raises ValueError when it cannot)."""
    rule: str
    """The invariant, as stated in an error message."""
    holds: Callable[[Any], bool]
    """Whether a parsed value satisfies ``rule``."""
    target: str
    """The key the value is stored under: the sampler argument it becomes (``seed`` for
    the experiment's seed)."""


def int_setting(rule: str, holds: Callable[[int], bool], target: str) -> Setting:
    """A whole-number setting (``"3"`` and ``"3.0"`` are both 3)."""
    return Setting(_parse_int, rule, holds, target)


def float_setting(rule: str, holds: Callable[[float], bool], target: str) -> Setting:
    """A finite-number setting."""
    return Setting(float, rule, lambda v: math.isfinite(v) and holds(v), target)


def choice_setting(choices: tuple[str, ...], target: str) -> Setting:
    """A setting that takes one of ``choices``."""
    return Setting(str, f"must be one of {', '.join(choices)}", lambda v: v in choices, target)


def _parse_int(text: str) -> int:
    number = float(text)
    if not number.is_integer():
        raise ValueError(text)
    return int(number)


SEED = int_setting("must be an integer >= 0", lambda v: v >= 0, "seed")
"""``random_state`` (Katib's name) or ``seed``: every algorithm accepts both."""


@runtime_checkable
class Algorithm(Protocol):
    """A search algorithm: what it accepts, what it needs, and the trials it proposes.

    Implementations are stateless: everything an algorithm learns between calls is stored
    in the :class:`~hpo_kfp.history.History` it returns (on the trials or on the study), so
    a call in a fresh process with the same history gives the same answer.
    """

    @property
    def name(self) -> str:
        """Katib's ``algorithmName`` (or an hpo-kfp extension's): the registry key."""
        ...

    @property
    def settings(self) -> Mapping[str, Setting]:
        """The ``algorithmSettings`` it accepts, by Katib's names.

        Read by the spec reader, which parses each given value and stores it under
        :attr:`Setting.target` in ``experiment.algorithm.settings``.
        """
        ...

    @property
    def multi_objective(self) -> bool:
        """Whether it can optimise several objectives at once.

        The spec reader refuses an experiment with ``additionalObjectives`` when this is False.
        """
        ...

    @property
    def synchronous(self) -> bool:
        """Whether its trials must run in rounds, each proposed once the round before ended
        (Hyperband's rungs). Others run in asynchronous lanes: a trial starts as soon as one
        ends (:mod:`hpo_kfp.pipeline.lanes`)."""
        ...

    def validate(self, experiment: Experiment, at: Callable[[str], str]) -> None:
        """Checks that ``experiment`` is one this algorithm can run.

        Called once when the spec is read, after every field has been parsed on its own
        and the settings have been checked against :attr:`settings`.

        Args:
            experiment: The parsed experiment.
            at: The full path of a field under ``spec`` (``at("maxTrialCount")``), for
                the error message.

        Raises:
            SpecError: Naming the field path, the rule and the value.
        """
        ...

    def rounds_needed(self, experiment: Experiment, history: History, budget: int) -> int:
        """How many rounds of at most ``parallelTrialCount`` trials the rest of the run takes.

        Called when a pipeline is planned, to unroll that many rounds.

        Args:
            experiment: The experiment.
            history: The trials so far.
            budget: Trials the run may still finish (``maxTrialCount`` and any run budget,
                less those finished); may be zero or negative.

        Returns:
            The number of rounds, at least 1.
        """
        ...

    def exhausted(self, experiment: Experiment, history: History, total: int) -> bool:
        """Whether the search has nothing left to propose (Katib's ``SuggestionEndReached``).

        Called by :func:`hpo_kfp.decide.decide` once no trial is active.

        Args:
            experiment: The experiment.
            history: The trials so far.
            total: The experiment's own trials so far (imported ones not counted).

        Returns:
            True when no further call to :meth:`suggest` can propose a trial.
        """
        ...

    def suggest(
        self, experiment: Experiment, history: History, count: int
    ) -> tuple[list[TrialRecord], History]:
        """Proposes up to ``count`` new trials.

        Called once per round by the suggest step. Deterministic: the same experiment and
        history give the same trials.

        Args:
            experiment: The experiment.
            history: Every trial so far, with what the algorithm stored on it.
            count: The most trials to propose (at least 1).

        Returns:
            The new trials (status ``Pending``, numbered on from ``history.next_number``,
            named by :func:`trial_name`), and the history with them, and with what the
            algorithm stored, added. Fewer than ``count`` only when the algorithm has no
            more now (a finite space, or a schedule waiting for running trials).

        Raises:
            SamplerUnavailable: It needs a library that is not installed.
        """
        ...

    def seed(self, experiment: Experiment, history: History) -> int:
        """The seed of the random stream for the next :meth:`suggest` call.

        Either the same for every call (an algorithm that continues one sequence call after
        call, such as a grid's order or a scrambled Sobol sequence) or fresh per call (every
        other one, so that two calls never replay the same random stream); both derive
        from :func:`call_seed`.

        Returns:
            A seed in ``[0, 2**31)``.
        """
        ...

    def require_dependencies(self) -> None:
        """Checks that the optional libraries it needs are installed.

        Called before a run starts, so that a missing library stops it at once rather
        than in its first suggest step.

        Raises:
            SamplerUnavailable: Naming what is missing and how to install it.
        """
        ...


def call_seed(experiment: Experiment, trials_so_far: int) -> int:
    """A seed derived from the experiment's seed (``random_state``, else its name) and a count.

    The same count gives the same seed, so a retried step proposes the same trials.
    """
    base = experiment.algorithm.seed if experiment.algorithm.seed is not None else experiment.name
    digest = hashlib.sha256(f"{base}/{trials_so_far}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def numbered(
    experiment: Experiment, history: History, proposals: Iterable[tuple[dict[str, Any], dict[str, Any]]]
) -> list[TrialRecord]:
    """New ``Pending`` trials from (parameters, sampler attributes) pairs, numbered on from the history."""
    first = history.next_number
    return [
        TrialRecord(
            name=trial_name(experiment.name, first + index),
            number=first + index,
            parameters=parameters,
            sampler_attrs=attrs,
        )
        for index, (parameters, attrs) in enumerate(proposals)
    ]
