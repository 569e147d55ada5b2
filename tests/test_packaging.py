"""What the package installs and loads: only ``hpo_kfp`` at the top, no KFP code on ``import
hpo_kfp``, and a pipeline built beside a user's own ``pipelines``/``components`` packages.
(The module graph itself is checked in test_imports.py.)"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[1]
_PACKAGE = _ROOT / "hpo_kfp"


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
            hpo_kfp.tune({str(example)!r}, settings=hpo_kfp.StepSettings(store="sqlite:////x.sqlite"))

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
    # The report page's charting library, with its licence and notice (hatch_build.py).
    static = "hpo_kfp/reports/static/"
    assert {f"{static}echarts.min.js", f"{static}ECHARTS-LICENSE", f"{static}ECHARTS-NOTICE"} <= set(names)
    library = zipfile.ZipFile(wheel).read(f"{static}echarts.min.js")
    assert library == (_PACKAGE / "reports" / "static" / "echarts.min.js").read_bytes()
    metadata = zipfile.ZipFile(wheel).read(f"{wheel.name.split('-')[0]}-0.1.0.dist-info/METADATA").decode()
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert "Requires-Dist: kfp<3,>=2.17.0" in requires
    core = [line for line in requires if "extra ==" not in line]
    assert not any(name in line for line in core for name in ("matplotlib", "torch"))


def test_the_build_step_keeps_a_verified_library_and_replaces_a_changed_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hatch_build.py downloads nothing when the files match the digests it recorded, and
    replaces a file that was changed since (from the registry's tarball, checked again)."""
    spec = importlib.util.spec_from_file_location("hatch_build_under_test", _ROOT / "hatch_build.py")
    assert spec is not None and spec.loader is not None
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    installed = _PACKAGE / "reports" / "static"
    folder = tmp_path / "static"
    shutil.copytree(installed, folder)
    tarball = io.BytesIO()
    with tarfile.open(fileobj=tarball, mode="w:gz") as archive:
        for member, name in hook.FILES.items():
            data = (installed / name).read_bytes()
            entry = tarfile.TarInfo(member)
            entry.size = len(data)
            archive.addfile(entry, io.BytesIO(data))
    downloads = []

    def registry(url: str, timeout: float) -> io.BytesIO:
        downloads.append(url)
        return io.BytesIO(tarball.getvalue())

    monkeypatch.setattr(hook.urllib.request, "urlopen", registry)
    hook.fetch_echarts(folder)
    assert downloads == []  # every file matched
    (folder / "echarts.min.js").write_text("alert('not echarts')")
    with pytest.raises(RuntimeError, match="does not match the pinned integrity"):
        hook.fetch_echarts(folder)  # this tarball is not the registry's: refused
    assert downloads == [hook.TARBALL]
    monkeypatch.setattr(
        hook, "INTEGRITY", "sha512-" + base64.b64encode(hashlib.sha512(tarball.getvalue()).digest()).decode()
    )
    hook.fetch_echarts(folder)
    assert (folder / "echarts.min.js").read_bytes() == (installed / "echarts.min.js").read_bytes()
