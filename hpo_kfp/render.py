"""Trial templates: Katib's ``${trialParameters.x}`` substitution, done on parsed YAML.

A placeholder is replaced inside string *values* of the already-parsed manifest, in one
pass, so a parameter value is always a single string and can never add keys, list items
or YAML syntax — whatever characters it holds. This matches what Katib produces for a
``trialSpec`` (its placeholders sit inside JSON strings), without Katib's text splicing.

A ConfigMap template is YAML text in which Katib splices values, so ``replicas:
${trialParameters.n}`` becomes the integer 4 there. ``render(..., typed=True)`` gives the same
result on parsed values: a value that is exactly one placeholder takes the type the value's
text has as a YAML scalar (int, float, bool); anything else stays a string, and nothing can add
structure.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import yaml

from hpo_kfp.errors import TemplateError

__all__ = [
    "GO_ACTION",
    "GO_FIELD",
    "META_KEYS",
    "PLACEHOLDER",
    "find_go_actions",
    "find_placeholders",
    "go_to_katib",
    "format_value",
    "meta_reference",
    "render",
    "substitute",
]

PLACEHOLDER = re.compile(r"\$\{trialParameters\.(.+?)\}")
_META = re.compile(r"^\$\{trialSpec\.(.+?)\}$")
_INDEXED = re.compile(r"^(Labels|Annotations)\[(.+)\]$")
META_KEYS = ("Name", "Namespace", "Kind", "APIVersion")
GO_ACTION = re.compile(r"\{\{(.*?)\}\}")
"""A Go template action, as an OptimizationJob's ``trainJobTemplate`` writes placeholders."""
GO_FIELD = re.compile(r"^\s*\.([A-Za-z_][A-Za-z0-9_]*)\s*$")
"""The one action form substituted: ``{{.name}}`` (spaces allowed inside the braces)."""


def meta_reference(reference: str) -> tuple[str, str | None] | None:
    """Parses ``${trialSpec.Name}`` or ``${trialSpec.Labels[key]}`` into ``(key, index)``.

    Returns None when ``reference`` is not a trial metadata reference.
    """
    match = _META.match(reference)
    if match is None:
        return None
    key = match.group(1)
    if key in META_KEYS:
        return key, None
    indexed = _INDEXED.match(key)
    if indexed is not None:
        return indexed.group(1), indexed.group(2)
    return None


def format_value(value: Any) -> str:
    """The string a parameter value becomes in a manifest or on a command line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def find_placeholders(document: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Yields ``(field path, parameter name)`` for every placeholder in ``document``.

    Raises:
        TemplateError: A placeholder sits in a mapping key, where it is never substituted.
    """
    for where, match in _matches(document, PLACEHOLDER, path):
        yield where, match.group(1)


def find_go_actions(document: Any, path: str = "") -> Iterator[tuple[str, str, str | None]]:
    """Yields ``(field path, action, parameter name or None)`` for every ``{{...}}`` in values.

    The name is None for an action that is not a plain ``{{.name}}``.

    Raises:
        TemplateError: An action sits in a mapping key, where it is never substituted.
    """
    for where, match in _matches(document, GO_ACTION, path):
        field = GO_FIELD.match(match.group(1))
        yield where, match.group(0), field.group(1) if field else None


def _matches(document: Any, pattern: re.Pattern[str], path: str) -> Iterator[tuple[str, re.Match[str]]]:
    """Every match of ``pattern`` in the string values of ``document``, with its field path."""
    if isinstance(document, Mapping):
        for key, value in document.items():
            if isinstance(key, str) and pattern.search(key):
                raise TemplateError(
                    f"{path}.{key}: placeholders are substituted in values only, but one is in a key"
                )
            yield from _matches(value, pattern, f"{path}.{key}")
    elif isinstance(document, list):
        for index, item in enumerate(document):
            yield from _matches(item, pattern, f"{path}[{index}]")
    elif isinstance(document, str):
        for match in pattern.finditer(document):
            yield path, match


def go_to_katib(document: Any) -> Any:
    """A copy of ``document`` with every ``{{.name}}`` written as ``${trialParameters.name}``.

    The OptimizationJob's placeholders then go through the same value-level substitution
    as Katib's (see :func:`render`): a value stays one string whatever the parameter holds.
    """

    def replace(match: re.Match[str]) -> str:
        field = GO_FIELD.match(match.group(1))
        return "${trialParameters." + field.group(1) + "}" if field else match.group(0)

    return _map_strings(document, lambda text: GO_ACTION.sub(replace, text))


def substitute(document: Any, values: Mapping[str, str], *, typed: bool = False) -> Any:
    """Returns a copy of ``document`` with every placeholder replaced from ``values``.

    Args:
        typed: A value that is exactly one placeholder becomes the YAML scalar its text is
            (an int, float or bool), as Katib's text substitution of a ConfigMap template
            makes it; other values stay strings.
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise TemplateError(f"placeholder ${{trialParameters.{name}}} has no value")
        return values[name]

    def change(text: str) -> Any:
        whole = PLACEHOLDER.fullmatch(text)
        if typed and whole is not None:
            return _scalar(replace(whole))
        return PLACEHOLDER.sub(replace, text)

    return _map_strings(document, change)


def _scalar(text: str) -> Any:
    """``text`` as the YAML scalar it reads as, when that is a number or a boolean."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, int | float | bool) else text


def _map_strings(document: Any, change: Callable[[str], Any]) -> Any:
    if isinstance(document, Mapping):
        return {key: _map_strings(value, change) for key, value in document.items()}
    if isinstance(document, list):
        return [_map_strings(item, change) for item in document]
    if isinstance(document, str):
        return change(document)
    return document


def render(
    manifest: Mapping[str, Any],
    references: Mapping[str, str],
    assignment: Mapping[str, Any],
    *,
    name: str,
    namespace: str | None,
    labels: Mapping[str, str] | None = None,
    typed: bool = False,
) -> dict[str, Any]:
    """Renders a trial's manifest.

    Args:
        manifest: The parsed ``trialSpec``.
        references: Trial parameter name -> its ``reference`` (a parameter name or a
            ``${trialSpec...}`` metadata reference).
        assignment: Parameter name -> value chosen for this trial.
        name: The trial's object name (``metadata.name``).
        namespace: Its namespace, or None to leave it unset.
        labels: Labels added to ``metadata.labels`` (experiment and trial identity).
        typed: Substitute as Katib does in a ConfigMap template's text (see :func:`substitute`).

    Raises:
        TemplateError: A reference names no parameter, label or annotation.
    """
    rendered = copy.deepcopy(dict(manifest))
    metadata = dict(rendered.get("metadata") or {})
    metadata["name"] = name
    if namespace is not None:
        metadata["namespace"] = namespace
    if labels:
        metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    rendered["metadata"] = metadata
    values = {
        parameter: _resolve(reference, assignment, rendered) for parameter, reference in references.items()
    }
    result = substitute(rendered, values, typed=typed)
    # Identity fields are the runner's, never a parameter's.
    result["metadata"]["name"] = name
    if namespace is not None:
        result["metadata"]["namespace"] = namespace
    return result  # type: ignore[no-any-return]


def _resolve(reference: str, assignment: Mapping[str, Any], manifest: Mapping[str, Any]) -> str:
    meta = meta_reference(reference)
    if meta is None:
        if reference not in assignment:
            raise TemplateError(f"trial parameter reference {reference!r} names no assigned parameter")
        return format_value(assignment[reference])
    key, index = meta
    metadata = manifest.get("metadata") or {}
    if key == "Name":
        return str(metadata.get("name", ""))
    if key == "Namespace":
        return str(metadata.get("namespace", ""))
    if key == "Kind":
        return str(manifest.get("kind", ""))
    if key == "APIVersion":
        return str(manifest.get("apiVersion", ""))
    table = metadata.get("labels" if key == "Labels" else "annotations") or {}
    if index not in table:
        raise TemplateError(f"{reference}: the trial template has no {key.lower()[:-1]} {index!r}")
    return str(table[index])
