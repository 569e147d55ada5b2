"""Preparing a rendered trial object for the cluster: identity labels and metrics plumbing.

Metrics that a trial writes to a file (the File collector, and ``report_metrics()`` of the
Push collector) must survive the container's exit and need no sidecar: the primary
container's ``terminationMessagePath`` is pointed at that file, so the kubelet copies the
file into the pod's status (``state.terminated.message``) when the container ends. The
kubelet keeps the file's *last* 4096 bytes, and the pod's status then keeps the *first*
12 KiB / (containers + initContainers) of each message: a pod of four or more containers cuts
the final lines of a long file (the runner warns when a message may have been trimmed).

Pod templates also get ``sidecar.istio.io/inject: "false"`` unless they say otherwise: in
Kubeflow profile namespaces Istio injects a sidecar that keeps running after the training
container ends, so a Job with a classic sidecar never completes. A RayJob's submitter pod has
no template unless the RayJob gives one, so hpo-kfp writes KubeRay's own default in (see
:func:`_explicit_submitter`): KubeRay marks the RayJob finished only once its submitter Job is
Complete, which a sidecar would prevent.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from hpo_kfp.collectors import collector_for
from hpo_kfp.collectors.push import METRICS_FILE_ENV, PUSH_METRICS_PATH, TRIAL_NAME_ENV
from hpo_kfp.containers import RAY_SUBMITTER, find_primary
from hpo_kfp.errors import RunnerError
from hpo_kfp.spec import Experiment

__all__ = [
    "ASSIGNMENT_ANNOTATION",
    "EXPERIMENT_LABEL",
    "ISTIO_INJECT",
    "TRIAL_LABEL",
    "assignment_digest",
    "prepare_manifest",
    "validate_builtin",
]

EXPERIMENT_LABEL = "hpo-kfp.kubeflow.org/experiment"
TRIAL_LABEL = "hpo-kfp.kubeflow.org/trial"
ASSIGNMENT_ANNOTATION = "hpo-kfp.kubeflow.org/assignment"
ISTIO_INJECT = "sidecar.istio.io/inject"


def assignment_digest(parameters: Mapping[str, Any]) -> str:
    """A short fingerprint of an assignment, to recognise a trial's own object on adoption."""
    return hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest()[:16]


def identity_labels(experiment: str, trial: str) -> dict[str, str]:
    return {EXPERIMENT_LABEL: experiment, TRIAL_LABEL: trial}


def prepare_manifest(
    experiment: Experiment, manifest: Mapping[str, Any], trial: str, digest: str
) -> dict[str, Any]:
    """A copy of ``manifest`` with identity labels on the object and on its pod templates,
    the assignment digest annotation, Istio's sidecar turned off in pod templates that do not
    ask for it, and the primary container's metrics plumbing.

    Raises:
        RunnerError: A File or Push collector on a kind whose container cannot carry a
            termination message file (TrainJob, Tekton step).
    """
    prepared = copy.deepcopy(dict(manifest))
    labels = identity_labels(experiment.name, trial)
    metadata = prepared.setdefault("metadata", {})
    metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    metadata["annotations"] = {**(metadata.get("annotations") or {}), ASSIGNMENT_ANNOTATION: digest}
    _explicit_submitter(prepared)
    pod_metadata = _pod_metadata(prepared)
    if prepared.get("kind") in ("PipelineRun", "TaskRun"):
        pod_metadata.append(metadata)  # Tekton copies a run's labels and annotations to its pods
    for template_metadata in pod_metadata:
        template_metadata["labels"] = {**(template_metadata.get("labels") or {}), **labels}
        if ISTIO_INJECT not in (template_metadata.get("annotations") or {}) and ISTIO_INJECT not in (
            template_metadata.get("labels") or {}
        ):
            template_metadata["annotations"] = {
                **(template_metadata.get("annotations") or {}),
                ISTIO_INJECT: "false",
            }
    primary = find_primary(prepared, experiment.template.primary_container_name)
    container = primary.container
    env = [e for e in container.get("env") or [] if e.get("name") not in (METRICS_FILE_ENV, TRIAL_NAME_ENV)]
    collector = collector_for(experiment)
    metrics_file = collector.metrics_file(experiment.metrics_collector)
    env += [
        {"name": TRIAL_NAME_ENV, "value": trial},
        {"name": METRICS_FILE_ENV, "value": metrics_file or PUSH_METRICS_PATH},
    ]
    container["env"] = env
    if metrics_file is not None:
        if primary.style in ("trainjob", "tekton", "rayjob") or prepared.get("kind") == "RayJob":
            raise RunnerError(
                f"metricsCollectorSpec: a {collector.kind} collector needs the primary container's "
                f"termination message, which a {prepared.get('kind')} trial cannot set; use StdOut"
            )
        container["terminationMessagePath"] = metrics_file
        container["terminationMessagePolicy"] = "File"
    return prepared


_RAY_SUBMITTER_RESOURCES = {
    "limits": {"cpu": "1", "memory": "1Gi"},
    "requests": {"cpu": "500m", "memory": "200Mi"},
}


def _explicit_submitter(manifest: dict[str, Any]) -> None:
    """Writes KubeRay's default submitter pod template into a RayJob that has none, so that
    labels and annotations can reach the submitter pod.

    The same template KubeRay would make (``GetSubmitterTemplate`` and
    ``GetDefaultSubmitterContainer`` in ``ray-operator/controllers/ray/common/job.go``): one
    container ``ray-job-submitter`` with the head's image and those resources, restartPolicy
    Never; KubeRay still fills in its command (``ray job submit``), as for any template
    without one. Left alone: another submission mode (no submitter Job), or a RayJob on an
    existing cluster (``clusterSelector``: the head's image is not known here).
    """
    spec = manifest.get("spec")
    if manifest.get("kind") != "RayJob" or not isinstance(spec, dict) or spec.get("submitterPodTemplate"):
        return
    if spec.get("submissionMode", "K8sJobMode") != "K8sJobMode":
        return
    head = ((spec.get("rayClusterSpec") or {}).get("headGroupSpec") or {}).get("template") or {}
    containers = (head.get("spec") or {}).get("containers") or []
    image = containers[0].get("image") if containers and isinstance(containers[0], dict) else None
    if not image:
        return
    container = {"name": RAY_SUBMITTER, "image": image, "resources": copy.deepcopy(_RAY_SUBMITTER_RESOURCES)}
    spec["submitterPodTemplate"] = {"spec": {"restartPolicy": "Never", "containers": [container]}}


def validate_builtin(manifest: Mapping[str, Any], version: str | None) -> None:
    """Checks a built-in kind's manifest (Job, Pod, ...) against the OpenAPI schemas of
    Kubernetes ``version``, offline, with ``kubernetes-validate`` (the ``validate`` extra).

    Unknown fields pass, as the API server only warns about them by default. Nothing is
    checked without the package, for a custom resource (its schema is the cluster's CRD), or
    for a version or kind the package has no schema of.

    Raises:
        RunnerError: The manifest breaks the schema; the message names the field.
    """
    api_version = str(manifest.get("apiVersion", ""))
    group = api_version.rpartition("/")[0]
    if version is None or ("." in group and not group.endswith(".k8s.io")):
        return
    try:
        import kubernetes_validate
        from kubernetes_validate.utils import VersionNotSupportedError
    except ImportError:
        return
    try:
        kubernetes_validate.validate(dict(manifest), version, strict=False)
    except kubernetes_validate.ValidationError as error:
        field = ".".join(str(part) for part in error.path) or "(the object)"
        kind = manifest.get("kind")
        raise RunnerError(
            f"the trial's {kind} is invalid for Kubernetes {version}: {field}: {error.message}"
        ) from None
    except (kubernetes_validate.SchemaNotFoundError, VersionNotSupportedError):
        return


def _pod_metadata(node: Any) -> list[dict[str, Any]]:
    """The ``metadata`` mappings of every pod template in the object (created if missing)."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if (
                key in ("template", "submitterPodTemplate")
                and isinstance(value, dict)
                and "containers" in (value.get("spec") or {})
            ):
                found.append(value.setdefault("metadata", {}))
            elif key == "podMetadata" and isinstance(value, dict):  # Argo Workflow
                found.append(value)
            found.extend(_pod_metadata(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_pod_metadata(item))
    if (
        isinstance(node, dict)
        and node.get("kind") == "Workflow"
        and "podMetadata" not in (node.get("spec") or {})
    ):
        spec = node.setdefault("spec", {})
        spec["podMetadata"] = {}
        found.append(spec["podMetadata"])
    return found
