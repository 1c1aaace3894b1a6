"""The Release itself: its status, and command annotations once obeyed.

With a `ReleaseCache` installed (the operator does), `get` reads the body last seen, from the
Releases' watch or from the operator's own last write, instead of asking the API server on
every tick: at 1,000 Releases those GETs were a sixth of all API requests.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import Any

from glideslope.api import GROUP, PLURAL, VERSION
from glideslope.kube.client import FIELD_MANAGER, Kube, conflict, invalid, not_found, too_large
from glideslope.logs import get_logger

log = get_logger(__name__)

Key = tuple[str, str]
"""(namespace, name) of a Release."""


def get(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    """The Release as stored now (kopf's copy may lag behind our own last status write)."""
    cache = _cache
    if cache is not None:
        cached = cache.get((namespace, name))
        if cached is not None:
            return cached
    try:
        body: dict[str, Any] = kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except Exception as exc:
        if not_found(exc):
            return None
        raise
    if cache is not None:
        cache.seen(body)
    return body


_dropped: set[str] = set()
"""Top-level status fields the API server did not store (a CRD older than this operator prunes
what its schema lacks): the engine compares statuses without them, or it would find the status
changed, and write it, on every tick."""


def dropped_fields() -> frozenset[str]:
    return frozenset(_dropped)


def _note_dropped(patch: Mapping[str, Any], written: Mapping[str, Any]) -> None:
    kept = written.get("status") or {}
    missing = {key for key, value in patch.items() if value not in (None, [], {}) and key not in kept} - _dropped
    if missing:
        _dropped.update(missing)
        log.warning("the API server did not store some status fields: its Release CRD is older than this operator; "
                    "apply this version's CRD (crds/, or the chart's crds/)",
                    fields=[f"status.{key}" for key in sorted(missing)])


class TooLarge(Exception):
    """The Release with this status would exceed what the API server stores (etcd's request
    limit, 1.5 MiB by default): its spec leaves too little room."""


def patch_status(kube: Kube, namespace: str, name: str, patch: dict[str, Any], resource_version: str) -> bool:
    """Write status if the Release is still at `resource_version`; False if someone wrote first
    (or it is gone). Raises `TooLarge` when the Release with this status is too large to store."""
    body = {"metadata": {"resourceVersion": resource_version}, "status": patch}
    try:
        written = kube.custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, name, body,
                                                                    field_manager=FIELD_MANAGER)
    except Exception as exc:
        if conflict(exc) or not_found(exc):
            if _cache is not None:
                _cache.forget((namespace, name))  # what it holds is stale: read afresh next tick
            return False
        if too_large(exc):
            raise TooLarge(str(getattr(exc, "body", "") or exc)[:200]) from exc
        raise
    _note_dropped(patch, written)
    if _cache is not None:
        _cache.wrote(written)
    return True


def remove_commands(kube: Kube, namespace: str, name: str, commands: Mapping[str, str]) -> None:
    """Remove command annotations that still carry the values obeyed: one changed meanwhile is
    a new command, left for the next tick (the patch's tests fail, and nothing is removed)."""
    patch: list[dict[str, Any]] = []
    for key, value in commands.items():
        path = "/metadata/annotations/" + key.replace("~", "~0").replace("/", "~1")
        patch += [{"op": "test", "path": path, "value": value}, {"op": "remove", "path": path}]
    try:
        result = kube.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, patch,
                                                            field_manager=FIELD_MANAGER,
                                                            _content_type="application/json-patch+json")
    except Exception as exc:
        # 422: a test failed (a new command, or one removed already); 404: the Release is gone.
        if invalid(exc) or not_found(exc):
            if _cache is not None:
                _cache.forget((namespace, name))
            return
        raise
    if _cache is not None:
        _cache.wrote(result)


class ReleaseCache:
    """The latest body of each Release, as compact JSON without `managedFields` (a few KiB each).

    Fed by the Releases' watch (`seen`) and by the operator's own writes (`wrote`). The watch
    delivers the event of a write after the write has returned, and kopf may coalesce events,
    so a body older than the one held is never taken: an older status would make the next
    tick decide again on a step already left behind. Versions are compared as the numbers
    every etcd-backed API server gives; one that is not a number is taken only once the
    operator's own last write has been seen, or after `AWAIT_SECONDS`. Only the operator
    writes status, so what the cache holds can lag only in spec and annotations, as if the
    tick had run a moment earlier: its status write then conflicts, and the entry is dropped
    (`forget`), so the next tick reads the API server."""

    AWAIT_SECONDS = 10.0
    """How long a version that is not a number waits for the operator's own write to be seen."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bodies: dict[Key, tuple[str, str]] = {}
        """(resourceVersion, compact JSON) per Release."""
        self._awaiting: dict[Key, float] = {}
        """Releases the operator wrote, while its write's version is newer than the watch's."""

    def get(self, key: Key) -> dict[str, Any] | None:
        with self._lock:
            held = self._bodies.get(key)
        if held is None:
            return None
        body: dict[str, Any] = json.loads(held[1])
        return body

    def seen(self, body: Mapping[str, Any]) -> None:
        """A body from the watch (or a read)."""
        key, version = _identity(body)
        text = _compact(body)
        with self._lock:
            held = self._bodies.get(key)
            if held is not None and not self._newer(key, version, held[0]):
                return
            self._awaiting.pop(key, None)
            self._bodies[key] = (version, text)

    def wrote(self, body: Mapping[str, Any]) -> None:
        """The body an API write of the operator's returned."""
        key, version = _identity(body)
        text = _compact(body)
        with self._lock:
            self._bodies[key] = (version, text)
            self._awaiting[key] = time.monotonic() + self.AWAIT_SECONDS

    def forget(self, key: Key) -> None:
        with self._lock:
            self._bodies.pop(key, None)
            self._awaiting.pop(key, None)

    def _newer(self, key: Key, version: str, held: str) -> bool:
        if version.isdigit() and held.isdigit():
            return int(version) >= int(held)
        awaited = self._awaiting.get(key)
        return awaited is None or version == held or time.monotonic() >= awaited


def _identity(body: Mapping[str, Any]) -> tuple[Key, str]:
    meta = body["metadata"]
    return (meta.get("namespace") or "", meta["name"]), str(meta.get("resourceVersion") or "")


def _compact(body: Mapping[str, Any]) -> str:
    meta = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
    # kopf hands out read-only mapping views: `default=dict` turns them into plain dicts.
    return json.dumps({**body, "metadata": meta}, separators=(",", ":"), default=dict)


_cache: ReleaseCache | None = None


def install_cache(cache: ReleaseCache | None) -> None:
    """`get` reads `cache` from now on (None: the API server again)."""
    global _cache
    _cache = cache
