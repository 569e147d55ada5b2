"""A loopback Kubernetes API server emulator for tests (``README.md`` beside this file lists each
real-server behaviour it reproduces and where upstream does it).

The real ``kubernetes`` Python client talks to it over HTTP (no patching of client methods).
The test plays the role of the controllers: it changes objects through the harness
(:meth:`K8sEmulator.set_status`, :meth:`K8sEmulator.patch`, ...), which goes through the same
store/notification path as HTTP writes, so open watches see ``ADDED``/``MODIFIED``/``DELETED``.

Usage (after ``from tests.k8s_emulator import k8s`` in ``tests/conftest.py``)::

    def test_something(k8s: K8sEmulator) -> None:
        api = kubernetes.client.BatchV1Api(k8s.api_client())
        ...
        k8s.set_status("batch", "v1", "jobs", "ns", "job-1", {"succeeded": 1})
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
from tests.k8s_emulator.cluster import Cluster, Denial, Program
from tests.k8s_emulator.harness import K8sEmulator, k8s

__all__ = [
    "ApiError",
    "BUILTIN_RESOURCES",
    "CUSTOM_RESOURCES",
    "Cluster",
    "CustomResource",
    "Denial",
    "Fault",
    "K8sEmulator",
    "Program",
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
