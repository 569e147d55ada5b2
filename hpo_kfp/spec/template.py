"""``spec.trialTemplate``: the job each trial runs, and Katib's per-kind defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hpo_kfp.errors import RunnerError, SpecError, TemplateError
from hpo_kfp.render import PLACEHOLDER, find_placeholders, meta_reference
from hpo_kfp.spec._reader import Node, show

__all__ = ["ConfigMapSource", "TrialParameter", "TrialTemplate", "default_conditions", "parse_template"]

_COMPLETE = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
_SUCCEEDED = 'status.conditions.#(type=="Succeeded")#|#(status=="True")#'
_FAILED = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
_KUBEFLOW_JOBS = ("TFJob", "PyTorchJob", "XGBoostJob", "MPIJob")
_KUBEFLOW_PRIMARY = {"training.kubeflow.org/job-role": "master"}
# Beyond Katib. JobSet (jobset.x-k8s.io): conditions Completed and Failed; the primary pod is
# index 0 of the replicated job holding the primary container (the runner adds its name).
_COMPLETED = 'status.conditions.#(type=="Completed")#|#(status=="True")#'
_JOBSET_PRIMARY = {"jobset.sigs.k8s.io/job-index": "0"}
# RayJob (KubeRay ray.io/v1): jobDeploymentStatus Complete with jobStatus SUCCEEDED succeeds;
# Failed or ValidationFailed (deadline, submission, validation; KubeRay >= 1.2 after the last
# retry), or Complete with another jobStatus (FAILED, STOPPED: KubeRay < 1.2) fails. A FAILED
# jobStatus alone is not final: with backoffLimit the deployment is Retrying. The reason and
# message come from status.reason and status.message.
_RAYJOB_SUCCEEDED = 'status.[@this].#(jobDeploymentStatus=="Complete")#|#(jobStatus=="SUCCEEDED")#'
_RAYJOB_FAILED = (
    '[status.[@this].#(jobDeploymentStatus%"*Failed")#,'
    'status.[@this].#(jobDeploymentStatus=="Complete")#|#(jobStatus!="SUCCEEDED")#]|@flatten'
)
# TrainJob: rank 0. The trainer runs in the replicated job `node`, or `launcher` in Trainer's
# MPI runtimes (deepspeed-distributed, mlx-distributed: there `node` runs sshd, and `launcher`
# carries trainjob-ancestor-step=trainer); the runner prefers a `launcher` pod when one exists.
_TRAINJOB_PRIMARY = {"batch.kubernetes.io/job-completion-index": "0"}
_FIELDS = (
    "retain",
    "trialSpec",
    "configMap",
    "trialParameters",
    "primaryPodLabels",
    "primaryContainerName",
    "successCondition",
    "failureCondition",
)


@dataclass(frozen=True, kw_only=True)
class TrialParameter:
    """A named value substituted into the template as ``${trialParameters.<name>}``."""

    name: str
    """The placeholder's name."""
    reference: str
    """A search-space parameter name, or a ``${trialSpec.Name|...}`` metadata reference."""
    description: str = ""
    """Free text."""


@dataclass(frozen=True, kw_only=True)
class ConfigMapSource:
    """A template kept in a ConfigMap (read on a cluster only)."""

    name: str
    namespace: str
    path: str


@dataclass(frozen=True, kw_only=True)
class TrialTemplate:
    """What a trial runs, with Katib's defaults for its kind applied."""

    trial_spec: dict[str, Any] | None
    """The Kubernetes object to create per trial, placeholders not yet substituted."""
    config_map: ConfigMapSource | None = None
    """Where the template is, when it is not inline."""
    trial_parameters: tuple[TrialParameter, ...] = ()
    """Placeholders and what fills them."""
    primary_container_name: str
    """The container whose command runs locally and whose log holds the metrics."""
    primary_pod_labels: dict[str, str] = field(default_factory=dict)
    """Labels that pick the primary pod among the job's pods."""
    success_condition: str = ""
    """GJSON expression on the object that says the trial succeeded."""
    failure_condition: str = ""
    """GJSON expression on the object that says the trial failed."""
    retain: bool = False
    """Keep the trial's object after it ends."""

    @property
    def references(self) -> dict[str, str]:
        return {p.name: p.reference for p in self.trial_parameters}

    @property
    def kind(self) -> str:
        return str((self.trial_spec or {}).get("kind", ""))


def default_conditions(kind: str) -> tuple[str, str, dict[str, str]] | None:
    """Katib's default (success, failure, primary pod labels) for a trial kind, if any; and
    hpo-kfp's for JobSet and RayJob, which Katib has none for."""
    if kind == "JobSet":
        return _COMPLETED, _FAILED, dict(_JOBSET_PRIMARY)
    if kind == "RayJob":
        return _RAYJOB_SUCCEEDED, _RAYJOB_FAILED, {}
    if kind == "Job":
        return _COMPLETE, _FAILED, {}
    if kind == "TrainJob":
        return _COMPLETE, _FAILED, dict(_TRAINJOB_PRIMARY)
    if kind in _KUBEFLOW_JOBS:
        return _SUCCEEDED, _FAILED, dict(_KUBEFLOW_PRIMARY)
    return None


def parse_template(spec: Node, parameter_names: tuple[str, ...]) -> TrialTemplate:
    node = spec.required_child("trialTemplate", _FIELDS)
    spec_node = node.raw("trialSpec")
    config_node = node.child("configMap", ("configMapName", "configMapNamespace", "templatePath"))
    if spec_node is None and config_node is None:
        raise SpecError(node.at("trialSpec"), "trialSpec or configMap must be specified", "neither")
    if spec_node is not None and config_node is not None:
        raise SpecError(node.path, "only one of trialSpec and configMap may be specified", "both")
    trial_spec = _trial_spec(node) if spec_node is not None else None
    config_map = _config_map(config_node) if config_node is not None else None
    parameters = _trial_parameters(node, parameter_names)
    if trial_spec is not None:
        _check_placeholders(node, trial_spec, parameters)
    container = node.string("primaryContainerName", required=True)
    assert container is not None
    kind = str((trial_spec or {}).get("kind", ""))
    if trial_spec is not None:
        _check_primary_container(node, trial_spec, container)
        _check_deadline(node, trial_spec)
    success = node.string("successCondition")
    failure = node.string("failureCondition")
    labels = node.string_map("primaryPodLabels")
    defaults = default_conditions(kind)
    if defaults is not None:
        success = success or defaults[0]
        failure = failure or defaults[1]
        labels = labels or defaults[2]
    elif trial_spec is not None and not (success and failure):
        missing = "successCondition" if not success else "failureCondition"
        raise SpecError(
            node.at(missing),
            f"must be specified for a trial of kind {kind} (there are defaults only for "
            "Job, TFJob, PyTorchJob, XGBoostJob, MPIJob, TrainJob, JobSet and RayJob)",
            "nothing",
        )
    return TrialTemplate(
        trial_spec=trial_spec,
        config_map=config_map,
        trial_parameters=parameters,
        primary_container_name=container,
        primary_pod_labels=labels,
        success_condition=success or "",
        failure_condition=failure or "",
        retain=node.boolean("retain", False),
    )


def _trial_spec(node: Node) -> dict[str, Any]:
    spec = Node(node.raw("trialSpec"), node.at("trialSpec"))
    for key in ("apiVersion", "kind"):
        spec.string(key, required=True)
    metadata = spec.child("metadata")
    if metadata is not None:
        for key in ("name", "namespace"):
            if metadata.has(key):
                raise SpecError(
                    metadata.at(key), "must be omitted: the runner names each trial", show(metadata.raw(key))
                )
    return dict(spec.data)


def _check_primary_container(node: Node, trial_spec: Mapping[str, Any], name: str) -> None:
    """Refuses a ``primaryContainerName`` that names no container of the trialSpec.

    The runners find the container the same way (:func:`hpo_kfp.containers.primary_container`),
    so a template that passes here has one for them too. A TrainJob's pods come from its
    runtime (Trainer names the trainer container ``node``), so its template holds none to check.
    """
    if kind_of(trial_spec) == "TrainJob" or "${" in name:
        return
    # Imported here: the runners package imports the spec, which is still loading at import time.
    from hpo_kfp.containers import primary_container

    try:
        primary_container(trial_spec, name)
    except RunnerError:
        raise SpecError(
            node.at("primaryContainerName"),
            "must name a container of the trialSpec (an Argo template's unnamed container is main)",
            show(name),
        ) from None


def _check_deadline(node: Node, trial_spec: Mapping[str, Any]) -> None:
    """``activeDeadlineSeconds`` of the trial object: a positive integer, as Kubernetes takes it."""
    spec = trial_spec.get("spec")
    if not isinstance(spec, Mapping) or spec.get("activeDeadlineSeconds") is None:
        return
    value = spec["activeDeadlineSeconds"]
    if isinstance(value, str) and PLACEHOLDER.fullmatch(value.strip()):
        return  # known once the trial's parameters are; the runner checks the rendered value
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SpecError(
            f"{node.at('trialSpec')}.spec.activeDeadlineSeconds", "must be a positive integer", show(value)
        )


def kind_of(trial_spec: Mapping[str, Any] | None) -> str:
    return str((trial_spec or {}).get("kind", ""))


def _config_map(node: Node) -> ConfigMapSource:
    values = [
        node.string(key, required=True) for key in ("configMapName", "configMapNamespace", "templatePath")
    ]
    name, namespace, path = (str(v) for v in values)
    return ConfigMapSource(name=name, namespace=namespace, path=path)


def _trial_parameters(node: Node, parameter_names: tuple[str, ...]) -> tuple[TrialParameter, ...]:
    result: list[TrialParameter] = []
    names: set[str] = set()
    references: set[str] = set()
    for path, item in node.items("trialParameters"):
        entry = Node(item, path, ("name", "reference", "description"))
        name = entry.string("name", required=True)
        reference = entry.string("reference", required=True)
        assert name is not None and reference is not None
        if "{" in name or "}" in name:
            raise SpecError(entry.at("name"), "must not contain '{' or '}'", show(name))
        if name in names:
            raise SpecError(entry.at("name"), "must be unique among trialParameters", show(name))
        if reference in references:
            raise SpecError(entry.at("reference"), "must be unique among trialParameters", show(reference))
        if meta_reference(reference) is None and reference not in parameter_names:
            raise SpecError(
                entry.at("reference"),
                "must name a parameter in spec.parameters or be ${trialSpec.Name|Namespace|Kind|"
                "APIVersion|Labels[key]|Annotations[key]}",
                show(reference),
            )
        names.add(name)
        references.add(reference)
        result.append(
            TrialParameter(name=name, reference=reference, description=entry.string("description") or "")
        )
    return tuple(result)


def _check_placeholders(
    node: Node, trial_spec: Mapping[str, Any], parameters: tuple[TrialParameter, ...]
) -> None:
    declared = {p.name for p in parameters}
    try:
        found = list(find_placeholders(trial_spec, node.at("trialSpec")))
    except TemplateError as error:
        path = str(error).partition(": ")[0]
        raise SpecError(path, "placeholders must be in values, not in keys", "one in a key") from error
    used = set()
    for path, name in found:
        if name not in declared:
            raise SpecError(
                path,
                "every ${trialParameters.x} must be declared in spec.trialTemplate.trialParameters",
                show("${trialParameters." + name + "}"),
            )
        used.add(name)
    for index, parameter in enumerate(parameters):
        if parameter.name not in used:
            raise SpecError(
                f"{node.at('trialParameters')}[{index}].name",
                "must be used as ${trialParameters." + parameter.name + "} in the trialSpec",
                show(parameter.name),
            )
