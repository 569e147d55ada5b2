"""The package's layers: each imports only those below it, and only ``hpo_kfp`` is installed.

compat (private internals of KFP and Optuna, and the errors) <- core (spec, algorithms,
suggest, history, metrics, decide, store, runners, steps, ...) <- the KFP layer
(``hpo_kfp.pipeline``) <- the apps (CLI, submit/schedule). An import anywhere in a module,
inside a function too, counts.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[1]
_PACKAGE = _ROOT / "hpo_kfp"

_LAYERS = ("compat", "core", "kfp", "apps")
_APPS = ("hpo_kfp.cli", "hpo_kfp.submit", "hpo_kfp.__main__", "hpo_kfp.service")


def _module(path: Path) -> str:
    parts = list(path.relative_to(_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> str:
    """The layer a module of hpo_kfp belongs to."""
    if module in ("hpo_kfp.compat", "hpo_kfp.errors"):
        return "compat"
    if module == "hpo_kfp.pipeline" or module.startswith("hpo_kfp.pipeline."):
        return "kfp"
    if any(module == app or module.startswith(app + ".") for app in _APPS):
        return "apps"
    return "core"


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, absolute, with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module(path) if path.name == "__init__.py" else _module(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            # `from hpo_kfp import pipeline` imports the subpackage itself.
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if base == "hpo_kfp"]
    return found


def _violations() -> list[str]:
    problems = []
    for path in sorted(_PACKAGE.rglob("*.py")):
        module = _module(path)
        if module == "hpo_kfp":
            continue  # the façade: checked by test_importing_the_package_loads_no_kfp_code
        own = _LAYERS.index(layer(module))
        for line, imported in _imports(path):
            if imported.split(".")[0] == "kfp" and own < _LAYERS.index("kfp") and layer(module) != "compat":
                problems.append(f"{path.relative_to(_ROOT)}:{line}: {layer(module)} imports kfp")
            if not imported.startswith("hpo_kfp.") or imported == "hpo_kfp":
                continue
            theirs = _LAYERS.index(layer(imported))
            if theirs > own:
                problems.append(
                    f"{path.relative_to(_ROOT)}:{line}: {layer(module)} module {module} imports "
                    f"{layer(imported)} module {imported}"
                )
    return problems


def test_no_module_imports_a_higher_layer() -> None:
    assert _violations() == []


def test_the_check_catches_an_upward_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "hpo_kfp"
    (fake / "pipeline").mkdir(parents=True)
    (fake / "pipeline" / "__init__.py").write_text("")
    (fake / "decide.py").write_text("def f():\n    from hpo_kfp.pipeline import loop\n")
    (fake / "steps.py").write_text("import kfp\n")
    monkeypatch.setattr(sys.modules[__name__], "_ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "_PACKAGE", fake)
    assert _violations() == [
        "hpo_kfp/decide.py:2: core module hpo_kfp.decide imports kfp module hpo_kfp.pipeline",
        "hpo_kfp/steps.py:1: core imports kfp",
    ]


def test_layers_are_assigned_as_documented() -> None:
    assert [layer(m) for m in ("hpo_kfp.compat", "hpo_kfp.steps.suggest", "hpo_kfp.pipeline.tune")] == [
        "compat",
        "core",
        "kfp",
    ]
    assert layer("hpo_kfp.cli._run") == layer("hpo_kfp.submit") == "apps"


def _python(code: str, cwd: Path, path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ}
    if path is not None:
        env["PYTHONPATH"] = str(path)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_importing_the_package_loads_no_kfp_code(tmp_path: Path) -> None:
    result = _python(
        """
        import hpo_kfp, sys
        print(sorted(m for m in sys.modules if m.split('.')[0] in ('components', 'pipelines', 'kfp')))
        print(sorted(m for m in sys.modules if m.startswith('hpo_kfp.pipeline')))
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["[]", "[]"]


def test_tune_builds_next_to_the_users_own_pipelines_and_components_packages(tmp_path: Path) -> None:
    """A KFP user's repository often has packages named pipelines/ and components/ on sys.path."""
    for name in ("pipelines", "components"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("MINE = True\n")
    example = _ROOT / "examples" / "quadratic" / "experiment.yaml"
    result = _python(
        f"""
        import pipelines, components
        assert pipelines.MINE and components.MINE
        from kfp import compiler, dsl
        import hpo_kfp

        @dsl.pipeline(name="mine")
        def mine():
            hpo_kfp.tune({str(example)!r}, settings=hpo_kfp.StepSettings(store="sqlite:////x.sqlite"), slots=2)

        compiler.Compiler().compile(mine, "mine.yaml")
        print("built")
        """,
        tmp_path,
        path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "built"
    assert (tmp_path / "mine.yaml").stat().st_size > 0


def test_the_wheel_installs_hpo_kfp_and_nothing_else_at_the_top(tmp_path: Path) -> None:
    import shutil
    import zipfile

    uv = shutil.which("uv")
    assert uv is not None, "the README's commands install uv"
    built = subprocess.run(
        [uv, "build", "--wheel", "--out-dir", str(tmp_path), str(_ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {
        "hpo_kfp",
        wheel.name.split("-")[0] + "-0.1.0.dist-info",
    }
    assert "hpo_kfp/pipeline/components.py" in names and "hpo_kfp/compat.py" in names
    metadata = zipfile.ZipFile(wheel).read(f"{wheel.name.split('-')[0]}-0.1.0.dist-info/METADATA").decode()
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert "Requires-Dist: kfp<3,>=2.17.0" in requires
    core = [line for line in requires if "extra ==" not in line]
    assert not any(name in line for line in core for name in ("matplotlib", "torch"))
