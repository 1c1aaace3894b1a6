"""Revision Deployments `<release>-<revision>`: observed with their pods, applied server-side."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from glideslope.api import Release
from glideslope.core.model import RELEASE_LABEL, REVISION_LABEL, RevisionState
from glideslope.kube.client import APPLY, FIELD_MANAGER, Kube, not_found


def deployment_name(release: str, revision: str) -> str:
    return f"{release}-{revision}"


def owner_reference(release: Release) -> dict[str, Any]:
    """Deleting the Release deletes what it owns."""
    return {"apiVersion": release.api_version, "kind": release.kind, "name": release.metadata.name,
            "uid": release.metadata.uid, "controller": True, "blockOwnerDeletion": True}


def observe(kube: Kube, namespace: str, release: str) -> dict[str, RevisionState]:
    """Each revision's Deployment, with its pods: Ready ones, and all that still exist."""
    selector = f"{RELEASE_LABEL}={release}"
    deployments = kube.apps.list_namespaced_deployment(namespace, label_selector=selector).items
    pods = kube.core.list_namespaced_pod(namespace, label_selector=selector).items
    ready: dict[str, int] = defaultdict(int)
    count: dict[str, int] = defaultdict(int)
    for pod in pods:
        revision = (pod.metadata.labels or {}).get(REVISION_LABEL, "")
        count[revision] += 1
        conditions = (pod.status.conditions if pod.status else None) or []
        if pod.metadata.deletion_timestamp is None and any(
                c.type == "Ready" and c.status == "True" for c in conditions):
            ready[revision] += 1
    states: dict[str, RevisionState] = {}
    for deployment in deployments:
        revision = (deployment.metadata.labels or {}).get(REVISION_LABEL)
        if revision:
            states[revision] = RevisionState(deployment.spec.replicas or 0, ready[revision], count[revision])
    return states


def apply_candidate(kube: Kube, release: Release, revision: str, replicas: int) -> None:
    """The candidate's whole Deployment, server-side applied: its template comes from the spec."""
    name = release.metadata.name or ""
    labels = {RELEASE_LABEL: name, REVISION_LABEL: revision}
    template = release.spec.template.to_dict()
    template.setdefault("metadata", {})
    template["metadata"]["labels"] = {**(template["metadata"].get("labels") or {}), **labels}
    body = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": deployment_name(name, revision), "namespace": release.metadata.namespace,
                     "labels": labels, "ownerReferences": [owner_reference(release)]},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {**release.spec.selector.match_labels, **labels}},
            "template": template,
            # A revision's template never changes, so its own rollout history is useless.
            "revisionHistoryLimit": 0,
        },
    }
    kube.apps.patch_namespaced_deployment(deployment_name(name, revision), release.metadata.namespace, body,
                                          field_manager=FIELD_MANAGER, force=True, _content_type=APPLY)


def scale(kube: Kube, namespace: str, release: str, revision: str, replicas: int) -> None:
    """An older revision's replicas (its template is whatever it was created with)."""
    kube.apps.patch_namespaced_deployment(deployment_name(release, revision), namespace,
                                          {"spec": {"replicas": replicas}}, field_manager=FIELD_MANAGER)


def delete(kube: Kube, namespace: str, release: str, revision: str) -> None:
    try:
        kube.apps.delete_namespaced_deployment(deployment_name(release, revision), namespace)
    except Exception as exc:
        if not not_found(exc):
            raise
