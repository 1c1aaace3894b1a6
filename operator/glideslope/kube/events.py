"""Kubernetes Events on a Release: what people see in `kubectl describe` and `kubectl events`."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from glideslope.api import API_VERSION, KIND, Release
from glideslope.kube.client import Kube


def record(kube: Kube, release: Release, reason: str, message: str, *, warning: bool = False) -> None:
    meta = release.metadata
    _create(kube, meta.namespace or "", meta.name or "", meta.uid, reason, message, warning)


def record_for(kube: Kube, body: Mapping[str, Any], reason: str, message: str, *, warning: bool = False) -> None:
    """An Event on a Release known only as its raw body (one whose spec the models refuse)."""
    meta = body["metadata"]
    _create(kube, meta["namespace"], meta["name"], meta.get("uid"), reason, message, warning)


def _create(kube: Kube, namespace: str, name: str, uid: str | None, reason: str, message: str,
            warning: bool) -> None:
    now = datetime.now(UTC).isoformat()
    body = {
        "metadata": {"name": f"{name}.{uuid.uuid4().hex[:12]}", "namespace": namespace},
        "involvedObject": {"apiVersion": API_VERSION, "kind": KIND, "name": name,
                           "namespace": namespace, "uid": uid},
        "reason": reason, "message": message[:1024], "type": "Warning" if warning else "Normal",
        "source": {"component": "glideslope"}, "reportingComponent": "glideslope.dev/operator",
        "reportingInstance": socket.gethostname()[:128], "firstTimestamp": now, "lastTimestamp": now,
        "count": 1,
    }
    kube.core.create_namespaced_event(namespace, body)
