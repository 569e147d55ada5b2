"""``python -m hpo_kfp`` runs the command line."""

from __future__ import annotations

from hpo_kfp.cli import console_main

console_main()
