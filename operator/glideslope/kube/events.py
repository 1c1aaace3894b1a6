"""Kubernetes Events on a Release: what people see in `kubectl describe` and `kubectl events`."""

from __future__ import annotations

import hashlib
import socket
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from glideslope.api import API_VERSION, KIND, Announcement, Release
from glideslope.kube.client import UNREAD, Kube, conflict, drain


def emit(kube: Kube, release: Release, reason: str, message: str, *, warning: bool = False) -> None:
    meta = release.metadata
    _create(kube, meta.namespace or "", meta.name or "", meta.uid, reason, message, warning)


def event_name(release: Release, announcement: Announcement) -> str:
    """The Event's name, derived from what it announces: recording it again is a no-op."""
    meta = release.metadata
    key = f"{meta.uid}/{announcement.reason}/{announcement.at.isoformat()}/{announcement.message}"
    return f"{meta.name}.{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def announce(kube: Kube, release: Release, announcement: Announcement) -> bool:
    """Record a transition's Event exactly once; False when it already existed."""
    meta = release.metadata
    try:
        _create(kube, meta.namespace or "", meta.name or "", meta.uid, announcement.reason, announcement.message,
                announcement.warning, event_id=event_name(release, announcement), at=announcement.at)
    except Exception as exc:
        if conflict(exc):
            return False
        raise
    return True


def emit_for(kube: Kube, body: Mapping[str, Any], reason: str, message: str, *, warning: bool = False) -> None:
    """An Event on a Release known only as its raw body (one whose spec the models refuse)."""
    meta = body["metadata"]
    _create(kube, meta["namespace"], meta["name"], meta.get("uid"), reason, message, warning)


def _create(kube: Kube, namespace: str, name: str, uid: str | None, reason: str, message: str,
            warning: bool, *, event_id: str | None = None, at: datetime | None = None) -> None:
    now = (at or datetime.now(UTC)).isoformat()
    body = {
        "metadata": {"name": event_id or f"{name}.{uuid.uuid4().hex[:12]}", "namespace": namespace},
        "involvedObject": {"apiVersion": API_VERSION, "kind": KIND, "name": name,
                           "namespace": namespace, "uid": uid},
        "reason": reason, "message": message[:1024], "type": "Warning" if warning else "Normal",
        "source": {"component": "glideslope"}, "reportingComponent": "glideslope.dev/operator",
        "reportingInstance": socket.gethostname()[:128], "firstTimestamp": now, "lastTimestamp": now,
        "count": 1,
    }
    drain(kube.core.create_namespaced_event(namespace, body, **UNREAD))
