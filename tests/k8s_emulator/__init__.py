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

from tests.k8s_emulator.api import (
    BUILTIN_RESOURCES,
    CUSTOM_RESOURCES,
    ApiError,
    CustomResource,
    Fault,
    RecordedRequest,
    Resource,
    ResourceInfo,
    SelectorError,
    WatchDrop,
    match_field_selector,
    match_label_selector,
    merge_patch,
)
from tests.k8s_emulator.harness import K8sEmulator, k8s

__all__ = [
    "ApiError",
    "BUILTIN_RESOURCES",
    "CUSTOM_RESOURCES",
    "CustomResource",
    "Fault",
    "K8sEmulator",
    "RecordedRequest",
    "Resource",
    "ResourceInfo",
    "SelectorError",
    "WatchDrop",
    "k8s",
    "match_field_selector",
    "match_label_selector",
    "merge_patch",
]
