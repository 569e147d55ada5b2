"""The package's module graph: no import cycle, and each layer imports only those below it.

The graph is read from the source (``ast``), so a test sees every import a module can make:
at its top, inside functions and methods, and of a submodule's parent packages (importing
``hpo_kfp.store.sql`` runs ``hpo_kfp/store/__init__.py`` first). Imports under ``if
TYPE_CHECKING:`` are left out: they never run (mypy reads them for annotations only).

The layers, bottom up (README's "Layout"): the model (errors, history, spec, space, the
algorithm registry the spec reader checks settings with); the extension points (store,
runners, collectors, algorithms); the policy (claim, suggest, decide, early stopping,
rounds); the steps; the KFP layer (``hpo_kfp.pipeline``); the apps (CLI, service,
submit/schedule, migrate); the reports, which the report step and the apps use, sit
between the policy and the steps.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[1]
_PACKAGE = _ROOT / "hpo_kfp"

_POLICY = ("hpo_kfp.claim", "hpo_kfp.suggest", "hpo_kfp.decide", "hpo_kfp.rounds", "hpo_kfp.early_stopping")
_STEPS = ("hpo_kfp.steps",)
_KFP = ("hpo_kfp.pipeline",)
_APPS = ("hpo_kfp.cli", "hpo_kfp.service", "hpo_kfp.submit", "hpo_kfp.migrate", "hpo_kfp.__main__")

FORBIDDEN: dict[str, tuple[str, ...]] = {
    # A store persists: the claim decides, above it.
    "hpo_kfp.store": (*_POLICY, "hpo_kfp.algorithms", *_STEPS, *_KFP, *_APPS),
    "hpo_kfp.runners": (*_POLICY, *_STEPS, *_KFP, *_APPS),
    "hpo_kfp.collectors": (*_POLICY, "hpo_kfp.runners", *_STEPS, *_KFP, *_APPS),
    "hpo_kfp.algorithms": (*_POLICY, "hpo_kfp.store", *_STEPS, *_KFP, *_APPS),
    "hpo_kfp.spec": (*_POLICY, "hpo_kfp.store", "hpo_kfp.runners", *_STEPS, *_KFP, *_APPS),
    **{policy: (*_STEPS, *_KFP, *_APPS) for policy in _POLICY},
    "hpo_kfp.reports": (*_STEPS, *_KFP, *_APPS),
    "hpo_kfp.steps": (*_KFP, *_APPS),
    "hpo_kfp.pipeline": _APPS,
}
"""Modules (a module and everything under it) and what they must not import."""

KFP_ALLOWED = ("hpo_kfp.compat", *_KFP, *_APPS)
"""Where ``kfp`` may be imported: the rest runs in steps and trial images without it."""


def _module(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", "")
            if name == "TYPE_CHECKING":
                skipped |= {id(inner) for statement in node.body for inner in ast.walk(statement)}
    return skipped


def _imported_names(path: Path, module: str) -> Iterator[tuple[int, str]]:
    """Every dotted name ``path`` imports (a module, or ``module.attribute``), with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    skipped = _type_checking_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def module_graph(root: Path) -> dict[str, dict[str, int]]:
    """``{module: {imported module: line}}`` for every module of ``root/hpo_kfp``."""
    modules = {_module(p, root): p for p in sorted((root / "hpo_kfp").rglob("*.py"))}
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        edges: dict[str, int] = {}
        for line, imported in _imported_names(path, module):
            target = imported
            while target and target not in modules:
                target = target.rpartition(".")[0]  # `from a.b import c`: c may be a function
            while target and target != "hpo_kfp":
                if target != module and not _under(module, target):  # its own parents: loading
                    edges.setdefault(target, line)
                target = target.rpartition(".")[0]
        graph[module] = edges
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for node in sorted(graph):
            if node not in index:
                visit(node)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(found)


def violations(root: Path) -> list[str]:
    """Imports that break :data:`FORBIDDEN` or :data:`KFP_ALLOWED`."""
    problems = []
    for module, edges in sorted(module_graph(root).items()):
        for rule, banned in FORBIDDEN.items():
            if not _under(module, rule):
                continue
            for target, line in sorted(edges.items()):
                if any(_under(target, b) and not _under(module, b) for b in banned):
                    problems.append(f"{module}:{line} imports {target}")
    for path in sorted((root / "hpo_kfp").rglob("*.py")):
        module = _module(path, root)
        if module == "hpo_kfp" or any(_under(module, allowed) for allowed in KFP_ALLOWED):
            continue
        for line, name in _imported_names(path, module):
            if name.split(".")[0] == "kfp":
                problems.append(f"{module}:{line} imports kfp")
    return sorted(set(problems))


def test_no_module_imports_itself_through_others() -> None:
    assert cycles(module_graph(_ROOT)) == []


def test_each_layer_imports_only_those_below_it() -> None:
    assert violations(_ROOT) == []


def _fake_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "hpo_kfp" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_check_finds_a_cycle_through_a_function_and_a_parent_package(tmp_path: Path) -> None:
    root = _fake_package(
        tmp_path,
        {
            "__init__.py": "",
            "spec/__init__.py": "from hpo_kfp.spec.reader import read\n",
            "spec/reader.py": "def read():\n    from hpo_kfp.algorithms import get\n",
            "algorithms.py": "from hpo_kfp.spec.types import Experiment\n",
            "spec/types.py": "",
            "history.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from hpo_kfp.spec import x\n",
        },
    )
    assert cycles(module_graph(root)) == [["hpo_kfp.algorithms", "hpo_kfp.spec", "hpo_kfp.spec.reader"]]


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"store/sql.py": "from hpo_kfp.suggest import suggest\n"},
            "hpo_kfp.store.sql:1 imports hpo_kfp.suggest",
        ),
        (
            {"store/base.py": "def f():\n    import hpo_kfp.decide\n"},
            "hpo_kfp.store.base:2 imports hpo_kfp.decide",
        ),
        (
            {"store/mlmd.py": "from hpo_kfp import algorithms\n"},
            "hpo_kfp.store.mlmd:1 imports hpo_kfp.algorithms",
        ),
        ({"store/x.py": "from hpo_kfp.rounds import needed\n"}, "hpo_kfp.store.x:1 imports hpo_kfp.rounds"),
        ({"history.py": "import kfp.dsl\n"}, "hpo_kfp.history:1 imports kfp"),
        ({"steps/a.py": "from hpo_kfp.pipeline import loop\n"}, "hpo_kfp.steps.a:1 imports hpo_kfp.pipeline"),
    ],
    ids=["store-suggest", "store-decide-in-function", "store-algorithms", "store-rounds", "kfp", "upward"],
)
def test_the_check_finds_a_forbidden_import(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    stubs = {"__init__.py": "", "suggest.py": "", "decide.py": "", "algorithms.py": "", "rounds.py": ""}
    stubs |= {
        "pipeline/__init__.py": "",
        "pipeline/loop.py": "",
        "store/__init__.py": "",
        "steps/__init__.py": "",
    }
    root = _fake_package(tmp_path, {**stubs, **files})
    assert expected in violations(root)
