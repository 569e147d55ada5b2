"""The Kubernetes runner: a trial as any Kubernetes object, watched to its end.

For each trial it renders the template, labels the object and its pod templates with the
experiment and trial, gives it an ownerReference to the step's own pod (so the garbage
collector removes it if the step's pod dies), and creates it with the dynamic client in the
step's namespace. A retried step that finds its trial's object already there (409) adopts it
when the object is live and carries the same experiment and trial labels and assignment
fingerprint. It then watches the object until Katib's failure or success condition holds, a
pod cannot start (image pull, configuration, unschedulable beyond a grace period), or the
deadline passes, surviving dropped and silent watches, 410 Gone and transient API errors with
client-side timeouts, bounded retries and backoff. Metrics come from the primary pod (see
:func:`_primary_pod`): its container log, and the termination message that carries a metrics
file (see :mod:`hpo_kfp.runners._k8s_manifest`). The object is deleted on every way out —
errors and SIGTERM included; ``retain`` keeps only an object that reached its own end.
"""

from __future__ import annotations

import datetime
import functools
import json
import logging
import math
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from hpo_kfp.collectors import collector_for
from hpo_kfp.containers import PrimaryContainer, find_primary
from hpo_kfp.errors import RunnerError, SpecError
from hpo_kfp.history import TrialRecord, TrialRun, now
from hpo_kfp.render import render
from hpo_kfp.runners._k8s_manifest import (
    ASSIGNMENT_ANNOTATION,
    EXPERIMENT_LABEL,
    TRIAL_LABEL,
    assignment_digest,
    identity_labels,
    prepare_manifest,
    validate_builtin,
)
from hpo_kfp.runners._pod_log import LogFollower
from hpo_kfp.runners.base import OutputWatch, TrialFiles
from hpo_kfp.runners.conditions import JobState, job_state
from hpo_kfp.spec import Experiment
from hpo_kfp.spec.template import default_conditions

__all__ = [
    "KubernetesRunner",
    "KubernetesSettings",
    "TrialOutput",
    "check_cluster_support",
    "environment_client",
    "step_namespace",
]

_T = TypeVar("_T")
_SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_TRANSIENT = {429, 500, 502, 503, 504}
_LOG = logging.getLogger(__name__)
_DEFAULT_DEADLINE = 24 * 3600.0
_WATCH_READ_MARGIN = 5.0  # a watch's read timeout beyond its server-side timeoutSeconds
# Waiting reasons of a container that will not start without someone changing something...
_FATAL_WAITING = frozenset({"InvalidImageName"})
# ... and ones that may pass (a registry's hiccup, a Secret created a moment later): they fail
# the trial once a container has been in them for ``start_grace_seconds``.
_STUCK_WAITING = frozenset({"ErrImagePull", "ImagePullBackOff", "CreateContainerConfigError"})
_MESSAGE_FILE_BYTES = 4096  # the kubelet keeps the last 4096 bytes of a termination-message file
_POD_MESSAGE_BYTES = 12 * 1024  # ... and a pod's status the first 12 KiB / (containers + init) of each
_JOBSET_NAME = "jobset.sigs.k8s.io/jobset-name"
_JOBSET_JOB_INDEX = "jobset.sigs.k8s.io/job-index"
_COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
_JOB_ROLE = "training.kubeflow.org/job-role"
_REPLICATED_JOB = "jobset.sigs.k8s.io/replicatedjob-name"
_BATCH_JOB_NAME = "job-name"  # set by the Job controller on its pods (all Kubernetes versions)


@dataclass(frozen=True, kw_only=True)
class KubernetesSettings:
    """How the runner talks to the cluster."""

    namespace: str | None = None
    """Where trials run; None: the step's own namespace (service-account file)."""
    deadline_seconds: float | None = None
    """A trial still running after this long is stopped and recorded as failed; None: the
    object's own ``activeDeadlineSeconds`` (``spec`` or ``spec.runPolicy``) and
    ``deadline_grace_seconds``, else 24 h."""
    watch_seconds: int = 60
    """Length of one watch request before it is renewed."""
    max_retries: int = 6
    """Consecutive transient errors tolerated before the runner gives up."""
    backoff_seconds: float = 0.5
    """First wait after a transient error; doubles each time, at most 16 s."""
    check_seconds: float = 2.0
    """How often a running trial's log is read (only what is new since the last read), for its
    metrics and the early-stopping rule: the kubelet keeps only the newest log file of a
    container and none of a deleted pod, so what is not read while the trial runs may be lost."""
    log_chunk_bytes: int = 1 << 20
    """``limitBytes`` of one log read; a longer line is cut there."""
    deadline_grace_seconds: float = 60.0
    """Past the object's own ``activeDeadlineSeconds``, time for its controller to end it."""
    request_timeout_seconds: float = 30.0
    """Client-side timeout of every API request (connect, and each read); a watch reads for
    its window and 5 s more."""
    pod_check_seconds: float = 10.0
    """How often the trial's pods are looked at for a container that cannot start (the
    shorter of this and ``check_seconds`` is how often pods and log are looked at while
    something changes)."""
    idle_check_seconds: float = 30.0
    """The longest time between two looks at a running trial's pods and log while nothing
    changes: each look that finds nothing new doubles the wait, up to this (a watch on the
    trial's object reports its end at once either way)."""
    unschedulable_seconds: float = 300.0
    """How long a pod may stay unschedulable before the trial fails (autoscalers need time)."""
    start_grace_seconds: float = 60.0
    """How long a container may keep failing to pull its image or to be configured
    (``ErrImagePull``, ``ImagePullBackOff``, ``CreateContainerConfigError``) before the trial
    fails; an invalid image name fails it at once."""
    kubernetes_version: str | None = "1.31"
    """The Kubernetes version whose schemas a built-in trial kind (Job, ...) is checked against
    before it is created, offline (with the ``validate`` extra installed); None: no check.
    1.31: the newest version Kubeflow 1.10 is tested on; a newer cluster accepts its manifests."""


@dataclass(frozen=True, kw_only=True)
class TrialOutput:
    """A finished trial run and the text its metrics are read from."""

    run: TrialRun
    log: str
    """The primary container's log."""
    metrics: str
    """The metrics file's content (File and Push collectors), from the termination message."""


class _Terminated(BaseException):
    """The step received SIGTERM (the pipeline run was cancelled)."""


class _SigtermGuard:
    """While entered, turns the first SIGTERM into :class:`_Terminated` (swallowed on exit);
    later ones are only noted, so that cleanup finishes before :meth:`restore`."""

    def __init__(self) -> None:
        self.received = False
        self._armed = False
        self._installed = False
        self._previous: Any = signal.SIG_DFL

    def __enter__(self) -> _SigtermGuard:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
            self._installed = self._armed = True
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = True
        if self._armed:
            self._armed = False
            raise _Terminated

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: Any) -> bool:
        self._armed = False
        return kind is _Terminated

    def restore(self) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous if self._previous is not None else signal.SIG_DFL)
            self._installed = False


class _TimedApiClient:
    """The caller's ``ApiClient`` with a client-side timeout on every request that sets none
    (discovery included): without one, a half-open connection blocks forever."""

    def __init__(self, api_client: Any, seconds: float) -> None:
        self._client = api_client
        self._timeout = (seconds, seconds)  # (connect, read); a bare float is ignored by the client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def call_api(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("_request_timeout") is None:
            kwargs["_request_timeout"] = self._timeout
        return self._client.call_api(*args, **kwargs)


@dataclass(frozen=True)
class _Pods:
    """How to find a trial's pods."""

    selector: str
    """Label selector of the primary pod's candidates."""
    trial_selector: str
    """Label selector of all the trial's pods."""
    container: str
    """The primary container's name in the pod."""


class _EarlyStopped(Exception):
    """The early-stopping rule fired while the trial ran."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# The kubelet's 400s that mean "not yet" rather than "wrong request".
_LOG_NOT_YET = re.compile(r"is waiting to start|previous terminated container .* not found")
_DELETED = JobState("Failed", "Deleted", "the trial's object was deleted before it ended")


class _Looks:
    """The looks at a running trial's pods and log, between watch events.

    A look lists the trial's pods (one request) and fails the trial if one cannot start
    (:func:`_pod_failure`), then reads what the primary container logged since the last look
    (one request: :class:`LogFollower`) and feeds the new lines to the early-stopping rule.
    Looks come every ``min(check_seconds, pod_check_seconds)`` while something changes (new
    lines, a pod's new version) and twice as far apart after each that finds nothing new, up
    to ``idle_check_seconds``.

    A look whose requests keep failing for a passing reason (each call already retried with
    backoff) ends the trial as failed after ``max_retries`` looks in a row, naming the call;
    any other error is a :class:`RunnerError`.
    """

    def __init__(
        self,
        runner: KubernetesRunner,
        namespace: str,
        pods: _Pods,
        follower: LogFollower,
        watch: OutputWatch | None,
    ) -> None:
        settings = runner._settings
        self._runner, self._namespace, self._pods = runner, namespace, pods
        self._follower, self._watch, self._settings = follower, watch, settings
        self._base = min(settings.check_seconds, settings.pod_check_seconds)
        self._interval = self._base
        self._due = time.monotonic() + self._base  # a pod takes a moment to appear
        self._first_seen: dict[str, float] = {}
        self._seen: tuple[tuple[str, str], ...] = ()
        self._failures = 0
        # The primary pod's selector holds the trial's own: pick it from one listing.
        self._one_list = set(pods.trial_selector.split(",")) <= set(pods.selector.split(","))
        self.since = ""
        """The trial object's ``creationTimestamp``: older pods are a previous attempt's."""

    def until_due(self) -> float:
        return max(self._due - time.monotonic(), 0.0)

    def look(self) -> JobState | None:
        """Looks if one is due: a failed state when a pod cannot start, else None.

        Raises:
            _EarlyStopped: The rule said to stop.
            _LogUnreadable: The pods or log stayed unreadable.
        """
        from kubernetes.client.exceptions import ApiException

        if time.monotonic() < self._due:
            return None
        runner, namespace, pods = self._runner, self._namespace, self._pods
        try:
            listed = _of_this_object(runner._list_pods(namespace, pods.trial_selector), self.since)
            failed = _pod_failure(listed, self._first_seen, self._settings)
            if failed is not None:
                return failed
            candidates = (
                [p for p in listed if _has_labels(p, pods.selector)]
                if self._one_list
                else _of_this_object(runner._list_pods(namespace, pods.selector), self.since)
            )
            fresh = self._follower.poll(_primary_pod(candidates, pods.container))
        except (ApiException, RunnerError) as error:
            what = f"reading the log of the pods {pods.selector}: {_described(error)}"
            if isinstance(error, ApiException) and error.status not in _TRANSIENT:
                raise RunnerError(what) from None
            self._failures += 1
            if self._failures > self._settings.max_retries:
                raise _LogUnreadable(f"{what} (gave up after {self._failures} failed reads)") from None
            _LOG.warning("%s; trying again", what)
            self._due = time.monotonic() + self._base
            return None
        self._failures = 0
        seen = tuple(sorted(((p.get("metadata") or {}).get("name", ""), _version(p)) for p in listed))
        changed = bool(fresh) or seen != self._seen
        self._seen = seen
        self._interval = self._base if changed else min(self._interval * 2, self._settings.idle_check_seconds)
        self._due = time.monotonic() + self._interval
        if self._watch is not None and fresh:
            reason = self._watch.feed("\n".join(fresh) + "\n", "")
            if reason is not None:
                raise _EarlyStopped(reason)
        return None


def _of_this_object(pods: list[dict[str, Any]], since: str) -> list[dict[str, Any]]:
    """The pods made no earlier than the trial's object (``since``, its creationTimestamp).

    A step that runs again recreates a trial's object under the same name while the previous
    object's pods may still be Terminating (30 s by default) with the same labels; their log
    and state are not this trial's. Times have whole seconds, so a pod made in the same second
    as the object passes (:func:`_primary_pod` still prefers pods not being deleted).
    """
    if not since:
        return pods
    return [p for p in pods if str((p.get("metadata") or {}).get("creationTimestamp") or since) >= since]


def _creation_timestamp(obj: Any) -> str:
    """``metadata.creationTimestamp`` of what a create returned ("" if it has none)."""
    raw = obj.to_dict() if hasattr(obj, "to_dict") else obj
    metadata = raw.get("metadata") if isinstance(raw, Mapping) else None
    return str((metadata or {}).get("creationTimestamp") or "") if isinstance(metadata, Mapping) else ""


def _has_labels(pod: Mapping[str, Any], selector: str) -> bool:
    """Whether ``pod`` carries every ``key=value`` of an equality-based label ``selector``."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return all(labels.get(key) == value for key, _, value in (p.partition("=") for p in selector.split(",")))


def _version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class _LogUnreadable(Exception):
    """The primary container's log stayed unreadable while the trial ran (its reason names the call)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_cluster_support(experiment: Experiment) -> None:
    """Refuses what the Kubernetes runner cannot do, before a pipeline is built for it.

    Raises:
        SpecError: A TensorFlowEvent collector (its files stay in the trial's pod); median
            stopping with a File or Push collector: on a cluster a metrics file reaches the
            runner only when the container ends, too late to stop it.
    """
    collector = collector_for(experiment)
    collector.check_on_cluster(experiment.metrics_collector)
    if experiment.early_stopping is not None and not collector.reads_log:
        raise SpecError(
            "spec.earlyStopping",
            "on a cluster median stopping reads the trial's log while it runs: use the StdOut collector",
            f"collector kind {collector.kind}",
        )


def environment_client() -> Any:
    """An API client with in-cluster credentials, or the local kubeconfig outside a cluster."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


def step_namespace(override: str | None = None, experiment: Experiment | None = None) -> str:
    """The namespace trials are created in: the override, else the step's own, else the spec's."""
    if override:
        return override
    if _SERVICE_ACCOUNT_NAMESPACE.exists():
        return _SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    if experiment is not None and experiment.namespace:
        return experiment.namespace
    return "default"


class KubernetesRunner:
    """The :class:`~hpo_kfp.runners.base.TrialRunner` of trials as Kubernetes objects."""

    name = "kubernetes"

    def __init__(
        self,
        api_client: Any = None,
        settings: KubernetesSettings | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """
        Args:
            api_client: The cluster's API client; None: in-cluster credentials, or the local
                kubeconfig outside a cluster, loaded when the runner first talks to the cluster.
            environ: Where the step's own pod is named (``KFP_POD_NAME``/``POD_NAME``, else
                ``HOSTNAME`` inside a cluster; ``POD_NAMESPACE``; ``KFP_POD_UID``/``POD_UID``),
                for the trial's ownerReference; ``os.environ`` by default.
        """
        self._settings = settings or KubernetesSettings()
        self._api_client = api_client
        self._environ = os.environ if environ is None else environ

    @classmethod
    def from_environment(cls, settings: KubernetesSettings | None = None) -> KubernetesRunner:
        """A runner with in-cluster credentials, or the local kubeconfig outside a cluster."""
        return cls(environment_client(), settings)

    @functools.cached_property
    def _timed(self) -> Any:
        client = self._api_client if self._api_client is not None else environment_client()
        return _TimedApiClient(client, self._settings.request_timeout_seconds)

    @functools.cached_property
    def _core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self._timed)

    @functools.cached_property
    def _dynamic(self) -> Any:
        from kubernetes.dynamic import DynamicClient

        return DynamicClient(self._timed)

    def store_problem(self, url: str) -> str | None:
        """A file store lives in one pod's file system: the other steps of the run (other
        pods, perhaps on other nodes) would each open a file of their own."""
        if url.startswith(("sqlite:", "mlmd+sqlite:")):
            return (
                "must be a store every step's pod reaches on a cluster (postgresql://, mysql:// or "
                "grpc://), not a file in one pod"
            )
        return None

    def check(self, experiment: Experiment) -> None:
        """See :func:`check_cluster_support`."""
        check_cluster_support(experiment)

    def run(
        self,
        experiment: Experiment,
        trial: TrialRecord,
        files: TrialFiles,
        *,
        watch: OutputWatch | None = None,
    ) -> TrialRun:
        """Runs ``trial`` as an object in the settings' namespace (else the step's own, else
        the experiment's) and writes its log and metrics output to ``files``
        (:meth:`run_object`)."""
        namespace = step_namespace(self._settings.namespace, experiment)
        output = self.run_object(experiment, trial, namespace=namespace, watch=watch)
        files.log.write_text(output.log, encoding="utf-8")
        files.metrics.write_text(output.metrics, encoding="utf-8")
        return output.run

    def run_object(
        self, experiment: Experiment, trial: TrialRecord, *, namespace: str, watch: OutputWatch | None = None
    ) -> TrialOutput:
        """Runs ``trial`` to its end; a trial that fails is a result, not an exception.

        Whatever happens after the object is created (an error, SIGTERM, the deadline), the
        object is deleted before this returns or raises; only an object that reached its own
        end is kept, and only with ``retain``.

        Args:
            watch: Early stopping, fed the primary container's log while the trial runs (the
                object is deleted when it says to stop).

        Raises:
            RunnerError: The cluster refused the trial's object or stayed unreachable.
        """
        from kubernetes.client.exceptions import ApiException

        guard = _SigtermGuard()
        resource: Any = None
        manifest: dict[str, Any] = {}
        digest = ""
        owned = False
        kept = False
        try:
            with guard:
                template = self._template(experiment, namespace)
                kind = str(template.get("kind", ""))
                success, failure, pod_labels = _conditions(experiment, kind)
                digest = assignment_digest(trial.parameters)
                manifest = self._trial_manifest(experiment, trial, namespace, template, digest)
                primary = find_primary(manifest, experiment.template.primary_container_name)
                pods = _Pods(
                    selector=_pod_selector(manifest, trial.name, pod_labels, primary),
                    trial_selector=_pod_selector(manifest, trial.name, {}),
                    container=primary.pod_container,
                )
                resource = self._resource(manifest)
                started = now()
                published = _PublishedMetrics() if collector_for(experiment).reads_status else None
                follower = LogFollower(
                    lambda pod, query: self._read_log(namespace, pod, query),
                    pods.container,
                    chunk_bytes=self._settings.log_chunk_bytes,
                )
                looks = _Looks(self, namespace, pods, follower, watch)
                age, looks.since = self._create_or_adopt(resource, manifest, namespace, digest)
                owned = True
                try:
                    state, ended = self._wait(
                        resource,
                        trial.name,
                        namespace,
                        (success, failure),
                        looks,
                        (_deadline(self._settings, manifest), age),
                        published.see if published is not None else None,
                    )
                except _EarlyStopped as stopped:
                    # Keep what it printed as evidence first: deleting the object removes its pods.
                    output = self._outputs(experiment, namespace, pods, follower, looks.since)
                    run = TrialRun(
                        name=trial.name,
                        exit_code=None,
                        started=started,
                        finished=now(),
                        reason=stopped.reason,
                        early_stopped=True,
                        warnings=output[2],
                    )
                    return TrialOutput(run=run, log=output[0], metrics=output[1])
                except _LogUnreadable as lost:
                    run = TrialRun(
                        name=trial.name, exit_code=None, started=started, finished=now(), reason=lost.reason
                    )
                    return TrialOutput(run=run, log=follower.text(), metrics="")
                log, metrics, warnings = self._outputs(experiment, namespace, pods, follower, looks.since)
                if published is not None and published.lines:
                    metrics = published.text()
                kept = experiment.template.retain and ended
        except ApiException as error:
            raise RunnerError(f"trial {trial.name}: {_api_message(error)}") from error
        finally:
            if not kept:
                self._leave(resource, manifest, namespace, digest, owned=owned)
            guard.restore()
            if guard.received:
                raise SystemExit(143)
        code = 0 if state.condition == "Succeeded" else None
        reason = (
            "" if code == 0 else ": ".join(p for p in (state.reason or state.condition, state.message) if p)
        )
        return TrialOutput(
            run=TrialRun(
                name=trial.name,
                exit_code=code,
                started=started,
                finished=now(),
                reason=reason,
                warnings=warnings,
            ),
            log=log,
            metrics=metrics,
        )

    def _trial_manifest(
        self,
        experiment: Experiment,
        trial: TrialRecord,
        namespace: str,
        template: Mapping[str, Any],
        digest: str,
    ) -> dict[str, Any]:
        """The trial's object: the template rendered with its parameters, labelled, checked,
        and owned by the step's pod when there is one."""
        manifest = render(
            template,
            experiment.template.references,
            trial.parameters,
            name=trial.name,
            namespace=namespace,
            labels=identity_labels(experiment.name, trial.name),
            typed=experiment.template.config_map is not None,
        )
        manifest = prepare_manifest(experiment, manifest, trial.name, digest)
        validate_builtin(manifest, self._settings.kubernetes_version)
        owner = self._step_owner(namespace)
        if owner is not None:
            metadata = manifest["metadata"]
            metadata["ownerReferences"] = [*(metadata.get("ownerReferences") or []), owner]
        return manifest

    def sweep(
        self,
        *,
        api_version: str,
        kind: str,
        namespace: str,
        experiment: str,
        keep: Collection[str] = (),
    ) -> list[str]:
        """Deletes the experiment's trial objects of one kind that are left in ``namespace``.

        For a later step or a command to clean up after a step that died without doing so
        (found by the experiment label; objects already being deleted are skipped).

        Args:
            keep: Names of trials whose objects stay (running trials of another step).

        Returns:
            The names of the objects deleted.

        Raises:
            RunnerError: The cluster refused the listing or stayed unreachable.
        """
        from kubernetes.client.exceptions import ApiException

        try:
            resource = self._resource({"apiVersion": api_version, "kind": kind})
            listing = self._retry(
                lambda: resource.get(namespace=namespace, label_selector=f"{EXPERIMENT_LABEL}={experiment}")
            ).to_dict()
        except ApiException as error:
            raise RunnerError(f"listing the trials of {experiment}: {_api_message(error)}") from error
        deleted = []
        for item in listing.get("items") or []:
            metadata = item.get("metadata") or {}
            name = str(metadata.get("name"))
            if name in keep or metadata.get("deletionTimestamp"):
                continue
            self._delete(resource, name, namespace)
            deleted.append(name)
        return deleted

    # -- create ------------------------------------------------------------------------------

    def _template(self, experiment: Experiment, namespace: str) -> Mapping[str, Any]:
        template = experiment.template
        if template.trial_spec is not None:
            return template.trial_spec
        from kubernetes.client.exceptions import ApiException

        source = template.config_map
        assert source is not None
        where = f"trialTemplate.configMap: ConfigMap {source.name} in namespace {source.namespace}"
        try:
            config_map = self._retry(
                lambda: self._core.read_namespaced_config_map(source.name, source.namespace)
            )
        except ApiException as error:
            if error.status == 403:
                raise RunnerError(
                    f"{where} cannot be read by the step's service account: grant it `get` on "
                    f"configmaps in namespace {source.namespace} (a Role and RoleBinding there)"
                ) from None
            if error.status == 404:
                raise RunnerError(f"{where} does not exist") from None
            raise
        text = (config_map.data or {}).get(source.path)
        if text is None:
            raise RunnerError(f"{where} has no key {source.path!r}")
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise RunnerError(
                f"{where}, key {source.path!r}: not YAML: {str(error).splitlines()[0]}"
            ) from None
        if not isinstance(document, dict):
            raise RunnerError(f"{where}, key {source.path!r}: not a Kubernetes object")
        return document

    def _resource(self, manifest: Mapping[str, Any]) -> Any:
        """The API resource of the manifest's kind; refuses kinds the cluster does not serve
        and cluster-scoped kinds (a trial lives in a namespace, and its RBAC is a Role)."""
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        api_version, kind = str(manifest.get("apiVersion")), str(manifest.get("kind"))
        try:
            resource = self._retry(lambda: self._dynamic.resources.get(api_version=api_version, kind=kind))
        except ResourceNotFoundError:
            raise RunnerError(
                f"spec.trialTemplate: the cluster serves no kind {kind} in {api_version} "
                "(is its operator installed?)"
            ) from None
        if not resource.namespaced:
            raise RunnerError(
                f"spec.trialTemplate: trials must be namespaced objects, but {kind} ({api_version}) "
                "is cluster-scoped"
            )
        return resource

    def _step_owner(self, namespace: str) -> dict[str, Any] | None:
        """An ownerReference to the step's own pod, so that the garbage collector deletes the
        trial when the step's pod goes (evicted, lost with its node); None outside a pod, or
        when the pod is in another namespace (an owner must be in its dependent's namespace)."""
        from kubernetes.client.exceptions import ApiException

        env = self._environ
        in_cluster = _SERVICE_ACCOUNT_NAMESPACE.exists()
        name = env.get("KFP_POD_NAME") or env.get("POD_NAME") or (env.get("HOSTNAME") if in_cluster else None)
        pod_namespace = env.get("POD_NAMESPACE") or (
            _SERVICE_ACCOUNT_NAMESPACE.read_text().strip() if in_cluster else None
        )
        if not name or pod_namespace != namespace:
            return None
        uid = env.get("KFP_POD_UID") or env.get("POD_UID")
        if not uid:
            try:
                response = self._retry(
                    lambda: self._core.read_namespaced_pod(name, namespace, _preload_content=False)
                )
            except ApiException as error:
                _LOG.warning(
                    "trials will have no owner: reading the step's pod %s failed: %s",
                    name,
                    _api_message(error),
                )
                return None
            uid = (json.loads(response.data).get("metadata") or {}).get("uid")
            if not uid:
                return None
        return {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid}

    def _create_or_adopt(
        self, resource: Any, manifest: dict[str, Any], namespace: str, digest: str
    ) -> tuple[float, str]:
        """Creates the object, or adopts the live object a retried step left; returns the
        object's age in seconds (0 when created now; an adopted trial's deadline runs from its
        creation, not from the retry) and its ``creationTimestamp``.

        An object of the same name that belongs to another trial or experiment is refused; one
        being deleted is waited for and created anew.
        """
        from kubernetes.client.exceptions import ApiException

        name = manifest["metadata"]["name"]
        for _ in range(2):
            try:
                created = self._retry(lambda: resource.create(body=manifest, namespace=namespace))
                return 0.0, _creation_timestamp(created)
            except ApiException as error:
                if error.status != 409:
                    raise RunnerError(f"the cluster refused trial {name}: {_api_message(error)}") from None
            existing = self._current(resource, name, namespace)
            if existing is None:
                continue  # deleted since the 409: create it again
            metadata = existing.get("metadata") or {}
            if not _is_trials(existing, manifest, digest):
                raise RunnerError(
                    f"a {manifest['kind']} named {name} already exists in {namespace} and is not "
                    "this trial's; delete it, or rename the experiment"
                )
            if not metadata.get("deletionTimestamp"):
                self._take_ownership(resource, existing, manifest, namespace)
                return _age(metadata.get("creationTimestamp")), str(metadata.get("creationTimestamp") or "")
            self._wait_gone(resource, name, namespace)
        raise RunnerError(
            f"the {manifest['kind']} {name} in {namespace} is still being deleted; retry the step"
        )

    def _take_ownership(
        self, resource: Any, existing: Mapping[str, Any], manifest: Mapping[str, Any], namespace: str
    ) -> None:
        """Makes this step's pod the owner of an adopted object, in place of the step pod that
        made it: when KFP or Argo deletes that pod, the garbage collector would take the
        running trial with it. Without a pod of its own here, the old pod is dropped as owner."""
        found = (existing.get("metadata") or {}).get("ownerReferences") or []
        mine = [r for r in manifest["metadata"].get("ownerReferences") or [] if r.get("kind") == "Pod"]
        wanted = [r for r in found if r.get("kind") != "Pod"] + mine
        if wanted == found:
            return
        name = manifest["metadata"]["name"]
        self._retry(
            lambda: resource.patch(
                name=name,
                namespace=namespace,
                body={"metadata": {"ownerReferences": wanted or None}},
                content_type="application/merge-patch+json",
            )
        )

    def _leave(
        self, resource: Any, manifest: dict[str, Any], namespace: str, digest: str, *, owned: bool
    ) -> None:
        """Deletes the trial's object: the one it owns, or one whose create was stored though
        its answer was lost (a 504) before SIGTERM or the retries' end; never raises."""
        name = manifest.get("metadata", {}).get("name")
        if resource is None or not name:
            return
        if not owned:
            try:
                existing = self._current(resource, name, namespace)
            except Exception as error:  # the step's outcome matters more; the label sweep is next
                _LOG.warning("could not check for trial %s's object: %s", name, error)
                return
            if existing is None or not _is_trials(existing, manifest, digest):
                return
        self._delete(resource, name, namespace)

    def _wait_gone(self, resource: Any, name: str, namespace: str) -> None:
        end = time.monotonic() + self._settings.watch_seconds
        pause = self._settings.backoff_seconds
        while time.monotonic() < end:
            if self._current(resource, name, namespace) is None:
                return
            time.sleep(pause)
            pause = min(pause * 2, 4.0)

    # -- watch -------------------------------------------------------------------------------

    def _wait(
        self,
        resource: Any,
        name: str,
        namespace: str,
        conditions: tuple[str, str],
        looks: _Looks,
        deadline: tuple[float, float],
        observe: Callable[[Mapping[str, Any]], None] | None = None,
    ) -> tuple[JobState, bool]:
        """Watches the object until a condition holds; the deadline ends the trial.

        ``deadline`` is the trial's deadline in seconds and the object's age (an adopted
        object's deadline runs from its creation). One watch request lasts until the next
        look at the trial's pods and log is due (:class:`_Looks`: often while something
        changes, rarely while nothing does) and the next resumes from the last version seen,
        so an idle trial costs a watch, a pod list and a log read every ``idle_check_seconds``.
        A look may end the trial (a pod that cannot start) or raise :class:`_EarlyStopped`.
        With ``observe``, every version of the object seen is handed to it first.

        Returns:
            The state, and whether the object reached it by itself (a condition held).
        """
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        end = time.monotonic() + deadline[0] - deadline[1]
        errors = gone = 0
        version: str | None = None
        while True:
            if version is None:  # at the start, and when the server forgot the last version (410)
                current = self._current(resource, name, namespace)
                if current is None:
                    return _DELETED, False  # between two watch windows
                if observe is not None:
                    observe(current)
                state = job_state(current, *conditions)
                if state.condition != "Running":
                    return state, True
                version = current["metadata"].get("resourceVersion")
            remaining = end - time.monotonic()
            if remaining <= 0:
                return JobState("Failed", "DeadlineExceeded", f"still running after {deadline[0]:g} s"), False
            failed = looks.look()
            if failed is not None:
                return failed, False
            try:
                for event in self._events(
                    resource, name, namespace, version, min(remaining, looks.until_due())
                ):
                    raw = event["raw_object"]
                    version = str((raw.get("metadata") or {}).get("resourceVersion") or version)
                    if event["type"] == "DELETED":
                        return _DELETED, False
                    if observe is not None:
                        observe(raw)
                    state = job_state(raw, *conditions)
                    if state.condition != "Running":
                        return state, True
                    failed = looks.look()
                    if failed is not None:
                        return failed, False
                errors = gone = 0
            except ApiException as error:
                if error.status == 410:
                    # Start again from a fresh read, as the API asks; a server that keeps
                    # answering 410 is asked again ever more slowly, not in a hot loop.
                    version = None
                    gone += 1
                    if gone > 1:
                        time.sleep(min(self._settings.backoff_seconds * 2 ** (gone - 2), 16.0))
                    continue
                if error.status not in _TRANSIENT:
                    raise RunnerError(f"watching trial {name} failed: {_api_message(error)}") from None
                errors = self._backoff(errors, f"watching trial {name}: {_api_message(error)}")
            except (HTTPError, OSError) as error:
                errors = self._backoff(errors, f"watching trial {name}: {error}")

    def _current(self, resource: Any, name: str, namespace: str) -> dict[str, Any] | None:
        """The object as it is now; None once it is gone."""
        from kubernetes.client.exceptions import ApiException

        try:
            return dict(self._retry(lambda: resource.get(name=name, namespace=namespace)).to_dict())
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def _events(
        self, resource: Any, name: str, namespace: str, version: str | None, window: float
    ) -> Iterator[dict[str, Any]]:
        """One watch request of about ``window`` seconds; its read timeout goes a little past
        the server's end, so a silent half-open connection cannot block beyond the deadline."""
        from kubernetes import watch

        timeout = max(1, min(math.ceil(window), self._settings.watch_seconds))
        read_timeout = timeout + min(self._settings.request_timeout_seconds, _WATCH_READ_MARGIN)
        watcher = watch.Watch()
        try:
            yield from watcher.stream(
                resource.get,
                namespace=namespace,
                field_selector=f"metadata.name={name}",
                resource_version=version,
                serialize=False,
                timeout_seconds=timeout,
                _request_timeout=(self._settings.request_timeout_seconds, read_timeout),
            )
        finally:
            watcher.stop()

    def _backoff(self, errors: int, what: str) -> int:
        errors += 1
        if errors > self._settings.max_retries:
            raise RunnerError(f"{what} (gave up after {self._settings.max_retries} retries)")
        time.sleep(min(self._settings.backoff_seconds * 2 ** (errors - 1), 16.0))
        return errors

    def _retry(self, call: Callable[[], _T]) -> _T:
        """Calls the API, retrying transient failures with exponential backoff."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        for attempt in range(self._settings.max_retries + 1):
            pause = min(self._settings.backoff_seconds * 2**attempt, 16.0)
            try:
                return call()
            except ApiException as error:
                if error.status not in _TRANSIENT or attempt == self._settings.max_retries:
                    raise
                pause = max(pause, _retry_after(error))
            except (HTTPError, OSError) as error:
                if attempt == self._settings.max_retries:
                    raise RunnerError(f"the Kubernetes API is unreachable: {error}") from None
            time.sleep(pause)
        raise AssertionError("unreachable")

    # -- outputs and cleanup -----------------------------------------------------------------

    def _list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        # Raw JSON: the typed models reject statuses that miss fields some clusters omit.
        listing = self._retry(
            lambda: self._core.list_namespaced_pod(namespace, label_selector=selector, _preload_content=False)
        )
        return list(json.loads(listing.data).get("items") or [])

    def _read_log(self, namespace: str, pod: str, query: Mapping[str, str]) -> bytes | None:
        """``pods/{pod}/log`` with ``query``; None while the container waits to start or has
        no previous instance (the kubelet's 400s, ``validateContainerLogStatus`` in
        ``pkg/kubelet/kubelet_pods.go``) or when the pod is gone (404). Called through ``call_api``: the
        generated client has no ``sinceTime``."""
        from kubernetes.client.exceptions import ApiException

        try:
            data = self._retry(
                lambda: (
                    self._core.api_client.call_api(
                        "/api/v1/namespaces/{namespace}/pods/{name}/log",
                        "GET",
                        {"namespace": namespace, "name": pod},
                        list(query.items()),
                        {"Accept": "text/plain"},
                        auth_settings=["BearerToken"],
                        _preload_content=False,
                        _return_http_data_only=True,
                    ).data
                )
            )
        except ApiException as error:
            if error.status == 404 or (error.status == 400 and _LOG_NOT_YET.search(_api_message(error))):
                return None
            raise  # another 400 (a container the pod does not have) is no reason to wait
        return bytes(data)

    def _outputs(
        self, experiment: Experiment, namespace: str, pods: _Pods, follower: LogFollower, since: str
    ) -> tuple[str, str, tuple[str, ...]]:
        """The primary container's log (what was read while it ran and the rest now) and
        termination message (empty when no pod is left), and warnings about what may be
        missing from them.

        The trial has ended: a read that fails now for a passing reason (the kubelet's proxy
        answering 500, say) keeps what was read while it ran, with a warning, rather than losing
        the trial's outcome.
        """
        from kubernetes.client.exceptions import ApiException

        unread: list[str] = []
        pod = None
        try:
            pod = _primary_pod(
                _of_this_object(self._list_pods(namespace, pods.selector), since), pods.container
            )
            follower.poll(pod)
        except (ApiException, RunnerError) as error:
            if isinstance(error, ApiException) and error.status not in _TRANSIENT:
                raise  # refused (403: the role lacks a verb), not lost: every trial would be the same
            unread.append(
                f"the end of the primary container's log could not be read ({_described(error)}): "
                "what was read while the trial ran is kept"
            )
        if pod is None and not unread:
            unread.append(
                f"no pod ({pods.selector}) ran the primary container {pods.container}: the trial has no log"
            )
        message, warnings = _termination_message(pod, pods.container) if pod is not None else ("", ())
        if warnings and collector_for(experiment).metrics_file(experiment.metrics_collector) is None:
            warnings = ()
        warnings = (*follower.warnings, *unread, *warnings)
        for warning in warnings:
            _LOG.warning("%s", warning)
        return follower.text(), message, warnings

    def _delete(self, resource: Any, name: str, namespace: str) -> None:
        """Deletes the object and, through the garbage collector, its pods; never raises (the
        step's outcome matters more; the label sweep catches what is left)."""
        from kubernetes.client.exceptions import ApiException

        try:
            self._retry(
                lambda: resource.delete(
                    name=name, namespace=namespace, body={"propagationPolicy": "Background"}
                )
            )
        except ApiException as error:
            if error.status != 404:
                _LOG.warning("deleting trial %s failed: %s", name, _api_message(error))
        except RunnerError as error:
            _LOG.warning("deleting trial %s failed: %s", name, error)


def _conditions(experiment: Experiment, kind: str) -> tuple[str, str, Mapping[str, str]]:
    """Success and failure conditions and primary pod labels, with Katib's defaults for ``kind``.

    A ConfigMap template's kind is known only once it is read, so its defaults apply here.
    """
    template = experiment.template
    defaults = default_conditions(kind) or ("", "", {})
    success = template.success_condition or defaults[0]
    failure = template.failure_condition or defaults[1]
    if not (success and failure):
        raise RunnerError(
            "spec.trialTemplate: successCondition and failureCondition must be set for a trial of kind "
            f"{kind} "
            "(there are defaults only for Job, TFJob, PyTorchJob, XGBoostJob, MPIJob, TrainJob, JobSet "
            "and RayJob)"
        )
    return success, failure, template.primary_pod_labels or defaults[2]


def _is_trials(existing: Mapping[str, Any], manifest: Mapping[str, Any], digest: str) -> bool:
    """Whether ``existing`` is the object made for this trial (names, experiment, assignment)."""
    metadata = existing.get("metadata") or {}
    found = metadata.get("labels") or {}
    labels = manifest["metadata"]["labels"]
    return bool(
        found.get(TRIAL_LABEL) == labels.get(TRIAL_LABEL) == manifest["metadata"]["name"]
        and found.get(EXPERIMENT_LABEL) == labels[EXPERIMENT_LABEL]
        and (metadata.get("annotations") or {}).get(ASSIGNMENT_ANNOTATION) == digest
    )


def _retry_after(error: Any) -> float:
    """The seconds a 429 or 503 asks to wait (``Retry-After``, as the API server's
    max-in-flight and priority-and-fairness filters send it), at most a minute; else 0."""
    value = (getattr(error, "headers", None) or {}).get("Retry-After")
    try:
        return min(max(float(value), 0.0), 60.0) if value is not None else 0.0
    except (TypeError, ValueError):
        return 0.0


def _described(error: Exception) -> str:
    """What went wrong in a call to the API: the server's words, or the client's."""
    from kubernetes.client.exceptions import ApiException

    return _api_message(error) if isinstance(error, ApiException) else str(error)


def _api_message(error: Any) -> str:
    """The server's own words: status, message and the fields a 422 names."""
    text = f"HTTP {error.status} {error.reason}".strip()
    try:
        body = json.loads(error.body or "")
    except (TypeError, ValueError):
        return text
    if not isinstance(body, dict):
        return text
    # One line: an admission webhook's denial may hold one line per violated policy.
    message = "; ".join(line.strip() for line in str(body.get("message") or "").splitlines() if line.strip())
    causes = (body.get("details") or {}).get("causes") or []
    fields = [
        f"{c.get('field')}: {c.get('message')}" for c in causes if isinstance(c, dict) and c.get("field")
    ]
    missing = [f for f in fields if f not in message]
    return ": ".join(p for p in (text, message) if p) + (f" [{'; '.join(missing)}]" if missing else "")


def _age(timestamp: Any) -> float:
    """Seconds since an RFC 3339 ``creationTimestamp`` (0 when it is missing or unreadable)."""
    try:
        created = datetime.datetime.fromisoformat(str(timestamp).replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    if created.tzinfo is None:
        return 0.0
    return max((datetime.datetime.now(datetime.UTC) - created).total_seconds(), 0.0)


def _deadline(settings: KubernetesSettings, manifest: Mapping[str, Any]) -> float:
    """The trial's deadline: the setting, else the object's own and a grace, else 24 h."""
    if settings.deadline_seconds is not None:
        return settings.deadline_seconds
    spec = manifest.get("spec") or {}
    for holder in (spec, spec.get("runPolicy") or {}):
        value = holder.get("activeDeadlineSeconds") if isinstance(holder, Mapping) else None
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value) + settings.deadline_grace_seconds
    return _DEFAULT_DEADLINE


def _pod_selector(
    manifest: Mapping[str, Any],
    trial: str,
    primary_labels: Mapping[str, str],
    primary: PrimaryContainer | None = None,
) -> str:
    """The label selector of a trial's pods (with ``primary_labels`` and ``primary``: its
    primary pod's).

    A TrainJob has no pod template: its pods come from a JobSet of the same name and carry
    the JobSet's labels, never the trial's; the primary pod is replicated job index 0.
    MPIJob v2beta1 (mpi-operator) labels its launcher ``job-role=launcher`` and has no
    master, Katib's default. A JobSet's primary pod is index 0 of the replicated job that
    holds the primary container. A RayJob's default submitter is a Job of the RayJob's name,
    whose pod carries that Job's labels only.
    """
    kind, api_version = manifest.get("kind"), str(manifest.get("apiVersion", ""))
    labels = dict(primary_labels)
    if primary is not None and primary.style == "rayjob":
        return f"{_BATCH_JOB_NAME}={trial}"
    if kind == "JobSet" and primary is not None and labels and _REPLICATED_JOB not in labels:
        for replicated in (manifest.get("spec") or {}).get("replicatedJobs") or []:
            pod_spec = (((replicated.get("template") or {}).get("spec") or {}).get("template") or {}).get(
                "spec"
            ) or {}
            if any(c.get("name") == primary.pod_container for c in pod_spec.get("containers") or []):
                labels = {_REPLICATED_JOB: str(replicated.get("name")), **labels}
                break
    if kind == "TrainJob":
        base = {_JOBSET_NAME: trial}
        if labels:
            labels.setdefault(_JOBSET_JOB_INDEX, "0")
    else:
        base = {TRIAL_LABEL: trial}
    if kind == "MPIJob" and api_version.startswith("kubeflow.org/v2") and labels == {_JOB_ROLE: "master"}:
        labels = {_JOB_ROLE: "launcher"}
    return ",".join(f"{k}={v}" for k, v in {**base, **labels}.items())


def _primary_pod(pods: list[dict[str, Any]], container: str) -> dict[str, Any] | None:
    """The primary pod among the candidates, the same one every time it is asked.

    Only pods that run the primary container count (a Tekton task's pod holds its own steps
    only). Preferred: a pod of a JobSet's ``launcher`` replicated job (a TrainJob of Trainer's
    MPI runtimes, ``charts/kubeflow-trainer/files/runtimes/deepspeed-distributed.yaml``, runs
    the trainer there and sshd in ``node``); then a running or succeeded pod over a failed one
    (a Job's retry), over one not started; then the lowest completion index (rank 0 of an
    indexed Job); then the oldest pod, by name on a tie (creation times have a 1 s resolution).
    """

    def runs_container(pod: Mapping[str, Any]) -> bool:
        spec = pod.get("spec") or {}
        return any(
            c.get("name") == container
            for key in ("containers", "initContainers")
            for c in spec.get(key) or []
        )

    def key(pod: Mapping[str, Any]) -> tuple[int, int, int, str, str]:
        metadata = pod.get("metadata") or {}
        labels = metadata.get("labels") or {}
        launcher = 0 if labels.get(_REPLICATED_JOB) == "launcher" else 1
        phase = (pod.get("status") or {}).get("phase")
        rank = 0 if phase in ("Running", "Succeeded") else 1 if phase == "Failed" else 2
        index = labels.get(_COMPLETION_INDEX) or (metadata.get("annotations") or {}).get(_COMPLETION_INDEX)
        number = int(str(index)) if str(index).isdigit() else 0
        created = str(metadata.get("creationTimestamp") or "")
        return launcher, rank, number, created, str(metadata.get("name") or "")

    candidates = [
        p for p in pods if runs_container(p) and not (p.get("metadata") or {}).get("deletionTimestamp")
    ]
    candidates = candidates or [p for p in pods if runs_container(p)]
    return min(candidates, key=key) if candidates else None


def _pod_failure(
    pods: list[dict[str, Any]], first_seen: dict[str, float], settings: KubernetesSettings
) -> JobState | None:
    """A failed state when a pod cannot start: a container waiting for a reason that will not
    pass by itself, or for one that may but has lasted ``start_grace_seconds``, or a pod
    unschedulable for ``unschedulable_seconds`` (first seen times are kept in ``first_seen``)."""
    now = time.monotonic()
    seen_now: set[str] = set()

    def lasted(key: str, grace: float) -> bool:
        seen_now.add(key)
        return now - first_seen.setdefault(key, now) >= grace

    failed = None
    for pod in sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("name"))):
        metadata, status = pod.get("metadata") or {}, pod.get("status") or {}
        name = metadata.get("name")
        uid = str(metadata.get("uid") or name)
        for entry in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
            waiting = (entry.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            fatal = reason in _FATAL_WAITING
            key = f"{uid}/{entry.get('name')}/start"
            if fatal or (reason in _STUCK_WAITING and lasted(key, settings.start_grace_seconds)):
                detail = f"pod {name}, container {entry.get('name')}"
                message = f"{detail}: {waiting['message']}" if waiting.get("message") else detail
                failed = failed or JobState("Failed", str(reason), message)
        blocked = next(
            (
                c
                for c in status.get("conditions") or []
                if c.get("type") == "PodScheduled"
                and c.get("status") == "False"
                and c.get("reason") == "Unschedulable"
            ),
            None,
        )
        if blocked is not None and lasted(f"{uid}/schedule", settings.unschedulable_seconds):
            message = f"pod {name}: {blocked.get('message') or 'unschedulable'}"
            failed = failed or JobState("Failed", "Unschedulable", message)
    for key in set(first_seen) - seen_now:  # no longer stuck: its clock starts again next time
        del first_seen[key]
    return failed


class _PublishedMetrics:
    """The metrics a TrainJob publishes in ``status.trainerStatus`` (Kubeflow Trainer's
    progress API, KEP-2779: ``metrics[{name, value}]`` with values as strings, and
    ``lastUpdatedTime``), kept as JSON lines, one per distinct report seen while it ran: the
    last is the final value, the rest its series."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._seen: set[str] = set()

    def see(self, trainjob: Mapping[str, Any]) -> None:
        status = (trainjob.get("status") or {}).get("trainerStatus") or {}
        values: dict[str, Any] = {}
        for metric in status.get("metrics") or ():
            if isinstance(metric, Mapping) and isinstance(metric.get("name"), str):
                try:
                    values[metric["name"]] = float(str(metric.get("value")))
                except ValueError:
                    continue  # not a number: progress text, say
        if not values:
            return
        stamp = status.get("lastUpdatedTime")
        line = json.dumps(
            {**values, **({"timestamp": stamp} if isinstance(stamp, str) else {})}, sort_keys=True
        )
        if line not in self._seen:
            self._seen.add(line)
            self.lines.append(line)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _termination_message(pod: Mapping[str, Any], container: str) -> tuple[str, tuple[str, ...]]:
    """The container's termination message (its current or, after a restart, its last
    instance's), without a line the kubelet cut, and a warning saying what was left out.

    The kubelet reads the file's last 4096 bytes (``tail.ReadAtMost``), so a longer file loses
    the start of its first line; the status manager then keeps the first 12 KiB / (containers
    + init containers) bytes of each message (``normalizeStatus`` in
    ``pkg/kubelet/status/status_manager.go``), which cuts the last line of a pod with four or
    more. A cut line would be read as a metric (``val_loss=0.001`` cut to ``loss=0.001``), so
    it is dropped.
    """
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    message = None
    for entry in status.get("containerStatuses") or []:
        if entry.get("name") != container:
            continue
        for which in ("state", "lastState"):
            terminated = (entry.get(which) or {}).get("terminated")
            if terminated and terminated.get("message") is not None:
                message = str(terminated["message"])
                break
    if message is None:
        return "", ()
    count = sum(len(spec.get(k) or []) for k in ("containers", "initContainers"))
    budget = _POD_MESSAGE_BYTES // max(count, 1)
    size = len(message.encode())
    if size < min(_MESSAGE_FILE_BYTES, budget):
        return message, ()
    lines = message.split("\n")
    dropped = [f"the first line ({_shown(lines[0])})"]
    lines = lines[1:]
    if budget < _MESSAGE_FILE_BYTES and lines and lines[-1]:
        dropped.append(f"the last line ({_shown(lines[-1])})")
        lines[-1] = ""  # what ends the line before it
    name = (pod.get("metadata") or {}).get("name")
    return "\n".join(lines), (
        f"the metrics file of pod {name} reached the termination message limit (the kubelet keeps a "
        f"file's last {_MESSAGE_FILE_BYTES} bytes, the pod's status the first {budget}): "
        f"{' and '.join(dropped)} may be cut and were left out, and earlier lines are missing",
    )


def _shown(line: str) -> str:
    return repr(line if len(line) <= 40 else line[:37] + "...")
