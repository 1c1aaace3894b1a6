"""Revision Deployments `<release>-<revision>`: observed with their pods, applied server-side.

With a `WorkloadCache` installed (the operator does), `observe` reads a watch-fed cache instead
of listing Deployments and pods on every tick: at 1,000 Releases two LISTs per tick cost the API
server and the operator more than everything else together. What the operator writes is put
into the cache at once, so the next tick sees its own writes.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import kubernetes

from glideslope.api import Release
from glideslope.core.judge import BASELINE_ROLE, BASELINE_SUFFIX, ROLE_LABEL, baseline_revision
from glideslope.core.model import RELEASE_LABEL, RESTARTED_AT, REVISION_LABEL, RevisionState
from glideslope.kube.client import APPLY, FIELD_MANAGER, UNREAD, Kube, drain, not_found
from glideslope.logs import get_logger

log = get_logger(__name__)


SURGE_FIRST = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
"""How a revision's Deployment replaces its pods on a restart: one new pod Ready before an old one goes."""


def deployment_name(release: str, revision: str) -> str:
    return f"{release}-{revision}"


def owner_reference(release: Release) -> dict[str, Any]:
    """Deleting the Release deletes what it owns."""
    return {"apiVersion": release.api_version, "kind": release.kind, "name": release.metadata.name,
            "uid": release.metadata.uid, "controller": True, "blockOwnerDeletion": True}


BASELINE = "+baseline"
"""Appended to a revision to key the judge's baseline Deployment and pods apart from the
revision's own."""


def baseline_name(release: str, revision: str) -> str:
    return f"{release}-{revision}-baseline"


def _revision_key(labels: dict[str, str]) -> str:
    revision = labels.get(REVISION_LABEL, "")
    if not revision or labels.get(ROLE_LABEL) != BASELINE_ROLE:
        return revision
    # `<stable>-baseline` (`judge.baseline_revision`); an older operator's baseline carried the
    # stable revision's own label.
    return revision.removesuffix(BASELINE_SUFFIX) + BASELINE


def observe(kube: Kube, namespace: str, release: str) -> dict[str, RevisionState]:
    """Each revision's Deployment, with its pods: Ready ones, and all that still exist (the
    judge's baselines apart: `observe_baselines`)."""
    return {r: s for r, s in _observe_all(kube, namespace, release).items() if not r.endswith(BASELINE)}


def observe_baselines(kube: Kube, namespace: str, release: str) -> dict[str, RevisionState]:
    """The judge's baseline Deployments, with their pods, by the revision they run."""
    return {r.removesuffix(BASELINE): s for r, s in _observe_all(kube, namespace, release).items()
            if r.endswith(BASELINE)}


def _observe_all(kube: Kube, namespace: str, release: str) -> dict[str, RevisionState]:
    cache = _cache
    if cache is not None:
        cached = cache.observe(namespace, release)
        if cached is not None:
            return cached
    selector = f"{RELEASE_LABEL}={release}"
    deployments = kube.apps.list_namespaced_deployment(namespace, label_selector=selector).items
    pods = kube.core.list_namespaced_pod(namespace, label_selector=selector).items
    ready: dict[str, int] = defaultdict(int)
    count: dict[str, int] = defaultdict(int)
    for pod in pods:
        revision = _revision_key(pod.metadata.labels or {})
        count[revision] += 1
        conditions = (pod.status.conditions if pod.status else None) or []
        if pod.metadata.deletion_timestamp is None and any(
                c.type == "Ready" and c.status == "True" for c in conditions):
            ready[revision] += 1
    states: dict[str, RevisionState] = {}
    for deployment in deployments:
        revision = _revision_key(deployment.metadata.labels or {})
        if revision:
            states[revision] = RevisionState(deployment.spec.replicas or 0, ready[revision], count[revision])
    return states


def apply_candidate(kube: Kube, release: Release, revision: str, replicas: int) -> None:
    """The candidate's whole Deployment, server-side applied: its template comes from the spec."""
    name = release.metadata.name or ""
    labels = {RELEASE_LABEL: name, REVISION_LABEL: revision}
    if release.spec.template is None:  # resolved from spec.workloadRef before any tick acts
        raise ValueError("spec.template is unset: spec.workloadRef was not resolved")
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
            # A revision's template changes only for a restart (new pods of the same revision):
            # a new pod is Ready before an old one goes, and no rollout history is worth keeping.
            "revisionHistoryLimit": 0,
            "strategy": SURGE_FIRST,
        },
    }
    drain(kube.apps.patch_namespaced_deployment(deployment_name(name, revision), release.metadata.namespace, body,
                                                field_manager=FIELD_MANAGER, force=True, _content_type=APPLY,
                                                **UNREAD))
    if _cache is not None:
        _cache.wrote(release.metadata.namespace or "", name, revision, replicas)


def apply_baseline(kube: Kube, release: Release, revision: str, template: dict[str, Any], replicas: int) -> None:
    """The judge's baseline: fresh pods of `revision` (the stable one; `template` is its
    Deployment's pod template), labelled `glideslope.dev/role: baseline` and with the revision
    label `<revision>-baseline`, so that the stable Service does not select them; server-side
    applied. A baseline Deployment of an older operator (the stable revision's label, in its
    immutable selector) is deleted, and made again on the next tick."""
    name = release.metadata.name or ""
    labels = {RELEASE_LABEL: name, REVISION_LABEL: baseline_revision(revision), ROLE_LABEL: BASELINE_ROLE}
    template = json.loads(json.dumps(template))
    template.setdefault("metadata", {})
    template["metadata"]["labels"] = {**(template["metadata"].get("labels") or {}), **labels}
    body = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": baseline_name(name, revision), "namespace": release.metadata.namespace,
                     "labels": labels, "ownerReferences": [owner_reference(release)]},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {**release.spec.selector.match_labels, **labels}},
                 "template": template, "revisionHistoryLimit": 0},
    }
    try:
        drain(kube.apps.patch_namespaced_deployment(baseline_name(name, revision), release.metadata.namespace,
                                                    body, field_manager=FIELD_MANAGER, force=True,
                                                    _content_type=APPLY, **UNREAD))
    except kubernetes.client.ApiException as exc:
        if exc.status != 422 or "selector" not in str(exc.body):  # an immutable field, the selector
            raise
        log.info("replacing a baseline Deployment whose selector is an older operator's", revision=revision)
        delete_baseline(kube, release.metadata.namespace or "", name, revision)
        return
    if _cache is not None:
        _cache.wrote(release.metadata.namespace or "", name, revision + BASELINE, replicas,
                     deployment=baseline_name(name, revision))


def pod_template(kube: Kube, namespace: str, release: str, revision: str) -> dict[str, Any] | None:
    """The pod template of a revision's Deployment, as the API serves it (None: it is gone)."""
    try:
        found = kube.apps.read_namespaced_deployment(deployment_name(release, revision), namespace)
    except Exception as exc:
        if not_found(exc):
            return None
        raise
    template: dict[str, Any] = kube.api.sanitize_for_serialization(found.spec.template)
    return template


def delete_baseline(kube: Kube, namespace: str, release: str, revision: str) -> None:
    try:
        kube.apps.delete_namespaced_deployment(baseline_name(release, revision), namespace)
    except Exception as exc:
        if not not_found(exc):
            raise
    if _cache is not None:
        _cache.wrote(namespace, release, revision + BASELINE, None, deployment=baseline_name(release, revision))


def scale(kube: Kube, namespace: str, release: str, revision: str, replicas: int) -> None:
    """An older revision's replicas (its template is whatever it was created with)."""
    drain(kube.apps.patch_namespaced_deployment(deployment_name(release, revision), namespace,
                                                {"spec": {"replicas": replicas}}, field_manager=FIELD_MANAGER,
                                                **UNREAD))
    if _cache is not None:
        _cache.wrote(namespace, release, revision, replicas)


def restart(kube: Kube, namespace: str, release: str, revision: str, token: str) -> None:
    """New pods for the revision: its Deployment rolls them when its pod template's
    `RESTARTED_AT` changes (the same token again changes nothing). A merge patch, not the
    candidate's apply, so the candidate's next apply keeps it."""
    patch = {"spec": {"strategy": SURGE_FIRST, "template": {"metadata": {"annotations": {RESTARTED_AT: token}}}}}
    drain(kube.apps.patch_namespaced_deployment(deployment_name(release, revision), namespace, patch,
                                                field_manager=FIELD_MANAGER, **UNREAD))


def delete(kube: Kube, namespace: str, release: str, revision: str) -> None:
    try:
        kube.apps.delete_namespaced_deployment(deployment_name(release, revision), namespace)
    except Exception as exc:
        if not not_found(exc):
            raise
    if _cache is not None:
        _cache.wrote(namespace, release, revision, None)


def selected_revision(kube: Kube, namespace: str, service: str) -> str | None:
    """The revision a Service selects; None when it selects every revision (or is missing)."""
    try:
        found = kube.core.read_namespaced_service(service, namespace)
    except Exception as exc:
        if not_found(exc):
            return None
        raise
    selected: str | None = (found.spec.selector or {}).get(REVISION_LABEL)
    return selected


def orphan_serving(kube: Kube, namespace: str, release: str, uid: str, revision: str | None,
                   replicas: int | None) -> list[str]:
    """Before a Release is deleted: the Deployment of `revision` (the one serving), scaled to
    `replicas`, and the Release's Services lose the Release as their owner, so the garbage
    collector leaves them serving; the other revisions go with the Release. Other owners'
    references stay. What is already gone is skipped. Returns what was kept."""
    kept: list[str] = []
    if revision:
        name = deployment_name(release, revision)
        try:
            found = kube.apps.read_namespaced_deployment(name, namespace)
            _disown(kube.apps.patch_namespaced_deployment, found, uid,
                    {"spec": {"replicas": replicas}} if replicas is not None else {})
            kept.append(f"deployment/{name}")
        except Exception as exc:
            if not not_found(exc):
                raise
    services = kube.core.list_namespaced_service(namespace, label_selector=f"{RELEASE_LABEL}={release}").items
    for service in services:
        try:
            _disown(kube.core.patch_namespaced_service, service, uid, {})
            kept.append(f"service/{service.metadata.name}")
        except Exception as exc:
            if not not_found(exc):
                raise
    return kept


def _disown(patch: Callable[..., Any], found: Any, uid: str, extra: dict[str, Any]) -> None:
    """Drop the ownerReference to `uid` from `found` (a client model, as read or listed), and
    apply `extra`."""
    meta = found.metadata
    owners = [kube_owner(o) for o in meta.owner_references or [] if o.uid != uid]
    # The version read is a precondition: an owner added meanwhile is not dropped.
    body = {**extra, "metadata": {"ownerReferences": owners or None, "resourceVersion": meta.resource_version}}
    drain(patch(meta.name, meta.namespace, body, _content_type="application/merge-patch+json", **UNREAD))


def kube_owner(ref: Any) -> dict[str, Any]:
    """A client model's ownerReference as the API writes it."""
    owner = {"apiVersion": ref.api_version, "kind": ref.kind, "name": ref.name, "uid": ref.uid}
    if ref.controller is not None:
        owner["controller"] = ref.controller
    if ref.block_owner_deletion is not None:
        owner["blockOwnerDeletion"] = ref.block_owner_deletion
    return owner


# The watch-fed cache -------------------------------------------------------------------------

Key = tuple[str, str]
"""(namespace, release)"""
LIST_PAGE = 500
"""Objects per page when the cache lists."""


class WorkloadCache:
    """The Releases' Deployments (replicas) and pods (Ready, existing), kept from watches on
    objects labelled `glideslope.dev/release`; only those few fields are kept, so 1,000
    Releases' pods cost little memory. `on_change(namespace, release)` is called when what
    `observe` returns for a Release changes (a pod became Ready, a Deployment was scaled)."""

    def __init__(self, kube: Kube, namespaces: Iterable[str] | None, on_change: Callable[[str, str], None]) -> None:
        self.kube = kube
        self.namespaces = list(namespaces) if namespaces else [None]
        self.on_change = on_change
        self._lock = threading.Lock()
        # (namespace, release) -> deployment name -> (revision, replicas)
        self._deployments: dict[Key, dict[str, tuple[str, int]]] = defaultdict(dict)
        # (namespace, release) -> pod name -> (revision, ready)
        self._pods: dict[Key, dict[str, tuple[str, bool]]] = defaultdict(dict)
        self._synced: set[tuple[str, str | None]] = set()
        self._stop = threading.Event()

    def start(self) -> None:
        for namespace in self.namespaces:
            for kind in ("deployments", "pods"):
                threading.Thread(target=self._loop, args=(kind, namespace), daemon=True,
                                 name=f"watch-{kind}-{namespace or 'all'}").start()

    def stop(self) -> None:
        self._stop.set()

    def synced(self) -> bool:
        return len(self._synced) == 2 * len(self.namespaces)

    def observe(self, namespace: str, release: str) -> dict[str, RevisionState] | None:
        """As `observe` would list it; None until the watches have listed everything once."""
        if not self.synced():
            return None
        key = (namespace, release)
        with self._lock:
            deployments = list(self._deployments.get(key, {}).values())
            pods = list(self._pods.get(key, {}).values())
        ready: dict[str, int] = defaultdict(int)
        count: dict[str, int] = defaultdict(int)
        for revision, is_ready in pods:
            count[revision] += 1
            ready[revision] += is_ready
        return {revision: RevisionState(replicas, ready[revision], count[revision])
                for revision, replicas in deployments}

    def wrote(self, namespace: str, release: str, revision: str, replicas: int | None, *,
              deployment: str | None = None) -> None:
        """What the operator itself just wrote: seen at once, before its watch event comes."""
        name = deployment or deployment_name(release, revision)
        with self._lock:
            if replicas is None:
                self._deployments[(namespace, release)].pop(name, None)
            else:
                self._deployments[(namespace, release)][name] = (revision, replicas)

    # -- watches -----------------------------------------------------------------------------
    def _call(self, kind: str, namespace: str | None) -> Callable[..., Any]:
        apps, core = self.kube.apps, self.kube.core
        if kind == "deployments":
            return (lambda **kw: apps.list_namespaced_deployment(namespace, **kw)) if namespace else \
                apps.list_deployment_for_all_namespaces
        return (lambda **kw: core.list_namespaced_pod(namespace, **kw)) if namespace else \
            core.list_pod_for_all_namespaces

    def _loop(self, kind: str, namespace: str | None) -> None:
        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    version = self._list(kind, namespace)
                # A watch that ends (its timeout, a dropped connection) resumes from the last
                # version seen: listing every pod again would cost the API server, and the
                # operator's peak memory, a copy of them all.
                version = self._watch(kind, namespace, version)
            except Exception as exc:  # an expired version, a dropped connection: list again
                version = None
                if not (isinstance(exc, kubernetes.client.ApiException) and exc.status == 410):
                    log.warning("watch ended; listing again", kind=kind, namespace=namespace or "all namespaces",
                                error=str(exc))
                    time.sleep(1.0)

    def _list(self, kind: str, namespace: str | None) -> str:
        fresh: dict[Key, dict[str, Any]] = defaultdict(dict)
        token: str | None = None
        while True:
            # Raw JSON, a page at a time: the client's models, or one response holding every pod,
            # would cost more CPU and memory than the two fields we keep.
            page = {"_continue": token} if token else {}
            response = self._call(kind, namespace)(label_selector=RELEASE_LABEL, limit=LIST_PAGE,
                                                   _preload_content=False, **page)
            listed = json.loads(response.data)
            for item in listed.get("items") or []:
                entry = self._entry(kind, item)
                if entry is not None:
                    fresh[entry[0]][entry[1]] = entry[2]
            token = (listed.get("metadata") or {}).get("continue")
            if not token:
                break
        with self._lock:
            store: Any = self._deployments if kind == "deployments" else self._pods
            stale = [k for k in store if namespace is None or k[0] == namespace]
            changed = {k for k in stale if store[k] != fresh.get(k)} | {k for k in fresh if store.get(k) != fresh[k]}
            for k in stale:
                del store[k]
            store.update(fresh)
            self._synced.add((kind, namespace))
        for k in changed:
            self.on_change(*k)
        version: str = listed["metadata"]["resourceVersion"]
        return version

    def _watch(self, kind: str, namespace: str | None, version: str) -> str:
        """Watch from `version`; returns the last version seen when the watch ends."""
        watch = kubernetes.watch.Watch()
        for event in watch.stream(self._call(kind, namespace), label_selector=RELEASE_LABEL,
                                  resource_version=version, timeout_seconds=300, allow_watch_bookmarks=True,
                                  deserialize=False):
            if self._stop.is_set():
                watch.stop()
                return version
            kind_of_event = event["type"]
            obj = event["object"]
            if kind_of_event == "ERROR":
                code = obj.get("code") if isinstance(obj, dict) else None
                raise kubernetes.client.ApiException(status=code or 500, reason=str(obj))
            version = (obj.get("metadata") or {}).get("resourceVersion") or version
            if kind_of_event == "BOOKMARK":
                continue
            entry = self._entry(kind, obj)
            if entry is None:
                continue
            key, name, value = entry
            with self._lock:
                store: Any = self._deployments if kind == "deployments" else self._pods
                old = store[key].get(name)
                if kind_of_event == "DELETED":
                    store[key].pop(name, None)
                    if not store[key]:
                        del store[key]
                else:
                    store[key][name] = value
            if kind_of_event == "DELETED" or old != value:
                self.on_change(*key)
        return version

    @staticmethod
    def _entry(kind: str, obj: dict[str, Any]) -> tuple[Key, str, Any] | None:
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        release, revision = labels.get(RELEASE_LABEL), _revision_key(labels)
        if not release or not revision:
            return None
        key = (meta.get("namespace") or "", release)
        if kind == "deployments":
            return key, meta["name"], (revision, int((obj.get("spec") or {}).get("replicas") or 0))
        conditions = (obj.get("status") or {}).get("conditions") or []
        ready = meta.get("deletionTimestamp") is None and any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        return key, meta["name"], (revision, ready)


_cache: WorkloadCache | None = None


def install_cache(cache: WorkloadCache | None) -> None:
    """`observe` reads `cache` from now on (None: lists again)."""
    global _cache
    _cache = cache
