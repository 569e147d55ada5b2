"""Finding the primary container in any trial manifest, and Kubernetes' ``$(VAR)`` expansion."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from hpo_kfp.errors import RunnerError

__all__ = ["expand_variables", "primary_container"]

# Replica roles that hold the primary process of distributed jobs, in order of preference.
_PRIMARY_ROLES = ("master", "chief", "launcher", "node")
_VARIABLE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def primary_container(manifest: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The container called ``name`` in ``manifest``, whatever the object's kind.

    Containers are found wherever they sit: ``containers`` lists (Jobs, Pods and the
    replica specs of TFJob, PyTorchJob, ...) and Argo's ``container`` fields (whose
    container is named ``main`` when it has no name). When several replicas hold a
    container of that name, the master/chief/launcher replica's is taken.

    Raises:
        RunnerError: No container of that name exists.
    """
    found = [(path, c) for path, c in _containers(manifest, "") if c.get("name", "main") == name]
    if not found:
        raise RunnerError(f"the trial template has no container named {name!r} (primaryContainerName)")
    for role in _PRIMARY_ROLES:
        for path, container in found:
            if role in path.lower():
                return container
    return found[0][1]


def _containers(node: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "containers" and isinstance(value, list):
                for item in value:
                    if isinstance(item, dict):
                        yield path, item
            elif key == "container" and isinstance(value, dict):
                yield path, value
            else:
                yield from _containers(value, f"{path}.{key}")
    elif isinstance(node, list):
        for item in node:
            yield from _containers(item, path)


def expand_variables(text: str, env: Mapping[str, str]) -> str:
    """Expands ``$(NAME)`` from the container's env, as the kubelet does for command and args.

    ``$$`` is a literal ``$``; a reference to an undefined variable is left as written.
    """

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VARIABLE.sub(replace, text)
