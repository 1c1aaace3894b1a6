"""The stable and preview Services of `spec.service`, server-side applied, and the judge's
baseline Service beside them behind a router."""

from __future__ import annotations

from typing import Any

import kubernetes

from glideslope.api import Release
from glideslope.core import services as naming
from glideslope.core.judge import BASELINE_ROLE, ROLE_LABEL, baseline_revision
from glideslope.core.model import RELEASE_LABEL, REVISION_LABEL
from glideslope.kube.client import APPLY, FIELD_MANAGER, UNREAD, Kube, drain, not_found
from glideslope.kube.workloads import owner_reference


def names(release: Release) -> tuple[str, str] | None:
    """(stable, preview) Service names; None when the Release owns no Service."""
    return naming.names(release.spec, release.metadata.name or "")


def stable_name(release: Release) -> str:
    """The stable Service's name: `spec.service.name`, else the Release's (routes name it so)."""
    return naming.stable_name(release.spec, release.metadata.name or "")


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


baseline_name = naming.baseline_name


def baseline_manifest(release: Release, stable: str, revision: str) -> dict[str, Any]:
    """The baseline Service: the stable Service's ports, selecting only the baseline's pods of
    the stable revision `revision` (their own revision label, `judge.baseline_revision`)."""
    body = manifest(release, baseline_name(stable), baseline_revision(revision))
    body["metadata"]["labels"][ROLE_LABEL] = BASELINE_ROLE
    body["spec"]["selector"][ROLE_LABEL] = BASELINE_ROLE
    return body


def delete_baseline(kube: Kube, release: Release, stable: str) -> None:
    """The baseline Service goes (with its baseline), if it is the Release's own; gone already is fine."""
    namespace, name = release.metadata.namespace or "", baseline_name(stable)
    try:
        found = kube.core.read_namespaced_service(name, namespace)
        if not any(o.uid == release.metadata.uid for o in found.metadata.owner_references or []):
            return  # never the Service of someone else that happens to have the name
        # The uid read is a precondition: a Service made again meanwhile (someone's) is not deleted.
        kube.core.delete_namespaced_service(name, namespace, body=kubernetes.client.V1DeleteOptions(
            preconditions=kubernetes.client.V1Preconditions(uid=found.metadata.uid)))
    except Exception as exc:
        if not not_found(exc):
            raise
