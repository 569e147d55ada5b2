"""Finding the primary container in any trial manifest, and Kubernetes' ``$(VAR)`` expansion.

Each kind's controller names the pod's containers its own way, so the primary container has
two names: the one in the manifest (what ``primaryContainerName`` may say) and the one in the
pod (whose log and termination message the runner reads):

========================  ==================================  ================================
kind                      where the container is declared      name in the pod
========================  ==================================  ================================
Job, TFJob, PyTorchJob…   ``containers`` of a pod template      its ``name``
Argo Workflow             a template's ``container``/``script`` ``main`` (Argo renames it)
Tekton PipelineRun        a task's ``steps``                    ``step-<name>``
TrainJob                  ``spec.trainer``                      ``node`` (the JobSet's job)
RayJob                    (KubeRay's submitter Job)             ``ray-job-submitter``, unless
                                                              ``spec.submitterPodTemplate``
                                                              declares its containers
========================  ==================================  ================================
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from hpo_kfp.errors import RunnerError

__all__ = ["RAY_SUBMITTER", "PrimaryContainer", "expand_variables", "find_primary", "primary_container"]

# Replica roles that hold the primary process of distributed jobs, in order of preference.
_PRIMARY_ROLES = ("master", "chief", "launcher", "node")
_VARIABLE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_ARGO_MAIN = "main"
_TEKTON_PREFIX = "step-"
_TRAINJOB_CONTAINER = "node"
RAY_SUBMITTER = "ray-job-submitter"
"""The container of KubeRay's default submitter pod."""


@dataclass(frozen=True)
class PrimaryContainer:
    """The primary container as declared in a manifest, and what its pod calls it."""

    container: dict[str, Any]
    """The declaration itself (a container, an Argo template's ``container``/``script``, a
    Tekton step, a TrainJob's ``trainer``); changes to it go into the manifest."""
    pod_container: str
    """The container's name in the pod."""
    style: str
    """``container``, ``argo``, ``tekton``, ``trainjob`` or ``rayjob`` (KubeRay's submitter,
    whose declaration is not in the manifest: changes to it go nowhere)."""


def primary_container(manifest: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The container called ``name`` in ``manifest``, whatever the object's kind.

    Raises:
        RunnerError: No container of that name exists.
    """
    return find_primary(manifest, name).container


def find_primary(manifest: Mapping[str, Any], name: str) -> PrimaryContainer:
    """The container called ``name`` (in the manifest or in the pod) in ``manifest``.

    Containers are found wherever they sit (see the module's table). When several replicas
    hold a container of that name, the master/chief/launcher replica's is taken.

    Raises:
        RunnerError: No container of that name exists.
    """
    found = [
        (path, primary)
        for path, primary in _declarations(manifest, "")
        if name in (primary.pod_container, primary.container.get("name"))
    ]
    if not found:
        raise RunnerError(f"the trial template has no container named {name!r} (primaryContainerName)")
    for role in _PRIMARY_ROLES:
        for path, primary in found:
            if role in path.lower():
                return primary
    return found[0][1]


def _declarations(node: Any, path: str) -> Iterator[tuple[str, PrimaryContainer]]:
    if isinstance(node, Mapping):
        if node.get("kind") == "TrainJob" and isinstance((node.get("spec") or {}).get("trainer"), dict):
            yield "spec.trainer", PrimaryContainer(node["spec"]["trainer"], _TRAINJOB_CONTAINER, "trainjob")
        spec = node.get("spec")
        if (
            node.get("kind") == "RayJob"
            and isinstance(spec, Mapping)
            and not spec.get("submitterPodTemplate")
        ):
            # `ray job submit` in KubeRay's default submitter pod follows the driver's output.
            submitter = {"name": RAY_SUBMITTER}
            yield "spec.submitter", PrimaryContainer(submitter, RAY_SUBMITTER, "rayjob")
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                for item in value:
                    if isinstance(item, dict):
                        yield path, PrimaryContainer(item, str(item.get("name", "")), "container")
            elif key in ("container", "script") and isinstance(value, dict):  # an Argo template
                yield path, PrimaryContainer(value, _ARGO_MAIN, "argo")
            elif key == "steps" and isinstance(value, list) and all(isinstance(i, dict) for i in value):
                for index, item in enumerate(value):  # Tekton steps (Argo's steps are lists of lists)
                    if "image" in item or "ref" in item:
                        # Tekton names a step's container step-<name>, or step-unnamed-<index>
                        # (pkg/pod: StepName).
                        step = item.get("name") or f"unnamed-{index}"
                        yield f"{path}.steps", PrimaryContainer(item, f"{_TEKTON_PREFIX}{step}", "tekton")
            else:
                yield from _declarations(value, f"{path}.{key}")
    elif isinstance(node, list):
        for item in node:
            yield from _declarations(item, path)


def expand_variables(text: str, env: Mapping[str, str]) -> str:
    """Expands ``$(NAME)`` from the container's env, as the kubelet does for command and args.

    ``$$`` is a literal ``$``; a reference to an undefined variable is left as written.
    """

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VARIABLE.sub(replace, text)
