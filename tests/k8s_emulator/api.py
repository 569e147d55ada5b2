"""The API server's surface: resource types, requests as the router reads them, errors as
``Status`` objects, discovery, selectors, metadata validation and patches (pure functions)."""

from __future__ import annotations

import copy
import dataclasses
import datetime
import json
import re
from collections.abc import Mapping
from typing import Any, NamedTuple, TypeVar

import aiohttp.web

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
    schema: Mapping[str, Any] | None = dataclasses.field(default=None, compare=False)
    """A custom kind's structural schema (``openAPIV3Schema``): what it does not know is pruned."""


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
    schema: Mapping[str, Any] | None = dataclasses.field(default=None, compare=False, hash=False)
    """The CRD's structural schema, reduced to what decides pruning of the fields the runner
    writes; None: nothing is pruned."""

    @property
    def api_version(self) -> str:
        """``group/version`` as used in ``apiVersion``."""
        return f"{self.group}/{self.version}"


_PRESERVE: Mapping[str, Any] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
_STRING_MAP: Mapping[str, Any] = {"type": "object", "additionalProperties": {"type": "string"}}
# A PodTemplateSpec as controller-gen writes it with generateEmbeddedObjectMeta=true (KubeRay's
# ray-operator/Makefile, the training operator's v1.9 Makefile): the template's metadata knows
# five fields, the rest is pruned. The PodSpec stands in as "keep everything".
_POD_TEMPLATE: Mapping[str, Any] = {
    "type": "object",
    "properties": {
        "metadata": {
            "type": "object",
            "properties": {
                "annotations": _STRING_MAP,
                "labels": _STRING_MAP,
                "finalizers": {"type": "array", "items": {"type": "string"}},
                "name": {"type": "string"},
                "namespace": {"type": "string"},
            },
        },
        "spec": _PRESERVE,
    },
}


def _keeping(**properties: Mapping[str, Any]) -> Mapping[str, Any]:
    """An object that keeps unknown fields, with ``properties`` pruned by their schemas."""
    return {**_PRESERVE, "properties": properties}


def _replicated(field: str) -> Mapping[str, Any]:
    """A training operator v1 job: ``spec.<field>.<replica type>.template``."""
    replica = _keeping(template=_POD_TEMPLATE)
    return {
        "type": "object",
        "properties": {
            "spec": _keeping(**{field: {"type": "object", "additionalProperties": replica}}),
            "status": _PRESERVE,
        },
    }


_RAYJOB_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "properties": {
        "spec": _keeping(
            submitterPodTemplate=_POD_TEMPLATE,
            rayClusterSpec=_keeping(
                headGroupSpec=_keeping(template=_POD_TEMPLATE),
                workerGroupSpecs={"type": "array", "items": _keeping(template=_POD_TEMPLATE)},
            ),
        ),
        "status": _PRESERVE,
    },
}

#: Custom kinds declared by default, besides :data:`BUILTIN_RESOURCES`.
#: Argo's Workflow CRD has no status subresource: its controller writes status via the main endpoint.
CUSTOM_RESOURCES: tuple[CustomResource, ...] = (
    CustomResource("kubeflow.org", "v1", "tfjobs", "TFJob", schema=_replicated("tfReplicaSpecs")),
    CustomResource(
        "kubeflow.org", "v1", "pytorchjobs", "PyTorchJob", schema=_replicated("pytorchReplicaSpecs")
    ),
    CustomResource("kubeflow.org", "v1", "xgboostjobs", "XGBoostJob", schema=_replicated("xgbReplicaSpecs")),
    CustomResource("argoproj.io", "v1alpha1", "workflows", "Workflow", subresources=(), shortnames=("wf",)),
    CustomResource("trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob"),
    CustomResource("kubeflow.org", "v2beta1", "mpijobs", "MPIJob"),
    CustomResource("tekton.dev", "v1", "pipelineruns", "PipelineRun", shortnames=("pr",)),
    CustomResource("tekton.dev", "v1", "taskruns", "TaskRun", shortnames=("tr",)),
    CustomResource("jobset.x-k8s.io", "v1alpha2", "jobsets", "JobSet"),
    CustomResource("ray.io", "v1", "rayjobs", "RayJob", schema=_RAYJOB_SCHEMA),
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
    The fault is checked before anything is stored, so a faulted create stores nothing, unless
    ``after_store``: then the request takes effect and only its answer is the fault (the API
    server's 504 when etcd committed the write after the request's deadline).
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
    after_store: bool = False
    retry_after: int | None = None
    """Seconds in a ``Retry-After`` header (and the Status's ``details.retryAfterSeconds``)."""
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


def prune(value: Any, schema: Mapping[str, Any], *, root: bool = False) -> None:
    """Drops, in place, the fields a structural schema does not know, as a CRD's API server
    does on every write (``apiextensions-apiserver/pkg/apiserver/schema/pruning/algorithm.go``):
    an object keeps its ``properties`` (each pruned by its own schema), the values of
    ``additionalProperties`` (pruned by it), and anything with
    ``x-kubernetes-preserve-unknown-fields``; ``apiVersion``, ``kind`` and ``metadata`` of the
    root are kept."""
    if isinstance(value, list):
        items = schema.get("items")
        for item in value if isinstance(items, Mapping) else ():
            prune(item, items)
        return
    if not isinstance(value, dict):
        return
    properties = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    keep = bool(schema.get("x-kubernetes-preserve-unknown-fields")) or extra is True
    for key in list(value):
        if root and key in ("apiVersion", "kind", "metadata"):
            continue
        if key in properties:
            prune(value[key], properties[key])
        elif isinstance(extra, Mapping):
            prune(value[key], extra)
        elif not keep:
            del value[key]


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
