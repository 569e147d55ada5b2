"""The ``hpo-kfp`` command line."""

from __future__ import annotations

from hpo_kfp.cli._main import main

__all__ = ["main"]
