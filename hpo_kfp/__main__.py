"""``python -m hpo_kfp`` runs the command line."""

from __future__ import annotations

import sys

from hpo_kfp.cli import main

sys.exit(main())
