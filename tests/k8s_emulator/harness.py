"""The thread-hosted emulator tests use: :class:`K8sEmulator` and the ``k8s`` fixture."""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import contextlib
import copy
import datetime
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp.web
import pytest
from kubernetes import client as k8s_client
from kubernetes.dynamic import DynamicClient

from tests.k8s_emulator.api import (
    _T,
    CUSTOM_RESOURCES,
    CustomResource,
    Fault,
    RecordedRequest,
    Resource,
    WatchDrop,
    _now,
    _Obj,
    merge_patch,
)
from tests.k8s_emulator.apiserver import (
    _Emulator,
)
from tests.k8s_emulator.cluster import Cluster
from tests.k8s_emulator.kubelet import _container_status
from tests.waiting import wait_for

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
        cluster: Cluster | None = None,
    ) -> None:
        """
        Args:
            cluster: A running cluster: its controllers, scheduler and kubelet act on their own
                (:mod:`tests.k8s_emulator.cluster`); None: the test plays them.
        """
        self._cluster = cluster
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
        emulator.cluster = self._cluster
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

    def write_kubeconfig(self, path: Path, namespace: str | None = None) -> Path:
        """Writes a kube config whose current context is the emulator (no auth), for a
        process that finds its cluster as a user's tools do (``KUBECONFIG``)."""
        import yaml

        context: dict[str, str] = {"cluster": "emulator", "user": "me"}
        if namespace is not None:
            context["namespace"] = namespace
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.base_url}}],
            "users": [{"name": "me", "user": {}}],
            "contexts": [{"name": "here", "context": context}],
            "current-context": "here",
        }
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        return path

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
        """Every stored version of the object, oldest first; None marks a deletion."""

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

    def backdate(
        self, group: str, version: str, plural: str, namespace: str | None, name: str, seconds: float
    ) -> _Obj:
        """Make the object ``seconds`` older: its ``creationTimestamp`` moves back (emits MODIFIED)."""
        res = Resource(group, version, plural)

        def change(old: _Obj) -> _Obj:
            created = datetime.datetime.fromisoformat(
                old["metadata"]["creationTimestamp"].replace("Z", "+00:00")
            )
            moved = created - datetime.timedelta(seconds=seconds)
            old["metadata"]["creationTimestamp"] = moved.strftime("%Y-%m-%dT%H:%M:%SZ")
            return old

        return self._call(self._em.update_object, res, namespace, name, change, scope="clock")

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
        after_store: bool = False,
        retry_after: int | None = None,
    ) -> Fault:
        """Make the next ``times`` requests matching all given criteria answer ``status`` (a Status body).

        ``after_store=True``: the request takes effect first, then answers ``status`` (a create
        the server stored although it answered 504). ``retry_after``: a ``Retry-After`` header
        (the API server's 429).

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
            after_store=after_store,
            retry_after=retry_after,
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
