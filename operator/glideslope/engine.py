"""The stepper's glue: parse, observe, decide, act, patch status. No decision lives here.

Order matters for crash safety: command annotations are removed first (a command is obeyed at
most once, never twice), then actions are applied, then status is written, so a crash before
the status write only makes the next tick re-apply the same desired states.
"""

from __future__ import annotations

import logging
import zoneinfo
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any

from pydantic import ValidationError

from glideslope.api import ConditionType, Release, parse_release, parse_status, status_patch
from glideslope.core.decide import decide
from glideslope.core.model import (
    COMMANDS,
    DeleteRevision,
    Observation,
    RecordEvent,
    ScaleRevision,
    SetTraffic,
)
from glideslope.core.revision import revision_of
from glideslope.core.spec_validation import INVALID_SPEC, invalid_status, validate_spec
from glideslope.kube import events, releases, services, workloads
from glideslope.kube.client import Kube
from glideslope.kube.traffic import router_for

log = logging.getLogger(__name__)


def step(kube: Kube, namespace: str, name: str, now: datetime | None = None) -> Release | None:
    """One tick for one Release; returns the Release with the status written (None: it is gone)."""
    body = releases.get(kube, namespace, name)
    if body is None:
        return None
    try:
        release = parse_release(body)
    except ValidationError as exc:
        _invalid(kube, body, None, [_pydantic_problem(err) for err in exc.errors()])
        return None
    problems = [str(e) for e in validate_spec(release.spec, _timezones())]
    if problems:
        _invalid(kube, body, release, problems)
        return release
    annotations = release.metadata.annotations
    observation = Observation(
        generation=release.metadata.generation or 0,
        revisions=workloads.observe(kube, namespace, name),
        commands={k: annotations[k] for k in COMMANDS if k in annotations},
    )
    decision = decide(release.spec, release.status, observation, now or datetime.now(UTC))
    resource_version: str = body["metadata"]["resourceVersion"]
    if decision.consumed:
        resource_version = releases.remove_annotations(kube, namespace, name, decision.consumed)
    candidate = revision_of(release.spec.template)
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
            _traffic(kube, release, action)
        elif isinstance(action, DeleteRevision):
            workloads.delete(kube, namespace, name, action.revision)
        elif isinstance(action, RecordEvent):
            log.info("%s/%s: %s: %s", namespace, name, action.reason, action.message)
            events.record(kube, release, action.reason, action.message, warning=action.warning)
    if decision.status != release.status and not releases.patch_status(
            kube, namespace, name, status_patch(decision.status, body.get("status")), resource_version):
        # Someone changed the Release meanwhile (a new spec, a command): the next tick decides on it.
        log.info("%s/%s changed during the step; deciding again next tick", namespace, name)
    return release.model_copy(update={"status": decision.status})


def _invalid(kube: Kube, body: Mapping[str, Any], release: Release | None, problems: list[str]) -> None:
    """A spec the API server accepted but the operator cannot act on: Degraded with reason
    InvalidSpec and a Warning Event (once per distinct message); nothing in the cluster changes."""
    meta = body["metadata"]
    previous = parse_status(body.get("status"))
    status = invalid_status(previous, problems, int(meta.get("generation") or 0), datetime.now(UTC))
    old = previous.condition(ConditionType.DEGRADED)
    if old and old.reason == INVALID_SPEC and old.message == status.message:
        return
    releases.patch_status(kube, meta["namespace"], meta["name"], status_patch(status, body.get("status")),
                          meta["resourceVersion"])
    log.warning("%s/%s: %s", meta["namespace"], meta["name"], status.message)
    events.record_for(kube, body, INVALID_SPEC, status.message or "", warning=True)


def _pydantic_problem(err: Any) -> str:
    path = "spec" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
    return f"{path}: {err['msg']}"


@cache
def _timezones() -> frozenset[str]:
    # The zone database on disk; read once, it does not change while the operator runs.
    return frozenset(zoneinfo.available_timezones())


# The last Service and route state written per Release, so a steady Release costs no writes;
# it is re-asserted now and then in case someone changed it by hand.
_written: dict[tuple[str, str], tuple[SetTraffic, int]] = {}
_REASSERT_EVERY = 30


def _traffic(kube: Kube, release: Release, action: SetTraffic) -> None:
    key = (release.metadata.namespace or "", release.metadata.name or "")
    last = _written.get(key)
    if last and last[0] == action and last[1] < _REASSERT_EVERY:
        _written[key] = (action, last[1] + 1)
        return
    service_names = services.names(release)
    if service_names is not None:
        stable, preview = service_names
        # The stable Service first: when it moves (BlueGreen's switch) the route still points at it.
        services.apply(kube, services.manifest(release, stable, action.active))
        services.apply(kube, services.manifest(release, preview, action.preview))
        router_for(release).set_weight(kube, release, stable, preview, action.weight)
    _written[key] = (action, 0)
