"""The KFP backend versions a compiled pipeline needs, read from the pipeline itself.

A KFP API server older than a feature it runs does not refuse the pipeline: it starts the
run, and the step that needs the feature fails or hangs. So ``submit`` and ``schedule``
read what the compiled pipeline uses, ask the server its version (``tag_name`` of
``/apis/v2beta1/healthz``) and refuse an older one before anything starts.

Core layer: this module reads the compiled pipeline spec as plain data and imports no KFP.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from hpo_kfp.errors import BackendTooOld

__all__ = [
    "COLLECTED_PARAMETERS",
    "FEATURES",
    "ONE_OF_NESTED",
    "BackendFeature",
    "check_backend",
    "release",
    "required_features",
]


@dataclass(frozen=True, kw_only=True)
class BackendFeature:
    """A KFP feature a compiled pipeline may use, and the oldest backend that runs it."""

    name: str
    """What the pipeline does, as the README's table names it."""
    minimum: tuple[int, ...]
    """The oldest KFP backend release that runs it, e.g. ``(2, 14)``."""

    @property
    def minimum_text(self) -> str:
        return ".".join(str(part) for part in self.minimum)


COLLECTED_PARAMETERS = BackendFeature(
    name="dsl.Collected of parameters (a ParallelFor's outputs gathered into a list)", minimum=(2, 14)
)
"""Every loop shape hpo-kfp compiles gathers a round's (or lane's) trial records this way."""

ONE_OF_NESTED = BackendFeature(name="dsl.OneOf across nested sub-DAGs", minimum=(2, 17, 0))
"""A ``dsl.OneOf`` whose branch's value comes from a sub-pipeline inside the branch
(an author's own nested rounds, say): older backends do not resolve it."""

FEATURES = (COLLECTED_PARAMETERS, ONE_OF_NESTED)
"""Every feature checked, oldest requirement first."""

_RELEASE = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+.].*)?$")


def release(tag: str | None) -> tuple[int, ...] | None:
    """A backend's ``tag_name`` as numbers (``"2.17.0"``, ``"v2.5.0"``, ``"2.15.0-rc.1"``), or
    None when it names no release (``"unknown"`` in a development build, say)."""
    match = _RELEASE.match((tag or "").strip())
    if match is None:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def required_features(pipeline_spec: Mapping[str, Any]) -> list[BackendFeature]:
    """The features of :data:`FEATURES` a compiled pipeline spec (the IR YAML, as data) uses."""
    components: Mapping[str, Any] = pipeline_spec.get("components") or {}
    dags = [(pipeline_spec.get("root") or {}).get("dag") or {}]
    dags += [component.get("dag") or {} for component in components.values()]
    found = []
    if any(_collects_parameters(dag, components) for dag in dags):
        found.append(COLLECTED_PARAMETERS)
    if any(_one_of_nested(dag, components) for dag in dags):
        found.append(ONE_OF_NESTED)
    return found


def check_backend(tag: str | None, features: list[BackendFeature], where: str) -> None:
    """Refuses a backend older than a feature needs; a tag that names no release passes.

    Raises:
        BackendTooOld: Naming the feature, its minimum and the server's version.
    """
    version = release(tag)
    if version is None:
        return
    for feature in sorted(features, key=lambda f: f.minimum, reverse=True):
        if _padded(version) < _padded(feature.minimum):
            raise BackendTooOld(
                f"the KFP backend at {where} must be {feature.minimum_text} or newer to run this "
                f"pipeline ({feature.name}), but it is {tag}"
            )


def _padded(version: tuple[int, ...]) -> tuple[int, ...]:
    return (*version, 0, 0, 0)[:3]


def _tasks(dag: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield from (dag.get("tasks") or {}).items()


def _component(task: Mapping[str, Any], components: Mapping[str, Any]) -> Mapping[str, Any]:
    name = (task.get("componentRef") or {}).get("name", "")
    return components.get(name) or {}


def _collects_parameters(dag: Mapping[str, Any], components: Mapping[str, Any]) -> bool:
    """A ParallelFor (a task with an iterator) whose DAG hands parameters out: only
    ``dsl.Collected`` takes a value out of a loop."""
    for _, task in _tasks(dag):
        if "parameterIterator" in task or "artifactIterator" in task:
            loop = _component(task, components).get("dag") or {}
            if (loop.get("outputs") or {}).get("parameters"):
                return True
    return False


def _one_of_nested(dag: Mapping[str, Any], components: Mapping[str, Any]) -> bool:
    """A ``dsl.OneOf`` (an output ``valueFromOneof``) whose chosen branch takes its value from a
    task that is itself a DAG (a sub-pipeline)."""
    tasks = dict(_tasks(dag))
    outputs = dag.get("outputs") or {}
    for kind, selectors_key, key_name in (
        ("parameters", "parameterSelectors", "outputParameterKey"),
        ("artifacts", "artifactSelectors", "outputArtifactKey"),
    ):
        for output in (outputs.get(kind) or {}).values():
            for selector in (output.get("valueFromOneof") or {}).get(selectors_key) or []:
                branch = _component(tasks.get(selector.get("producerSubtask", "")) or {}, components)
                branch_dag = branch.get("dag") or {}
                if _from_sub_dag(branch_dag, kind, selector.get(key_name, ""), components):
                    return True
    return False


def _from_sub_dag(branch: Mapping[str, Any], kind: str, key: str, components: Mapping[str, Any]) -> bool:
    output = ((branch.get("outputs") or {}).get(kind) or {}).get(key) or {}
    if kind == "parameters":
        producers = [(output.get("valueFromParameter") or {}).get("producerSubtask", "")]
    else:
        producers = [s.get("producerSubtask", "") for s in output.get("artifactSelectors") or []]
    tasks = dict(_tasks(branch))
    return any("dag" in _component(tasks.get(name) or {}, components) for name in producers)
