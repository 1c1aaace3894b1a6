"""What a Release adopts: the Deployment of `spec.workloadRef`, and Services handed over with
`glideslope.dev/adopt: "<release>"`. Both are written as little as can be, and given back as
found when the Release is deleted.

- The Deployment: only its `replicas` is written, never its template. What it had when adopted
  is recorded on it (`ADOPTED_REPLICAS`), with the first write, so an operator restarted later
  still knows the size to give back.
- A Service: its selector and ports as found are recorded on it (`ADOPTED_FROM`) before the
  operator first writes it, and put back on deletion.

Records live on the adopted objects themselves: they survive the operator's restarts and the
Release's own status being rewritten, and go away with the objects.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from glideslope.api import PodTemplateSpec, Release
from glideslope.core.model import ADOPT_ANNOTATION, RELEASE_LABEL, REVISION_LABEL
from glideslope.kube.client import UNREAD, Kube, conflict, drain, not_found
from glideslope.kube.workloads import kube_owner
from glideslope.logs import get_logger

log = get_logger(__name__)

ADOPTED_REPLICAS = "glideslope.dev/adopted-replicas"
"""On an adopted Deployment: its replicas when the Release adopted it, given back on deletion."""
ADOPTED_FROM = "glideslope.dev/adopted-from"
"""On an adopted Service: its selector and ports as found (JSON), given back on deletion."""
FIELD_MANAGER = "glideslope-adopt"
"""The field manager of these merge patches: not the operator's server-side apply manager, so
its applies never remove what these write."""
MERGE = "application/merge-patch+json"


class Unusable(Exception):
    """The Deployment `spec.workloadRef` names cannot be adopted; the message names the field."""


@dataclass(frozen=True)
class Adopted:
    """The adopted Deployment as read this tick."""

    name: str
    template: PodTemplateSpec
    replicas: int
    """Its `spec.replicas` now."""
    found: int
    """Its replicas when adopted: the record, else (not scaled yet) what it has now."""
    recorded: bool
    resource_version: str


def read(kube: Kube, release: Release) -> Adopted:
    """The Deployment of `spec.workloadRef`, checked; raise `Unusable` naming the field."""
    ref = release.spec.workload_ref
    assert ref is not None
    namespace = release.metadata.namespace or ""
    try:
        response = kube.apps.read_namespaced_deployment(ref.name, namespace, _preload_content=False)
    except Exception as exc:
        if not_found(exc):
            raise Unusable(f"spec.workloadRef.name: Deployment {namespace}/{ref.name} not found") from exc
        raise
    body: dict[str, Any] = json.loads(response.data)
    meta = body.get("metadata") or {}
    if (meta.get("labels") or {}).get(RELEASE_LABEL):
        raise Unusable(f"spec.workloadRef.name: Deployment {namespace}/{ref.name} is a revision of Release "
                       f"{meta['labels'][RELEASE_LABEL]}, not a Deployment to adopt")
    spec = body.get("spec") or {}
    raw = spec.get("template") or {}
    labels = (raw.get("metadata") or {}).get("labels") or {}
    wanted = release.spec.selector.match_labels
    missing = {k: v for k, v in wanted.items() if labels.get(k) != v}
    if missing:
        raise Unusable(f"spec.selector.matchLabels: {_labels(missing)} not on the pods of Deployment "
                       f"{namespace}/{ref.name} (its template's labels: {_labels(labels) or 'none'}); the "
                       "selector must select the Deployment's pods")
    try:
        template = PodTemplateSpec.from_dict(raw)
    except ValidationError as exc:
        raise Unusable(f"spec.workloadRef.name: the pod template of Deployment {namespace}/{ref.name} cannot "
                       f"be used: {exc.errors()[0].get('msg', exc)}") from exc
    given = spec.get("replicas")
    replicas = int(given) if given is not None else 1
    record = (meta.get("annotations") or {}).get(ADOPTED_REPLICAS)
    found = _count(record)
    return Adopted(name=ref.name, template=template, replicas=replicas,
                   found=replicas if found is None else found, recorded=found is not None,
                   resource_version=str(meta.get("resourceVersion") or ""))


def resolved(release: Release, adopted: Adopted) -> Release:
    """`release` with the adopted Deployment's pod template as its `spec.template`."""
    spec = release.spec.model_copy(update={"template": adopted.template})
    return release.model_copy(update={"spec": spec})


def scale(kube: Kube, namespace: str, adopted: Adopted, replicas: int) -> None:
    """Set the adopted Deployment's replicas, recording what it had first (in the same write);
    a Deployment changed since it was read is left for the next tick."""
    if replicas == adopted.replicas and adopted.recorded:
        return
    patch: dict[str, Any] = {"metadata": {"resourceVersion": adopted.resource_version,
                                          "annotations": {ADOPTED_REPLICAS: str(adopted.found)}},
                             "spec": {"replicas": replicas}}
    try:
        drain(kube.apps.patch_namespaced_deployment(adopted.name, namespace, patch, field_manager=FIELD_MANAGER,
                                                    _content_type=MERGE, **UNREAD))
    except Exception as exc:
        if not (conflict(exc) or not_found(exc)):
            raise
        return
    log.info("adopted Deployment scaled", namespace=namespace, deployment=adopted.name, replicas=replicas,
             found=adopted.found)


def _deployment(kube: Kube, namespace: str, name: str) -> Any:
    """The Deployment as it is now; None: it is gone."""
    try:
        return kube.apps.read_namespaced_deployment(name, namespace)
    except Exception as exc:
        if not_found(exc):
            return None
        raise


def give_back_deployment(kube: Kube, namespace: str, name: str) -> int | None:
    """Scale the adopted Deployment back to its recorded replicas and drop the record; returns
    the replicas it should serve with (None: it is gone)."""
    found = _deployment(kube, namespace, name)
    if found is None:
        return None
    recorded = _count((found.metadata.annotations or {}).get(ADOPTED_REPLICAS))
    if recorded is None:
        return int(found.spec.replicas if found.spec.replicas is not None else 1)
    patch = {"metadata": {"resourceVersion": found.metadata.resource_version,
                          "annotations": {ADOPTED_REPLICAS: None}},
             "spec": {"replicas": recorded}}
    drain(kube.apps.patch_namespaced_deployment(name, namespace, patch, field_manager=FIELD_MANAGER,
                                                _content_type=MERGE, **UNREAD))
    log.info("adopted Deployment given back", namespace=namespace, deployment=name, replicas=recorded)
    return recorded


def deployment_ready(kube: Kube, namespace: str, name: str, replicas: int) -> str | None:
    """Why the given-back Deployment is not serving at `replicas` yet (None: it is, or is gone)."""
    found = _deployment(kube, namespace, name)
    if found is None:
        return None
    status = found.status
    ready = (status.ready_replicas or 0) if status else 0
    observed = (status.observed_generation or 0) if status else 0
    if ready >= replicas and observed >= (found.metadata.generation or 0):
        return None
    return (f"waiting for Deployment {name} to be Ready at {replicas} replicas ({ready} now) before the "
            "Release's pods go")


def record_service(kube: Kube, release: Release, name: str) -> None:
    """Record a Service handed over to the Release (`glideslope.dev/adopt`) as found, before the
    Release first writes it; a Service already recorded or already the Release's is left."""
    namespace = release.metadata.namespace or ""
    try:
        found = kube.core.read_namespaced_service(name, namespace)
    except Exception as exc:
        if not_found(exc):
            return
        raise
    meta = found.metadata
    annotations = meta.annotations or {}
    if annotations.get(ADOPT_ANNOTATION) != release.metadata.name or ADOPTED_FROM in annotations:
        return
    if any(o.uid == release.metadata.uid for o in meta.owner_references or []):
        return
    spec = kube.core.api_client.sanitize_for_serialization(found.spec)
    record = {"selector": spec.get("selector"), "ports": spec.get("ports"),
              "labelled": RELEASE_LABEL in (meta.labels or {})}
    patch = {"metadata": {"resourceVersion": meta.resource_version,
                          "annotations": {ADOPTED_FROM: json.dumps(record, separators=(",", ":"))}}}
    drain(kube.core.patch_namespaced_service(name, namespace, patch, field_manager=FIELD_MANAGER,
                                             _content_type=MERGE, **UNREAD))
    log.info("Service adopted, recorded as found", namespace=namespace, service=name, release=release.metadata.name)


def give_back_services(kube: Kube, namespace: str, release: str, uid: str, names: Iterable[str],
                       selector: dict[str, str] | None) -> list[str]:
    """On deletion of an adopting Release: each of its Services (`names`, and those labelled as
    its own) loses the Release as owner; an adopted one gets its selector and ports back as
    found, one it created selects `selector` (the adopted Deployment's pods, which serve on).
    Returns what was given back."""
    listed = kube.core.list_namespaced_service(namespace, label_selector=f"{RELEASE_LABEL}={release}").items
    wanted = {s.metadata.name: s for s in listed}
    for name in names:
        if name not in wanted:
            try:
                wanted[name] = kube.core.read_namespaced_service(name, namespace)
            except Exception as exc:
                if not not_found(exc):
                    raise
    given: list[str] = []
    for name, found in sorted(wanted.items()):
        meta = found.metadata
        record = _record((meta.annotations or {}).get(ADOPTED_FROM))
        owners = [kube_owner(o) for o in meta.owner_references or [] if o.uid != uid]
        ours = len(owners) != len(meta.owner_references or [])
        if record is None and not ours:
            continue  # neither recorded nor the Release's: never touched
        current = found.spec.selector or {}
        if record is not None:
            restored = record.get("selector") or {}
            spec: dict[str, Any] = {"selector": {**{k: None for k in current if k not in restored}, **restored}}
            if record.get("ports"):
                spec["ports"] = record["ports"]
            labels = {} if record.get("labelled") else {RELEASE_LABEL: None}
        else:
            spec = {"selector": {RELEASE_LABEL: None, REVISION_LABEL: None, **(selector or {})}}
            labels = {}
        metadata: dict[str, Any] = {"resourceVersion": meta.resource_version, "ownerReferences": owners or None,
                                    "annotations": {ADOPTED_FROM: None}}
        if labels:
            metadata["labels"] = labels
        patch = {"metadata": metadata, "spec": spec}
        try:
            drain(kube.core.patch_namespaced_service(name, namespace, patch, field_manager=FIELD_MANAGER,
                                                     _content_type=MERGE, **UNREAD))
        except Exception as exc:
            if not not_found(exc):
                raise
            continue
        given.append(f"service/{name}")
    return given


def _record(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _count(text: str | None) -> int | None:
    if text is None or not text.strip().isdigit():
        return None
    return int(text)


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
