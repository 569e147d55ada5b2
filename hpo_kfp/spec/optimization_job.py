"""Kubeflow Trainer's ``OptimizationJob`` (``trainer.kubeflow.org/v1alpha1``), read as an Experiment.

The fields (KEP ``docs/proposals/2605-optimization-job-crd`` in kubeflow/trainer) map one to
one onto Katib's: ``objectives`` (the first is the primary, the rest are optimised jointly),
``algorithm{name, provider, settings}``, ``earlyStopping{name, settings}``,
``parameters[{name, searchSpace{type, min, max, list}}]``, ``trialConfig{numTrials,
parallelTrials, maxFailedTrials}`` and ``trainJobTemplate{metadata, spec}``, a TrainJob whose
values hold ``{{.parameter_name}}`` placeholders. The job is translated into the Katib document
it means and read by the Katib reader, so every algorithm, early stopping and check applies;
errors name the OptimizationJob's own field paths.

What phase 1 of the KEP leaves open, hpo-kfp decides so:

- each objective's value is the *last* one the trial reports (the KEP's "final metrics");
- metrics are those the TrainJob publishes in ``status.trainerStatus.metrics`` (Trainer's
  progress API, KEP-2779: the TrainJobStatus collector); a trial that publishes none is read
  from its output (``name=value`` lines): locally the process's, on a cluster the TrainJob's
  ``node`` container log;
- ``searchSpace`` also takes hpo-kfp's ``step`` and ``distribution`` (as Katib's feasibleSpace);
- placeholders are substituted in parsed values, as Katib's are: a value stays a string
  whatever the parameter holds (the TrainJob spec is typed, so a placeholder can sit only in a
  string field), and a value can never add keys or list items;
- run locally, the trial is ``spec.trainer.command`` + ``args`` (with ``env``) as a process.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from hpo_kfp.errors import SpecError, TemplateError
from hpo_kfp.render import find_go_actions, go_to_katib
from hpo_kfp.spec._reader import Node, show

__all__ = ["API_VERSION", "KIND", "is_optimization_job", "job_path", "katib_document"]

API_VERSION = "trainer.kubeflow.org/v1alpha1"
KIND = "OptimizationJob"
TRAINER_CONTAINER = "node"
"""The container Trainer's runtimes run the trainer in; its log holds the metrics."""

_SPEC_FIELDS = ("objectives", "algorithm", "earlyStopping", "parameters", "trialConfig", "trainJobTemplate")
_PROVIDERS = ("optuna", "hpo-kfp")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TYPES = ("int", "double", "categorical")


def is_optimization_job(document: Any) -> bool:
    """Whether ``document`` declares itself an OptimizationJob (by apiVersion and kind)."""
    return (
        isinstance(document, Mapping)
        and document.get("apiVersion") == API_VERSION
        and document.get("kind") == KIND
    )


def katib_document(document: Mapping[str, Any], *, with_template: bool | None = True) -> dict[str, Any]:
    """The Katib Experiment an OptimizationJob means, checked field by field on the way.

    Args:
        document: The OptimizationJob.
        with_template: Whether ``spec.trainJobTemplate`` is required (True), must be absent
            (False: the trials are a KFP component), or may be either (None).

    Raises:
        SpecError: Naming the OptimizationJob's field path, the rule and the value.
    """
    root = Node(document, "(document)")
    metadata = Node(root.raw("metadata") or {}, "metadata")
    spec = Node(root.raw("spec"), "spec", _SPEC_FIELDS)
    parameters = _parameters(spec)
    names = tuple(p["name"] for p in parameters)
    katib_spec: dict[str, Any] = {
        "objective": _objective(spec),
        "algorithm": _algorithm(spec),
        "parameters": parameters,
        "metricsCollectorSpec": {"collector": {"kind": "TrainJobStatus"}},
        **_trial_config(spec),
    }
    stopping = spec.child("earlyStopping", ("name", "settings"))
    if stopping is not None:
        katib_spec["earlyStopping"] = {
            "algorithmName": stopping.string("name", required=True),
            "algorithmSettings": _settings(stopping),
        }
    if with_template or (with_template is None and spec.has("trainJobTemplate")):
        katib_spec["trialTemplate"] = _trial_template(spec, names)
    elif spec.has("trainJobTemplate"):
        raise SpecError(
            spec.at("trainJobTemplate"), "must be omitted when the trial is a KFP component", "a mapping"
        )
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": dict(metadata.data),
        "spec": katib_spec,
    }


def _objective(spec: Node) -> dict[str, Any]:
    terms = []
    for path, item in spec.items("objectives", required=True):
        entry = Node(item, path, ("metric", "direction"))
        metric = entry.string("metric", required=True)
        direction = entry.string("direction", required=True, choices=("minimize", "maximize"))
        terms.append((metric, direction))
    if not terms:
        raise SpecError(spec.at("objectives"), "must list at least one objective", "an empty list")
    (metric, direction), rest = terms[0], terms[1:]
    objective: dict[str, Any] = {
        "type": direction,
        "objectiveMetricName": metric,
        # The KEP evaluates the final metrics a trial reports.
        "metricStrategies": [{"name": name, "value": "latest"} for name, _ in dict(terms).items()],
    }
    if rest:
        objective["additionalObjectives"] = [{"metricName": m, "type": d} for m, d in rest]
    return objective


def _algorithm(spec: Node) -> dict[str, Any]:
    node = spec.required_child("algorithm", ("name", "provider", "settings"))
    provider = node.string("provider")
    if provider is not None and provider.lower() not in _PROVIDERS:
        raise SpecError(
            node.at("provider"),
            "must be optuna (or omitted): hpo-kfp runs its own Optuna samplers",
            show(provider),
        )
    return {"algorithmName": node.string("name", required=True), "algorithmSettings": _settings(node)}


def _settings(node: Node) -> list[Any]:
    return [item for _, item in node.items("settings")]


def _parameters(spec: Node) -> list[dict[str, Any]]:
    result = []
    for path, item in spec.items("parameters", required=True):
        entry = Node(item, path, ("name", "searchSpace"))
        name = entry.string("name", required=True)
        assert name is not None
        if not _IDENTIFIER.match(name):
            raise SpecError(
                entry.at("name"),
                "must be letters, digits and '_', not starting with a digit (a {{.name}} placeholder)",
                show(name),
            )
        space = entry.required_child("searchSpace", ("type", "min", "max", "list", "step", "distribution"))
        kind = space.string("type", required=True, choices=_TYPES)
        feasible = {key: value for key, value in space.data.items() if key != "type"}
        result.append({"name": name, "parameterType": kind, "feasibleSpace": feasible})
    return result


def _trial_config(spec: Node) -> dict[str, Any]:
    node = spec.required_child("trialConfig", ("numTrials", "parallelTrials", "maxFailedTrials", "storage"))
    if node.has("storage"):
        raise SpecError(
            node.at("storage"),
            "must be omitted: hpo-kfp keeps trials in its experiment store (--store)",
            show(node.raw("storage")),
        )
    total = node.integer("numTrials", minimum=1)
    if total is None:
        raise SpecError(node.at("numTrials"), "must be specified: it bounds the tuning", "nothing")
    parallel = node.integer("parallelTrials", minimum=1)
    if parallel is not None and parallel > total:
        raise SpecError(
            node.at("parallelTrials"),
            "`parallelTrials <= numTrials` must hold",
            f"parallelTrials={parallel}, numTrials={total}",
        )
    failed = node.integer("maxFailedTrials", minimum=0)
    if failed is not None and failed > total:
        raise SpecError(
            node.at("maxFailedTrials"),
            "`maxFailedTrials <= numTrials` must hold",
            f"maxFailedTrials={failed}, numTrials={total}",
        )
    counts: dict[str, Any] = {"maxTrialCount": total, "parallelTrialCount": parallel or min(3, total)}
    if failed is not None:
        counts["maxFailedTrialCount"] = failed
    return counts


def _trial_template(spec: Node, names: tuple[str, ...]) -> dict[str, Any]:
    node = spec.required_child("trainJobTemplate", ("metadata", "spec"))
    body = node.required_child("spec")
    metadata = node.child("metadata")
    template: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "TrainJob",
        "metadata": dict(metadata.data) if metadata is not None else {},
        "spec": dict(body.data),
    }
    _check_placeholders(node, template, names)
    return {
        "primaryContainerName": TRAINER_CONTAINER,
        "trialParameters": [{"name": name, "reference": name} for name in names],
        "trialSpec": go_to_katib(template),
    }


def _check_placeholders(node: Node, template: Mapping[str, Any], names: tuple[str, ...]) -> None:
    """Every placeholder names a parameter, and (the webhook's rule) every parameter is used."""
    used = set()
    try:
        actions = list(find_go_actions(template, node.path))
    except TemplateError as error:
        path = str(error).partition(": ")[0]
        raise SpecError(path, "placeholders must be in values, not in keys", "one in a key") from error
    for path, action, name in actions:
        if name is None:
            raise SpecError(path, "must use placeholders of the form {{.parameter_name}} only", show(action))
        if name not in names:
            raise SpecError(
                path, "every {{.name}} placeholder must name a parameter in spec.parameters", show(action)
            )
        used.add(name)
    for index, name in enumerate(names):
        if name not in used:
            raise SpecError(
                f"spec.parameters[{index}].name",
                "must appear as {{." + name + "}} in spec.trainJobTemplate",
                show(name),
            )


def _further_objective(match: re.Match[str]) -> str:
    field = "metric" if match.group(2) == "metricName" else "direction"
    return f"spec.objectives[{int(match.group(1)) + 1}].{field}"


# Katib's field paths, as the Katib reader reports them, to the OptimizationJob's.
_PATHS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"^spec\.objective\.additionalObjectives\[(\d+)\]\.(metricName|type)"), _further_objective),
    (re.compile(r"^spec\.objective\.objectiveMetricName"), "spec.objectives[0].metric"),
    (re.compile(r"^spec\.objective\.type"), "spec.objectives[0].direction"),
    (re.compile(r"^spec\.objective\b.*"), "spec.objectives"),
    (re.compile(r"^spec\.algorithm\.algorithmName"), "spec.algorithm.name"),
    (re.compile(r"^spec\.algorithm\.algorithmSettings"), "spec.algorithm.settings"),
    (re.compile(r"^spec\.earlyStopping\.algorithmName"), "spec.earlyStopping.name"),
    (re.compile(r"^spec\.earlyStopping\.algorithmSettings"), "spec.earlyStopping.settings"),
    (re.compile(r"^spec\.parameters\[(\d+)\]\.parameterType"), r"spec.parameters[\1].searchSpace.type"),
    (re.compile(r"^spec\.parameters\[(\d+)\]\.feasibleSpace"), r"spec.parameters[\1].searchSpace"),
    (re.compile(r"^spec\.maxTrialCount"), "spec.trialConfig.numTrials"),
    (re.compile(r"^spec\.parallelTrialCount"), "spec.trialConfig.parallelTrials"),
    (re.compile(r"^spec\.maxFailedTrialCount"), "spec.trialConfig.maxFailedTrials"),
    (re.compile(r"^spec\.trialTemplate\.trialSpec\.(spec|metadata)"), r"spec.trainJobTemplate.\1"),
    (re.compile(r"^spec\.trialTemplate\b.*"), "spec.trainJobTemplate"),
)


def job_path(path: str) -> str:
    """The OptimizationJob field a Katib field path (of the translated document) stands for."""
    for pattern, replacement in _PATHS:
        if pattern.search(path):
            if callable(replacement):
                match = pattern.search(path)
                assert match is not None
                return replacement(match) + path[match.end() :]
            return pattern.sub(replacement, path, count=1)
    return path
