"""Sharing identical components and executors in a compiled pipeline.

The KFP compiler gives every use of a component its own copy (``comp-decide``,
``comp-decide-2``, ... and ``exec-decide``, ``exec-decide-2``, ...), each holding the
component's full source. An unrolled loop uses each component once per round, so those
copies dominate the file. The pipeline IR refers to components by name from each task
(``componentRef``) and to executors by label from each component (``executorLabel``);
nothing requires one copy per use. Merging byte-identical copies keeps every task's
definition exactly as compiled and cuts the file to about 40% (see
``benchmarks/RESULTS.md``). The compacted file is what ``hpo-kfp run --local`` loads with
KFP's own loader and runs.
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import yaml

__all__ = ["compact_file", "compact_spec"]


def compact_spec(spec: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Merges identical executors, then identical components, in a pipeline spec (in place)."""
    executors = spec["deploymentSpec"]["executors"]
    executor_alias = _aliases(executors)
    spec["deploymentSpec"]["executors"] = {
        label: executors[label] for label in sorted(set(executor_alias.values()))
    }
    components = spec["components"]
    for component in components.values():
        if "executorLabel" in component:
            component["executorLabel"] = executor_alias[component["executorLabel"]]
    # A DAG component (a loop body) refers to other components: rename inside it first, and
    # repeat, since merging leaf components can make loop bodies identical in turn.
    while True:
        alias = _aliases(components)
        if all(alias[name] == name for name in components):
            break
        for node in (spec["root"], *components.values()):
            _rename_refs(node, alias)
        components = {name: components[name] for name in components if alias[name] == name}
    spec["components"] = components
    return spec


def compact_file(source: str | Path, target: str | Path | None = None) -> int:
    """Compacts a compiled pipeline YAML, keeping KFP's comment header; returns the new size."""
    text = Path(source).read_text(encoding="utf-8")
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    documents = list(yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    documents[0] = compact_spec(documents[0])
    body = yaml.safe_dump_all(documents, sort_keys=True, width=120)
    output = Path(target or source)
    output.write_text(header + body, encoding="utf-8")
    return output.stat().st_size


def _aliases(named: MutableMapping[str, Any]) -> dict[str, str]:
    """Maps each name to the first name (in sorted order) whose definition is identical."""
    first: dict[str, str] = {}
    alias = {}
    for name in sorted(named):
        key = json.dumps(named[name], sort_keys=True)
        alias[name] = first.setdefault(key, name)
    return alias


def _rename_refs(node: Any, alias: dict[str, str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "componentRef" and isinstance(value, dict):
                value["name"] = alias.get(value["name"], value["name"])
            else:
                _rename_refs(value, alias)
    elif isinstance(node, list):
        for item in node:
            _rename_refs(item, alias)
