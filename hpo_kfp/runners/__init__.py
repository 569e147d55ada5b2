"""Trial runners: the registry, and the contract every runner keeps (:mod:`hpo_kfp.runners.base`).

* ``local`` (:class:`~hpo_kfp.runners.local.LocalRunner`): the trial's primary container's
  command as a process on this machine;
* ``kubernetes`` (:class:`~hpo_kfp.runners.kubernetes.KubernetesRunner`): the trial's object
  (a Job, TFJob, PyTorchJob, TrainJob, Argo Workflow, any kind) on a cluster.

Runners are looked up here by the name the step settings give (``settings.runner``) with
:func:`get_runner`; nothing else compares runner names. The Kubernetes runner is imported
only when asked for: a local run never loads the Kubernetes client.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from types import MappingProxyType

from hpo_kfp.runners.base import OutputWatch, RunnerOptions, TrialFiles, TrialRunner
from hpo_kfp.runners.local import LocalRunner

__all__ = ["RUNNERS", "OutputWatch", "RunnerOptions", "TrialFiles", "TrialRunner", "get_runner"]


def _kubernetes(options: RunnerOptions) -> TrialRunner:
    from hpo_kfp.runners.kubernetes import KubernetesRunner, KubernetesSettings

    settings = KubernetesSettings(
        namespace=options.namespace or None,
        deadline_seconds=float(options.deadline_seconds) if options.deadline_seconds else None,
    )
    if options.unschedulable_seconds:
        settings = replace(settings, unschedulable_seconds=float(options.unschedulable_seconds))
    if options.start_grace_seconds:
        settings = replace(settings, start_grace_seconds=float(options.start_grace_seconds))
    return KubernetesRunner(settings=settings)


RUNNERS: Mapping[str, Callable[[RunnerOptions], TrialRunner]] = MappingProxyType(
    {"local": LocalRunner, "kubernetes": _kubernetes}
)
"""Every runner, by name: a factory of runners made with the given options."""


def get_runner(name: str, options: RunnerOptions | None = None) -> TrialRunner:
    """A runner of kind ``name``; making one connects to nothing (the Kubernetes runner
    connects when it first runs a trial).

    Raises:
        KeyError: No runner of that name (the step settings refuse such a name first).
    """
    return RUNNERS[name](options or RunnerOptions())
