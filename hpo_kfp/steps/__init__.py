"""What each pipeline step does, as plain functions on strings and file paths.

The KFP components in :mod:`hpo_kfp.pipeline.components` are thin shims over these: they pass their
parameters and artifact paths in and write the return values out. Nothing here imports KFP,
so every step is tested directly.
"""

from __future__ import annotations

from hpo_kfp.steps.collect_metrics import collect_metrics_step
from hpo_kfp.steps.decide import decide_step
from hpo_kfp.steps.run_trial import run_trial_step
from hpo_kfp.steps.settings import StepSettings
from hpo_kfp.steps.suggest import suggest_step

__all__ = ["StepSettings", "collect_metrics_step", "decide_step", "run_trial_step", "suggest_step"]
