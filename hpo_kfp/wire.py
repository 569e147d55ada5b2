"""The wire format between pipeline steps: typed, versioned messages carried as JSON strings.

Everything one step hands another is a message here: a round's loop item
(:class:`TrialItem`, or :class:`NoTrial`), a run's result (:class:`RunResult`), a trial's
record (:class:`RecordedTrial`), the decision (:class:`DecisionDocument`) and a lane run's
document (:class:`RunDocument`). Each is a JSON object with its ``kind`` and ``version``
beside its fields::

    {"kind": "trial-item", "version": 1, "name": "demo-0000", "number": 0, "parameters": {...}, ...}

A step reads only the versions this release writes and refuses any other by name
(:class:`~hpo_kfp.errors.WireError`), so a pipeline whose steps run different hpo-kfp
releases stops at the first message between them, saying so, instead of misreading it.

Messages travel as JSON *strings*, never as dict parameters: kfp.local turns the ints
inside a dict parameter into floats, and an int hyperparameter must reach its trial as an int.

KFP's ``ParallelFor`` must never get an empty list, so a round with nothing to run hands
its loop one :class:`NoTrial` item. It passes through run_trial and collect_metrics
unchanged and decide leaves it out; :func:`read` is the one way a step tells it apart.

Core layer: this module imports neither KFP nor :mod:`hpo_kfp.pipeline`.
"""

from __future__ import annotations

import base64
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

from hpo_kfp.early_stopping import StopRule
from hpo_kfp.errors import HistoryError, WireError
from hpo_kfp.history import TrialRecord, TrialRun, jsonable

if TYPE_CHECKING:
    from hpo_kfp.decide import Decision
    from hpo_kfp.spec import Parameter

__all__ = [
    "WIRE_VERSION",
    "BestTrial",
    "DecisionDocument",
    "Message",
    "NoTrial",
    "RecordedTrial",
    "RunDocument",
    "RunResult",
    "TrialComponent",
    "TrialItem",
    "check_version",
    "parameter_kinds",
    "read",
    "typed_parameters",
    "typed_parameters_json",
]

WIRE_VERSION = 1
"""The version of every message this release writes, and the only one it reads."""

_SAME_RELEASE = "every step of a pipeline must run the same hpo-kfp release"


def check_version(kind: str, version: object, reads: tuple[int, ...] = (WIRE_VERSION,)) -> None:
    """Refuses a ``kind`` document of a version this release does not read.

    Raises:
        WireError: Naming the kind, the version received and the versions this release reads.
    """
    if type(version) is not int or version not in reads:
        known = " or ".join(str(v) for v in reads)
        raise WireError(
            f"{kind} version {version!r}: this release of hpo-kfp reads version {known}; {_SAME_RELEASE}"
        )


class Message(ABC):
    """A message between steps: :meth:`to_json` writes its kind and version beside its
    fields; :meth:`from_json` reads only a message of the same kind and a known version."""

    KIND: ClassVar[str]
    """The message's ``kind`` on the wire."""
    VERSION: ClassVar[int] = WIRE_VERSION
    """The version this release writes (and reads)."""

    def to_json(self) -> str:
        document = {"kind": self.KIND, "version": self.VERSION, **self._fields()}
        return json.dumps(document, separators=(",", ":"), default=jsonable)

    @classmethod
    def from_json(cls, text: str) -> Self:
        """Reads a message of this kind.

        Raises:
            WireError: Not JSON, not a message, another kind (the round's :class:`NoTrial`
                item too: use :func:`read` where it may come), an unknown version, or
                malformed fields.
        """
        return cls._read(_document(text, cls.KIND))

    @abstractmethod
    def _fields(self) -> dict[str, Any]:
        """The message's fields as JSON-ready values, without kind and version."""

    @classmethod
    @abstractmethod
    def _from_fields(cls, data: Mapping[str, Any], where: str) -> Self:
        """The message from its fields; ``where`` is the field path for errors."""

    @classmethod
    def _read(cls, document: dict[str, Any]) -> Self:
        kind = document["kind"]
        if kind != cls.KIND:
            hint = " (the round has no trial to run)" if kind == NoTrial.KIND else ""
            raise WireError(f"{cls.KIND}: must be a {cls.KIND} message, but got a {kind!r} message{hint}")
        check_version(kind, document["version"], (cls.VERSION,))
        body = {k: v for k, v in document.items() if k not in ("kind", "version")}
        try:
            return cls._from_fields(body, cls.KIND)
        except (AttributeError, TypeError, ValueError) as error:
            raise WireError(f"{cls.KIND}: must be a well-formed {cls.KIND} message ({error})") from error


M = TypeVar("M", bound=Message)


def read(text: str, expected: type[M]) -> M | NoTrial:
    """Reads a message of kind ``expected``, or the round's :class:`NoTrial` item.

    Raises:
        WireError: As :meth:`Message.from_json`.
    """
    document = _document(text, expected.KIND)
    if document["kind"] == NoTrial.KIND:
        return NoTrial._read(document)
    return expected._read(document)


@dataclass(frozen=True)
class NoTrial(Message):
    """The one item of a round with nothing to run: KFP's ``ParallelFor`` must never get an
    empty list. run_trial and collect_metrics hand it on unchanged; decide leaves it out."""

    KIND: ClassVar[str] = "no-trial"

    def _fields(self) -> dict[str, Any]:
        return {}

    @classmethod
    def _from_fields(cls, data: Mapping[str, Any], where: str) -> NoTrial:
        _check_keys(data, (), where)
        return cls()


@dataclass(frozen=True, kw_only=True)
class TrialItem(Message):
    """One item of a round's loop: a trial to run (suggest -> run_trial, or a KFP-native trial)."""

    KIND: ClassVar[str] = "trial-item"

    name: str
    """The trial's name, unique within the experiment."""
    number: int
    """Order of creation within the experiment, from 0."""
    parameters: dict[str, Any]
    """The assignment (int, float or str values)."""
    sampler_attrs: dict[str, Any] = field(default_factory=dict)
    """What the sampler stored on the trial: it travels with the trial so the record that
    comes back to decide (and goes to the metadata store) still holds it."""
    stop_rule: StopRule | None = None
    """The early-stopping rule to watch the run with, if any."""

    @classmethod
    def of(cls, trial: TrialRecord, stop_rule: StopRule | None = None) -> TrialItem:
        """The loop item of a trial suggest created."""
        return cls(
            name=trial.name,
            number=trial.number,
            parameters=dict(trial.parameters),
            sampler_attrs=dict(trial.sampler_attrs),
            stop_rule=stop_rule,
        )

    def record(self) -> TrialRecord:
        """The trial as a ``Pending`` record: what the steps after the run fill in."""
        return TrialRecord(
            name=self.name,
            number=self.number,
            parameters=dict(self.parameters),
            sampler_attrs=dict(self.sampler_attrs),
        )

    def _fields(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "number": self.number,
            "parameters": self.parameters,
            "sampler_attrs": self.sampler_attrs,
            "stop_rule": self.stop_rule.to_dict() if self.stop_rule is not None else None,
        }

    @classmethod
    def _from_fields(cls, data: Mapping[str, Any], where: str) -> TrialItem:
        _check_keys(data, [f.name for f in fields(cls)], where)
        rule = _take(data, "stop_rule", where, (dict, type(None)), default=None)
        try:
            stop_rule = StopRule.from_dict(rule) if rule is not None else None
        except TypeError as error:
            raise WireError(f"{where}.stop_rule: must be an early-stopping rule, but got {rule!r}") from error
        return cls(
            name=_take(data, "name", where, str),
            number=_take(data, "number", where, int),
            parameters=_take(data, "parameters", where, dict),
            sampler_attrs=_take(data, "sampler_attrs", where, dict, default={}),
            stop_rule=stop_rule,
        )


@dataclass(frozen=True, kw_only=True)
class RunResult(Message):
    """How a trial's run ended (run_trial -> collect_metrics)."""

    KIND: ClassVar[str] = "run-result"

    trial: TrialItem
    """The loop item the run was for."""
    run: TrialRun
    """How the run ended."""

    def _fields(self) -> dict[str, Any]:
        return {"trial": self.trial._fields(), "run": asdict(self.run)}

    @classmethod
    def _from_fields(cls, data: Mapping[str, Any], where: str) -> RunResult:
        _check_keys(data, ("trial", "run"), where)
        trial = TrialItem._from_fields(_take(data, "trial", where, dict), f"{where}.trial")
        run = _take(data, "run", where, dict)
        at = f"{where}.run"
        _check_keys(run, [f.name for f in fields(TrialRun)], at)
        return cls(
            trial=trial,
            run=TrialRun(
                name=_take(run, "name", at, str),
                exit_code=_take(run, "exit_code", at, (int, type(None))),
                started=_take(run, "started", at, str),
                finished=_take(run, "finished", at, str),
                reason=_take(run, "reason", at, str),
                early_stopped=_take(run, "early_stopped", at, bool, default=False),
                warnings=tuple(str(w) for w in _take(run, "warnings", at, list, default=[])),
            ),
        )


@dataclass(frozen=True, kw_only=True)
class RecordedTrial(Message):
    """A finished trial's record (collect_metrics or a KFP-native trial's step -> decide)."""

    KIND: ClassVar[str] = "trial-record"

    record: TrialRecord
    """The trial as the history keeps it."""

    def _fields(self) -> dict[str, Any]:
        return {"record": self.record.to_dict()}

    @classmethod
    def _from_fields(cls, data: Mapping[str, Any], where: str) -> RecordedTrial:
        _check_keys(data, ("record",), where)
        try:
            record = TrialRecord.from_dict(_take(data, "record", where, dict), f"{where}.record")
        except HistoryError as error:
            raise WireError(str(error)) from error
        return cls(record=record)


@dataclass(frozen=True, kw_only=True)
class BestTrial:
    """The best trial, as the decision shows it."""

    name: str
    """The trial's name."""
    parameters: dict[str, Any]
    """Its assignment."""
    objective: float
    """Its primary objective value."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Every metric collected from it."""


@dataclass(frozen=True, kw_only=True)
class DecisionDocument(Message):
    """What decide concluded: a pipeline output for people and tools, and the input of
    ``tune()``'s ``best`` step. Its keys are those of the CLI's ``--json`` result, plus
    ``done`` and every trial count."""

    KIND: ClassVar[str] = "decision"

    done: bool
    """Whether the experiment is done."""
    experiment: str
    """The experiment's name."""
    status: str
    """``Running``, ``Succeeded`` or ``Failed``, as Katib says it."""
    reason: str | None = None
    """Why the experiment is done (e.g. ``GoalReached``), or None."""
    trials: dict[str, int] = field(default_factory=dict)
    """The experiment's trials counted by outcome (``succeeded``, ``failed`` ...)."""
    best: BestTrial | None = None
    """The best succeeded trial, or None while no trial has succeeded."""

    @classmethod
    def of(cls, experiment: str, decision: Decision) -> DecisionDocument:
        """The document of ``decision`` on the experiment named ``experiment``."""
        best = decision.best
        return cls(
            done=decision.done,
            experiment=experiment,
            status=decision.status,
            reason=decision.reason,
            trials=dict(decision.counts),
            best=None
            if best is None or best.objective is None
            else BestTrial(
                name=best.name,
                parameters=dict(best.parameters),
                objective=best.objective,
                metrics=dict(best.metrics),
            ),
        )

    def _fields(self) -> dict[str, Any]:
        return {
            "done": self.done,
            "experiment": self.experiment,
            "status": self.status,
            "reason": self.reason,
            "trials": self.trials,
            "best": asdict(self.best) if self.best is not None else None,
        }

    @classmethod
    def _from_fields(cls, data: Mapping[str, Any], where: str) -> DecisionDocument:
        _check_keys(data, [f.name for f in fields(cls)], where)
        trials = _take(data, "trials", where, dict, default={})
        for key, count in trials.items():
            if type(count) is not int:
                raise WireError(f"{where}.trials.{key}: must be an int, but got {count!r}")
        best = _take(data, "best", where, (dict, type(None)), default=None)
        at = f"{where}.best"
        if best is not None:
            _check_keys(best, [f.name for f in fields(BestTrial)], at)
            metrics = _take(best, "metrics", at, dict, default={})
            best = BestTrial(
                name=_take(best, "name", at, str),
                parameters=_take(best, "parameters", at, dict),
                objective=float(_take(best, "objective", at, (int, float))),
                metrics={str(k): float(v) for k, v in metrics.items()},
            )
        return cls(
            done=_take(data, "done", where, bool),
            experiment=_take(data, "experiment", where, str),
            status=_take(data, "status", where, str),
            reason=_take(data, "reason", where, (str, type(None)), default=None),
            trials=dict(trials),
            best=best,
        )


@dataclass(frozen=True, kw_only=True)
class TrialComponent(Message):
    """A KFP component that runs as each trial of ``tune(trial=component)``: its container
    as KFP compiled it, and the values of the inputs the tuning does not set
    (:mod:`hpo_kfp.component_trial` runs it)."""

    KIND: ClassVar[str] = "trial-component"

    name: str
    """The component's name."""
    image: str
    """Its container image."""
    command: list[str]
    """Its container's command, then its args, KFP's placeholders (``{{$}}``,
    ``{{$.inputs.parameters['lr']}}`` ...) not yet resolved. On the wire it is base64 of its
    JSON: KFP resolves placeholders inside a step's string inputs too (kfp.local's
    ``resolve_self_references_in_executor_input``) and puts its own interpreter in place of
    ``python3`` in a step's resolved command, so the text must reach the lane unread."""
    arguments: dict[str, Any] = field(default_factory=dict)
    """Values of its input parameters that are not hyperparameters (given, or defaults)."""
    outputs: list[str] = field(default_factory=list)
    """Its output parameters."""
    artifacts: dict[str, list[str]] = field(default_factory=dict)
    """Its output artifacts: name -> [schema title, schema version]."""
    metrics_output: str = ""
    """The ``system.Metrics`` output its metrics are read from, when it has several."""

    def _fields(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "image": self.image,
            "command": base64.b64encode(json.dumps(self.command).encode()).decode(),
            "arguments": self.arguments,
            "outputs": self.outputs,
            "artifacts": self.artifacts,
            "metrics_output": self.metrics_output,
        }

    @classmethod
    def _from_fields(cls, data: Mapping[str, Any], where: str) -> TrialComponent:
        _check_keys(data, [f.name for f in fields(cls)], where)
        try:
            command = json.loads(base64.b64decode(_take(data, "command", where, str), validate=True))
        except (ValueError, UnicodeDecodeError):
            command = None
        if not isinstance(command, list) or not command or not all(isinstance(part, str) for part in command):
            raise WireError(f"{where}.command: must be a non-empty list of strings as base64 of JSON")
        return cls(
            name=_take(data, "name", where, str),
            image=_take(data, "image", where, str),
            command=list(command),
            arguments=_take(data, "arguments", where, dict, default={}),
            outputs=[str(name) for name in _take(data, "outputs", where, list, default=[])],
            artifacts={
                str(name): [str(part) for part in kind]
                for name, kind in _take(data, "artifacts", where, dict, default={}).items()
            },
            metrics_output=_take(data, "metrics_output", where, str, default=""),
        )


@dataclass(frozen=True, kw_only=True)
class RunDocument(Message):
    """What every step of an asynchronous run reads instead of the Experiment string: the
    run's first step writes it once, as an artifact, so a step's inputs stay a file
    reference (on a cluster each string parameter is stored several times per task in the
    Argo Workflow, which must stay under 1 MiB)."""

    KIND: ClassVar[str] = "run-document"

    spec: str
    """The Experiment (YAML or JSON), as the run was given it."""
    settings: str
    """:class:`~hpo_kfp.steps.settings.StepSettings` as JSON."""
    run_limit: int | None = None
    """How many trials the experiment may hold at the end of this run (None: as many as
    ``maxTrialCount`` allows)."""
    trial_component: str = ""
    """The KFP component each trial runs (a :class:`TrialComponent` as JSON), or "" to run
    the experiment's trial template."""

    def _fields(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "settings": self.settings,
            "run_limit": self.run_limit,
            "trial_component": self.trial_component,
        }

    @classmethod
    def _from_fields(cls, data: Mapping[str, Any], where: str) -> RunDocument:
        _check_keys(data, ("spec", "settings", "run_limit", "trial_component"), where)
        return cls(
            spec=_take(data, "spec", where, str),
            settings=_take(data, "settings", where, str),
            run_limit=_take(data, "run_limit", where, (int, type(None)), default=None),
            trial_component=_take(data, "trial_component", where, str, default=""),
        )


_REQUIRED: Any = object()


def _document(text: str, expected: str) -> dict[str, Any]:
    """The JSON object of a message, with a string kind and some version, or a WireError."""
    preview = repr(text) if len(str(text)) <= 80 else repr(str(text)[:77]) + "..."
    try:
        document = json.loads(text)
    except (TypeError, json.JSONDecodeError):
        document = None
    if isinstance(document, dict) and isinstance(document.get("kind"), str) and "version" in document:
        return document
    raise WireError(
        f"{expected}: must be a JSON object with a kind and a version (hpo-kfp's wire format), "
        f"but got {preview}; {_SAME_RELEASE}"
    )


def _check_keys(data: Mapping[str, Any], known: Any, where: str) -> None:
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise WireError(f"{where}: must have only the keys {sorted(known)}, but got also {unknown}")


def _take(
    data: Mapping[str, Any],
    key: str,
    where: str,
    kinds: type | tuple[type, ...],
    *,
    default: Any = _REQUIRED,
) -> Any:
    """``data[key]``, checked to be of one of ``kinds`` (a bool is not an int here)."""
    if key not in data:
        if default is _REQUIRED:
            raise WireError(f"{where}.{key}: must be present, but it is missing")
        return default
    value = data[key]
    accepted = kinds if isinstance(kinds, tuple) else (kinds,)
    if not isinstance(value, accepted) or (isinstance(value, bool) and bool not in accepted):
        names = " or ".join("null" if kind is type(None) else kind.__name__ for kind in accepted)
        raise WireError(f"{where}.{key}: must be {names}, but got {value!r}")
    return value


_KINDS: dict[str, type] = {"int": int, "float": float, "str": str}


def parameter_kinds(parameters: Sequence[Parameter]) -> dict[str, str]:
    """Each hyperparameter's Python type name: ``int`` (an int parameter, or a discrete one
    whose values are all ints), ``str`` (categorical) or ``float``."""
    kinds = {}
    for parameter in parameters:
        if parameter.type == "int" or (
            parameter.type == "discrete" and all(type(v) is int for v in parameter.values)
        ):
            kinds[parameter.name] = "int"
        elif parameter.type == "categorical":
            kinds[parameter.name] = "str"
        else:
            kinds[parameter.name] = "float"
    return kinds


def typed_parameters(values: Mapping[str, Any], kinds: Mapping[str, str]) -> dict[str, Any]:
    """An assignment with each value of its parameter's type (``kinds``, as from
    :func:`parameter_kinds`): ``3.0`` of an int parameter becomes ``3``, ``2`` of a double ``2.0``.

    KFP carries a ``dict`` parameter's numbers as protobuf doubles: kfp.local hands an int
    inside one on as a float, and the backend writes a whole double as ``2`` (an int once
    read). Pass an assignment between steps as this, serialized (:func:`typed_parameters_json`).

    Raises:
        WireError: A value that is not of its kind (a fractional value of an int parameter,
            a string of a number's), or a parameter ``kinds`` does not know.
    """
    typed: dict[str, Any] = {}
    for name, value in values.items():
        kind = kinds.get(name)
        if kind not in _KINDS:
            raise WireError(f"parameters.{name}: must be a parameter of the experiment, but got {value!r}")
        if kind == "str":
            typed[name] = value if isinstance(value, str) else str(value)
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise WireError(f"parameters.{name}: must be a finite number ({kind}), but got {value!r}")
        if kind == "int" and float(value) != int(value):
            raise WireError(f"parameters.{name}: must be a whole number (int), but got {value!r}")
        typed[name] = _KINDS[kind](value)
    return typed


def typed_parameters_json(values: Mapping[str, Any], kinds: Mapping[str, str]) -> str:
    """:func:`typed_parameters` as a JSON object: ints without a fraction, floats with one,
    so a step that ``json.loads`` it gets the types back."""
    return json.dumps(typed_parameters(values, kinds), separators=(",", ":"))
