"""The ``hpo-kfp`` command line."""

from __future__ import annotations

from hpo_kfp.cli._main import console_main, main

__all__ = ["console_main", "main"]
