"""A loopback Kubernetes API server emulator for tests, built on ``kmock``.

The real ``kubernetes`` Python client talks to it over HTTP (no patching of client methods).
The test plays the role of the controllers: it changes objects through the harness
(:meth:`K8sEmulator.set_status`, :meth:`K8sEmulator.patch`, ...), which goes through the same
store/notification path as HTTP writes, so open watches see ``ADDED``/``MODIFIED``/``DELETED``.

Usage (after ``from tests.k8s_emulator import k8s`` in ``tests/conftest.py``)::

    def test_something(k8s: K8sEmulator) -> None:
        api = kubernetes.client.BatchV1Api(k8s.api_client())
        ...
        k8s.set_status("batch", "v1", "jobs", "ns", "job-1", {"succeeded": 1})

What is emulated (the rest is not):

* discovery (``/api``, ``/apis``, ``/apis/<group>/<version>``) for the bundled built-in resources
  of kmock plus :data:`CUSTOM_RESOURCES`, enough for ``kubernetes.dynamic.DynamicClient``;
* create / get / list / watch / replace (PUT) / patch (merge, strategic-as-merge, JSON-patch) /
  delete / deletecollection, and the ``status`` subresource (main-endpoint writes keep the status
  of resources that declare a ``status`` subresource; ``/status`` writes change only the status);
* ``metadata.uid``, ``creationTimestamp``, ``generation``, and one global, monotonically
  increasing ``metadata.resourceVersion`` bumped on every write; lists carry it too;
* ``labelSelector`` (``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``, ``a in (x,y)``, ``a notin (x)``)
  and ``fieldSelector`` (``path=value``, ``path!=value``, any dotted path) on list, watch, and
  deletecollection; a watch re-classifies selector-filtered changes as ``ADDED``/``DELETED``
  when an object starts/stops matching, like the real API server;
* watch ``resourceVersion`` (unset/``""``/``"0"``: synthetic ``ADDED`` for current objects first,
  otherwise only events newer than it; older than :meth:`K8sEmulator.compact` -> ERROR 410),
  ``timeoutSeconds`` ends the stream cleanly;
* finalizers: delete sets ``deletionTimestamp``; removing the last finalizer deletes the object;
* optimistic concurrency: a stale ``metadata.resourceVersion`` in PUT/PATCH bodies or in delete
  preconditions answers 409;
* pod logs: ``GET /api/v1/namespaces/{ns}/pods/{name}/log`` with the kubelet's semantics: every
  line is stamped when written (RFC 3339, nanoseconds); ``timestamps`` prefixes it; ``sinceTime``
  (cut to whole seconds, as the API server forwards it to the kubelet) and ``sinceSeconds`` keep
  lines at or after it; ``tailLines`` then ``limitBytes`` (a byte cut, mid-line too) as the
  kubelet applies them; ``previous`` serves the container's last terminated instance (400 when
  there is none). The options are validated as the API server does (422 for a negative
  ``tailLines``, ``limitBytes``/``sinceSeconds`` below 1, both ``since`` options; 400 for an
  unparsable time). Like the kubelet, **400** while the container is waiting (its
  ``state.waiting`` in the pod's status, or no status yet in a ``Pending`` pod) unless it has a
  last terminated instance, whose log is served then. Only the newest log file is served:
  :meth:`K8sEmulator.rotate_pod_log` drops what was written so far, as rotation does;
  :meth:`K8sEmulator.restart_container` starts a new instance (its old log becomes ``previous``);
* creation through the API drops ``status`` of kinds with a status subresource (as the API
  server does; the harness may create with a status, playing the controllers);
* validation (422 ``Invalid`` with ``details.causes``): ``metadata.name`` a DNS-1123 subdomain
  (a Job's at most 63 characters, as its pods' ``job-name`` label), label keys and values,
  annotation keys, ownerReferences (apiVersion, kind, name, uid);
* field selectors limited to what a real server accepts (``metadata.name``/``metadata.namespace``;
  pods also ``spec.nodeName``, ``status.phase``, ...): others answer 400;
* garbage collection by ownerReference: deleting an owner deletes its dependents (``Background``,
  the default; ``Foreground`` marks the owner with the ``foregroundDeletion`` finalizer until its
  dependents are gone; ``Orphan`` — the default for ``batch/v1`` Jobs, as on a real server —
  strips the reference); an object created with no live owner is collected at once;
* the kubelet's termination-message limits on every pod status write: a message keeps its
  *last* 4096 bytes (the file's tail), then the *first* 12 KiB / (containers + initContainers)
  bytes (``normalizeStatus``), in ``state`` and ``lastState``;
* stalls (:meth:`K8sEmulator.stall_next`): a request that never answers, or a watch that answers
  200 and then stays silent past its ``timeoutSeconds`` (a half-open connection), until the
  client gives up — so client-side timeouts are needed and tested.

Not emulated: graceful pod termination (pods vanish at once), watch bookmarks,
``limit``/``continue`` paging, server-side apply, schema validation/defaulting, the
``namespaces`` resource itself (kmock's path parser cannot address it), authentication.

Why ``_Emulator`` replaces ``KubernetesEmulator._handle`` for resource URLs (kmock 0.8,
``kmock/_internal``): ``parsing.guess_k8s`` (l.113) sees a watch only for ``watch=true``, but the
Python client sends ``watch=True``; the stock interceptor (``k8s.py`` l.389-450) stores a create before
any reaction runs (so an injected fault cannot prevent it) and stamps no uid/resourceVersion;
``_serve_list`` answers ``resourceVersion: '...'`` (l.469); ``_serve_watch`` (l.473) has no selectors,
no resourceVersion, no timeout, and streams forever; PUT is not an action at all (``enums.py`` l.74);
there is no ``pods/log``. Kept from kmock: request parsing, discovery, Status error rendering, and
``objects`` (the store, with per-object history). The server is a plain ``aiohttp.web.ServerRunner``
on 127.0.0.1, not ``kmock.Server``, which also patches aiohttp's resolver process-wide
(``apps.py`` l.151, ``dns.py`` l.112) and would wait aiohttp's default 60 s for open streams on exit.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import contextlib
import copy
import dataclasses
import datetime
import json
import random
import re
import shutil
import string
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

import aiohttp.web
import jsonpatch
import pytest
from kubernetes import client as k8s_client
from kubernetes.dynamic import DynamicClient

from tests.waiting import wait_for

__all__ = [
    "CUSTOM_RESOURCES",
    "CustomResource",
    "Fault",
    "K8sEmulator",
    "RecordedRequest",
    "SelectorError",
    "WatchDrop",
    "k8s",
    "match_field_selector",
    "match_label_selector",
    "merge_patch",
]

_T = TypeVar("_T")
_Obj = dict[str, Any]

_STANDARD_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
_STATUS_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}
_WATCH_POLL_SECONDS = 0.2  # how often an idle watch re-checks shutdown / client disconnects
_CONTAINER_MESSAGE_BYTES = 4096  # kubecontainer.MaxContainerTerminationMessageLength (file tail)
_POD_MESSAGE_BYTES = 12 * 1024  # kubecontainer.MaxPodTerminationMessageLogLength (status_manager)
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_POD_FIELDS = frozenset(
    {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.podIPs",
        "status.nominatedNodeName",
    }
)
# --------------------------------------------------------------------------------------------------
# The API surface: resources, requests, errors, discovery
# --------------------------------------------------------------------------------------------------


class Resource(NamedTuple):
    """A resource type as a URL addresses it: ``("batch", "v1", "jobs")``; the core group is ``""``."""

    group: str
    version: str
    plural: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class ResourceInfo:
    """What discovery says of a resource type (``APIResource`` in an ``APIResourceList``)."""

    kind: str
    singular: str
    namespaced: bool = True
    subresources: frozenset[str] = frozenset()
    shortnames: frozenset[str] = frozenset()
    verbs: frozenset[str] = frozenset(_STANDARD_VERBS)


def _builtin(
    kind: str, *subresources: str, namespaced: bool = True, short: tuple[str, ...] = ()
) -> ResourceInfo:
    return ResourceInfo(
        kind=kind,
        singular=kind.lower(),
        namespaced=namespaced,
        subresources=frozenset(subresources),
        shortnames=frozenset(short),
    )


BUILTIN_RESOURCES: Mapping[Resource, ResourceInfo] = {
    Resource("", "v1", "pods"): _builtin("Pod", "status", "log", short=("po",)),
    Resource("", "v1", "configmaps"): _builtin("ConfigMap", short=("cm",)),
    Resource("", "v1", "secrets"): _builtin("Secret"),
    Resource("", "v1", "services"): _builtin("Service", "status", short=("svc",)),
    Resource("", "v1", "serviceaccounts"): _builtin("ServiceAccount", short=("sa",)),
    Resource("", "v1", "events"): _builtin("Event", short=("ev",)),
    Resource("", "v1", "persistentvolumeclaims"): _builtin("PersistentVolumeClaim", "status", short=("pvc",)),
    Resource("batch", "v1", "jobs"): _builtin("Job", "status"),
    Resource("batch", "v1", "cronjobs"): _builtin("CronJob", "status", short=("cj",)),
    Resource("apps", "v1", "deployments"): _builtin("Deployment", "status", short=("deploy",)),
    Resource("apps", "v1", "statefulsets"): _builtin("StatefulSet", "status", short=("sts",)),
    Resource("rbac.authorization.k8s.io", "v1", "roles"): _builtin("Role"),
    Resource("rbac.authorization.k8s.io", "v1", "rolebindings"): _builtin("RoleBinding"),
}
"""The built-in kinds the emulator serves (custom resources are declared per emulator)."""


class ApiError(Exception):
    """A refusal, answered as a ``Status`` object (``apimachinery``'s ``StatusError``)."""

    def __init__(self, status: int, message: str, reason: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason or _STATUS_REASONS.get(status, "Unknown")
        self.details = details if details is not None else {}

    def body(self) -> _Obj:
        body = _status_body(self.status, self.message, self.reason)
        if self.details:
            body["details"] = self.details
        return body


@dataclasses.dataclass(frozen=True, kw_only=True)
class ApiRequest:
    """One HTTP request, read as the API server routes it."""

    id: int
    method: str
    path: str
    params: Mapping[str, str]
    data: Any
    """The JSON body (None without one)."""
    content_type: str
    raw: aiohttp.web.BaseRequest
    resource: Resource | None = None
    """None for discovery (``/api``, ``/apis/...``, ``/version``)."""
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None

    @property
    def watch(self) -> bool:
        """A watch: ``?watch=true`` (the Python client sends ``True``; the server parses a bool)."""
        return self.method == "GET" and self.params.get("watch", "").lower() in ("true", "1")

    @property
    def verb(self) -> str | None:
        """The Kubernetes verb (RBAC's), or None for discovery."""
        if self.resource is None:
            return None
        if self.watch:
            return "watch"
        return {
            "GET": "get" if self.name else "list",
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if self.name else "deletecollection",
        }.get(self.method)


async def parse_request(raw: aiohttp.web.BaseRequest, request_id: int) -> ApiRequest:
    """Reads ``raw`` as the API server's router does (``/api/v1/...``, ``/apis/G/V/...``,
    ``namespaces/NS/`` for a namespaced resource, then ``PLURAL[/NAME[/SUBRESOURCE]]``)."""
    text = await raw.text()
    try:
        data = json.loads(text) if text else None
    except json.JSONDecodeError as error:
        raise ApiError(400, f"the request body must be JSON: {error}") from error
    common = {
        "id": request_id,
        "method": raw.method.upper(),
        "path": raw.path,
        "params": dict(raw.query),
        "data": data,
        "content_type": raw.content_type,
        "raw": raw,
    }
    parts = [p for p in raw.path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return ApiRequest(**common)  # discovery
    if not rest:
        return ApiRequest(**common)
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        raise ApiError(404, f"the server could not find the requested resource ({raw.path})")
    return ApiRequest(
        **common,
        resource=Resource(group, version, rest[0]),
        namespace=namespace,
        name=rest[1] if len(rest) > 1 else None,
        subresource=rest[2] if len(rest) > 2 else None,
    )


def discovery(path: str, resources: Mapping[Resource, ResourceInfo]) -> _Obj:
    """The discovery documents ``kubernetes.dynamic.DynamicClient`` reads: ``/api``,
    ``/api/v1``, ``/apis``, ``/apis/G``, ``/apis/G/V``, and ``/version``."""
    parts = [p for p in path.split("/") if p]
    versions: dict[str, list[str]] = {}
    for res in resources:
        if res.group and res.version not in versions.setdefault(res.group, []):
            versions[res.group].append(res.version)

    def group_entry(group: str) -> _Obj:
        listed = versions[group]
        return {
            "name": group,
            "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in listed],
            "preferredVersion": {"groupVersion": f"{group}/{listed[0]}", "version": listed[0]},
        }

    if parts == ["version"]:
        return {"major": "1", "minor": "31", "gitVersion": "v1.31.0", "platform": "linux/amd64"}
    if parts == ["api"]:
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if parts == ["apis"]:
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [group_entry(g) for g in sorted(versions)],
        }
    if len(parts) == 2 and parts[0] == "apis" and parts[1] in versions:
        return {"kind": "APIGroup", "apiVersion": "v1", **group_entry(parts[1])}
    if parts == ["api", "v1"] or (
        len(parts) == 3 and parts[0] == "apis" and parts[2] in versions.get(parts[1], [])
    ):
        group, version = ("", "v1") if parts[0] == "api" else (parts[1], parts[2])
        listed = []
        for res, info in sorted(resources.items()):
            if (res.group, res.version) != (group, version):
                continue
            entry = {
                "name": res.plural,
                "singularName": info.singular,
                "namespaced": info.namespaced,
                "kind": info.kind,
                "verbs": sorted(info.verbs),
                "shortNames": sorted(info.shortnames),
            }
            listed.append(entry)
            for sub in sorted(info.subresources):
                verbs = ["get"] if sub == "log" else ["get", "patch", "update"]
                listed.append({**entry, "name": f"{res.plural}/{sub}", "verbs": verbs, "shortNames": []})
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": listed,
        }
    raise ApiError(404, f"the server could not find the requested resource ({path})")


class _Stored:
    """One object's versions, oldest first; None marks a deletion."""

    def __init__(self, raw: _Obj) -> None:
        self.history: list[_Obj | None] = [raw]

    @property
    def deleted(self) -> bool:
        return self.history[-1] is None

    @property
    def raw(self) -> _Obj:
        latest = self.history[-1]
        assert latest is not None, "a deleted object has no current version"
        return latest

    def delete(self) -> None:
        self.history.append(None)


_PODS = Resource("", "v1", "pods")
_ORPHAN_BY_DEFAULT = frozenset({("batch", "jobs")})  # batch/v1 Job's DefaultGarbageCollectionPolicy


# --------------------------------------------------------------------------------------------------
# Public value types
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CustomResource:
    """A custom kind to declare in discovery (one CRD version)."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    subresources: tuple[str, ...] = ("status",)
    shortnames: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        """``group/version`` as used in ``apiVersion``."""
        return f"{self.group}/{self.version}"


#: Custom kinds declared by default, besides :data:`BUILTIN_RESOURCES`.
#: Argo's Workflow CRD has no status subresource: its controller writes status via the main endpoint.
CUSTOM_RESOURCES: tuple[CustomResource, ...] = (
    CustomResource("kubeflow.org", "v1", "tfjobs", "TFJob"),
    CustomResource("kubeflow.org", "v1", "pytorchjobs", "PyTorchJob"),
    CustomResource("kubeflow.org", "v1", "xgboostjobs", "XGBoostJob"),
    CustomResource("argoproj.io", "v1alpha1", "workflows", "Workflow", subresources=(), shortnames=("wf",)),
    CustomResource("trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob"),
    CustomResource("kubeflow.org", "v2beta1", "mpijobs", "MPIJob"),
    CustomResource("tekton.dev", "v1", "pipelineruns", "PipelineRun", shortnames=("pr",)),
    CustomResource("jobset.x-k8s.io", "v1alpha2", "jobsets", "JobSet"),
    CustomResource("ray.io", "v1", "rayjobs", "RayJob"),
    CustomResource("kueue.x-k8s.io", "v1beta1", "clusterqueues", "ClusterQueue", namespaced=False),
)


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request the emulator received (client traffic only; harness writes are not recorded).

    ``verb`` is the Kubernetes verb (get, list, watch, create, update, patch, delete, deletecollection)
    or None for non-resource paths (discovery, /version).
    """

    id: int
    method: str
    path: str
    query: Mapping[str, str]
    body: Any
    content_type: str
    verb: str | None
    group: str | None
    version: str | None
    plural: str | None
    namespace: str | None
    name: str | None
    subresource: str | None
    status: int | None  # the HTTP status answered (200 for streams once they started); None if pending

    @property
    def propagation_policy(self) -> str | None:
        """``propagationPolicy`` of a delete, from the query string or the DeleteOptions body."""
        if "propagationPolicy" in self.query:
            return self.query["propagationPolicy"]
        if isinstance(self.body, Mapping):
            value = self.body.get("propagationPolicy")
            return str(value) if value is not None else None
        return None


@dataclasses.dataclass
class Fault:
    """An injected failure: the next ``times`` matching requests answer ``status`` (None = forever).

    Criteria left as None match anything. ``path`` is a prefix of the URL path. With ``in_stream``,
    a matching *watch* answers 200 and sends one ``ERROR`` event carrying ``status`` (as the real API
    server does for 410 Gone), then ends the stream. ``hits`` counts how often it fired.
    The fault is checked before anything is stored, so a faulted create stores nothing.
    """

    status: int
    verb: str | None = None
    plural: str | None = None
    group: str | None = None
    path: str | None = None
    name: str | None = None
    namespace: str | None = None
    subresource: str | None = None
    times: int | None = 1
    in_stream: bool = False
    reason: str | None = None
    message: str | None = None
    stall: bool = False
    """Never answer (a watch: answer 200, then send nothing and never end) until the client
    disconnects or the emulator stops."""
    hits: int = 0

    def matches(self, rec: RecordedRequest) -> bool:
        """Whether this fault applies to the request (ignoring the remaining count)."""
        return (
            (self.verb is None or self.verb == rec.verb)
            and (self.subresource is None or self.subresource == rec.subresource)
            and (self.plural is None or self.plural == rec.plural)
            and (self.group is None or self.group == rec.group)
            and (self.path is None or rec.path.startswith(self.path))
            and (self.name is None or self.name == rec.name)
            and (self.namespace is None or self.namespace == rec.namespace)
        )

    @property
    def exhausted(self) -> bool:
        """True once it fired ``times`` times."""
        return self.times is not None and self.hits >= self.times


@dataclasses.dataclass
class WatchDrop:
    """An injected watch disconnect: the next ``times`` matching watches end after ``after_events`` events.

    ``abort=False`` ends the HTTP response cleanly (the client sees the stream end, as when a proxy or
    the API server closes it); ``abort=True`` resets the TCP connection mid-stream (urllib3 raises
    ``ProtocolError``). ``hits`` counts the watches dropped so far.
    """

    after_events: int = 0
    plural: str | None = None
    group: str | None = None
    namespace: str | None = None
    times: int | None = 1
    abort: bool = False
    hits: int = 0

    def matches(self, rec: RecordedRequest) -> bool:
        """Whether this drop applies to the watch request (ignoring the remaining count)."""
        return (
            rec.verb == "watch"
            and (self.plural is None or self.plural == rec.plural)
            and (self.group is None or self.group == rec.group)
            and (self.namespace is None or self.namespace == rec.namespace)
        )

    @property
    def exhausted(self) -> bool:
        """True once it dropped ``times`` watches."""
        return self.times is not None and self.hits >= self.times


# --------------------------------------------------------------------------------------------------
# Selectors & patches (pure functions)
# --------------------------------------------------------------------------------------------------


class SelectorError(ValueError):
    """An unparseable label or field selector (answered as HTTP 400)."""


_SET_TERM = re.compile(r"^\s*([^\s!=(),]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_terms(selector: str) -> list[str]:
    terms: list[str] = []
    depth = 0
    current = ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [term.strip() for term in terms if term.strip()]


def match_label_selector(selector: str | None, labels: Mapping[str, str] | None) -> bool:
    """Evaluate a Kubernetes label selector (equality- and set-based) against labels."""
    labels = labels or {}
    for term in _split_terms(selector or ""):
        if not re.match(r"^!?\s*[A-Za-z0-9]", term):
            raise SelectorError(f"invalid label selector term: {term!r}")
        if m := _SET_TERM.match(term):
            key, op, raw_values = m.groups()
            values = {v.strip() for v in raw_values.split(",") if v.strip()}
            ok = (key in labels and labels[key] in values) if op == "in" else labels.get(key) not in values
        elif "!=" in term:
            key, value = (part.strip() for part in term.split("!=", 1))
            ok = labels.get(key) != value
        elif "=" in term:
            key, value = (part.strip() for part in re.split(r"==?", term, maxsplit=1))
            ok = key in labels and labels[key] == value
        elif term.startswith("!"):
            ok = term[1:].strip() not in labels
        else:
            ok = term in labels
        if not ok:
            return False
    return True


def _lookup(obj: Mapping[str, Any], dotted: str) -> str:
    value: Any = obj
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def match_field_selector(selector: str | None, obj: Mapping[str, Any]) -> bool:
    """Evaluate a field selector (``metadata.name=x,status.phase!=Failed``) against an object."""
    for term in _split_terms(selector or ""):
        if "!=" in term:
            path, value = (part.strip() for part in term.split("!=", 1))
            ok = _lookup(obj, path) != value
        elif "=" in term:
            path, value = (part.strip() for part in re.split(r"==?", term, maxsplit=1))
            ok = _lookup(obj, path) == value
        else:
            raise SelectorError(f"invalid field selector term: {term!r}")
        if not path:
            raise SelectorError(f"invalid field selector term: {term!r}")
        if not ok:
            return False
    return True


def _label_key_problem(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return "prefix part must be a lowercase RFC 1123 subdomain"
    if not name or len(name) > 63 or not _LABEL_NAME.fullmatch(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
            "with an alphanumeric character, at most 63 characters"
        )
    return None


def validate_metadata(kind: str, plural: str, meta: Mapping[str, Any]) -> list[dict[str, str]]:
    """The API server's ``metadata`` validation: a list of ``details.causes`` (empty when valid)."""
    causes: list[dict[str, str]] = []

    def invalid(field: str, value: Any, message: str) -> None:
        causes.append(
            {
                "reason": "FieldValueInvalid",
                "message": f"Invalid value: {json.dumps(value)}: {message}",
                "field": field,
            }
        )

    name = meta.get("name")
    if isinstance(name, str):
        limit = 63 if plural == "jobs" else 253
        if len(name) > limit:
            invalid("metadata.name", name, f"must be no more than {limit} characters")
        elif not _DNS_SUBDOMAIN.fullmatch(name):
            invalid(
                "metadata.name",
                name,
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
                "'.', and must start and end with an alphanumeric character",
            )
    for key, value in (meta.get("labels") or {}).items():
        problem = _label_key_problem(str(key))
        if problem is not None:
            invalid("metadata.labels", key, problem)
        if not isinstance(value, str):
            invalid("metadata.labels", value, "must be a string")
        elif len(value) > 63:
            invalid("metadata.labels", value, "must be no more than 63 characters")
        elif value and not _LABEL_NAME.fullmatch(value):
            invalid(
                "metadata.labels",
                value,
                "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
                "'.', and must start and end with an alphanumeric character",
            )
    for key, value in (meta.get("annotations") or {}).items():
        problem = _label_key_problem(str(key))
        if problem is not None:
            invalid("metadata.annotations", key, problem)
        if not isinstance(value, str):
            invalid("metadata.annotations", value, "must be a string")
    for index, ref in enumerate(meta.get("ownerReferences") or []):
        for field in ("apiVersion", "kind", "name", "uid"):
            if not isinstance(ref, Mapping) or not ref.get(field):
                causes.append(
                    {
                        "reason": "FieldValueRequired",
                        "message": "Required value",
                        "field": f"metadata.ownerReferences[{index}].{field}",
                    }
                )
    return causes


def trim_termination_messages(pod: _Obj) -> None:
    """The kubelet's limits on termination messages, in place: the file's last 4096 bytes, then
    the first 12 KiB / (containers + initContainers + ephemeralContainers) bytes."""
    spec = pod.get("spec") or {}
    count = sum(len(spec.get(key) or []) for key in ("containers", "initContainers", "ephemeralContainers"))
    budget = _POD_MESSAGE_BYTES // max(count, 1)
    status = pod.get("status") or {}
    for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        for container in status.get(key) or []:
            for which in ("state", "lastState"):
                terminated = (
                    (container.get(which) or {}).get("terminated") if isinstance(container, dict) else None
                )
                if isinstance(terminated, dict) and isinstance(terminated.get("message"), str):
                    data = terminated["message"].encode()[-_CONTAINER_MESSAGE_BYTES:][:budget]
                    terminated["message"] = data.decode("utf-8", errors="replace")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: dicts merge recursively, ``None`` deletes, anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result: dict[str, Any] = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --------------------------------------------------------------------------------------------------
# The kmock subclass (lives in the emulator thread's event loop only)
# --------------------------------------------------------------------------------------------------


def _waiting_reason(pod: Mapping[str, Any], container: str | None) -> str | None:
    """Why the kubelet refuses the container's log (it has not started), or None."""
    status = pod.get("status") or {}
    statuses = [
        s
        for key in ("containerStatuses", "initContainerStatuses")
        for s in status.get(key) or []
        if isinstance(s, Mapping) and s.get("name") == container
    ]
    if not statuses:
        return "ContainerCreating" if status.get("phase") == "Pending" else None
    state = statuses[0].get("state") or {}
    if "running" in state or "terminated" in state:
        return None
    if "terminated" in (statuses[0].get("lastState") or {}):
        return None  # the previous instance's log is served
    reason = str((state.get("waiting") or {}).get("reason") or "")
    if reason == "ErrImagePull":
        return "image can't be pulled"
    if reason == "ImagePullBackOff":
        return "trying and failing to pull image"
    return reason or "ContainerCreating"


def _container_status(pod: Mapping[str, Any], container: str | None) -> Mapping[str, Any] | None:
    status = pod.get("status") or {}
    for key in ("containerStatuses", "initContainerStatuses"):
        for entry in status.get(key) or []:
            if isinstance(entry, Mapping) and entry.get("name") == container:
                return entry
    return None


def _stamp(at: datetime.datetime) -> str:
    """The kubelet's ``RFC3339NanoFixed`` (nanoseconds, always nine digits)."""
    at = at.astimezone(datetime.UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond * 1000:09d}Z"


def _parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _log_options(pod: str, params: Mapping[str, str]) -> dict[str, Any]:
    """The ``PodLogOptions`` of a query, validated as the API server validates them."""

    def integer(name: str) -> int | None:
        if name not in params:
            return None
        try:
            return int(params[name])
        except ValueError:
            raise _error(400, f"{name}: invalid value {params[name]!r}: must be an integer") from None

    tail, limit, since_seconds = integer("tailLines"), integer("limitBytes"), integer("sinceSeconds")
    since_time = None
    if "sinceTime" in params:
        try:
            since_time = _parse_time(params["sinceTime"])
        except ValueError:
            raise _error(400, f"sinceTime: invalid value {params['sinceTime']!r}: not RFC 3339") from None
    causes = []
    if tail is not None and tail < 0:
        causes.append(("tailLines", "must be greater than or equal to 0"))
    if limit is not None and limit < 1:
        causes.append(("limitBytes", "must be greater than 0"))
    if since_seconds is not None and since_seconds < 1:
        causes.append(("sinceSeconds", "must be greater than 0"))
    if since_seconds is not None and since_time is not None:
        causes.append(("", "at most one of `sinceTime` or `sinceSeconds` may be specified"))
    if causes:
        message = "; ".join(f"{field}: {text}" if field else text for field, text in causes)
        raise _error(
            422,
            f'PodLogOptions "{pod}" is invalid: {message}',
            details={
                "name": pod,
                "kind": "PodLogOptions",
                "causes": [{"reason": "FieldValueInvalid", "message": t, "field": f} for f, t in causes],
            },
        )
    if since_seconds is not None:
        since_time = datetime.datetime.now(tz=datetime.UTC) - datetime.timedelta(seconds=since_seconds)
    if since_time is not None:
        # The API server forwards sinceTime to the kubelet as RFC 3339 with whole seconds
        # (pod strategy's LogLocation): lines from the start of that second come back.
        since_time = since_time.replace(microsecond=0)
    return {
        "since": since_time,
        "tail": tail,
        "limit": limit,
        "timestamps": params.get("timestamps", "").lower() in ("true", "1"),
    }


@dataclasses.dataclass
class _ContainerLog:
    """One container's log as the kubelet keeps it: the current instance's newest file (lines
    stamped when written) and the last terminated instance's."""

    current: list[tuple[datetime.datetime, str]] = dataclasses.field(default_factory=list)
    previous: list[tuple[datetime.datetime, str]] = dataclasses.field(default_factory=list)

    def write(self, text: str, at: datetime.datetime | None) -> None:
        for line in text.splitlines(keepends=True):
            if self.current and not self.current[-1][1].endswith("\n"):
                stamp, start = self.current.pop()  # the rest of a line written in parts
                self.current.append((stamp, start + line))
            else:
                self.current.append((at or datetime.datetime.now(tz=datetime.UTC), line))

    def serve(
        self,
        *,
        previous: bool,
        since: datetime.datetime | None,
        tail: int | None,
        limit: int | None,
        timestamps: bool,
    ) -> bytes:
        # The kubelet's ReadLogs: the tail is found first, then lines before `since` are
        # skipped, and the writer stops after `limitBytes` (even mid-line).
        lines = self.previous if previous else self.current
        if tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        text = "".join(
            (f"{_stamp(at)} {line}" if timestamps else line)
            for at, line in lines
            if since is None or at >= since
        ).encode()
        return text[:limit] if limit is not None else text


def _check_field_selector(res: Resource, selector: str | None) -> None:
    """A real API server accepts field selectors only on the fields each kind registers."""
    allowed = {"metadata.name", "metadata.namespace"} | (_POD_FIELDS if res == _PODS else set())
    for term in _split_terms(selector or ""):
        field = re.split(r"!=|==?", term, maxsplit=1)[0].strip()
        if field not in allowed:
            raise _error(
                400,
                f"field label not supported: {field}",
                reason="BadRequest",
            )


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _api_version(res: Resource) -> str:
    return f"{res.group}/{res.version}" if res.group else str(res.version)


def _error(status: int, message: str, reason: str | None = None, details: Any = None) -> ApiError:
    return ApiError(
        status=status,
        reason=reason or _STATUS_REASONS.get(status, "Unknown"),
        message=message,
        details=details if details is not None else {},
    )


def _status_body(status: int, message: str, reason: str | None = None) -> _Obj:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason or _STATUS_REASONS.get(status, "Unknown"),
        "code": status,
    }


@dataclasses.dataclass
class _Event:
    rv: int
    resource: Resource
    type: str
    obj: _Obj
    old: _Obj | None


@dataclasses.dataclass(eq=False)
class _OpenWatch:
    """One streaming watch response, with its injected drop (if any)."""

    rec: RecordedRequest
    raw: aiohttp.web.BaseRequest
    response: aiohttp.web.StreamResponse
    drop: WatchDrop | None
    wakeup: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    ready: bool = False  # past the initial burst, streaming live
    closing: bool = False  # asked to end by close_watches()
    aborted: bool = False  # the connection was reset (no clean end of the response)
    sent: int = 0

    @property
    def drop_due(self) -> bool:
        return self.drop is not None and self.sent >= self.drop.after_events

    @property
    def client_gone(self) -> bool:
        return self.raw.transport is None or self.raw.transport.is_closing()

    def do_drop(self) -> None:
        if self.drop is not None and self.drop.abort and self.raw.transport is not None:
            self.raw.transport.abort()
            self.aborted = True

    async def send(self, event: _Obj) -> bool:
        """Send one event; False if the stream must end now because of an injected drop."""
        if self.drop_due:
            self.do_drop()
            return False
        await self.response.write(json.dumps(event).encode() + b"\n")
        self.sent += 1
        return True


@dataclasses.dataclass
class _MutableRecord:
    data: RecordedRequest


class _Emulator:
    """The API server: routes each request, keeps the objects, streams watches.

    An ``aiohttp`` low-level handler (``aiohttp.web.Server(emulator)``): every request is read
    by :func:`parse_request`, recorded, and answered from the store, or by discovery.
    """

    def __init__(self) -> None:
        self.resources: dict[Resource, ResourceInfo] = dict(BUILTIN_RESOURCES)
        self.objects: dict[tuple[Resource, str | None, str], _Stored] = {}
        self._rv = 0
        self._compacted_rv = 0
        self._events: list[_Event] = []
        self._watches: set[_OpenWatch] = set()
        self._records: list[_MutableRecord] = []
        self._faults: list[Fault] = []
        self._drops: list[WatchDrop] = []
        self._logs: dict[tuple[str, str, str | None], _ContainerLog] = {}
        self._rules_lock = threading.Lock()
        self._shutting_down = False
        self._next_id = 0

    # ---- request entry point ----------------------------------------------------------------

    async def __call__(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        self._next_id += 1
        try:
            request = await parse_request(raw, self._next_id)
        except ApiError as error:
            return aiohttp.web.json_response(error.body(), status=error.status)
        record = self._record(request)
        try:
            fault = self._take_fault(record.data)
            if fault is not None:
                response = await self._respond_fault(request, record, fault)
            elif request.resource is not None:
                response = await self._serve_resource(request, record)
            else:
                response = aiohttp.web.json_response(discovery(request.path, self.resources))
        except ApiError as error:
            self._set_status(record, error.status)
            return aiohttp.web.json_response(error.body(), status=error.status)
        except Exception as error:  # an emulator bug: a 500 the test sees, not a hung client
            self._set_status(record, 500)
            return aiohttp.web.json_response(
                _status_body(500, f"{type(error).__name__}: {error}"), status=500
            )
        self._set_status(record, response.status)
        return response

    def _record(self, request: ApiRequest) -> _MutableRecord:
        res = request.resource
        record = _MutableRecord(
            RecordedRequest(
                id=request.id,
                method=request.method,
                path=request.path,
                query=dict(request.params),
                body=copy.deepcopy(request.data) if isinstance(request.data, dict | list) else request.data,
                content_type=request.content_type,
                verb=request.verb,
                group=res.group if res is not None else None,
                version=res.version if res is not None else None,
                plural=res.plural if res is not None else None,
                namespace=request.namespace,
                name=request.name,
                subresource=request.subresource,
                status=None,
            )
        )
        with self._rules_lock:
            self._records.append(record)
        return record

    def _set_status(self, record: _MutableRecord, status: int) -> None:
        if record.data.status is None:
            with self._rules_lock:
                record.data = dataclasses.replace(record.data, status=status)

    def recorded(self) -> list[RecordedRequest]:
        """A snapshot of the recorded requests (thread-safe)."""
        with self._rules_lock:
            return [record.data for record in self._records]

    # ---- fault injection ------------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        with self._rules_lock:
            self._faults.append(fault)

    def add_drop(self, drop: WatchDrop) -> None:
        with self._rules_lock:
            self._drops.append(drop)

    def clear_faults(self) -> None:
        with self._rules_lock:
            self._faults.clear()
            self._drops.clear()

    def _take_fault(self, rec: RecordedRequest) -> Fault | None:
        with self._rules_lock:
            for fault in self._faults:
                if not fault.exhausted and fault.matches(rec):
                    fault.hits += 1
                    return fault
        return None

    def _take_drop(self, rec: RecordedRequest) -> WatchDrop | None:
        with self._rules_lock:
            for drop in self._drops:
                if not drop.exhausted and drop.matches(rec):
                    drop.hits += 1
                    return drop
        return None

    async def _respond_fault(
        self, request: ApiRequest, record: _MutableRecord, fault: Fault
    ) -> aiohttp.web.StreamResponse:
        message = fault.message or f"injected fault: HTTP {fault.status}"
        body = _status_body(fault.status, message, fault.reason)
        if fault.stall:
            return await self._stall(request.raw, record, record.data.verb == "watch")
        if fault.in_stream and record.data.verb == "watch":
            response = aiohttp.web.StreamResponse(status=200)
            response.content_type = "application/json"
            self._set_status(record, 200)
            await response.prepare(request.raw)
            await response.write(json.dumps({"type": "ERROR", "object": body}).encode() + b"\n")
            await response.write_eof()
            return response
        return aiohttp.web.json_response(body, status=fault.status)

    async def _stall(
        self, raw: aiohttp.web.BaseRequest, record: _MutableRecord, as_watch: bool
    ) -> aiohttp.web.StreamResponse:
        """Hold the request open, silent, until the client leaves or the emulator stops."""
        response = aiohttp.web.StreamResponse(status=200)
        if as_watch:  # a half-open watch: headers arrive, then nothing, past any timeoutSeconds
            response.content_type = "application/json"
            self._set_status(record, 200)
            await response.prepare(raw)
        while not self._shutting_down and raw.transport is not None and not raw.transport.is_closing():
            await asyncio.sleep(_WATCH_POLL_SECONDS)
        if raw.transport is not None:
            raw.transport.abort()
        return response

    # ---- resources ------------------------------------------------------------------------------

    def declare(self, custom: CustomResource) -> None:
        self.resources[Resource(custom.group, custom.version, custom.plural)] = ResourceInfo(
            kind=custom.kind,
            singular=custom.kind.lower(),
            namespaced=custom.namespaced,
            shortnames=frozenset(custom.shortnames),
            subresources=frozenset(custom.subresources),
        )

    def info(self, res: Resource) -> ResourceInfo:
        if res not in self.resources:
            raise _error(
                404, f"the server could not find the requested resource ({_api_version(res)} {res.plural})"
            )
        return self.resources[res]

    # ---- the store (synchronous: atomic within the event loop) -----------------------------------

    def _live(self, key: tuple[Resource, str | None, str]) -> _Obj | None:
        if key not in self.objects:
            return None
        obj = self.objects[key]
        return None if obj.deleted else copy.deepcopy(obj.raw)

    def _commit(self, res: Resource, event_type: str, new: _Obj, old: _Obj | None) -> _Obj:
        meta = new["metadata"]
        key = (res, meta.get("namespace"), meta["name"])
        self._rv += 1
        meta["resourceVersion"] = str(self._rv)
        if event_type == "DELETED":
            self.objects[key].delete()
        elif key in self.objects:
            self.objects[key].history.append(copy.deepcopy(new))
        else:
            self.objects[key] = _Stored(copy.deepcopy(new))
        self._events.append(_Event(self._rv, res, event_type, copy.deepcopy(new), old))
        for watch in self._watches:
            watch.wakeup.set()
        return new

    def resource_version(self) -> int:
        return self._rv

    def compact(self) -> int:
        self._compacted_rv = self._rv
        return self._rv

    def get_object(self, res: Resource, namespace: str | None, name: str) -> _Obj:
        info = self.info(res)
        obj = self._live((res, namespace if info.namespaced else None, name))
        if obj is None:
            raise _error(
                404,
                f'{res.plural}{"." + res.group if res.group else ""} "{name}" not found',
                details={"name": name, "group": res.group, "kind": res.plural},
            )
        return obj

    def find_object(self, res: Resource, namespace: str | None, name: str) -> _Obj | None:
        info = self.info(res)
        return self._live((res, namespace if info.namespaced else None, name))

    def list_objects(
        self,
        res: Resource,
        namespace: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        name: str | None = None,
    ) -> list[_Obj]:
        info = self.info(res)
        result: list[_Obj] = []
        for (key_res, key_ns, key_name), obj in self.objects.items():
            if key_res != res or obj.deleted:
                continue
            if info.namespaced and namespace is not None and key_ns != namespace:
                continue
            if name is not None and key_name != name:
                continue
            raw = obj.raw
            if not match_label_selector(label_selector, raw.get("metadata", {}).get("labels")):
                continue
            if not match_field_selector(field_selector, raw):
                continue
            result.append(copy.deepcopy(raw))
        return result

    def create_object(
        self, res: Resource, namespace: str | None, body: Any, *, from_client: bool = False
    ) -> _Obj:
        """Store a new object; ``from_client``: an API request (its ``status`` is dropped for kinds
        with a status subresource, as the API server does)."""
        info = self.info(res)
        if not isinstance(body, Mapping):
            raise _error(400, "the request body must be a JSON object")
        obj: _Obj = copy.deepcopy(dict(body))
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise _error(400, "metadata must be an object")
        if info.namespaced:
            if namespace and meta.get("namespace") and meta["namespace"] != namespace:
                raise _error(
                    400,
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            namespace = namespace or meta.get("namespace")
            if not namespace:
                raise _error(400, "a namespace is required to create a namespaced object")
            meta["namespace"] = namespace
        else:
            namespace = None
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
            meta["name"] = f"{meta['generateName']}{suffix}"
        name = meta.get("name")
        if not name:
            raise _error(422, "metadata.name: Required value: name or generateName is required")
        if self._live((res, namespace, name)) is not None:
            raise _error(
                409,
                f'{res.plural}{"." + res.group if res.group else ""} "{name}" already exists',
                reason="AlreadyExists",
                details={"name": name, "group": res.group, "kind": res.plural},
            )
        obj.setdefault("apiVersion", _api_version(res))
        if info.kind:
            obj.setdefault("kind", info.kind)
        self._validate(res, info, obj)
        if from_client and "status" in info.subresources:
            obj.pop("status", None)
        for field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        meta["generation"] = 1
        if res == _PODS:
            trim_termination_messages(obj)
        created = self._commit(res, "ADDED", obj, None)
        if meta.get("ownerReferences") and not self._has_live_owner(meta, namespace):
            # The garbage collector removes a dependent whose owners do not exist (in its namespace).
            asyncio.get_running_loop().call_soon(self._collect, res, namespace, name, meta["uid"])
        return created

    def _validate(self, res: Resource, info: ResourceInfo, obj: _Obj) -> None:
        meta = obj["metadata"]
        causes = validate_metadata(str(info.kind or ""), str(res.plural), meta)
        if causes:
            group = f".{res.group}" if res.group else ""
            shown = ", ".join(f"{c['field']}: {c['message']}" for c in causes)
            raise _error(
                422,
                f'{info.kind}{group} "{meta.get("name")}" is invalid: '
                + (f"[{shown}]" if len(causes) > 1 else shown),
                details={"name": meta.get("name"), "group": res.group, "kind": info.kind, "causes": causes},
            )

    # ---- garbage collection ----------------------------------------------------------------------

    def _live_uids(self, namespace: str | None) -> set[str]:
        return {
            str(obj.raw["metadata"].get("uid"))
            for (_, key_ns, _), obj in self.objects.items()
            if not obj.deleted and (key_ns is None or key_ns == namespace)
        }

    def _has_live_owner(self, meta: Mapping[str, Any], namespace: str | None) -> bool:
        uids = self._live_uids(namespace)
        return any(ref.get("uid") in uids for ref in meta.get("ownerReferences") or [])

    def _collect(self, res: Resource, namespace: str | None, name: str, uid: str) -> None:
        obj = self._live((res, namespace, name))
        if (
            obj is not None
            and obj["metadata"].get("uid") == uid
            and not self._has_live_owner(obj["metadata"], namespace)
        ):
            self.delete_object(res, namespace, name, policy="Background")

    def _dependents(self, uid: str, namespace: str | None) -> list[tuple[Resource, str | None, str]]:
        found = []
        for (key_res, key_ns, key_name), obj in self.objects.items():
            if obj.deleted or (namespace is not None and key_ns != namespace):
                continue
            if any(ref.get("uid") == uid for ref in obj.raw["metadata"].get("ownerReferences") or []):
                found.append((key_res, key_ns, key_name))
        return found

    def _collect_dependents(self, owner: _Obj, policy: str) -> None:
        meta = owner["metadata"]
        uid = meta.get("uid")
        for key_res, key_ns, key_name in self._dependents(str(uid), meta.get("namespace")):
            if policy == "Orphan":
                self.update_object(
                    key_res,
                    key_ns,
                    key_name,
                    lambda old: self._without_owner(old, str(uid)),
                    scope="all",
                )
            else:
                self._collect(
                    key_res,
                    key_ns,
                    key_name,
                    self.objects[(key_res, key_ns, key_name)].raw["metadata"]["uid"],
                )

    @staticmethod
    def _without_owner(old: _Obj, uid: str) -> _Obj:
        refs = [r for r in old["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
        if refs:
            old["metadata"]["ownerReferences"] = refs
        else:
            old["metadata"].pop("ownerReferences", None)
        return old

    def update_object(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        change: Callable[[_Obj], _Obj],
        *,
        subresource: str | None = None,
        expected_rv: str | None = None,
        scope: str = "http",
    ) -> _Obj:
        """Apply ``change`` to the live object; identity fields are preserved; no-op changes emit nothing.

        ``scope``: ``"http"`` follows the API rules (``subresource="status"`` changes only the status; the
        main endpoint keeps the status of kinds with a status subresource); ``"status"`` changes only the
        status; ``"all"`` changes everything but identity fields (harness writes).
        """
        info = self.info(res)
        old = self.get_object(res, namespace, name)
        old_meta = old["metadata"]
        if expected_rv and expected_rv != old_meta.get("resourceVersion"):
            raise _error(
                409,
                f'Operation cannot be fulfilled on {res.plural} "{name}": the object has been '
                "modified; please apply your changes to the latest version and try again",
            )
        try:
            changed = change(copy.deepcopy(old))
        except (ValueError, TypeError, jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
            raise _error(422, f"cannot apply the change: {e}") from e
        if not isinstance(changed, dict) or not isinstance(changed.get("metadata", {}), dict):
            raise _error(422, "the result of the change is not an object")
        if scope == "status" or (scope == "http" and subresource == "status"):
            new = copy.deepcopy(old)
            if changed.get("status") is None:
                new.pop("status", None)
            else:
                new["status"] = changed["status"]
        else:
            new = changed
            if scope == "http" and "status" in info.subresources:  # the main endpoint ignores status changes
                if "status" in old:
                    new["status"] = old["status"]
                else:
                    new.pop("status", None)
            new["apiVersion"] = old.get("apiVersion")
            new["kind"] = old.get("kind")
        meta = new.setdefault("metadata", {})
        for field in (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ):
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        meta["resourceVersion"] = old_meta.get("resourceVersion")
        if new.get("spec") != old.get("spec"):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        if res == _PODS:
            trim_termination_messages(new)
        if scope == "http":
            self._validate(res, info, new)
        if new == old:
            return old  # no-op: no new resourceVersion, no event (as the real API server)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            deleted = self._commit(res, "DELETED", new, old)
            self._collect_dependents(deleted, "Background")
            return deleted
        return self._commit(res, "MODIFIED", new, old)

    def delete_object(
        self,
        res: Resource,
        namespace: str | None,
        name: str,
        preconditions: Mapping[str, Any] | None = None,
        policy: str | None = None,
    ) -> tuple[_Obj, bool]:
        """Delete (or mark for deletion if finalizers exist). Returns (object, actually_deleted).

        ``policy`` is the ``propagationPolicy`` (None: the kind's default, ``Orphan`` for
        ``batch/v1`` Jobs, else ``Background``); dependents are collected at once.
        """
        if policy is None:
            policy = "Orphan" if (res.group, res.plural) in _ORPHAN_BY_DEFAULT else "Background"
        if policy not in ("Orphan", "Background", "Foreground"):
            raise _error(400, f"unsupported propagationPolicy {policy!r}")
        old = self.get_object(res, namespace, name)
        meta = old["metadata"]
        preconditions = preconditions or {}
        for field in ("uid", "resourceVersion"):
            if preconditions.get(field) and preconditions[field] != meta.get(field):
                raise _error(
                    409,
                    f"Precondition failed: {field} in precondition: {preconditions[field]}, "
                    f"{field} in object meta: {meta.get(field)}",
                )
        if meta.get("deletionTimestamp"):
            return old, False
        dependents = self._dependents(str(meta.get("uid")), namespace)
        if policy == "Foreground" and dependents:
            # The owner stays, marked, until the collector has deleted its dependents.
            marked = copy.deepcopy(old)
            marked["metadata"]["deletionTimestamp"] = _now()
            marked["metadata"]["deletionGracePeriodSeconds"] = 0
            marked["metadata"]["finalizers"] = [*(meta.get("finalizers") or []), "foregroundDeletion"]
            marked = self._commit(res, "MODIFIED", marked, old)
            asyncio.get_running_loop().call_soon(self._finish_foreground, res, namespace, name)
            return marked, False
        if meta.get("finalizers"):
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = _now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            return self._commit(res, "MODIFIED", new, old), False
        deleted = self._commit(res, "DELETED", copy.deepcopy(old), old)
        self._collect_dependents(deleted, policy)
        return deleted, True

    def _finish_foreground(self, res: Resource, namespace: str | None, name: str) -> None:
        owner = self._live((res, namespace, name))
        if owner is None:
            return
        uid = str(owner["metadata"].get("uid"))
        for key_res, key_ns, key_name in self._dependents(uid, namespace):
            self.delete_object(key_res, key_ns, key_name, policy="Foreground")

        def release(old: _Obj) -> _Obj:
            old["metadata"]["finalizers"] = [
                f for f in old["metadata"].get("finalizers") or [] if f != "foregroundDeletion"
            ]
            if not old["metadata"]["finalizers"]:
                del old["metadata"]["finalizers"]
            return old

        if self._dependents(uid, namespace):  # dependents with finalizers of their own: try again
            asyncio.get_running_loop().call_later(0.05, self._finish_foreground, res, namespace, name)
            return
        self.update_object(res, namespace, name, release, scope="all")

    def set_log(
        self,
        namespace: str,
        pod: str,
        container: str | None,
        text: str,
        append: bool,
        at: datetime.datetime | None = None,
    ) -> None:
        log = self._logs.setdefault((namespace, pod, container), _ContainerLog())
        if not append:
            log.current = []
        log.write(text, at)

    def rotate_log(self, namespace: str, pod: str, container: str | None) -> None:
        log = self._logs.setdefault((namespace, pod, container), _ContainerLog())
        log.current = []

    def restart_log(self, namespace: str, pod: str, container: str | None) -> None:
        log = self._logs.setdefault((namespace, pod, container), _ContainerLog())
        log.previous, log.current = log.current, []

    def shutdown_watches(self) -> None:
        self._shutting_down = True
        for watch in self._watches:
            watch.wakeup.set()

    def close_watches(self) -> int:
        count = 0
        for watch in self._watches:
            watch.closing = True
            watch.wakeup.set()
            count += 1
        return count

    def open_watches(self) -> list[RecordedRequest]:
        return [watch.rec for watch in self._watches if watch.ready and not watch.closing]

    # ---- HTTP serving of resource URLs ------------------------------------------------------------

    async def _serve_resource(
        self, request: ApiRequest, record: _MutableRecord
    ) -> aiohttp.web.StreamResponse:
        res = request.resource
        assert res is not None, "discovery is served apart"
        info = self.info(res)
        rec = record.data
        namespace = request.namespace if info.namespaced else None
        params = request.params
        sub = request.subresource
        if sub is not None and sub not in ("status", "log"):
            raise _error(404, f"the subresource {sub!r} is not emulated")
        if sub == "log":
            if res != Resource("", "v1", "pods") or rec.verb != "get" or request.name is None:
                raise _error(405, "only GET of pods/log is emulated")
            return self._serve_log(namespace, request.name, params)

        if rec.verb == "watch":
            return await self._serve_watch(request, record, res, namespace)
        try:
            if rec.verb == "get":
                assert request.name is not None
                return aiohttp.web.json_response(self.get_object(res, namespace, request.name))
            if rec.verb in ("list", "deletecollection"):
                _check_field_selector(res, params.get("fieldSelector"))
            if rec.verb == "list":
                items = self.list_objects(
                    res, namespace, params.get("labelSelector"), params.get("fieldSelector")
                )
                return aiohttp.web.json_response(self._list_body(res, info, items))
            if rec.verb == "create":
                if sub is not None:
                    raise _error(405, "POST to a subresource is not emulated")
                return aiohttp.web.json_response(
                    self.create_object(res, namespace, request.data, from_client=True), status=201
                )
            if rec.verb in ("update", "patch"):
                assert request.name is not None
                return aiohttp.web.json_response(
                    self._serve_write(request, res, namespace, request.name, rec)
                )
            if rec.verb == "delete":
                assert request.name is not None
                return self._serve_delete(request, res, info, namespace, request.name)
            if rec.verb == "deletecollection":
                items = self.list_objects(
                    res, namespace, params.get("labelSelector"), params.get("fieldSelector")
                )
                deleted = [
                    self.delete_object(res, obj["metadata"].get("namespace"), obj["metadata"]["name"])[0]
                    for obj in items
                ]
                return aiohttp.web.json_response(self._list_body(res, info, deleted))
        except SelectorError as e:
            raise _error(400, str(e)) from e
        raise _error(405, f"method {rec.method} is not emulated for {rec.path}")

    def _list_body(self, res: Resource, info: ResourceInfo, items: list[_Obj]) -> _Obj:
        return {
            "apiVersion": _api_version(res),
            "kind": f"{info.kind or 'Object'}List",
            "metadata": {"resourceVersion": str(self._rv)},
            "items": items,
        }

    def _serve_write(
        self,
        request: ApiRequest,
        res: Resource,
        namespace: str | None,
        name: str,
        rec: RecordedRequest,
    ) -> _Obj:
        body = request.data
        if rec.verb == "update":
            if not isinstance(body, Mapping):
                raise _error(400, "the request body must be a JSON object")
            body_meta = body.get("metadata") or {}
            if body_meta.get("name") not in (None, name):
                raise _error(400, "the name of the object does not match the name on the URL")
            return self.update_object(
                res,
                namespace,
                name,
                lambda _old: copy.deepcopy(dict(body)),
                subresource=request.subresource,
                expected_rv=body_meta.get("resourceVersion"),
            )
        content_type = rec.content_type
        if content_type == "application/json-patch+json":
            if not isinstance(body, list):
                raise _error(400, "a JSON patch must be a list of operations")
            return self.update_object(
                res,
                namespace,
                name,
                lambda old: jsonpatch.apply_patch(old, body, in_place=False),
                subresource=request.subresource,
            )
        if content_type in (
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
            "application/json",
        ):
            if not isinstance(body, Mapping):
                raise _error(400, "a merge patch must be a JSON object")
            expected_rv = (body.get("metadata") or {}).get("resourceVersion")
            return self.update_object(
                res,
                namespace,
                name,
                lambda old: merge_patch(old, body),
                subresource=request.subresource,
                expected_rv=expected_rv,
            )
        raise _error(415, f"the patch content type {content_type!r} is not emulated")

    def _serve_delete(
        self,
        request: ApiRequest,
        res: Resource,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
    ) -> aiohttp.web.StreamResponse:
        options = request.data if isinstance(request.data, Mapping) else {}
        policy = request.params.get("propagationPolicy") or options.get("propagationPolicy")
        if policy is None and "orphanDependents" in options:
            policy = "Orphan" if options["orphanDependents"] else "Background"
        obj, deleted = self.delete_object(res, namespace, name, options.get("preconditions"), policy)
        if not deleted:
            return aiohttp.web.json_response(obj, status=200)
        return aiohttp.web.json_response(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {
                    "name": name,
                    "group": res.group,
                    "kind": res.plural,
                    "uid": obj["metadata"].get("uid"),
                },
            }
        )

    def _serve_log(
        self, namespace: str | None, pod_name: str, params: Mapping[str, str]
    ) -> aiohttp.web.Response:
        pod = self.get_object(Resource("", "v1", "pods"), namespace, pod_name)
        containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        container = params.get("container")
        if container is None and len(containers) > 1:
            raise _error(
                400, f"a container name must be specified for pod {pod_name}, choose one of: {containers}"
            )
        if container is None and len(containers) == 1:
            container = containers[0]
        if container is not None and containers and container not in containers:
            raise _error(400, f"container {container} is not valid for pod {pod_name}")
        options = _log_options(pod_name, params)
        previous = params.get("previous", "").lower() in ("true", "1")
        entry = _container_status(pod, container)
        last_terminated = "terminated" in ((entry or {}).get("lastState") or {})
        if previous:
            if not last_terminated:  # the kubelet's validateContainerLogStatus
                raise _error(
                    400, f'previous terminated container "{container}" in pod "{pod_name}" not found'
                )
        else:
            waiting = _waiting_reason(pod, container)
            if waiting is not None:
                raise _error(
                    400, f'container "{container}" in pod "{pod_name}" is waiting to start: {waiting}'
                )
            state = (entry or {}).get("state") or {}
            # A container waiting to restart serves its last terminated instance's log.
            previous = last_terminated and "running" not in state and "terminated" not in state
        assert namespace is not None
        log = self._logs.get((namespace, pod_name, container)) or self._logs.get(
            (namespace, pod_name, None), _ContainerLog()
        )
        return aiohttp.web.Response(
            body=log.serve(previous=previous, **options), content_type="text/plain", charset="utf-8"
        )

    async def _serve_watch(
        self, request: ApiRequest, record: _MutableRecord, res: Resource, namespace: str | None
    ) -> aiohttp.web.StreamResponse:
        params = request.params
        label_selector, field_selector, name = (
            params.get("labelSelector"),
            params.get("fieldSelector"),
            request.name,
        )
        try:  # validate the selectors before the stream starts (400 instead of a broken stream)
            match_label_selector(label_selector, {})
            match_field_selector(field_selector, {})
            _check_field_selector(res, field_selector)
        except SelectorError as e:
            raise _error(400, str(e)) from e

        def matches(obj: _Obj) -> bool:
            meta = obj.get("metadata", {})
            return (
                (namespace is None or meta.get("namespace") == namespace)
                and (name is None or meta.get("name") == name)
                and match_label_selector(label_selector, meta.get("labels"))
                and match_field_selector(field_selector, obj)
            )

        timeout = float(params["timeoutSeconds"]) if params.get("timeoutSeconds") else None
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        assert request.raw is not None
        response = aiohttp.web.StreamResponse(status=200)
        response.content_type = "application/json"
        self._set_status(record, 200)
        await response.prepare(request.raw)
        watch = _OpenWatch(
            rec=record.data, raw=request.raw, response=response, drop=self._take_drop(record.data)
        )
        self._watches.add(watch)
        try:
            await self._stream_watch(
                watch, res, namespace, matches, params.get("resourceVersion") or "", deadline
            )
        except ConnectionError:
            watch.aborted = True
        finally:
            self._watches.discard(watch)
            if not watch.aborted:
                with contextlib.suppress(ConnectionError):
                    await response.write_eof()
        return response

    async def _stream_watch(
        self,
        watch: _OpenWatch,
        res: Resource,
        namespace: str | None,
        matches: Callable[[_Obj], bool],
        rv_param: str,
        deadline: float | None,
    ) -> None:
        if watch.drop_due:
            watch.do_drop()
            return
        if rv_param in ("", "0"):  # "any version": the current state first, as synthetic ADDED events
            index = len(self._events)
            initial = [
                {"type": "ADDED", "object": obj} for obj in self.list_objects(res, namespace) if matches(obj)
            ]
        else:
            since = int(rv_param) if rv_param.isdigit() else -1
            if since < 0 or since < self._compacted_rv:
                message = f"too old resource version: {rv_param} ({self._compacted_rv})"
                await watch.response.write(
                    json.dumps({"type": "ERROR", "object": _status_body(410, message)}).encode() + b"\n"
                )
                return
            index = next((i for i, e in enumerate(self._events) if e.rv > since), len(self._events))
            initial = []
        for event in initial:
            if not await watch.send(event):
                return
        watch.ready = True
        loop = asyncio.get_running_loop()
        while not self._shutting_down and not watch.closing:
            watch.wakeup.clear()
            while index < len(self._events):
                translated = self._translate(self._events[index], res, matches)
                index += 1
                if translated is not None and not await watch.send(translated):
                    return
            if watch.drop_due:
                watch.do_drop()
                return
            remaining = None if deadline is None else deadline - loop.time()
            if (remaining is not None and remaining <= 0) or watch.client_gone:
                return
            wait = _WATCH_POLL_SECONDS if remaining is None else min(_WATCH_POLL_SECONDS, remaining)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watch.wakeup.wait(), wait)

    @staticmethod
    def _translate(event: _Event, res: Resource, matches: Callable[[_Obj], bool]) -> _Obj | None:
        if event.resource != res:
            return None
        now = matches(event.obj)
        if event.type != "MODIFIED":
            return {"type": event.type, "object": event.obj} if now else None
        before = event.old is not None and matches(event.old)
        if now and before:
            return {"type": "MODIFIED", "object": event.obj}
        if now:
            return {"type": "ADDED", "object": event.obj}
        if before:
            return {"type": "DELETED", "object": event.obj}
        return None


# --------------------------------------------------------------------------------------------------
# The thread-hosted handle used by tests
# --------------------------------------------------------------------------------------------------


class K8sEmulator:
    """A Kubernetes API emulator served on 127.0.0.1 from a background thread with its own event loop.

    All methods are synchronous and thread-safe; call them from the test thread (or any thread
    other than the emulator's). Methods addressing objects take ``(group, version, plural,
    namespace, name)``; the core group is ``""`` (e.g. ``("", "v1", "pods", ...)``).
    Harness writes go through the same store as HTTP writes: they bump resourceVersion and
    produce watch events, but are not recorded in :meth:`requests`.
    Errors from harness writes are raised as ``ApiError`` (``.status``, ``.message``).
    """

    def __init__(
        self,
        *,
        custom_resources: Sequence[CustomResource] = CUSTOM_RESOURCES,
        call_timeout: float = 10.0,
    ) -> None:
        self._custom_resources = tuple(custom_resources)
        self._call_timeout = call_timeout
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._emulator: _Emulator | None = None
        self._stop_event: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._port = 0
        self._clients: list[k8s_client.ApiClient] = []
        self._tmpdir: str | None = None

    # ---- lifecycle ----------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> K8sEmulator:
        """Start the server thread and wait until it listens; returns self."""
        if self._thread is not None:
            raise RuntimeError("the emulator is already started")
        self._tmpdir = tempfile.mkdtemp(prefix="k8s-emulator-")
        self._thread = threading.Thread(target=self._run, name="k8s-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the Kubernetes emulator did not start in time")
        if self._startup_error is not None:
            raise RuntimeError("the Kubernetes emulator failed to start") from self._startup_error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close all clients made by :meth:`api_client`, end all watches, stop the server and the thread."""
        for api in self._clients:
            api.rest_client.pool_manager.clear()
            api.close()
        self._clients.clear()
        loop, stop_event, thread = self._loop, self._stop_event, self._thread
        if loop is not None and stop_event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop may have finished already
                loop.call_soon_threadsafe(stop_event.set)
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                raise RuntimeError("the Kubernetes emulator thread did not stop in time")
        self._thread = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> K8sEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as e:
            self._startup_error = e
        finally:
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._ready.set()

    async def _main(self) -> None:
        self._stop_event = asyncio.Event()
        emulator = _Emulator()
        for custom in self._custom_resources:
            emulator.declare(custom)
        server = aiohttp.web.Server(emulator, access_log=None)
        runner = aiohttp.web.ServerRunner(server, shutdown_timeout=2.0)
        await runner.setup()
        try:
            site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self._port = int(runner.addresses[0][1])
            self._emulator = emulator
            self._ready.set()
            await self._stop_event.wait()
        finally:
            emulator.shutdown_watches()
            await runner.cleanup()

    def _call(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        loop = self._loop
        if loop is None or self._emulator is None or loop.is_closed():
            raise RuntimeError("the emulator is not running")
        if threading.current_thread() is self._thread:
            raise RuntimeError("harness methods must not be called from the emulator's own thread")
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as e:
                future.set_exception(e)

        loop.call_soon_threadsafe(run)
        return future.result(timeout=self._call_timeout)

    @property
    def _em(self) -> _Emulator:
        if self._emulator is None:
            raise RuntimeError("the emulator is not running")
        return self._emulator

    # ---- clients ------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` of the running emulator."""
        if not self._port:
            raise RuntimeError("the emulator is not running")
        return f"http://127.0.0.1:{self._port}"

    @property
    def port(self) -> int:
        """The ephemeral TCP port on 127.0.0.1."""
        return self._port

    def configuration(self) -> k8s_client.Configuration:
        """A fresh ``kubernetes.client.Configuration`` pointing at the emulator (no auth, no globals)."""
        config = k8s_client.Configuration()
        config.host = self.base_url
        return config

    def api_client(self) -> k8s_client.ApiClient:
        """A new ``kubernetes.client.ApiClient`` for the emulator; closed automatically at :meth:`stop`."""
        api = k8s_client.ApiClient(configuration=self.configuration())
        self._clients.append(api)
        return api

    def dynamic_client(self) -> DynamicClient:
        """A ``kubernetes.dynamic.DynamicClient`` with a private discovery cache file."""
        assert self._tmpdir is not None
        cache_file = f"{self._tmpdir}/discovery-{len(self._clients)}.json"
        return DynamicClient(self.api_client(), cache_file=cache_file)

    # ---- objects ------------------------------------------------------------------------------

    def get(self, group: str, version: str, plural: str, namespace: str | None, name: str) -> _Obj | None:
        """The current object (a deep copy), or None if absent."""
        return self._call(self._em.find_object, Resource(group, version, plural), namespace, name)

    def list(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[_Obj]:
        """Current objects of a resource (all namespaces if ``namespace`` is None), filtered by selectors."""
        res = Resource(group, version, plural)
        return self._call(self._em.list_objects, res, namespace, label_selector, field_selector)

    def history(
        self, group: str, version: str, plural: str, namespace: str | None, name: str
    ) -> builtins.list[_Obj | None]:
        """Every stored version of the object, oldest first; None marks a deletion (kmock's history)."""

        def read() -> builtins.list[_Obj | None]:
            key = (Resource(group, version, plural), namespace, name)
            if key not in self._em.objects:
                return []
            return [copy.deepcopy(version) for version in self._em.objects[key].history]

        return self._call(read)

    def create(
        self, group: str, version: str, plural: str, namespace: str | None, body: Mapping[str, Any]
    ) -> _Obj:
        """Create an object (emits ADDED); 409 ``KubernetesError`` if it exists."""
        return self._call(self._em.create_object, Resource(group, version, plural), namespace, body)

    def create_pod(
        self,
        namespace: str,
        name: str,
        *,
        labels: Mapping[str, str] | None = None,
        containers: Sequence[str] = ("main",),
        phase: str = "Running",
        owner: Mapping[str, Any] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> _Obj:
        """Create a pod (emits ADDED) with labels, named containers, ``status.phase``, and optionally an
        ownerReference (``controller: true``) to ``owner`` (an object dict as returned by :meth:`get`)."""
        metadata: _Obj = {"name": name, "namespace": namespace, "labels": dict(labels or {})}
        if annotations:
            metadata["annotations"] = dict(annotations)
        if owner is not None:
            metadata["ownerReferences"] = [
                {
                    "apiVersion": owner["apiVersion"],
                    "kind": owner["kind"],
                    "name": owner["metadata"]["name"],
                    "uid": owner["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ]
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": metadata,
            "spec": {"containers": [{"name": c, "image": "emulated"} for c in containers]},
            "status": {"phase": phase},
        }
        return self.create("", "v1", "pods", namespace, body)

    def patch(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any],
    ) -> _Obj:
        """Merge-patch the whole object, status included (emits MODIFIED unless it is a no-op)."""
        res = Resource(group, version, plural)
        return self._call(
            self._em.update_object, res, namespace, name, lambda old: self._patch_all(old, patch), scope="all"
        )

    @staticmethod
    def _patch_all(old: _Obj, patch: Mapping[str, Any]) -> _Obj:
        patched: _Obj = merge_patch(old, patch)
        return patched

    def set_status(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
        status: Mapping[str, Any],
        *,
        replace: bool = False,
    ) -> _Obj:
        """Merge ``status`` into ``.status`` (or replace it with ``replace=True``); emits MODIFIED.

        This is how a test plays the job controller; works for kinds with and without a status subresource.
        """
        res = Resource(group, version, plural)

        def change(old: _Obj) -> _Obj:
            old["status"] = (
                copy.deepcopy(dict(status)) if replace else merge_patch(old.get("status") or {}, status)
            )
            return old

        return self._call(self._em.update_object, res, namespace, name, change, scope="status")

    def delete(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
        *,
        propagation: str | None = "Background",
    ) -> _Obj | None:
        """Delete like the API would (finalizers -> deletionTimestamp only; dependents collected
        by ``propagation``, None for the kind's default); None if it was absent."""
        res = Resource(group, version, plural)

        def delete() -> _Obj | None:
            if self._em.find_object(res, namespace, name) is None:
                return None
            return self._em.delete_object(res, namespace, name, policy=propagation)[0]

        return self._call(delete)

    @property
    def resource_version(self) -> str:
        """The latest resourceVersion issued (as the API returns it: a string)."""
        return str(self._call(self._em.resource_version))

    def compact(self) -> str:
        """Forget history: watches from a resourceVersion older than now get ERROR 410 (Expired)."""
        return str(self._call(self._em.compact))

    # ---- pod logs -----------------------------------------------------------------------------

    def set_container_state(
        self,
        namespace: str,
        pod: str,
        container: str,
        state: Mapping[str, Any],
        *,
        last_state: Mapping[str, Any] | None = None,
        restarts: int = 0,
    ) -> _Obj:
        """Play the kubelet: set one container's ``state`` (e.g. ``{"waiting": {"reason":
        "ImagePullBackOff"}}`` or ``{"terminated": {"exitCode": 0, "message": <the file>}}``) in the
        pod's status, keeping the other containers' entries. Messages are trimmed as the kubelet
        trims them."""
        res = Resource("", "v1", "pods")

        def change(old: _Obj) -> _Obj:
            status = old.setdefault("status", {})
            entries = [s for s in status.get("containerStatuses") or [] if s.get("name") != container]
            entry: _Obj = {"name": container, "state": copy.deepcopy(dict(state)), "restartCount": restarts}
            if "running" in state or "terminated" in state:  # the kubelet names a started instance
                entry["containerID"] = f"containerd://{container}-{restarts}"
            if last_state is not None:
                entry["lastState"] = copy.deepcopy(dict(last_state))
            status["containerStatuses"] = [*entries, entry]
            return old

        return self._call(self._em.update_object, res, namespace, pod, change, scope="status")

    def set_pod_log(self, namespace: str, pod: str, text: str, container: str | None = None) -> None:
        """Set the text served for ``pods/{pod}/log?container={container}`` (None: any container)."""
        self._call(self._em.set_log, namespace, pod, container, text, False)

    def append_pod_log(
        self,
        namespace: str,
        pod: str,
        text: str,
        container: str | None = None,
        *,
        at: datetime.datetime | None = None,
    ) -> None:
        """Append to the log of a pod's container, each line stamped ``at`` (default: now)."""
        self._call(self._em.set_log, namespace, pod, container, text, True, at)

    def rotate_pod_log(self, namespace: str, pod: str, container: str | None = None) -> None:
        """Play the kubelet's log rotation: what was written so far is no longer served."""
        self._call(self._em.rotate_log, namespace, pod, container)

    def restart_container(
        self, namespace: str, pod: str, container: str, *, exit_code: int = 1, running: bool = True
    ) -> _Obj:
        """Play the kubelet restarting a container: its status gets a new ``containerID``, one
        more ``restartCount`` and the old instance as ``lastState.terminated``; its log so far
        becomes the ``previous=true`` log. ``running=False`` leaves it waiting in back-off."""
        self._call(self._em.restart_log, namespace, pod, container)
        current = self.get("", "v1", "pods", namespace, pod) or {}
        entry = _container_status(current, container) or {}
        restarts = int(entry.get("restartCount") or 0) + 1
        old_id = entry.get("containerID") or f"containerd://{container}-{restarts - 1}"
        new_id = f"containerd://{container}-{restarts}"
        state: _Obj = (
            {"running": {"startedAt": _now()}}
            if running
            else {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting"}}
        )
        last = {"terminated": {"exitCode": exit_code, "reason": "Error", "containerID": old_id}}
        res = Resource("", "v1", "pods")

        def change(old: _Obj) -> _Obj:
            status = old.setdefault("status", {})
            entries = [s for s in status.get("containerStatuses") or [] if s.get("name") != container]
            fresh: _Obj = {"name": container, "state": state, "lastState": last, "restartCount": restarts}
            fresh["containerID"] = new_id if running else old_id
            status["containerStatuses"] = [*entries, fresh]
            return old

        return self._call(self._em.update_object, res, namespace, pod, change, scope="status")

    # ---- faults -------------------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        *,
        verb: str | None = None,
        plural: str | None = None,
        group: str | None = None,
        path: str | None = None,
        name: str | None = None,
        namespace: str | None = None,
        subresource: str | None = None,
        times: int | None = 1,
        in_stream: bool = False,
        reason: str | None = None,
        message: str | None = None,
    ) -> Fault:
        """Make the next ``times`` requests matching all given criteria answer ``status`` (a Status body).

        ``verb`` is one of get/list/watch/create/update/patch/delete/deletecollection (a pod log read is
        ``verb="get", subresource="log"``); ``path`` is a URL path prefix. ``in_stream=True`` makes a matching watch send an ERROR event instead (HTTP 200).
        """
        fault = Fault(
            status=status,
            verb=verb,
            plural=plural,
            group=group,
            path=path,
            name=name,
            namespace=namespace,
            subresource=subresource,
            times=times,
            in_stream=in_stream,
            reason=reason,
            message=message,
        )
        self._em.add_fault(fault)
        return fault

    def stall_next(
        self,
        *,
        verb: str | None = None,
        plural: str | None = None,
        group: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
        times: int | None = 1,
    ) -> Fault:
        """Make the next ``times`` matching requests hang: a watch answers 200 and then stays silent
        forever (ignoring ``timeoutSeconds``, like a half-open connection); any other request never
        answers. Each ends only when the client gives up (or the emulator stops)."""
        fault = Fault(
            status=200,
            verb=verb,
            plural=plural,
            group=group,
            name=name,
            subresource=subresource,
            times=times,
            stall=True,
        )
        self._em.add_fault(fault)
        return fault

    def expire_next_watch(
        self, plural: str | None = None, *, in_stream: bool = True, times: int = 1
    ) -> Fault:
        """Answer the next watch(es) with 410 Gone: an ERROR event (default) or a plain HTTP 410."""
        return self.fail_next(
            410,
            verb="watch",
            plural=plural,
            times=times,
            in_stream=in_stream,
            reason="Expired",
            message="too old resource version (injected)",
        )

    def drop_watches(
        self,
        after_events: int = 0,
        *,
        plural: str | None = None,
        group: str | None = None,
        namespace: str | None = None,
        times: int | None = 1,
        abort: bool = False,
    ) -> WatchDrop:
        """End the next ``times`` matching watch streams after ``after_events`` events (0: at once)."""
        drop = WatchDrop(
            after_events=after_events,
            plural=plural,
            group=group,
            namespace=namespace,
            times=times,
            abort=abort,
        )
        self._em.add_drop(drop)
        return drop

    def close_watches(self) -> int:
        """End every currently open watch stream cleanly (mid-stream); returns how many were open."""
        return self._call(self._em.close_watches)

    def clear_faults(self) -> None:
        """Remove all pending faults and watch drops."""
        self._em.clear_faults()

    # ---- observation --------------------------------------------------------------------------

    def requests(
        self,
        *,
        verb: str | None = None,
        plural: str | None = None,
        method: str | None = None,
        path: str | None = None,
        name: str | None = None,
    ) -> builtins.list[RecordedRequest]:
        """Recorded client requests, oldest first, filtered by the given criteria (``path``: prefix)."""
        return [
            rec
            for rec in self._em.recorded()
            if (verb is None or rec.verb == verb)
            and (plural is None or rec.plural == plural)
            and (method is None or rec.method == method.upper())
            and (path is None or rec.path.startswith(path))
            and (name is None or rec.name == name)
        ]

    def open_watches(self, plural: str | None = None) -> builtins.list[RecordedRequest]:
        """The watch requests currently streaming live events (past their initial ADDED burst)."""
        watches = self._call(self._em.open_watches)
        return [rec for rec in watches if plural is None or rec.plural == plural]

    def wait_for_watch(self, plural: str | None = None, count: int = 1, timeout: float = 5.0) -> None:
        """Block until at least ``count`` matching watches are open; raise TimeoutError otherwise."""
        try:
            wait_for(lambda: len(self.open_watches(plural)) >= count, seconds=timeout, what="open watches")
        except AssertionError:
            raise TimeoutError(f"fewer than {count} open watch(es) on {plural or 'any resource'}") from None


@pytest.fixture
def k8s() -> Iterator[K8sEmulator]:
    """A running :class:`K8sEmulator` on 127.0.0.1 (ephemeral port), stopped after the test."""
    emulator = K8sEmulator().start()
    try:
        yield emulator
    finally:
        emulator.stop()
