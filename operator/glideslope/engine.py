"""The stepper's glue: parse, observe, decide, act, patch status. No decision lives here.

Order matters for crash safety: actions are applied, then status is written, so a crash before
the status write only makes the next tick re-apply the same desired states; command annotations
are removed last, once the status that obeys them (and records them, `obeyedCommands`) is
stored, so a write that fails loses no command, and one that succeeds is not obeyed twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import time
import zoneinfo
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, partial
from typing import Any

from pydantic import ValidationError

from glideslope import probes
from glideslope.api import (
    ANNOUNCEMENTS_LIMIT,
    ROLLING_OUT_PHASES,
    Announcement,
    ConditionType,
    Release,
    ReleaseSpec,
    ReleaseStatus,
    field_problems,
    parse_duration,
    parse_release,
    parse_status,
    status_patch,
)
from glideslope.core import adoption as adopting
from glideslope.core import judge
from glideslope.core.analysis import Measurement, QueryTemplateError, render_query
from glideslope.core.decide import decide
from glideslope.core.decide.convergence import MEASURE_EVERY, verify_of
from glideslope.core.gates import GateObservation, checklist
from glideslope.core.model import (
    APPROVED_BY,
    COMMANDS,
    Announce,
    Decision,
    DeleteRevision,
    Observation,
    RestartRevision,
    ScaleBaseline,
    ScaleRevision,
    SetTraffic,
    TrafficSample,
)
from glideslope.core.revision import revision_of
from glideslope.core.services import routed
from glideslope.core.spec_validation import INVALID_SPEC, invalid_status, validate_spec
from glideslope.core.templates import keys as template_keys
from glideslope.core.templates import record as record_triggers
from glideslope.core.templates import recorded as recorded_triggers
from glideslope.core.templates import resolve as resolve_templates
from glideslope.core.templates import with_added
from glideslope.core.triggers import Due, due_measurements, gate_queries, rendered_queries, variables, web_urls
from glideslope.egress import Kind, Pending
from glideslope.kube import adoption, events, ownership, records, releases, secrets, services, templates, workloads
from glideslope.kube.client import Kube
from glideslope.kube.traffic import router_for
from glideslope.logs import bind_rollout, get_logger
from glideslope.notify.publish import publish
from glideslope.prom import MetricProvider, PrometheusProvider
from glideslope.prom.web import json_path_problems
from glideslope.runtime import ReleaseMemory, Runtime
from glideslope.scheduler import Key

log = get_logger(__name__)


SPEC_LIMIT = 1_000_000
"""Bytes of a Release's spec (as compact JSON) the operator acts on: the API server stores an
object of at most 1.5 MiB (etcd's default request limit), and the status needs the rest."""

COMMAND_ATTEMPTS = 3
"""Ticks taken at once while a decision that obeys a command cannot be written because the
Release changed meanwhile (an HPA writing its scale, a GitOps sync): a person waits for it."""


def step(rt: Runtime, namespace: str, name: str, now: datetime | None = None) -> Release | None:
    """One tick for one Release; returns the Release with the status it decided, written or
    held back for a later write (`_worth_writing`); None: it is gone. A Release whose
    `spec.workloadRef` cannot be adopted is returned with no `spec.template` (it is Degraded).

    Nothing here waits on an endpoint a tenant names: queries and webhooks are asked through
    the egress layer, and their answers read on a later tick (the layer wakes the Release)."""
    attempt = 1
    while isinstance(release := _tick(rt, namespace, name, now), _Conflict):
        if attempt == COMMAND_ATTEMPTS:
            return release.release  # the Release's next change wakes it again
        attempt += 1
        log.info("changed before a command could be recorded; deciding again")
    return release


@dataclass(frozen=True)
class _Conflict:
    """A tick whose commands were not recorded: the Release changed before its status write."""

    release: Release


@dataclass(frozen=True)
class _Read:
    """A Release as this tick read it."""

    key: Key
    body: Mapping[str, Any]
    release: Release
    """Parsed, with the status the last tick decided and left unwritten, if it is still current."""
    stored: ReleaseStatus
    """The status as stored."""
    memory: ReleaseMemory
    adopted: adoption.Adopted | None = None
    """The Deployment of `spec.workloadRef`, whose template `release.spec.template` is."""


def _tick(rt: Runtime, namespace: str, name: str, now: datetime | None) -> Release | _Conflict | None:
    """Read, validate, claim, measure, decide, act, write the status, announce: in this order
    (the module's docstring says why)."""
    read = _read(rt, namespace, name)
    if read is None or isinstance(read, Release):
        return read
    resolved = _with_templates(rt, read)
    if resolved is None:
        return read.release
    read = dataclasses.replace(read, release=resolved)
    release, memory = read.release, read.memory
    if not _valid(rt.kube, read.body, release) or not _claimed(rt.kube, read.body, release, memory):
        return release
    _redeliver(rt.kube, release, memory)
    observed = _observe(rt, read, now)
    if observed is None:
        return release
    observation, now = observed
    decision = decide(release.spec, release.status, observation, now)
    announcements = _act(rt.kube, read, observation, decision)
    _adopting(rt.kube, read, observation, decision)
    return _store(rt, read, observation, decision, announcements, now)


def _read(rt: Runtime, namespace: str, name: str) -> _Read | Release | None:
    """The Release, parsed; None: it is gone, or it does not parse (then it is Degraded); the
    Release as read: the Deployment it adopts cannot be (then it is Degraded)."""
    key = (namespace, name)
    body = releases.get(rt.kube, namespace, name)
    if body is None:
        rt.forget(namespace, name)
        return None
    try:
        release = parse_release(body)
    except ValidationError as exc:
        _invalid(rt.kube, body, None, field_problems(exc))
        return None
    stored = release.status
    bind_rollout(stored.revision, stored.current_step)
    memory = rt.memory(key)
    held, memory.unwritten = memory.unwritten, None
    if held is not None and held[0] == body["metadata"]["resourceVersion"]:
        # What the last tick decided and left unwritten (refreshed measurements, pod counts).
        release = release.model_copy(update={"status": held[1]})
    adopted = None
    if release.spec.workload_ref is not None:
        try:
            adopted = adoption.read(rt.kube, release)
        except adoption.Unusable as exc:
            _invalid(rt.kube, body, release, [str(exc)])
            return release
        release = adoption.resolved(release, adopted)
    return _Read(key=key, body=body, release=release, stored=stored, memory=memory, adopted=adopted)


def _with_templates(rt: Runtime, read: _Read) -> Release | None:
    """The Release with its analysis templates' triggers added to its own (`core.templates`),
    as the rest of the tick acts on it: those its rollout started with, else resolved now and
    recorded in its status; None: a template is missing or does not fit (then it is Degraded,
    naming the field, and nothing changes)."""
    release = read.release
    spec, status = release.spec, release.status
    namespace = read.key[0]
    wanted = template_keys(spec, namespace)
    rt.templates.used(read.key, wanted)  # a change of one of them wakes the Release
    if not wanted:
        return release if status.template_triggers is None else \
            release.model_copy(update={"status": status.model_copy(update={"template_triggers": None})})
    candidate = revision_of(spec.template)
    kept = recorded_triggers(spec, status, candidate)
    if kept is not None:
        resolution = with_added(spec, *kept)
    else:
        resolution = resolve_templates(spec, namespace, templates.read(rt.kube, rt.templates, wanted))
    if resolution.problems:
        _invalid(rt.kube, read.body, release, resolution.problems)
        return None
    if kept is None:
        status = status.model_copy(update={"template_triggers": record_triggers(spec, candidate, resolution)})
    return release.model_copy(update={"spec": resolution.spec, "status": status})


def _valid(kube: Kube, body: Mapping[str, Any], release: Release) -> bool:
    """Whether the operator can act on the spec (else it is Degraded, naming what is wrong)."""
    problems = [str(e) for e in validate_spec(release.spec, _timezones())]
    missing = router_for(release).check(kube, release)
    if missing:
        problems.append(missing)
    if problems:
        _invalid(kube, body, release, problems)
        return False
    return True


def _claimed(kube: Kube, body: Mapping[str, Any], release: Release, memory: ReleaseMemory) -> bool:
    """Whether the objects the Release writes are its own (its Services and Deployments checked
    once per generation, what its traffic router creates on every tick), and its spec leaves
    room for its status; else it is Degraded, and nothing is written."""
    generation = (release.metadata.uid, release.metadata.generation)
    if memory.claimed != generation:
        size = len(json.dumps(body.get("spec"), separators=(",", ":")))
        if size > SPEC_LIMIT:
            _invalid(kube, body, release, [f"spec: {size} bytes; at most {SPEC_LIMIT} leave room for the status "
                                           "within what the API server stores (1.5 MiB)"])
            return False
    try:
        if memory.claimed != generation:
            _claim(kube, release)
        router_for(release).claim(kube, release)
    except ownership.NotOurs as exc:
        _invalid(kube, body, release, [str(exc)], reason=ownership.CONFLICT)
        return False
    memory.claimed = generation
    return True


def _observe(rt: Runtime, read: _Read, given: datetime | None) -> tuple[Observation, datetime] | None:
    """What the cluster, Prometheus and the gates say, and the `now` to decide at; None: not
    all of it is known yet (or the Release cannot be analysed), so nothing happens this tick."""
    key, body, release = read.key, read.body, read.release
    namespace, name = key
    now = given or datetime.now(UTC)
    spec = release.spec
    # A verify query is checked against Prometheus like the others.
    measured = bool(spec.analysis.triggers) or spec.analysis.judge is not None or any(
        g.metric is not None for g in spec.gates) or verify_of(spec) is not None
    measurements = _analysis(rt, key, body, release, now) if measured else {}
    if measurements is None:
        return None
    looked = _judge(rt, key, body, release, now)
    gate_observations = _gates(rt, key, body, release, now)
    if gate_observations is None:
        return None
    shared = _traffic_share(rt, key, body, release, now)
    if shared is False:
        return None
    sample = shared if isinstance(shared, TrafficSample) else None
    if given is None and (measurements or looked or sample is not None):
        # Decide after the measurements were taken, so that nothing is timed before its cause.
        now = datetime.now(UTC)
    annotations = release.metadata.annotations
    observation = Observation(
        generation=release.metadata.generation or 0,
        revisions=workloads.observe(rt.kube, namespace, name),
        judge=looked,
        baselines=workloads.observe_baselines(rt.kube, namespace, name) if spec.analysis.judge is not None
        or release.status.judge is not None else {},
        commands={k: annotations[k] for k in (*COMMANDS, APPROVED_BY) if k in annotations},
        measurements=measurements,
        gates=gate_observations,
        traffic=sample,
        zones={g.window.timezone: zoneinfo.ZoneInfo(g.window.timezone)
               for g in release.spec.gates if g.window is not None},
        name=name,
        namespace=namespace,
    )
    return observation, now


def _act(kube: Kube, read: _Read, observation: Observation, decision: Decision) -> list[Announce]:
    """Apply the decision's actions in their order; the announcements, which wait for the
    status that records them."""
    namespace, name = read.key
    release = read.release
    candidate = revision_of(release.spec.template)
    announcements: list[Announce] = []
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
            if not adopting.holds_traffic(release.spec, decision.status):
                _traffic(kube, release, action, read.memory, bool(observation.baselines))
        elif isinstance(action, RestartRevision):
            workloads.restart(kube, namespace, name, action.revision, action.token)
        elif isinstance(action, DeleteRevision):
            workloads.delete(kube, namespace, name, action.revision)
        elif isinstance(action, ScaleBaseline):
            _baseline(kube, release, action)
        elif isinstance(action, Announce):
            announcements.append(action)
    return announcements


def _baseline(kube: Kube, release: Release, action: ScaleBaseline) -> None:
    """The judge's baseline: fresh pods of the stable revision's own pod template, or none."""
    namespace, name = release.metadata.namespace or "", release.metadata.name or ""
    if action.replicas == 0:
        workloads.delete_baseline(kube, namespace, name, action.revision)
        return
    template = workloads.pod_template(kube, namespace, name, action.revision)
    if template is not None:  # the stable revision's Deployment is gone: nothing to copy
        workloads.apply_baseline(kube, release, action.revision, template, action.replicas)


def _adopting(kube: Kube, read: _Read, observation: Observation, decision: Decision) -> None:
    """An adopting Release: its Deployment's replicas, after the actions (the Services move onto
    the Release's pods first), and what its message says after a rollback."""
    adopted, release = read.adopted, read.release
    if adopted is None:
        return
    replicas = adopting.deployment_replicas(release.spec, decision.status, observation, adopted.found)
    if replicas is not None:
        adoption.scale(kube, read.key[0], adopted, replicas)
    note = adopting.rolled_back_note(release.spec, decision.status, revision_of(release.spec.template))
    decision.status.message = adopting.with_note(decision.status.message, note)


def _store(rt: Runtime, read: _Read, observation: Observation, decision: Decision,
           announcements: list[Announce], now: datetime) -> Release | _Conflict:
    """Write the decided status (if worth it), then remove the commands it obeys, then announce."""
    kube, body, release, stored, memory = rt.kube, read.body, read.release, read.stored, read.memory
    namespace, name = read.key
    resource_version: str = body["metadata"]["resourceVersion"]
    status = decision.status
    if announcements:
        # Written with the transition, so the Events survive a crash right after the write.
        status = status.model_copy(update={"announcements": [
            Announcement(reason=e.reason, message=e.message[:1024], warning=e.warning, at=now)
            for e in announcements][:ANNOUNCEMENTS_LIMIT]})
    commands = {k: observation.commands[k] for k in decision.consumed}
    if not _worth_writing(memory, _storable(stored), _storable(status)) and not (commands and status != stored):
        if status != stored:
            memory.unwritten = (resource_version, status)
        if commands:  # obeyed by the status stored already: only their removal is left
            releases.remove_commands(kube, namespace, name, commands)
        return _with_status(release, status)
    try:
        written_now = releases.patch_status(kube, namespace, name, status_patch(status, body.get("status")),
                                            resource_version)
    except releases.TooLarge as exc:
        _invalid(kube, body, release, [f"status: the Release with its status is too large to store ({exc}); "
                                       "shrink its spec"])
        return release
    if not written_now:
        # Someone changed the Release meanwhile (a new spec, a command): the next tick decides on
        # it, and announces what it decides then. Announcing now would say it twice. Commands
        # stay on the Release until a status that obeys them is stored.
        if commands:
            return _Conflict(release)
        log.info("changed during the step; deciding again next tick")
        return release
    memory.status_written = time.monotonic()
    if commands:
        releases.remove_commands(kube, namespace, name, commands)
    # Events follow the status they describe: a transition is announced once it is recorded.
    written = _with_status(release, status)
    _announce(rt, read, written, announcements, now)
    return written


def _announce(rt: Runtime, read: _Read, written: Release, announcements: list[Announce], now: datetime) -> None:
    """Once the status is stored: its Events, the closing record, the notifications."""
    _namespace, _name = read.key
    status = written.status
    for announcement in status.announcements if announcements else []:
        log.info("announced", reason=announcement.reason, message=announcement.message)
        events.announce(rt.kube, written, announcement)
    read.memory.announced = _fingerprint(status.announcements)
    # The closing record (one write per tick that announced something) and the notifications
    # (queued for a worker): neither raises, neither waits on a receiver.
    records.write(rt.kube, read.release, status, announcements, now)
    publish(rt.kube, read.release, status, announcements, now=now, publisher=rt.publisher)


def _claim(kube: Kube, release: Release) -> None:
    """Raise `ownership.NotOurs` if an object the Release writes (its Services, its candidate's
    Deployment) exists and is someone else's: checked before anything is written, once per
    generation (the names follow from the spec), so a conflict changes nothing."""
    names = services.names(release)
    for name in names or ():
        ownership.claim(release, "Service", kube.core.read_namespaced_service, name)
    for name in names or () if release.spec.workload_ref is not None else ():
        # Handed over to an adopting Release: recorded as found before the first write, to be
        # given back so on deletion, when the adopted Deployment serves again behind it.
        adoption.record_service(kube, release, name)
    candidate = workloads.deployment_name(release.metadata.name or "", revision_of(release.spec.template))
    ownership.claim(release, "Deployment", kube.apps.read_namespaced_deployment, candidate)
    stable = release.status.stable_revision
    if judge.baseline_runs(release.spec) and stable:
        ownership.claim(release, "Deployment", kube.apps.read_namespaced_deployment,
                        workloads.baseline_name(release.metadata.name or "", stable))
        if names is not None and routed(release.spec):
            ownership.claim(release, "Service", kube.core.read_namespaced_service, services.baseline_name(names[0]))


def _with_status(release: Release, status: ReleaseStatus) -> Release:
    return release if status is release.status else release.model_copy(update={"status": status})


# Status writes ---------------------------------------------------------------------------------

REFRESH_EVERY = 10.0
"""Seconds a Release's refreshed figures may wait for a status write of their own: its pod
counts (`replicas`, `readyReplicas`) and measurements that change no trigger's state or
failure counts (`lastValue`, `successes`, `lastMeasuredTime`). Pods come and go several times
a step (and as the previous revision is scaled down after one) and triggers are measured
every few seconds: a write for each would more than double a rollout's status writes. Until
written they are kept in memory (`ReleaseMemory.unwritten`) for the next tick, which comes within this
long (`refresh_due`); a crash loses only them (the next tick measures again). An HPA reads
the counts every 15 s by default."""


def _worth_writing(memory: ReleaseMemory, stored: ReleaseStatus, new: ReleaseStatus) -> bool:
    """Whether `new` must be written now: more than refreshed figures changed, or they have
    waited `REFRESH_EVERY` seconds."""
    if new == stored:
        return False
    if stored.phase != new.phase or _significant(stored) != _significant(new):
        return True
    return time.monotonic() - memory.status_written >= REFRESH_EVERY


def _storable(status: ReleaseStatus) -> ReleaseStatus:
    """`status` as the API server stores it: without the fields an older CRD drops
    (`releases.dropped_fields`), which would otherwise differ on every tick."""
    dropped = releases.dropped_fields()
    if not dropped:
        return status
    fields = {info.alias or name: name for name, info in ReleaseStatus.model_fields.items()}
    return status.model_copy(update={fields[key]: ReleaseStatus.model_fields[fields[key]].get_default(
        call_default_factory=True) for key in dropped if key in fields})


def refresh_due(rt: Runtime, namespace: str, name: str) -> float | None:
    """Seconds until the Release's unwritten figures must be written (None: it has none)."""
    memory = rt.remembered((namespace, name))
    if memory is None or memory.unwritten is None:
        return None
    return max(memory.status_written + REFRESH_EVERY - time.monotonic(), 0.0)


def _significant(status: ReleaseStatus) -> ReleaseStatus:
    """`status` without the figures a refresh changes."""
    triggers = [t.model_copy(update={"last_value": None, "successes": 0, "message": None, "last_measured_time": None})
                for t in status.analysis]
    return status.model_copy(update={"replicas": None, "ready_replicas": None, "analysis": triggers,
                                     "measured_weight": None, "weight_display": None})


# Events that survive a crash ---------------------------------------------------------------------

REDELIVERY_WINDOW = timedelta(minutes=15)
"""Announcements older than this are not recorded again after a restart (Events are for
people watching now; the release record keeps the rest)."""

def _fingerprint(announcements: Sequence[Announcement]) -> tuple[str, ...]:
    return tuple(f"{a.reason}/{a.at.isoformat()}" for a in announcements)


def _redeliver(kube: Kube, release: Release, memory: ReleaseMemory) -> None:
    """Record the announcements of the last transition if this process has not: an operator
    that died between writing a status and its Events records them now (their names make a
    second recording a no-op)."""
    pending = release.status.announcements
    if not pending or memory.announced == _fingerprint(pending):
        return
    recent = datetime.now(UTC) - REDELIVERY_WINDOW
    for announcement in pending:
        if announcement.at >= recent and events.announce(kube, release, announcement):
            log.info("announced after a restart", reason=announcement.reason, message=announcement.message)
    memory.announced = _fingerprint(pending)


# Analysis ------------------------------------------------------------------------------------


def _analysis(rt: Runtime, key: Key, body: Mapping[str, Any], release: Release,
              now: datetime) -> dict[str, tuple[str, Measurement]] | None:
    """The measurements that have come back for the triggers due now; None when the Release
    cannot be analysed yet (its queries are being checked) or at all (then it is Degraded, with
    an Event): nothing else happens this tick. Once per generation, before anything else, every
    query is checked against Prometheus."""
    spec = release.spec
    meta = release.metadata
    candidate = revision_of(spec.template)
    values = _variables(key, release)
    memory = rt.memory(key)
    generation = (_checked_as(meta.uid or "", spec), meta.generation or 0)
    checked = memory.checked[2] if memory.checked is not None and memory.checked[:2] == generation else None
    if checked:
        _invalid(rt.kube, body, release, checked)
        return None
    due = due_measurements(spec, release.status, candidate, values, now)
    if checked is not None and not due:
        return {}
    # Prometheus is needed only by queries: a Release measured by web triggers alone needs none.
    prometheus = None
    if (any(t.query is not None for t in spec.analysis.triggers) or any(g.metric is not None for g in spec.gates)
            or spec.analysis.judge is not None or verify_of(spec) is not None):
        prometheus = _prometheus(rt, key, body, release)
        if prometheus is None:
            return None
    if checked is None:
        problems = _checked(rt, key, spec, values, generation, prometheus)
        if problems is None:
            return None
        memory.checked = (*generation, problems)
        if problems:
            _invalid(rt.kube, body, release, problems)
            return None
    secret_headers = _web_headers(rt, key, body, release, due)
    if secret_headers is None:
        return None
    return _collected(rt, key, release, due, prometheus, now, secret_headers)


def _checked(rt: Runtime, key: Key, spec: ReleaseSpec, values: Mapping[str, str], generation: tuple[str, int],
             prometheus: PrometheusProvider | None) -> list[str] | None:
    """What is wrong with a generation's queries, web URLs and JSONPaths, each naming its field,
    Prometheus asked about every query; None until Prometheus has answered."""
    queries, problems = rendered_queries(spec, values)
    urls, url_problems = web_urls(spec, values)
    problems += url_problems
    problems += [f"{path}: {why}" for path, url in urls if (why := rt.egress.refusal(url)) is not None]
    problems += json_path_problems(spec.analysis.triggers, "spec.analysis.triggers")
    judged, judge_problems = judge.queries(spec, values)
    queries, problems = queries + judged, problems + judge_problems
    if problems or not queries or prometheus is None:
        return problems
    checker: PrometheusProvider = prometheus
    sent = [q for _, q in queries]

    def unasked(_: str) -> list[str | None]:
        return [None] * len(sent)  # not refused: the measurements will say what went wrong

    refusals = rt.egress.ask(key, ("check", *generation), Kind.PROMETHEUS, lambda: _check(checker, sent),
                             fallback=unasked)
    if isinstance(refusals, Pending):
        return None
    return [f"{path}: Prometheus refuses {' '.join(query.split())!r}: {why}"
            for (path, query), why in zip(queries, refusals, strict=True) if why is not None]


def _headers_field(release: Release, trigger: str) -> str:
    """The path of a trigger's `provider.web.headersFrom`, in the triggers as resolved (a
    template's come after the Release's own, as in `status.analysis`)."""
    index = next((i for i, t in enumerate(release.spec.analysis.triggers) if t.name == trigger), 0)
    return f"spec.analysis.triggers[{index}].provider.web.headersFrom"


def _web_headers(rt: Runtime, key: Key, body: Mapping[str, Any], release: Release,
                 due: Sequence[Due]) -> dict[str, dict[str, str]] | None:
    """The headers from the Secrets of the due web triggers' `headersFrom`, by trigger, read for
    the requests about to start (one in flight has its own); None when a Secret cannot be used:
    then the Release is Degraded (SecretUnreadable, naming the field) and nothing is measured, so
    no request goes without the headers its author asked for. There is no cache of Secrets: one
    read per measurement (a Secret shared by triggers, once a tick) keeps a rotated token current."""
    flying = rt.egress.in_flight(key)
    read: dict[tuple[str, tuple[str, ...]], dict[str, str]] = {}
    out: dict[str, dict[str, str]] = {}
    problems: list[str] = []
    for item in due:
        web = item.trigger.provider.web if item.trigger.provider is not None else None
        if item.error is not None or web is None or web.headers_from is None \
                or _measured_tag(item.trigger.name, item.query) in flying:
            continue
        source = web.headers_from
        wanted = (source.name, tuple(source.keys))
        try:
            if wanted not in read:
                read[wanted] = secrets.headers(rt.kube, key[0], source, _headers_field(release, item.trigger.name))
        except secrets.SecretUnreadable as exc:
            problems.append(str(exc))
            continue
        out[item.trigger.name] = read[wanted]
    if problems:
        _invalid(rt.kube, body, release, problems, reason=secrets.SECRET_UNREADABLE)
        return None
    return out


def _collected(rt: Runtime, key: Key, release: Release, due: Sequence[Due], prometheus: PrometheusProvider | None,
               now: datetime, secret_headers: Mapping[str, Mapping[str, str]]) -> dict[str, tuple[str, Measurement]]:
    """The measurements of the triggers due now that have come back, none older than the last;
    `secret_headers`: the web triggers' headers read from Secrets (`_web_headers`)."""
    last = {t.name: t.last_measured_time for t in release.status.analysis}
    out: dict[str, tuple[str, Measurement]] = {}
    for item in due:
        if item.error is not None:
            out[item.trigger.name] = (item.query, Measurement(None, item.error, now))
            continue
        web = item.trigger.provider.web if item.trigger.provider is not None else None
        if web is None:
            if prometheus is None:
                continue
            provider: MetricProvider = prometheus
            make = partial(provider.query, item.query)
        else:
            make = partial(_web_measurement, rt, key[0], release, item, now, secret_headers.get(item.trigger.name))
        answer = _measured(rt, key, make, ("trigger", item.trigger.name), item.query, now, web is not None)
        if answer is None:
            continue
        measured = last.get(item.trigger.name)
        if measured is None or answer.at > measured:  # never a measurement older than the last
            out[item.trigger.name] = (item.query, answer)
    return out


async def _web_measurement(rt: Runtime, namespace: str, release: Release, item: Due, now: datetime,
                           from_secret: Mapping[str, str] | None) -> Measurement:
    """A web trigger's GET with its plain headers and those of its Secret, which replace plain
    ones of the same name (HTTP names are case-insensitive: both would be sent)."""
    assert item.trigger.provider is not None and item.trigger.provider.web is not None
    web = item.trigger.provider.web
    if web.headers_from is not None and from_secret is None:
        # Started without the stepper's read (a race with `forget`): read here, a Kubernetes
        # API call, off the layer's loop, as the webhook gate does.
        try:
            from_secret = await asyncio.to_thread(secrets.headers, rt.kube, namespace, web.headers_from,
                                                  _headers_field(release, item.trigger.name))
        except secrets.SecretUnreadable as exc:
            return Measurement(None, str(exc), now)
    secret = dict(from_secret or {})
    names = {name.lower() for name in secret}
    headers = [(h.name, h.value) for h in web.headers if h.name.lower() not in names] + sorted(secret.items())
    return await rt.web_provider(web.json_path, tuple(headers)).query(item.query)


def _measured_tag(trigger: str, query: str) -> tuple[str, str, str]:
    """What a trigger's measurement is asked under in the egress layer (`_measured`)."""
    return ("trigger", trigger, query)


def _measured(rt: Runtime, key: Key, make: Callable[[], Awaitable[Measurement]], what: tuple[str, str], query: str,
              now: datetime, web: bool = False) -> Measurement | None:
    """The measurement of `query` (for the trigger or gate `what`) once it has come back, asking
    for it through the egress layer (`make` starts it) if it is not in flight; None until then.
    `web`: a web provider's GET, which has its own slots per namespace."""
    answer = rt.egress.ask(key, (*what, query), Kind.WEB if web else Kind.PROMETHEUS, make,
                           fallback=lambda why: Measurement(None, why, now))
    return None if isinstance(answer, Pending) else answer


def _prometheus(rt: Runtime, key: Key, body: Mapping[str, Any], release: Release) -> PrometheusProvider | None:
    """The Release's Prometheus (its own address and credentials, or the operator's); None when
    there is none, the egress policy refuses its address, or its Secret cannot be used (then it
    is Degraded, with an Event, and nothing is sent)."""
    prometheus = release.spec.analysis.prometheus
    own = prometheus.address if prometheus else None
    address = own or rt.prometheus_url
    if not address:
        _invalid(rt.kube, body, release, ["spec.analysis.prometheus.address: no Prometheus to query; set it, "
                                          "or start the operator with --prometheus-url"])
        return None
    if own and not rt.policy.prometheus_allowed(own):
        # The allowed prefixes are not listed: they may be other teams' Prometheus servers.
        _invalid(rt.kube, body, release, [f"spec.analysis.prometheus.address: {own} is not allowed by the "
                                          "operator's --prometheus-allow; ask whoever installed the operator, "
                                          "or leave it out to use the operator's own Prometheus"])
        return None
    auth = None
    if prometheus is not None and prometheus.secret_ref is not None:
        try:
            auth = secrets.prometheus_auth(rt.kube, release.metadata.namespace or "", prometheus.secret_ref.name)
        except secrets.SecretUnreadable as exc:
            _invalid(rt.kube, body, release, [str(exc)], reason=secrets.SECRET_UNREADABLE)
            return None
    return rt.provider(key, address, auth, own=bool(own))


def _variables(key: Key, release: Release) -> dict[str, str]:
    """The template variables of the Release's queries (triggers, gates, the judge, verify) now."""
    return variables(release.spec, release.status, revision_of(release.spec.template), namespace=key[0],
                     release=key[1], service=services.stable_name(release))


VERIFY_PATH = "spec.strategy.canary.trafficRouting.verify.query"


def _traffic_share(rt: Runtime, key: Key, body: Mapping[str, Any], release: Release,
                   now: datetime) -> TrafficSample | bool:
    """The candidate's and stable revision's request rates (`trafficRouting.verify`) once a
    measurement has come back, asking for the next one `MEASURE_EVERY` seconds after it (when the core wakes it);
    True: none this tick; False: the Release cannot be measured (then it is Degraded)."""
    spec, status = release.spec, release.status
    verify = verify_of(spec)
    candidate = revision_of(spec.template)
    stable = status.stable_revision
    if verify is None or status.phase not in ROLLING_OUT_PHASES or stable in (None, candidate):
        return True
    values = _variables(key, release)
    # The judge's baseline pods carry a revision label of their own; their requests are part of
    # the whole the candidate's share is of.
    revisions = [stable or ""] + ([judge.baseline_revision(stable or "")] if judge.baseline_runs(spec) else [])
    try:
        queries = (render_query(verify.query, values),
                   *(render_query(verify.query, {**values, "revision": r}) for r in revisions))
    except QueryTemplateError as exc:
        _invalid(rt.kube, body, release, [f"{VERIFY_PATH}: {exc}"])
        return False
    memory = rt.memory(key)
    tag = ("verify", *queries)
    if time.monotonic() - memory.verify_answered < MEASURE_EVERY:
        return True  # none in flight: the last answer was read since
    prometheus = _prometheus(rt, key, body, release)
    if prometheus is None:
        return False
    provider: PrometheusProvider = prometheus

    async def rates() -> TrafficSample:
        on_candidate, on_stable, *on_baseline = await asyncio.gather(*(provider.query(q) for q in queries))
        error = on_candidate.error or on_stable.error or next((b.error for b in on_baseline if b.error), None)
        # An empty result is no requests at all (a revision that gets none has no series).
        return TrafficSample(on_candidate.value or 0.0, on_stable.value or 0.0, on_candidate.at,
                             f"{VERIFY_PATH}: {error}" if error else None,
                             baseline=sum(b.value or 0.0 for b in on_baseline))

    answer = rt.egress.ask(key, tag, Kind.PROMETHEUS, rates,
                           fallback=lambda why: TrafficSample(None, None, now, f"{VERIFY_PATH}: {why}"))
    if isinstance(answer, Pending):
        return True
    memory.verify_answered = time.monotonic()
    return answer


def _gates(rt: Runtime, key: Key, body: Mapping[str, Any], release: Release,
           now: datetime) -> dict[str, GateObservation] | None:
    """What the gates due now say (None: the Release cannot be acted on this tick)."""
    spec = release.spec
    due = checklist.due(spec, release.status, parse_duration(spec.analysis.interval), now)
    if not due:
        return {}
    queries: dict[str, str] = {}
    problems: list[str] = []
    if any(g.metric is not None for g in due):
        queries, problems = gate_queries(spec, _variables(key, release))
    if problems:
        _invalid(rt.kube, body, release, problems)
        return None

    def measure(wanted: Mapping[str, str]) -> Mapping[str, Measurement]:
        provider = _prometheus(rt, key, body, release)
        if provider is None:
            return {}
        answers = {gate: _measured(rt, key, partial(provider.query, query), ("gate", gate), query, now)
                   for gate, query in wanted.items()}
        return {gate: answer for gate, answer in answers.items() if answer is not None}

    return probes.observe(rt.kube, release, due, now, queries=queries, measure=measure, egress=rt.egress)


def _checked_as(uid: str, spec: ReleaseSpec) -> str:
    """What the check of a generation's queries is remembered under: the uid, and with
    templates the resolved triggers too, since a template changes without a new generation."""
    if not spec.analysis.templates:
        return uid
    triggers = json.dumps([t.to_dict() for t in spec.analysis.triggers], sort_keys=True)
    return f"{uid}/{hashlib.sha256(triggers.encode()).hexdigest()[:16]}"


def _judge(rt: Runtime, key: Key, body: Mapping[str, Any], release: Release, now: datetime) -> judge.Look | None:
    """The judge's samples for the look due now, once they have come back (None until then, or
    when no look is due): one request through the egress layer for all of its range queries."""
    spec = release.spec
    if spec.analysis.judge is None:
        return None
    asked = judge.ask(spec, release.status, revision_of(spec.template), _variables(key, release), now)
    if asked is None:
        return None
    provider = _prometheus(rt, key, body, release)
    if provider is None:
        return None
    names = list(asked.queries)

    async def run() -> dict[str, tuple[judge.Side, judge.Side]]:
        sides = await asyncio.gather(*(provider.query_range(q, asked.start, asked.end, asked.step_seconds)
                                       for n in names for q in asked.queries[n]))
        return {n: (sides[2 * i], sides[2 * i + 1]) for i, n in enumerate(names)}

    def failed(why: str) -> dict[str, tuple[judge.Side, judge.Side]]:
        return {n: (judge.Side(c, error=why), judge.Side(b, error=why)) for n, (c, b) in asked.queries.items()}

    answer = rt.egress.ask(key, ("judge", asked.at.isoformat()), Kind.PROMETHEUS, run, fallback=failed)
    if isinstance(answer, Pending):
        return None
    sides = dict(answer)
    for metric, why in asked.errors.items():
        sides[metric] = (judge.Side("", error=why), judge.Side("", error=why))
    return judge.Look(asked.at, sides)


async def _check(provider: PrometheusProvider, queries: Sequence[str]) -> list[str | None]:
    return list(await asyncio.gather(*(provider.check(q) for q in queries)))


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
    try:
        if not releases.patch_status(kube, meta["namespace"], meta["name"], status_patch(status, body.get("status")),
                                     meta["resourceVersion"]):
            return  # changed meanwhile (kopf's finalizer, an edit): the next tick says it, once
    except releases.TooLarge:
        log.warning("even a Degraded status is too large to store")
    log.warning("cannot act on the spec", message=status.message)
    events.emit_for(kube, body, reason, status.message or "", warning=True)


@cache
def _timezones() -> frozenset[str]:
    # The zone database on disk; read once, it does not change while the operator runs.
    return frozenset(zoneinfo.available_timezones())


_REASSERT_EVERY = 30
"""Ticks a steady Release's Services and route go unwritten; then they are re-asserted, in
case someone changed them by hand."""


def _traffic(kube: Kube, release: Release, action: SetTraffic, memory: ReleaseMemory, baselines: bool) -> None:
    """Services and route as `action` says. `baselines`: a baseline Deployment exists (its
    Service may too)."""
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
        if action.baseline is not None and action.active is not None:
            # Before the route names it; and after it no longer does, it goes.
            services.apply(kube, services.baseline_manifest(release, stable, action.active))
        router_for(release).set_weight(kube, release, stable, preview, action.weight, action.routes,
                                       baseline=action.baseline)
        if action.baseline is None and (judge.baseline_runs(release.spec) or baselines):
            services.delete_baseline(kube, release, stable)
    memory.traffic = (action, 0)
