"""kopf registration: the Releases' watch wakes the scheduler, which steps them (`scheduler`).

Stepping is not a kopf timer: kopf's per-object timers tick every Release every interval
whether anything is due or not, which at 1,000 Releases costs more than the work itself. kopf
still owns what it is good at: the watch of Releases, the finalizer and the delete handler.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import kopf

from glideslope import engine
from glideslope.api import GROUP, PLURAL, VERSION, parse_release
from glideslope.api.templates import PLURALS
from glideslope.api.types import TemplateKind
from glideslope.egress import EgressPolicy
from glideslope.kube import adoption, services, workloads
from glideslope.kube.client import Kube, not_found
from glideslope.kube.traffic import router_for
from glideslope.logs import bind_release, get_logger
from glideslope.metrics import OperatorMetrics, ReleaseKey
from glideslope.runtime import Runtime
from glideslope.scheduler import LATE, ROLLING_RESYNC, next_tick

log = get_logger(__name__)

CACHE_SYNC_SECONDS = 60.0
"""How long startup waits for the workload cache's first listing (until then ticks list)."""
STALL_SECONDS = 120.0
"""A Release overdue this long while no stepper finished a tick: the steppers are stuck."""


def register(registry: kopf.OperatorRegistry, kube: Kube, *, interval: float, metrics: OperatorMetrics,
             policy: EgressPolicy, prometheus_url: str | None = None, on_stop: Callable[[], None] | None = None,
             namespaces: list[str] | None = None) -> Runtime:
    """The startup settings, the Releases' watch and delete handler, and the stepper, on one
    runtime (returned).

    `policy` is the installer's egress policy; `prometheus_url` the default Prometheus for
    analysis (a Release may name its own, as the policy allows); `namespaces` those watched
    (None: all); `interval` the pace at which Releases waiting on something without a
    deadline (gates, a first rollout) are polled.
    """
    # One lock for the per-Release memory, which ticks and the watch handler both update.
    lock = threading.Lock()
    # The runtime runs the ticks and each tick uses the runtime: the tick finds it here once made
    # (no tick runs before `runtime.start`, at kopf's startup).
    made: list[Runtime] = []
    runtime = Runtime(kube, _tick(lambda: made[0], lock, metrics=metrics, interval=interval), metrics=metrics,
                      policy=policy, prometheus_url=prometheus_url, interval=interval, namespaces=namespaces)
    made.append(runtime)
    adopters = Adopters()
    _register_lifecycle(registry, runtime, on_stop)
    _register_watch(registry, runtime, lock, adopters)
    _register_templates(registry, runtime)
    _register_delete(registry, runtime, kube)
    _register_adopted(registry, runtime, adopters)
    return runtime


_LEGACY_ID = "register.<locals>."
"""kopf keeps a handler's progress (retries of a delete) under its id, by default its qualname:
these handlers were once all defined in `register`, and keep those ids across an upgrade."""


def _tick(runtime: Callable[[], Runtime], lock: threading.Lock, *, metrics: OperatorMetrics,
          interval: float) -> Callable[[str, str], float | None]:
    """One Release's tick: a step, its metrics counted once, and the delay to the next tick."""

    def tick(namespace: str, name: str) -> float | None:
        bind_release(namespace, name)
        release = engine.step(runtime(), namespace, name)
        if release is None:
            return None
        memory = runtime().memory((namespace, name))
        with lock:
            # On first sight after a start, history already written is not counted again.
            before, memory.last_status = memory.last_status, release.status
        metrics.observe(ReleaseKey(namespace, name, release.spec.strategy.type.value), before or release.status,
                        release.status)
        if release.spec.template is None:
            # Its Deployment cannot be adopted: the Deployment's watch wakes it when that
            # changes; this poll is for what no watch sees (a write of its Degraded status that
            # lost a race with kopf's finalizer).
            return max(interval, ROLLING_RESYNC)
        delay = next_tick(release, datetime.now(UTC), interval, before)
        refresh = engine.refresh_due(runtime(), namespace, name)
        # A settled Release is ticked once a minute: its unwritten counts must not wait that long.
        return delay if refresh is None else min(delay, refresh + LATE)

    return tick


def _register_lifecycle(registry: kopf.OperatorRegistry, runtime: Runtime,
                        on_stop: Callable[[], None] | None) -> None:
    """Login, startup settings, cleanup on SIGTERM and the steppers' liveness probe."""
    scheduler = runtime.scheduler

    @kopf.on.login(id=_LEGACY_ID + "login", registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # A registry of our own has none of kopf's default login handlers.
        info: kopf.ConnectionInfo | None = kopf.login_via_client(**kwargs)
        return info

    @kopf.on.cleanup(id=_LEGACY_ID + "cleanup", registry=registry)
    def cleanup(**_: Any) -> None:
        # On SIGTERM the steppers stop first (no tick left running), then the lease is handed
        # over at once, so a standby need not wait for the rest of the shutdown.
        if not runtime.stop_steppers():
            runtime.fence(0.0)  # a tick still stuck sends nothing once the lease is handed over
        if on_stop is not None:
            on_stop()
        runtime.stop(wait=0.0)

    @kopf.on.startup(id=_LEGACY_ID + "configure", registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = f"{GROUP}/finalizer"
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = NoDiffBase()
        # Our own Events say what happens; kopf's per-handler ones would only be noise.
        settings.posting.level = logging.WARNING
        settings.watching.server_timeout = 60
        # A watch whose connection went half-open would otherwise wait forever, its cache
        # frozen while it still says it is synced: the client gives up a while after the server
        # should have ended it, and kopf watches again.
        settings.watching.client_timeout = 90
        settings.watching.connect_timeout = 5
        runtime.start(CACHE_SYNC_SECONDS)

    @kopf.on.probe(id="steppers", registry=registry)
    def steppers(**_: Any) -> str:
        """Liveness: fails while Releases are overdue and no stepper finishes a tick (stuck
        steppers), so the kubelet restarts the operator."""
        stalled = scheduler.stalled(STALL_SECONDS)
        if stalled is not None:
            raise kopf.PermanentError(stalled)
        return "stepping"


def _register_watch(registry: kopf.OperatorRegistry, runtime: Runtime, lock: threading.Lock,
                    adopters: Adopters) -> None:
    """The Releases' watch: keeps their bodies, and wakes a Release's tick when it changed."""
    scheduler = runtime.scheduler
    bodies = runtime.releases

    # A plain function, which kopf runs in a worker thread. As a coroutine (on kopf's loop) it
    # left the operator at 342 MiB instead of 268 at 1,000 Releases, for no CPU the scale
    # benchmark could see.
    @kopf.on.event(GROUP, VERSION, PLURAL, id=_LEGACY_ID + "changed", registry=registry)
    def changed(body: kopf.Body, name: str, namespace: str | None, **kwargs: Any) -> None:
        key = (namespace or "", name)
        if kwargs.get("type") == "DELETED":
            bodies.forget(key)
            runtime.forget(*key)
            adopters.set(key, None)
            return
        bodies.seen(body)
        adopters.set(key, ((body.get("spec") or {}).get("workloadRef") or {}).get("name"))
        meta = body.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            return  # the delete handler holds it
        annotations = meta.get("annotations") or {}
        fingerprint = (meta.get("uid"), meta.get("generation"),
                       tuple(sorted((k, v) for k, v in annotations.items() if "last-handled" not in k)))
        memory = runtime.memory(key)
        with lock:
            if memory.seen == fingerprint:
                return
            memory.seen = fingerprint
        # Events of a Release being deleted all carry its deletionTimestamp, so one without it
        # is a new Release of that name: the hold of the deleted one must not keep it waiting.
        scheduler.unhold(key)
        scheduler.wake(key)


def _register_templates(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    """The watches of AnalysisTemplates (in the watched namespaces) and ClusterAnalysisTemplates
    (cluster-scoped: kopf watches them cluster-wide): each change refreshes the template cache
    and wakes the Releases that use the template."""
    for kind in TemplateKind:
        def changed(body: kopf.Body, template_kind: TemplateKind = kind, **kwargs: Any) -> None:
            if kwargs.get("type") == "DELETED":
                users = runtime.templates.gone(template_kind, body)
            else:
                users = runtime.templates.seen(template_kind, body)
            for key in users:
                runtime.scheduler.wake(key)

        kopf.on.event(GROUP, VERSION, PLURALS[kind], id=f"templates.{PLURALS[kind]}", registry=registry)(changed)


class Adopters:
    """Which Releases adopt which Deployment (`spec.workloadRef.name`), from the Releases' watch,
    and the pod template each adopted Deployment last had: a new template wakes its Releases."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._adopted: dict[tuple[str, str], str] = {}
        """(namespace, release) -> Deployment"""
        self._templates: dict[tuple[str, str], str] = {}
        """(namespace, Deployment) -> its pod template, as compact JSON"""

    def set(self, release: tuple[str, str], deployment: str | None) -> None:
        with self._lock:
            if deployment is None:
                self._adopted.pop(release, None)
            else:
                self._adopted[release] = deployment

    def adopted(self, namespace: str, deployment: str) -> bool:
        """Whether a Release adopts the Deployment, or did when its template was last seen."""
        with self._lock:
            return (namespace, deployment) in self._templates or any(
                r[0] == namespace and d == deployment for r, d in self._adopted.items())

    def changed(self, namespace: str, deployment: str, template: str | None) -> list[tuple[str, str]]:
        """The Releases to wake: those adopting the Deployment, when its template is new to
        this process (None: it is gone)."""
        key = (namespace, deployment)
        with self._lock:
            releases = [r for r, d in self._adopted.items() if r[0] == namespace and d == deployment]
            if not releases:
                self._templates.pop(key, None)
                return []
            if template is not None and self._templates.get(key) == template:
                return []
            if template is None:
                self._templates.pop(key, None)
            else:
                self._templates[key] = template
        return releases


def _register_adopted(registry: kopf.OperatorRegistry, runtime: Runtime, adopters: Adopters) -> None:
    """The Deployments' watch: a Deployment a Release adopts that comes, goes or gets a new pod
    template wakes the Release (its template is the candidate; its replicas are the operator's
    own writes, which wake nothing)."""
    scheduler = runtime.scheduler

    @kopf.on.event("apps", "v1", "deployments", id="adopted", registry=registry)
    def adopted(body: kopf.Body, name: str, namespace: str | None, **kwargs: Any) -> None:
        if not adopters.adopted(namespace or "", name):
            return  # most Deployments: the revisions' own, other applications'
        gone = kwargs.get("type") == "DELETED"
        template = None if gone else json.dumps((body.get("spec") or {}).get("template"), sort_keys=True,
                                                separators=(",", ":"), default=dict)
        for key in adopters.changed(namespace or "", name, template):
            scheduler.wake(key)


def _register_delete(registry: kopf.OperatorRegistry, runtime: Runtime, kube: Kube) -> None:
    """The delete handler: what serves keeps serving, the rest goes with the Release."""
    scheduler = runtime.scheduler

    @kopf.on.delete(GROUP, VERSION, PLURAL, id=_LEGACY_ID + "deleted", registry=registry)
    def deleted(body: kopf.Body, name: str, namespace: str | None, **_: Any) -> None:
        """A Release deleted mid-rollout abandons the rollout, but what serves keeps serving:
        the serving revision (at full size) and the Services are left behind, without the
        Release as owner; the other revisions go with the Release, once the serving one is Ready
        at full size (until then the finalizer holds them). Never longer than
        `DELETE_HOLD_SECONDS`: a namespace being deleted waits on it."""
        key = (namespace or "", name)
        scheduler.hold(key)
        held = _held_for(body)
        try:
            adopted = ((body.get("spec") or {}).get("workloadRef") or {}).get("name")
            size = give_back(kube, body, adopted) if adopted else None
            if adopted and size is not None:
                # An adopting Release gives its Deployment back; its own pods go once that serves.
                def wait() -> str | None:
                    return adoption.deployment_ready(kube, key[0], adopted, size)
            else:
                # A template, or an adopted Deployment someone deleted: the serving revision is
                # left behind, as for any Release (its pods carry the given-back selector's labels).
                kept = keep_serving(kube, body)

                def wait() -> str | None:
                    return serving_ready(kube, key[0], name, kept)
            waiting = wait()
            deadline = time.monotonic() + DELETE_WAIT_SECONDS
            # Most waits end within seconds: waiting here spares a kopf retry, and its Event.
            while waiting is not None and time.monotonic() < deadline:
                time.sleep(DELETE_POLL_SECONDS)
                waiting = wait()
        except Exception as exc:  # retried as a wait is, and as long
            waiting = f"could not keep what serves: {exc}"
        if waiting is not None:
            if held < DELETE_HOLD_SECONDS:
                raise kopf.TemporaryError(waiting, delay=DELETE_RETRY_SECONDS)
            log.warning("deleted: letting it go", namespace=key[0], release=name, waiting=waiting, seconds=round(held))
        runtime.forget(*key, held=True)


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf keeps no last-handled state of Releases: with no create, update or resume handlers
    it has no diff to compute, and storing it was an annotation write after every change of
    spec or annotations that raced with the stepper's first tick on that change. The tick's
    status write then failed on the resourceVersion and the tick was taken again, by which time
    the first step could be done already: its status never written, a step seen skipped."""

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        # The same empty essence every time: kopf sees no change (NOOP) and copies no body.
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return kopf.BodyEssence()

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


DELETE_HOLD_SECONDS = 120.0
"""The longest a deleted Release's finalizer waits for its serving revision to be Ready."""
DELETE_WAIT_SECONDS = 10.0
"""How long one run of the delete handler waits for the serving revision; then kopf retries."""
DELETE_POLL_SECONDS = 0.5
DELETE_RETRY_SECONDS = 1.0


def _held_for(body: kopf.Body) -> float:
    """Seconds since the Release was deleted."""
    stamp = (body.get("metadata") or {}).get("deletionTimestamp")
    if not stamp:
        return 0.0
    return (datetime.now(UTC) - datetime.fromisoformat(str(stamp))).total_seconds()


def keep_serving(kube: Kube, body: kopf.Body) -> tuple[str, int] | None:
    """Leave what serves behind a deleted Release: its serving revision's Deployment (scaled to
    full size) and its Services lose the Release as their owner, and a route sends the preview
    nothing (and no longer names the judge's baseline Service, which is deleted). Returns the
    serving revision and its replicas when its Deployment was kept."""
    meta, status = body.get("metadata") or {}, body.get("status") or {}
    namespace, name = meta.get("namespace") or "", meta.get("name") or ""
    serving = status.get("stableRevision") or status.get("revision")
    try:
        release = parse_release(dict(body))
    except Exception:  # a spec the models refuse never deployed anything but its stable revision
        release = None
    replicas = None
    if release is not None:
        replicas = release.spec.replicas
        service_names = services.names(release)
        if service_names is not None:
            stable, preview = service_names
            selected = workloads.selected_revision(kube, namespace, stable)
            serving = selected or serving
            # A route still sending weight to the preview (canary) Service would send it nowhere;
            # a route already gone sends nothing anywhere.
            try:
                router_for(release).set_weight(kube, release, stable, preview, 0)
            except Exception as exc:
                if not not_found(exc):
                    raise
            # The judge's baseline goes with the Release: its Service too, once no route names it.
            services.delete_baseline(kube, release, stable)
    kept = workloads.orphan_serving(kube, namespace, name, meta.get("uid") or "", serving, replicas)
    log.info("deleted: kept serving, without it as owner", namespace=namespace, release=name,
             kept=", ".join(kept) or "nothing")
    if serving and replicas is not None and f"deployment/{workloads.deployment_name(name, serving)}" in kept:
        return serving, replicas
    return None


def give_back(kube: Kube, body: kopf.Body, deployment: str) -> int | None:
    """Give what a deleted adopting Release took back as found: its Services (an adopted one's
    selector and ports as recorded; one it created selects the Deployment's pods), a route's
    weight back on the stable Service, and the Deployment at its recorded replicas. Returns
    those replicas (None: the Deployment is gone)."""
    meta = body.get("metadata") or {}
    namespace, name = meta.get("namespace") or "", meta.get("name") or ""
    try:
        release = parse_release(dict(body))
    except Exception:  # a spec the models refuse never wrote a Service or a route
        release = None
    names: tuple[str, ...] = ()
    selector = None
    if release is not None:
        names = services.names(release) or ()
        selector = dict(release.spec.selector.match_labels)
        if names:
            try:
                router_for(release).set_weight(kube, release, names[0], names[1], 0)
            except Exception as exc:
                if not not_found(exc):
                    raise
            services.delete_baseline(kube, release, names[0])
    given = adoption.give_back_services(kube, namespace, name, meta.get("uid") or "", names, selector)
    size = adoption.give_back_deployment(kube, namespace, deployment)
    log.info("deleted: the adopted Deployment given back", namespace=namespace, release=name, deployment=deployment,
             replicas=size, services=", ".join(given) or "none")
    return size


def serving_ready(kube: Kube, namespace: str, name: str, kept: tuple[str, int] | None) -> str | None:
    """Why the deleted Release's other revisions must wait (its kept revision is not Ready at
    full size while they have Ready pods), or None."""
    if kept is None:
        return None
    serving, replicas = kept
    states = workloads.observe(kube, namespace, name)
    ready = states[serving].ready if serving in states else 0
    others = sum(s.ready for r, s in states.items() if r != serving)
    if ready < replicas and others:
        return f"waiting for {serving} to be Ready at full size ({ready}/{replicas}) before the other revisions go"
    return None
