"""The stepper's glue: parse, observe, decide, act, patch status. No decision lives here.

Order matters for crash safety: command annotations are removed first (a command is obeyed at
most once, never twice), then actions are applied, then status is written, so a crash before
the status write only makes the next tick re-apply the same desired states.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import zoneinfo
from collections.abc import Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, TypeVar

from pydantic import ValidationError

from glideslope import gates
from glideslope.api import (
    ANNOUNCEMENTS_LIMIT,
    Announcement,
    ConditionType,
    Release,
    ReleaseStatus,
    parse_duration,
    parse_release,
    parse_status,
    status_patch,
)
from glideslope.core.analysis import Measurement
from glideslope.core.decide import decide
from glideslope.core.gates import GateObservation, checklist
from glideslope.core.model import (
    APPROVED_BY,
    COMMANDS,
    DeleteRevision,
    Observation,
    RecordEvent,
    ScaleRevision,
    SetTraffic,
)
from glideslope.core.revision import revision_of
from glideslope.core.spec_validation import INVALID_SPEC, invalid_status, validate_spec
from glideslope.core.triggers import Due, due_measurements, gate_queries, rendered_queries, variables
from glideslope.kube import events, records, releases, secrets, services, workloads
from glideslope.kube.client import Kube
from glideslope.kube.traffic import router_for
from glideslope.notify.publish import publish
from glideslope.prom import PrometheusAuth, PrometheusProvider
from glideslope.scheduler import STEPPERS

log = logging.getLogger(__name__)


def step(kube: Kube, namespace: str, name: str, now: datetime | None = None, *,
         prometheus_url: str | None = None) -> Release | None:
    """One tick for one Release; returns the Release with the status it decided, written or
    held back for a later write (`_worth_writing`); None: it is gone.

    `prometheus_url` is the operator's default Prometheus (`--prometheus-url`); a Release's
    `spec.analysis.prometheus.address` overrides it."""
    key = (namespace, name)
    body = releases.get(kube, namespace, name)
    if body is None:
        forget(namespace, name)
        return None
    try:
        release = parse_release(body)
    except ValidationError as exc:
        _invalid(kube, body, None, [_pydantic_problem(err) for err in exc.errors()])
        return None
    stored = release.status
    memory = _memory.setdefault(key, _Memory())
    held, memory.unwritten = memory.unwritten, None
    if held is not None and held[0] == body["metadata"]["resourceVersion"]:
        # What the last tick decided and left unwritten (refreshed measurements, pod counts).
        release = release.model_copy(update={"status": held[1]})
    problems = [str(e) for e in validate_spec(release.spec, _timezones())]
    missing = router_for(release).check(kube, release)
    if missing:
        problems.append(missing)
    if problems:
        _invalid(kube, body, release, problems)
        return release
    _redeliver(kube, release, memory)
    given = now
    now = given or datetime.now(UTC)
    measured = bool(release.spec.analysis.triggers) or any(g.metric is not None for g in release.spec.gates)
    measurements = _analysis(kube, body, release, prometheus_url, now) if measured else {}
    if measurements is None:
        return release
    gate_observations = _gates(kube, body, release, prometheus_url, now)
    if gate_observations is None:
        return release
    if given is None and measurements:
        # Decide after the measurements were taken, so that nothing is timed before its cause.
        now = datetime.now(UTC)
    annotations = release.metadata.annotations
    observation = Observation(
        generation=release.metadata.generation or 0,
        revisions=workloads.observe(kube, namespace, name),
        commands={k: annotations[k] for k in (*COMMANDS, APPROVED_BY) if k in annotations},
        measurements=measurements,
        gates=gate_observations,
        zones={g.window.timezone: zoneinfo.ZoneInfo(g.window.timezone)
               for g in release.spec.gates if g.window is not None},
        name=name,
        namespace=namespace,
    )
    decision = decide(release.spec, release.status, observation, now)
    resource_version: str = body["metadata"]["resourceVersion"]
    if decision.consumed:
        resource_version = releases.remove_annotations(kube, namespace, name, decision.consumed)
    candidate = revision_of(release.spec.template)
    announcements: list[RecordEvent] = []
    for action in decision.actions:
        if isinstance(action, ScaleRevision):
            current = observation.revisions.get(action.revision)
            if current is not None and current.replicas == action.replicas:
                continue
            if action.revision == candidate:
                workloads.apply_candidate(kube, release, action.revision, action.replicas)
            elif current is not None:
                workloads.scale(kube, namespace, name, action.revision, action.replicas)
        elif isinstance(action, SetTraffic):
            _traffic(kube, release, action, memory)
        elif isinstance(action, DeleteRevision):
            workloads.delete(kube, namespace, name, action.revision)
        elif isinstance(action, RecordEvent):
            announcements.append(action)
    status = decision.status
    if announcements:
        # Written with the transition, so the Events survive a crash right after the write.
        status = status.model_copy(update={"announcements": [
            Announcement(reason=e.reason, message=e.message[:1024], warning=e.warning, at=now)
            for e in announcements][:ANNOUNCEMENTS_LIMIT]})
    if not _worth_writing(memory, stored, status):
        if status != stored:
            memory.unwritten = (resource_version, status)
        return _with_status(release, status)
    if not releases.patch_status(kube, namespace, name, status_patch(status, body.get("status")), resource_version):
        # Someone changed the Release meanwhile (a new spec, a command): the next tick decides on
        # it, and announces what it decides then. Announcing now would say it twice.
        log.info("%s/%s changed during the step; deciding again next tick", namespace, name)
        return release
    memory.status_written = time.monotonic()
    # Events follow the status they describe: a transition is announced once it is recorded.
    written = _with_status(release, status)
    for announcement in status.announcements if announcements else []:
        log.info("%s/%s: %s: %s", namespace, name, announcement.reason, announcement.message)
        events.announce(kube, written, announcement)
    memory.announced = _fingerprint(status.announcements)
    # The closing record (one write per tick that announced something) and the notifications
    # (queued for a worker): neither raises, neither waits on a receiver.
    records.write(kube, release, status, announcements, now)
    publish(kube, release, status, announcements, now=now)
    return written


def _with_status(release: Release, status: ReleaseStatus) -> Release:
    return release if status is release.status else release.model_copy(update={"status": status})


# What the process remembers of each Release between its ticks ----------------------------------

@dataclass
class _Memory:
    """One Release's memory in this process, forgotten with it (`forget`). Only its own ticks
    touch it, and the scheduler never runs two ticks of one Release at once."""

    status_written: float = float("-inf")
    """When this process last wrote the status (monotonic seconds)."""
    unwritten: tuple[str, ReleaseStatus] | None = None
    """A status decided but not written yet (`_worth_writing`), and the resourceVersion it was
    decided on: used by the next tick only if the Release has not changed since."""
    announced: tuple[str, ...] | None = None
    """The announcements this process has recorded as Events (or found recorded)."""
    traffic: tuple[SetTraffic, int] | None = None
    """The Services and route state last written, and how many ticks since (`_traffic`)."""


_memory: dict[tuple[str, str], _Memory] = {}


def forget(namespace: str, name: str) -> None:
    """A deleted Release's memory goes with it."""
    _memory.pop((namespace, name), None)


# Status writes ---------------------------------------------------------------------------------

REFRESH_EVERY = 10.0
"""Seconds a Release's refreshed figures may wait for a status write of their own: its pod
counts (`replicas`, `readyReplicas`) and measurements that change no trigger's state or
failure counts (`lastValue`, `successes`, `lastMeasuredTime`). Pods come and go several times
a step (and as the previous revision is scaled down after one) and triggers are measured
every few seconds: a write for each would more than double a rollout's status writes. Until
written they are kept in memory (`_Memory.unwritten`) for the next tick, which comes within this
long (`refresh_due`); a crash loses only them (the next tick measures again). An HPA reads
the counts every 15 s by default."""


def _worth_writing(memory: _Memory, stored: ReleaseStatus, new: ReleaseStatus) -> bool:
    """Whether `new` must be written now: more than refreshed figures changed, or they have
    waited `REFRESH_EVERY` seconds."""
    if new == stored:
        return False
    if stored.phase != new.phase or _significant(stored) != _significant(new):
        return True
    return time.monotonic() - memory.status_written >= REFRESH_EVERY


def refresh_due(namespace: str, name: str) -> float | None:
    """Seconds until the Release's unwritten figures must be written (None: it has none)."""
    memory = _memory.get((namespace, name))
    if memory is None or memory.unwritten is None:
        return None
    return max(memory.status_written + REFRESH_EVERY - time.monotonic(), 0.0)


def _significant(status: ReleaseStatus) -> ReleaseStatus:
    """`status` without the figures a refresh changes."""
    triggers = [t.model_copy(update={"last_value": None, "successes": 0, "message": None, "last_measured_time": None})
                for t in status.analysis]
    return status.model_copy(update={"replicas": None, "ready_replicas": None, "analysis": triggers})


# Events that survive a crash ---------------------------------------------------------------------

REDELIVERY_WINDOW = timedelta(minutes=15)
"""Announcements older than this are not recorded again after a restart (Events are for
people watching now; the release record keeps the rest)."""

def _fingerprint(announcements: Sequence[Announcement]) -> tuple[str, ...]:
    return tuple(f"{a.reason}/{a.at.isoformat()}" for a in announcements)


def _redeliver(kube: Kube, release: Release, memory: _Memory) -> None:
    """Record the announcements of the last transition if this process has not: an operator
    that died between writing a status and its Events records them now (their names make a
    second recording a no-op)."""
    key = (release.metadata.namespace or "", release.metadata.name or "")
    pending = release.status.announcements
    if not pending or memory.announced == _fingerprint(pending):
        return
    recent = datetime.now(UTC) - REDELIVERY_WINDOW
    for announcement in pending:
        if announcement.at >= recent and events.announce(kube, release, announcement):
            log.info("%s/%s: %s (recorded after a restart): %s", key[0], key[1], announcement.reason,
                     announcement.message)
    memory.announced = _fingerprint(pending)


# Analysis ------------------------------------------------------------------------------------

ANALYSIS_TIMEOUT = 3.0
"""Seconds a query may take: a tick waits for its measurements, so keep it short."""

_providers: dict[tuple[str, PrometheusAuth | None], PrometheusProvider] = {}
_checked: dict[tuple[str, str, str, int], list[str]] = {}
"""(namespace, name, uid, generation) -> problems Prometheus found in the rendered queries."""
_lock = threading.Lock()
_CHECKED_LIMIT = 4096

T = TypeVar("T")


def _analysis(kube: Kube, body: Mapping[str, Any], release: Release, prometheus_url: str | None,
              now: datetime) -> dict[str, tuple[str, Measurement]] | None:
    """The measurements of the triggers due now; None when the Release cannot be analysed (then
    it is Degraded, with an Event, and nothing else happens this tick). Once per generation,
    before anything else, every query is checked against Prometheus."""
    spec = release.spec
    meta = release.metadata
    namespace, name = meta.namespace or "", meta.name or ""
    candidate = revision_of(spec.template)
    service_names = services.names(release)
    values = variables(spec, release.status, candidate, namespace=namespace, release=name,
                       service=service_names[0] if service_names else name)
    key = (namespace, name, meta.uid or "", meta.generation or 0)
    with _lock:
        checked = _checked.get(key)
    if checked:
        _invalid(kube, body, release, checked)
        return None
    due = due_measurements(spec, release.status, candidate, values, now)
    if checked is not None and not due:
        return {}
    provider = _prometheus(kube, body, release, prometheus_url)
    if provider is None:
        return None
    if checked is None:
        queries, problems = rendered_queries(spec, values)
        refusals = _run(_check(provider, [q for _, q in queries]))
        problems += [f"{path}: Prometheus refuses {' '.join(query.split())!r}: {why}"
                     for (path, query), why in zip(queries, refusals, strict=True) if why is not None]
        with _lock:
            if len(_checked) >= _CHECKED_LIMIT:
                _checked.clear()
            _checked[key] = problems
        if problems:
            _invalid(kube, body, release, problems)
            return None
    return _run(_measure(provider, due, now))


def _prometheus(kube: Kube, body: Mapping[str, Any], release: Release,
                prometheus_url: str | None) -> PrometheusProvider | None:
    """The Release's Prometheus (its own address and credentials, or the operator's); None when
    there is none or its Secret cannot be read (then it is Degraded, with an Event)."""
    prometheus = release.spec.analysis.prometheus
    address = (prometheus.address if prometheus else None) or prometheus_url
    if not address:
        _invalid(kube, body, release, ["spec.analysis.prometheus.address: no Prometheus to query; set it, "
                                       "or start the operator with --prometheus-url"])
        return None
    auth = None
    if prometheus is not None and prometheus.secret_ref is not None:
        try:
            auth = secrets.prometheus_auth(kube, release.metadata.namespace or "", prometheus.secret_ref.name)
        except secrets.SecretUnreadable as exc:
            _invalid(kube, body, release, [str(exc)], reason=secrets.SECRET_UNREADABLE)
            return None
    return _provider(address, auth)


def _gates(kube: Kube, body: Mapping[str, Any], release: Release, prometheus_url: str | None,
           now: datetime) -> dict[str, GateObservation] | None:
    """What the gates due now say (None: the Release cannot be acted on this tick)."""
    spec = release.spec
    due = checklist.due(spec, release.status, parse_duration(spec.analysis.interval), now)
    if not due:
        return {}
    meta = release.metadata
    queries: dict[str, str] = {}
    problems: list[str] = []
    if any(g.metric is not None for g in due):
        service_names = services.names(release)
        values = variables(spec, release.status, revision_of(spec.template), namespace=meta.namespace or "",
                           release=meta.name or "", service=service_names[0] if service_names else meta.name or "")
        queries, problems = gate_queries(spec, values)
    if problems:
        _invalid(kube, body, release, problems)
        return None

    def measure(wanted: Mapping[str, str]) -> Mapping[str, Measurement]:
        provider = _prometheus(kube, body, release, prometheus_url)
        if provider is None:
            return {}
        return _run(_measure_queries(provider, wanted))

    return gates.observe(kube, release, due, now, queries=queries, measure=measure)


async def _measure_queries(provider: PrometheusProvider, queries: Mapping[str, str]) -> dict[str, Measurement]:
    names = list(queries)
    results = await asyncio.gather(*(provider.query(queries[n]) for n in names))
    return dict(zip(names, results, strict=True))


def _provider(address: str, auth: PrometheusAuth | None) -> PrometheusProvider:
    """One provider per Prometheus and credentials, kept for the operator's life."""
    with _lock:
        provider = _providers.get((address, auth))
        if provider is None:
            provider = _providers[(address, auth)] = PrometheusProvider(address, auth, timeout=ANALYSIS_TIMEOUT)
        return provider


async def _check(provider: PrometheusProvider, queries: Sequence[str]) -> list[str | None]:
    return list(await asyncio.gather(*(provider.check(q) for q in queries)))


async def _measure(provider: PrometheusProvider, due: Sequence[Due], now: datetime
                   ) -> dict[str, tuple[str, Measurement]]:
    async def one(item: Due) -> tuple[str, tuple[str, Measurement]]:
        if item.error is not None:
            return item.trigger.name, (item.query, Measurement(None, item.error, now))
        return item.trigger.name, (item.query, await provider.query(item.query))
    return dict(await asyncio.gather(*(one(d) for d in due)))


_io_loop: asyncio.AbstractEventLoop | None = None


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run the provider's coroutine to the end from this (sync) thread, on one long-lived event
    loop of its own: a loop per tick (`asyncio.run`) would cost a loop and an executor each time,
    at a thousand Releases the most of the operator's CPU after the API client. The stepper's
    threads wait here; kopf's own loop is never blocked."""
    global _io_loop
    with _lock:
        if _io_loop is None or _io_loop.is_closed():
            loop = asyncio.new_event_loop()
            # Queries run in the loop's executor (the Prometheus client blocks): as many threads
            # as there are steppers, not the default's few (cores + 4).
            loop.set_default_executor(ThreadPoolExecutor(max_workers=STEPPERS, thread_name_prefix="query"))
            threading.Thread(target=loop.run_forever, name="glideslope-io", daemon=True).start()
            _io_loop = loop
        loop = _io_loop
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result()


# ---------------------------------------------------------------------------------------------


def _invalid(kube: Kube, body: Mapping[str, Any], release: Release | None, problems: list[str], *,
             reason: str = INVALID_SPEC) -> None:
    """A spec the API server accepted but the operator cannot act on: Degraded with reason
    InvalidSpec (or SecretUnreadable...) and a Warning Event (once per distinct message);
    nothing in the cluster changes."""
    meta = body["metadata"]
    previous = parse_status(body.get("status"))
    status = invalid_status(previous, problems, int(meta.get("generation") or 0), datetime.now(UTC), reason=reason)
    old = previous.condition(ConditionType.DEGRADED)
    if old and old.reason == reason and old.message == status.message:
        return
    releases.patch_status(kube, meta["namespace"], meta["name"], status_patch(status, body.get("status")),
                          meta["resourceVersion"])
    log.warning("%s/%s: %s", meta["namespace"], meta["name"], status.message)
    events.record_for(kube, body, reason, status.message or "", warning=True)


def _pydantic_problem(err: Any) -> str:
    path = "spec" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
    return f"{path}: {err['msg']}"


@cache
def _timezones() -> frozenset[str]:
    # The zone database on disk; read once, it does not change while the operator runs.
    return frozenset(zoneinfo.available_timezones())


_REASSERT_EVERY = 30
"""Ticks a steady Release's Services and route go unwritten; then they are re-asserted, in
case someone changed them by hand."""


def _traffic(kube: Kube, release: Release, action: SetTraffic, memory: _Memory) -> None:
    last = memory.traffic
    if last and last[0] == action and last[1] < _REASSERT_EVERY:
        memory.traffic = (action, last[1] + 1)
        return
    service_names = services.names(release)
    if service_names is not None:
        stable, preview = service_names
        # The stable Service first: when it moves (BlueGreen's switch) the route still points at it.
        services.apply(kube, services.manifest(release, stable, action.active))
        services.apply(kube, services.manifest(release, preview, action.preview))
        router_for(release).set_weight(kube, release, stable, preview, action.weight)
    memory.traffic = (action, 0)
