"""The step image's Dockerfile: its pinned dependencies come from the lock file, exported where
the build exports them — a folder holding only what the Dockerfile copies before the export —
and hold what the steps need (the runner's schema check included)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (_ROOT / "Dockerfile").read_text(encoding="utf-8"))
    found = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest))
    return found


def _export_command() -> list[str]:
    for word, rest in _instructions():
        if word == "RUN" and rest.startswith("uv export"):
            return shlex.split(rest.split("&&")[0])
    raise AssertionError("the Dockerfile exports no requirements with uv")


def test_the_image_exports_its_requirements_from_the_lock_with_only_what_it_copied(tmp_path: Path) -> None:
    copied_before = []
    for word, rest in _instructions():
        if word == "RUN" and rest.startswith("uv export"):
            break
        if word == "COPY" and not rest.startswith("--from"):
            copied_before += shlex.split(rest)[:-1]
    assert copied_before == ["pyproject.toml", "uv.lock", "README.md"]
    for name in copied_before:
        shutil.copy(_ROOT / name, tmp_path / name)
    command = _export_command()
    assert "--frozen" in command and "--no-dev" in command
    out = tmp_path / "requirements.txt"
    command[command.index("-o") + 1] = str(out)
    uv = shutil.which("uv")
    assert uv is not None, "the README's commands install uv"
    done = subprocess.run([uv, *command[1:]], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    pinned = {
        line.split("==")[0]: line.split("==")[1].split()[0]
        for line in out.read_text().splitlines()
        if "==" in line and not line.startswith(" ")
    }
    lock = (_ROOT / "uv.lock").read_text(encoding="utf-8")
    for name in (
        "kfp",
        "optuna",
        "sqlalchemy",
        "kubernetes",
        "kubernetes-validate",
        "psycopg",
        "pymysql",
        "matplotlib",
        "fastapi",
        "scikit-learn",
        "ml-metadata",
    ):
        assert name in pinned, f"the image lacks {name}"
        assert f'name = "{name}"\nversion = "{pinned[name]}"' in lock, f"{name} is not the locked version"
    assert "hpo-kfp" not in pinned  # the project itself is installed from its source, after
