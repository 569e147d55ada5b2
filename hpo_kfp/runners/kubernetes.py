"""The Kubernetes runner: a trial as any Kubernetes object, watched to its end.

For each trial it renders the template, labels the object and its pod templates with the
experiment and trial, and creates it with the dynamic client in the step's namespace. A
retried step that finds its trial's object already there (409) adopts it when the object
carries the same trial label and assignment fingerprint. It then watches the object until
Katib's failure or success condition holds, or a deadline passes, surviving dropped
watches, 410 Gone and transient API errors with bounded retries and backoff. Metrics come
from the primary pod: its container log, and the termination message that carries a
metrics file (see :mod:`hpo_kfp.runners._k8s_manifest`). The object is deleted at the end
unless ``retain`` is set, and always when the step itself is terminated.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from hpo_kfp.collect import metric_logs
from hpo_kfp.conditions import JobState, job_state
from hpo_kfp.early_stopping import StopRule, StopWatch
from hpo_kfp.errors import RunnerError, SpecError
from hpo_kfp.history import TrialRecord
from hpo_kfp.runners._k8s_manifest import (
    ASSIGNMENT_ANNOTATION,
    TRIAL_LABEL,
    assignment_digest,
    identity_labels,
    prepare_manifest,
)
from hpo_kfp.runners.base import TrialRun, now
from hpo_kfp.spec import Experiment
from hpo_kfp.spec.template import default_conditions
from hpo_kfp.templates import render

__all__ = ["KubernetesRunner", "KubernetesSettings", "TrialOutput", "check_cluster_support", "step_namespace"]

_T = TypeVar("_T")
_SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_TRANSIENT = {429, 500, 502, 503, 504}


@dataclass(frozen=True, kw_only=True)
class KubernetesSettings:
    """How the runner talks to the cluster."""

    namespace: str | None = None
    """Where trials run; None: the step's own namespace (service-account file)."""
    deadline_seconds: float = 24 * 3600
    """A trial still running after this long is stopped and recorded as failed."""
    watch_seconds: int = 60
    """Length of one watch request before it is renewed."""
    max_retries: int = 6
    """Consecutive transient errors tolerated before the runner gives up."""
    backoff_seconds: float = 0.5
    """First wait after a transient error; doubles each time, at most 16 s."""
    check_seconds: float = 2.0
    """How often a running trial's log is read when an early-stopping rule applies."""


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


class _EarlyStopped(Exception):
    """The early-stopping rule fired while the trial ran."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _raise_if_stopped(check: Callable[[], str | None] | None) -> None:
    if check is not None:
        reason = check()
        if reason is not None:
            raise _EarlyStopped(reason)


def check_cluster_support(experiment: Experiment) -> None:
    """Refuses what the Kubernetes runner cannot do, before a pipeline is built for it.

    Raises:
        SpecError: Median stopping with a File or Push collector: on a cluster a metrics
            file reaches the runner only when the container ends, too late to stop it.
    """
    collector = experiment.metrics_collector.kind
    if experiment.early_stopping is not None and collector != "StdOut":
        raise SpecError(
            "spec.earlyStopping",
            "on a cluster median stopping reads the trial's log while it runs: use the StdOut collector",
            f"collector kind {collector}",
        )


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
    """Runs trials as Kubernetes objects through an API client."""

    def __init__(self, api_client: Any, settings: KubernetesSettings | None = None) -> None:
        from kubernetes import client
        from kubernetes.dynamic import DynamicClient

        self._settings = settings or KubernetesSettings()
        self._core = client.CoreV1Api(api_client)
        self._dynamic = DynamicClient(api_client)

    @classmethod
    def from_environment(cls, settings: KubernetesSettings | None = None) -> KubernetesRunner:
        """A runner with in-cluster credentials, or the local kubeconfig outside a cluster."""
        from kubernetes import client, config

        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        return cls(client.ApiClient(), settings)

    def run(
        self, experiment: Experiment, trial: TrialRecord, *, namespace: str, stop_rule: StopRule | None = None
    ) -> TrialOutput:
        """Runs ``trial`` to its end; a trial that fails is a result, not an exception.

        Args:
            stop_rule: The early-stopping rule to apply to the primary container's log while
                the trial runs (the object is deleted when it fires).

        Raises:
            RunnerError: The cluster refused the trial's object or stayed unreachable.
        """
        template = self._template(experiment, namespace)
        conditions = _conditions(experiment, str(template.get("kind", "")))
        digest = assignment_digest(trial.parameters)
        manifest = render(
            template,
            experiment.template.references,
            trial.parameters,
            name=trial.name,
            namespace=namespace,
            labels=identity_labels(experiment.name, trial.name),
        )
        manifest = prepare_manifest(experiment, manifest, trial.name, digest)
        resource = self._retry(
            lambda: self._dynamic.resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
        )
        started = now()
        created = False
        check = None
        if stop_rule is not None:
            check = self._log_check(experiment, trial.name, namespace, conditions[2], StopWatch(stop_rule))
        try:
            with _terminate_on_sigterm():
                self._create_or_adopt(resource, manifest, namespace, digest)
                created = True
                try:
                    state = self._wait(resource, trial.name, namespace, conditions[:2], check)
                except _EarlyStopped as stopped:
                    # Stop the training itself, then keep what it printed as evidence.
                    self._delete(resource, trial.name, namespace)
                    log, metrics = self._outputs(experiment, trial.name, namespace, conditions[2])
                    run = TrialRun(
                        name=trial.name,
                        exit_code=None,
                        started=started,
                        finished=now(),
                        reason=stopped.reason,
                        early_stopped=True,
                    )
                    return TrialOutput(run=run, log=log, metrics=metrics)
                log, metrics = self._outputs(experiment, trial.name, namespace, conditions[2])
        except _Terminated:
            if created:
                self._delete(resource, trial.name, namespace)
            raise SystemExit(143) from None
        if not experiment.template.retain:
            self._delete(resource, trial.name, namespace)
        code = 0 if state.condition == "Succeeded" else None
        reason = (
            "" if code == 0 else ": ".join(p for p in (state.reason or state.condition, state.message) if p)
        )
        return TrialOutput(
            run=TrialRun(name=trial.name, exit_code=code, started=started, finished=now(), reason=reason),
            log=log,
            metrics=metrics,
        )

    # -- create ------------------------------------------------------------------------------

    def _template(self, experiment: Experiment, namespace: str) -> Mapping[str, Any]:
        template = experiment.template
        if template.trial_spec is not None:
            return template.trial_spec
        source = template.config_map
        assert source is not None
        config_map = self._retry(lambda: self._core.read_namespaced_config_map(source.name, source.namespace))
        text = (config_map.data or {}).get(source.path)
        if text is None:
            raise RunnerError(f"ConfigMap {source.namespace}/{source.name} has no key {source.path!r}")
        return yaml.safe_load(text)  # type: ignore[no-any-return]

    def _create_or_adopt(self, resource: Any, manifest: dict[str, Any], namespace: str, digest: str) -> None:
        from kubernetes.client.exceptions import ApiException

        name = manifest["metadata"]["name"]
        try:
            self._retry(lambda: resource.create(body=manifest, namespace=namespace))
            return
        except ApiException as error:
            if error.status != 409:
                raise RunnerError(f"the cluster refused trial {name}: {_api_message(error)}") from None
        existing = self._retry(lambda: resource.get(name=name, namespace=namespace)).to_dict()
        metadata = existing.get("metadata") or {}
        if (metadata.get("labels") or {}).get(TRIAL_LABEL) != name or (metadata.get("annotations") or {}).get(
            ASSIGNMENT_ANNOTATION
        ) != digest:
            raise RunnerError(
                f"a {manifest['kind']} named {name} already exists in {namespace} and is not this trial's; "
                "delete it, or rename the experiment"
            )

    # -- watch -------------------------------------------------------------------------------

    def _wait(
        self,
        resource: Any,
        name: str,
        namespace: str,
        conditions: tuple[str, str],
        check: Callable[[], str | None] | None = None,
    ) -> JobState:
        """Watches the object until a condition holds; the deadline ends the trial.

        With ``check``, watches in short windows and asks it after each one and each event;
        when it returns a reason, raises :class:`_EarlyStopped`.
        """
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        deadline = time.monotonic() + self._settings.deadline_seconds
        errors = 0
        while True:
            current = self._retry(lambda: resource.get(name=name, namespace=namespace)).to_dict()
            state = job_state(current, *conditions)
            if state.condition != "Running":
                return state
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return JobState(
                    "Failed", "DeadlineExceeded", f"still running after {self._settings.deadline_seconds:g} s"
                )
            version = current["metadata"].get("resourceVersion")
            window = remaining if check is None else min(remaining, self._settings.check_seconds)
            try:
                for event in self._events(resource, name, namespace, version, window):
                    if event["type"] == "DELETED":
                        return JobState("Failed", "Deleted", "the trial's object was deleted before it ended")
                    state = job_state(event["raw_object"], *conditions)
                    if state.condition != "Running":
                        return state
                    _raise_if_stopped(check)
                errors = 0
                _raise_if_stopped(check)
            except ApiException as error:
                if error.status != 410 and error.status not in _TRANSIENT:
                    raise RunnerError(f"watching trial {name} failed: {_api_message(error)}") from None
                errors = self._backoff(
                    errors, f"watching trial {name}: {_api_message(error)}", error.status == 410
                )
            except (HTTPError, OSError) as error:
                errors = self._backoff(errors, f"watching trial {name}: {error}", False)

    def _events(
        self, resource: Any, name: str, namespace: str, version: str | None, remaining: float
    ) -> Iterator[dict[str, Any]]:
        from kubernetes.client.exceptions import ApiException

        timeout = max(1, min(math.ceil(remaining), self._settings.watch_seconds))
        for event in resource.watch(
            namespace=namespace,
            field_selector=f"metadata.name={name}",
            resource_version=version,
            timeout=timeout,
        ):
            if event["type"] == "ERROR":
                status = event["raw_object"] or {}
                raise ApiException(
                    status=int(status.get("code") or 500), reason=str(status.get("reason", ""))
                )
            yield event

    def _backoff(self, errors: int, what: str, gone: bool) -> int:
        if gone:
            return errors  # 410 Gone: start again from a fresh read, as the API asks
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
            try:
                return call()
            except ApiException as error:
                if error.status not in _TRANSIENT or attempt == self._settings.max_retries:
                    raise
            except (HTTPError, OSError) as error:
                if attempt == self._settings.max_retries:
                    raise RunnerError(f"the Kubernetes API is unreachable: {error}") from None
            time.sleep(min(self._settings.backoff_seconds * 2**attempt, 16.0))
        raise AssertionError("unreachable")

    # -- outputs and cleanup -----------------------------------------------------------------

    def _outputs(
        self, experiment: Experiment, name: str, namespace: str, pod_labels: Mapping[str, str]
    ) -> tuple[str, str]:
        """The primary container's log and termination message (empty when no pod is left)."""
        template = experiment.template
        selector = {**pod_labels, TRIAL_LABEL: name}
        # Raw JSON: the typed models reject statuses that miss fields some clusters omit.
        selector_text = ",".join(f"{k}={v}" for k, v in selector.items())
        listing = self._retry(
            lambda: self._core.list_namespaced_pod(
                namespace, label_selector=selector_text, _preload_content=False
            )
        )
        pods = json.loads(listing.data).get("items") or []
        if not pods:
            return "", ""
        pod = max(pods, key=lambda p: str(p["metadata"].get("creationTimestamp") or ""))
        container = template.primary_container_name
        response = self._retry(
            lambda: self._core.read_namespaced_pod_log(
                pod["metadata"]["name"], namespace, container=container, _preload_content=False
            )
        )
        log = response.data.decode("utf-8", errors="replace")
        message = ""
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (status.get("state") or {}).get("terminated")
            if status.get("name") == container and terminated:
                message = terminated.get("message") or ""
        return log, message

    def _log_check(
        self,
        experiment: Experiment,
        name: str,
        namespace: str,
        pod_labels: Mapping[str, str],
        watch: StopWatch,
    ) -> Callable[[], str | None]:
        """Reads the primary container's log as it grows and feeds new lines to ``watch``."""
        seen = 0

        def check() -> str | None:
            nonlocal seen
            log, _ = self._outputs(experiment, name, namespace, pod_labels)
            lines = log.split("\n")[:-1]  # complete lines only
            fresh, seen = lines[seen:], len(lines)
            logs = metric_logs(experiment, "\n".join(fresh) + "\n", "") if fresh else []
            return watch.reason if watch.feed(logs) else None

        return check

    def _delete(self, resource: Any, name: str, namespace: str) -> None:
        from kubernetes.client.exceptions import ApiException

        with contextlib.suppress(ApiException):
            self._retry(
                lambda: resource.delete(
                    name=name, namespace=namespace, body={"propagationPolicy": "Background"}
                )
            )


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
            "(Katib has defaults only for Job, TFJob, PyTorchJob, XGBoostJob, MPIJob and TrainJob)"
        )
    return success, failure, template.primary_pod_labels or defaults[2]


def _api_message(error: Any) -> str:
    return f"HTTP {error.status} {error.reason}".strip()


@contextlib.contextmanager
def _terminate_on_sigterm() -> Iterator[None]:
    """Turns SIGTERM into an exception while a trial runs, so cleanup code runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
