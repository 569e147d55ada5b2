"""What the kubelet does that the API server shows: container logs (``pods/log``) and termination
messages (``README.md`` beside this file lists each behaviour and where upstream does it)."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any

import aiohttp.web

from tests.k8s_emulator.api import (
    _CONTAINER_MESSAGE_BYTES,
    _POD_MESSAGE_BYTES,
    Resource,
    _error,
    _Obj,
)


def trim_termination_messages(pod: _Obj) -> None:
    """The kubelet's limits on termination messages, in place: the file's last 4096 bytes, then
    the first 12 KiB / (containers + initContainers) bytes (``normalizeStatus`` in the kubelet's
    status manager; ephemeral containers are not counted)."""
    spec = pod.get("spec") or {}
    count = sum(len(spec.get(key) or []) for key in ("containers", "initContainers"))
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


class KubeletMixin:
    """The kubelet's part of the emulator: container logs, as ``pods/log`` serves them."""

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
