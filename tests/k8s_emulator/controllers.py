"""What controllers do that the tests do not play themselves: garbage collection by
``ownerReferences`` (``README.md`` beside this file says where upstream does it)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from tests.k8s_emulator.api import (
    Resource,
    _Obj,
)


class GarbageCollectorMixin:
    """The garbage collector's part: dependents of a deleted owner, by propagation policy."""

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

    @staticmethod
    def _without_owner(old: _Obj, uid: str) -> _Obj:
        refs = [r for r in old["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
        if refs:
            old["metadata"]["ownerReferences"] = refs
        else:
            old["metadata"].pop("ownerReferences", None)
        return old
