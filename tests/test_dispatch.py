"""Dispatch happens in one registry per extension point, never by comparing kind names.

A scan of the package's source finds comparisons of a metrics collector's kind or of a
runner's name with a literal (``collector.kind == "File"``, ``settings.runner != "local"``,
``"Push" in kinds``) anywhere but in the registry's own package and, for collector kinds,
in the spec reader that parses them from the document. (Algorithm names have the same scan
in tests/algorithms/test_contract.py.)
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest

from hpo_kfp.collectors import COLLECTORS
from hpo_kfp.runners import RUNNERS

_PACKAGE = Path(__file__).resolve().parents[1] / "hpo_kfp"


def _literals(node: ast.expr) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return {s for element in node.elts for s in _literals(element)}
    return set()


def _is_collector_kind(node: ast.expr) -> bool:
    """``x.kind`` where x names a collector (``collector``, ``experiment.metrics_collector``)."""
    if not (isinstance(node, ast.Attribute) and node.attr == "kind"):
        return False
    owner = node.value
    name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
    return "collector" in name


def _is_runner_name(node: ast.expr) -> bool:
    """``x.runner`` or a variable named ``runner``/``runner_name``."""
    if isinstance(node, ast.Attribute):
        return node.attr in ("runner", "runner_name")
    return isinstance(node, ast.Name) and node.id in ("runner", "runner_name")


def comparisons(source: str, names: set[str], subject: Callable[[ast.expr], bool]) -> list[int]:
    """Lines comparing ``subject`` (a predicate on an expression) with a literal, or one of
    ``names`` with anything."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            literals = set().union(*(_literals(o) for o in operands))
            if (literals and any(subject(o) for o in operands)) or (literals & names):
                found.append(node.lineno)
        elif isinstance(node, ast.Match) and subject(node.subject):
            found.append(node.lineno)
    return found


_KINDS = set(COLLECTORS)
_RUNNERS = set(RUNNERS)


@pytest.mark.parametrize(
    ("source", "names", "subject"),
    [
        ('if experiment.metrics_collector.kind == "File": pass', _KINDS, _is_collector_kind),
        ('x = collector.kind in ("StdOut", "TrainJobStatus")', _KINDS, _is_collector_kind),
        ('if kind != "Push": pass', _KINDS, _is_collector_kind),
        ("match spec.collector.kind:\n    case _: pass", _KINDS, _is_collector_kind),
        ('if settings.runner == "kubernetes": pass', _RUNNERS, _is_runner_name),
        ('if args.runner != "local": pass', _RUNNERS, _is_runner_name),
        ('local = name == "local"', _RUNNERS, _is_runner_name),
    ],
    ids=["kind-eq", "kind-in", "bare-kind-literal", "kind-match", "runner-eq", "runner-ne", "bare-runner"],
)
def test_the_scan_finds_a_comparison(source: str, names: set[str], subject: object) -> None:
    assert comparisons(source, names, subject) == [1]


@pytest.mark.parametrize(
    "source",
    [
        "collector = collector_for(experiment)",
        'print(f"collector kind {collector.kind}")',
        'if parameter.type in ("int", "double"): pass',
        "runner = get_runner(settings.runner)",
    ],
    ids=["lookup", "format", "other-literals", "runner-lookup"],
)
def test_the_scan_lets_other_uses_pass(source: str) -> None:
    assert comparisons(source, _KINDS, _is_collector_kind) == []
    assert comparisons(source, _RUNNERS, _is_runner_name) == []


def _found(names: set[str], subject: object, allowed: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(_PACKAGE.parent)}:{line}"
        for path in sorted(_PACKAGE.rglob("*.py"))
        if not any(str(path.relative_to(_PACKAGE)).startswith(a) for a in allowed)
        for line in comparisons(path.read_text(encoding="utf-8"), names, subject)
    ]


def test_no_module_outside_the_registry_compares_collector_kinds() -> None:
    found = _found(_KINDS, _is_collector_kind, ("collectors/", "spec/collector.py"))
    assert found == [], "dispatch through hpo_kfp.collectors.collector_for instead"


def test_no_module_outside_the_registry_compares_runner_names() -> None:
    found = _found(_RUNNERS, _is_runner_name, ("runners/__init__.py",))
    assert found == [], "dispatch through hpo_kfp.runners.get_runner instead"
