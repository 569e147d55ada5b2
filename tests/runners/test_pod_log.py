"""Following a container's log incrementally, against the emulator's kubelet behaviours."""

from __future__ import annotations

import datetime
from collections.abc import Mapping

from hpo_kfp.runners._pod_log import LogFollower
from hpo_kfp.runners.kubernetes import KubernetesRunner
from tests.k8s_emulator import K8sEmulator, RecordedRequest

_NS = "team-a"
_POD = "trial-pod"
_T0 = datetime.datetime(2026, 3, 1, 12, 0, 0, 100000, tzinfo=datetime.UTC)


def _follower(k8s: K8sEmulator, chunk_bytes: int = 1 << 20) -> LogFollower:
    runner = KubernetesRunner(k8s.api_client())

    def read(pod: str, query: Mapping[str, str]) -> bytes | None:
        return runner._read_log(_NS, pod, query)

    return LogFollower(read, "main", chunk_bytes=chunk_bytes)


def _poll(k8s: K8sEmulator, follower: LogFollower) -> list[str]:
    return follower.poll(k8s.get("", "v1", "pods", _NS, _POD))


def _reads(k8s: K8sEmulator) -> list[RecordedRequest]:
    return k8s.requests(path=f"/api/v1/namespaces/{_NS}/pods/{_POD}/log")


def _at(seconds: float) -> datetime.datetime:
    return _T0 + datetime.timedelta(seconds=seconds)


def _running_pod(k8s: K8sEmulator) -> None:
    k8s.create_pod(_NS, _POD, containers=("main",))
    k8s.set_container_state(_NS, _POD, "main", {"running": {}})


def test_each_read_asks_only_for_what_is_new_and_takes_each_line_once(k8s: K8sEmulator) -> None:
    _running_pod(k8s)
    follower = _follower(k8s)
    k8s.append_pod_log(_NS, _POD, "a=1\n", container="main", at=_at(0))
    k8s.append_pod_log(_NS, _POD, "a=2\n", container="main", at=_at(0.3))
    assert _poll(k8s, follower) == ["a=1", "a=2"]
    # Same second as the last line read (sinceTime comes back in whole seconds), and two lines
    # with the very same stamp.
    k8s.append_pod_log(_NS, _POD, "a=3\na=3\n", container="main", at=_at(0.6))
    k8s.append_pod_log(_NS, _POD, "a=4\n", container="main", at=_at(5))
    assert _poll(k8s, follower) == ["a=3", "a=3", "a=4"]
    k8s.append_pod_log(_NS, _POD, "a=5", container="main", at=_at(5))  # not finished yet
    assert _poll(k8s, follower) == []
    k8s.append_pod_log(_NS, _POD, " done\n", container="main")
    assert _poll(k8s, follower) == ["a=5 done"]
    assert follower.text() == "a=1\na=2\na=3\na=3\na=4\na=5 done\n"
    reads = _reads(k8s)
    assert "sinceTime" not in reads[0].query
    assert [r.query.get("sinceTime") for r in reads[1:]] == [
        "2026-03-01T12:00:00Z",
        "2026-03-01T12:00:05Z",
        "2026-03-01T12:00:05Z",
    ]
    assert all(r.query["timestamps"] == "true" for r in reads)


def test_a_log_larger_than_one_read_comes_in_capped_reads(k8s: K8sEmulator) -> None:
    _running_pod(k8s)
    follower = _follower(k8s, chunk_bytes=200)
    lines = [f"step={i} loss={1 / (i + 1):.4f}" for i in range(40)]
    for i, line in enumerate(lines):
        k8s.append_pod_log(_NS, _POD, line + "\n", container="main", at=_at(i * 0.25))
    assert _poll(k8s, follower) == lines
    # About four lines fit a read, and four lines are written each second: a read that repeats
    # only the second sinceTime names is asked again with twice the cap.
    limits = [int(r.query["limitBytes"]) for r in _reads(k8s)]
    assert limits[0] == 200 and 400 in limits and max(limits) <= 800 and len(limits) > 5


def test_a_restart_between_reads_reads_the_rest_of_the_old_instance_with_previous(k8s: K8sEmulator) -> None:
    _running_pod(k8s)
    follower = _follower(k8s)
    k8s.append_pod_log(_NS, _POD, "life=1 a=1\n", container="main", at=_at(0))
    assert _poll(k8s, follower) == ["life=1 a=1"]
    k8s.append_pod_log(_NS, _POD, "life=1 a=2\n", container="main", at=_at(1))
    k8s.restart_container(_NS, _POD, "main")
    k8s.append_pod_log(_NS, _POD, "life=2 a=1\n", container="main", at=_at(2))
    assert _poll(k8s, follower) == ["life=1 a=2", "life=2 a=1"]
    previous = [r for r in _reads(k8s) if r.query.get("previous") == "true"]
    assert [r.query.get("sinceTime") for r in previous] == ["2026-03-01T12:00:00Z"]
    assert follower.warnings == []


def test_first_seen_after_a_restart_reads_the_previous_instance_whole(k8s: K8sEmulator) -> None:
    _running_pod(k8s)
    follower = _follower(k8s)
    k8s.append_pod_log(_NS, _POD, "life=1\n", container="main", at=_at(0))
    k8s.restart_container(_NS, _POD, "main", running=False)  # crashed, in back-off
    assert _poll(k8s, follower) == ["life=1"]
    assert _poll(k8s, follower) == []  # still in back-off: the same instance, nothing new
    k8s.restart_container(_NS, _POD, "main")
    k8s.append_pod_log(_NS, _POD, "life=2\n", container="main", at=_at(3))
    assert _poll(k8s, follower) == ["life=2"]
    assert follower.text() == "life=1\nlife=2\n"


def test_two_restarts_between_reads_are_reported(k8s: K8sEmulator) -> None:
    _running_pod(k8s)
    follower = _follower(k8s)
    k8s.append_pod_log(_NS, _POD, "life=1\n", container="main", at=_at(0))
    assert _poll(k8s, follower) == ["life=1"]
    k8s.restart_container(_NS, _POD, "main")
    k8s.restart_container(_NS, _POD, "main")
    k8s.append_pod_log(_NS, _POD, "life=3\n", container="main", at=_at(3))
    assert _poll(k8s, follower) == ["life=3"]
    assert len(follower.warnings) == 1 and "restarted more than once" in follower.warnings[0]


def test_a_waiting_container_is_not_asked_for_its_log(k8s: K8sEmulator) -> None:
    k8s.create_pod(_NS, _POD, containers=("main",), phase="Pending")
    k8s.set_container_state(_NS, _POD, "main", {"waiting": {"reason": "ContainerCreating"}})
    follower = _follower(k8s)
    assert _poll(k8s, follower) == [] and _reads(k8s) == []
    # No status for the container at all: asked, and the kubelet's 400 is "nothing yet".
    k8s.create_pod(_NS, "other", containers=("main",), phase="Pending")
    assert follower.poll(k8s.get("", "v1", "pods", _NS, "other")) == []
    assert [r.status for r in k8s.requests(path=f"/api/v1/namespaces/{_NS}/pods/other/log")] == [400]


def test_a_read_before_the_container_has_a_status_is_the_same_instance_once_it_has_one(
    k8s: K8sEmulator,
) -> None:
    k8s.create_pod(_NS, _POD, containers=("main",))  # listed Running, no containerStatuses yet
    follower = _follower(k8s)
    k8s.append_pod_log(_NS, _POD, "a=1\n", container="main", at=_at(0))
    assert _poll(k8s, follower) == ["a=1"]
    k8s.set_container_state(_NS, _POD, "main", {"running": {}})  # now with its containerID
    k8s.append_pod_log(_NS, _POD, "a=2\n", container="main", at=_at(2))
    assert _poll(k8s, follower) == ["a=2"]
    assert follower.warnings == [] and follower.text() == "a=1\na=2\n"
