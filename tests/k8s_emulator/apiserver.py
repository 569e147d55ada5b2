"""The API server: routing, the object store with resource versions, watches, validation, and
the faults a test injects."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import json
import random
import string
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp.web
import jsonpatch

from tests.k8s_emulator.api import (
    _ORPHAN_BY_DEFAULT,
    _PODS,
    _WATCH_POLL_SECONDS,
    BUILTIN_RESOURCES,
    ApiError,
    ApiRequest,
    CustomResource,
    Fault,
    RecordedRequest,
    Resource,
    ResourceInfo,
    SelectorError,
    WatchDrop,
    _api_version,
    _check_field_selector,
    _error,
    _now,
    _Obj,
    _status_body,
    _Stored,
    discovery,
    match_field_selector,
    match_label_selector,
    merge_patch,
    parse_request,
    prune,
    validate_metadata,
)
from tests.k8s_emulator.cluster import ClusterMixin
from tests.k8s_emulator.controllers import GarbageCollectorMixin
from tests.k8s_emulator.kubelet import (
    KubeletMixin,
    _ContainerLog,
    trim_termination_messages,
)


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


class _Emulator(ClusterMixin, GarbageCollectorMixin, KubeletMixin):
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
            if fault is not None and fault.after_store and request.resource is not None:
                # The write took effect, then the answer was lost (a 504 from a slow etcd commit).
                await self._serve_resource(request, record)
                response = await self._respond_fault(request, record, fault)
            elif fault is not None:
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
        if fault.retry_after is not None:
            # As the API server's max-in-flight and priority-and-fairness filters answer a 429.
            body["details"] = {"retryAfterSeconds": fault.retry_after}
            headers = {"Retry-After": str(fault.retry_after)}
            return aiohttp.web.json_response(body, status=fault.status, headers=headers)
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
            schema=custom.schema,
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
        if self.cluster is not None:
            asyncio.get_running_loop().call_soon(self._react, res, event_type, copy.deepcopy(new), old)
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
        if info.schema is not None:
            prune(obj, info.schema, root=True)
        self._validate(res, info, obj)
        if from_client and "status" in info.subresources:
            obj.pop("status", None)
        for field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        meta["generation"] = 1
        self._admit(res, namespace, obj)
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
        status; ``"all"`` changes everything but identity fields (harness writes); ``"clock"`` changes
        only ``creationTimestamp`` (a harness playing the passage of time).
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
            if scope == "clock" and field == "creationTimestamp":
                continue
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        meta["resourceVersion"] = old_meta.get("resourceVersion")
        if new.get("spec") != old.get("spec"):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        if res == _PODS:
            trim_termination_messages(new)
        if info.schema is not None:
            prune(new, info.schema, root=True)
        if scope == "http":
            self._validate(res, info, new)
        if new == old:
            return old  # no-op: no new resourceVersion, no event (as the real API server)
        if meta.get("deletionTimestamp") and old_meta.get("finalizers") and not meta.get("finalizers"):
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
        if res == _PODS and not meta.get("finalizers"):
            terminating = self._delete_gracefully(old)
            if terminating is not None:
                return terminating, False
        if meta.get("finalizers"):
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = _now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            return self._commit(res, "MODIFIED", new, old), False
        deleted = self._commit(res, "DELETED", copy.deepcopy(old), old)
        self._collect_dependents(deleted, policy)
        return deleted, True

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
