"""Tracking experiments and trials in a metadata store, behind one small interface.

KFP plans to move away from ML Metadata; everything hpo-kfp needs from a store goes
through :class:`Tracker`, and :class:`~hpo_kfp.tracking.mlmd.MlmdTracker` is the one
implementation today.
"""

from __future__ import annotations

from hpo_kfp.tracking.base import (
    ExperimentSummary,
    Tracker,
    TrackingTarget,
    check_store_file,
    open_tracker,
    resolve_target,
    resolve_type_prefix,
)

__all__ = [
    "ExperimentSummary",
    "Tracker",
    "check_store_file",
    "TrackingTarget",
    "open_tracker",
    "resolve_target",
    "resolve_type_prefix",
]
