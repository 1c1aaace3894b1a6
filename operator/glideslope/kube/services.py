"""The stable and preview Services of `spec.service`, server-side applied."""

from __future__ import annotations

from typing import Any

from glideslope.api import Release
from glideslope.core.model import RELEASE_LABEL, REVISION_LABEL
from glideslope.kube.client import APPLY, FIELD_MANAGER, UNREAD, Kube, drain
from glideslope.kube.workloads import owner_reference


def names(release: Release) -> tuple[str, str] | None:
    """(stable, preview) Service names; None when the Release owns no Service."""
    service = release.spec.service
    if service is None:
        return None
    stable = service.name or release.metadata.name or ""
    return stable, service.preview_name or f"{stable}-preview"


def stable_name(release: Release) -> str:
    """The stable Service's name: `spec.service.name`, else the Release's (routes name it so)."""
    found = names(release)
    return found[0] if found else release.metadata.name or ""


def manifest(release: Release, name: str, revision: str | None) -> dict[str, Any]:
    """A Service selecting the Release's pods of one revision, or of every revision (None)."""
    service = release.spec.service
    assert service is not None
    selector = {**release.spec.selector.match_labels, RELEASE_LABEL: release.metadata.name or ""}
    if revision is not None:
        selector[REVISION_LABEL] = revision
    ports = []
    for port in service.ports:
        entry: dict[str, Any] = {"port": port.port, "targetPort": port.target_port or port.port,
                                 "protocol": port.protocol.value}
        if port.name:
            entry["name"] = port.name
        if port.app_protocol:
            entry["appProtocol"] = port.app_protocol
        ports.append(entry)
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": release.metadata.namespace,
                         "labels": {RELEASE_LABEL: release.metadata.name},
                         "ownerReferences": [owner_reference(release)]},
            "spec": {"selector": selector, "ports": ports}}


def apply(kube: Kube, body: dict[str, Any]) -> None:
    drain(kube.core.patch_namespaced_service(body["metadata"]["name"], body["metadata"]["namespace"], body,
                                             field_manager=FIELD_MANAGER, force=True, _content_type=APPLY,
                                             **UNREAD))
