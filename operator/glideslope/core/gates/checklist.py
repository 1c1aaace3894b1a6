"""Running the gates of a stage: which need the shell to look now, and what they say.

Decisions recorded here:

- Gates belong to one revision: a new template starts them all afresh (so an approval holds
  for one revision only), a retry starts again every gate but the approvals given.
- A stage's gates begin together (`startedAt`, from which timeouts count) when the rollout
  reaches the stage; an approval may be given earlier.
- Passed is final for every kind but `window`: a window is looked at until its whole stage
  has passed, so a release whose approval comes late still starts inside its window.
- A first rollout runs its `preDeploy` gates only; the others are Skipped, since there is
  nothing to roll back to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from glideslope.api import Gate, GateStage, GateState, GateStatus, ReleaseSpec, ReleaseStatus
from glideslope.core.analysis import Measurement
from glideslope.core.gates import (
    Check,
    GateObservation,
    JobObservation,
    ReleaseObservation,
    WebhookAnswer,
    approval,
    job,
    metric,
    release,
    webhook,
    window,
)
from glideslope.core.model import Announce, Reason

_FIRST_ROLLOUT = "not run on a first rollout: there is nothing to roll back to"
_MESSAGE_LIMIT = 600


@dataclass(frozen=True)
class Outcome:
    """A stage's gates as a whole: Passed when all passed, Failed when one failed."""

    state: GateState
    message: str


def fresh(spec: ReleaseSpec, now: datetime, *, first_rollout: bool) -> list[GateStatus]:
    """The gates of a new revision: all Pending (on a first rollout, only preDeploy ones)."""
    return [_new(gate, now, first_rollout=first_rollout) for gate in spec.gates]


def _new(gate: Gate, now: datetime, *, first_rollout: bool) -> GateStatus:
    if first_rollout and gate.stage != GateStage.PRE_DEPLOY:
        return GateStatus(name=gate.name, stage=gate.stage, state=GateState.SKIPPED, message=_FIRST_ROLLOUT,
                          last_transition_time=now)
    return GateStatus(name=gate.name, stage=gate.stage, state=GateState.PENDING,
                      message=f"waiting for the {gate.stage.value} stage", last_transition_time=now)


def sync(spec: ReleaseSpec, status: ReleaseStatus, now: datetime, *, rolling_out: bool) -> None:
    """`status.gates` follows `spec.gates` (edited without a new template): new gates are
    Pending, or Skipped when no rollout is under way to check them; removed ones go; the
    order is the spec's."""
    by_name = {g.name: g for g in status.gates}
    first = status.stable_revision is None
    gates = []
    for gate in spec.gates:
        current = by_name.get(gate.name)
        if current is None or current.stage != gate.stage:
            current = _new(gate, now, first_rollout=first)
            if not rolling_out:
                current = current.model_copy(update={"state": GateState.SKIPPED,
                                                     "message": "added after this rollout; the next one checks it"})
        gates.append(current)
    status.gates = gates


def retry(spec: ReleaseSpec, status: ReleaseStatus, now: datetime) -> None:
    """A retry checks every gate again, except approvals already given for this revision."""
    first = status.stable_revision is None
    kinds = {g.name: g.kind for g in spec.gates}
    status.gates = [g if kinds.get(g.name) == "approval" and g.state == GateState.PASSED
                else _new(gate, now, first_rollout=first)
                for g, gate in zip(status.gates, spec.gates, strict=True)]
    status.gate_stage = None


def waits(spec: ReleaseSpec, status: ReleaseStatus, stage: GateStage) -> bool:
    """Whether `stage` has a gate that has not passed (Skipped counts as passed)."""
    states = {g.name: g.state for g in status.gates}
    return any(states.get(g.name) not in (GateState.PASSED, GateState.SKIPPED)
               for g in spec.gates if g.stage == stage)


def begin(spec: ReleaseSpec, status: ReleaseStatus, stage: GateStage, now: datetime) -> None:
    """The rollout reached `stage`: its gates start (timeouts count from now)."""
    status.gate_stage = stage
    names = {g.name for g in spec.gates if g.stage == stage}
    status.gates = [g.model_copy(update={"started_at": now, "message": "checking"})
                if g.name in names and g.state == GateState.PENDING and g.started_at is None else g
                for g in status.gates]


def due(spec: ReleaseSpec, status: ReleaseStatus, interval: timedelta, now: datetime) -> list[Gate]:
    """The gates the shell must look at now: those of the running stage that wait for an
    answer from outside (a query, a Job, another Release, a webhook)."""
    if status.gate_stage is None:
        return []
    by_name = {g.name: g for g in status.gates}
    out = []
    for gate in spec.gates:
        current = by_name.get(gate.name)
        if gate.stage != status.gate_stage or current is None or current.state != GateState.PENDING:
            continue
        if current.started_at is None:
            continue
        last = current.last_checked_time
        kind = gate.kind
        if (kind == "metric" and (last is None or now - last >= interval)) or kind in ("release", "job") or (
                kind == "webhook" and last is None):
            out.append(gate)
    return out


def run(spec: ReleaseSpec, status: ReleaseStatus, stage: GateStage, observed: Mapping[str, GateObservation],
        zones: Mapping[str, tzinfo], *, namespace: str, name: str, now: datetime,
        announce: list[Announce]) -> Outcome:
    """Look at the gates of `stage` with what the shell observed; record their states."""
    by_name = {g.name: g for g in status.gates}
    waiting: list[str] = []
    failed: list[str] = []
    for gate in spec.gates:
        current = by_name.get(gate.name)
        if gate.stage != stage or current is None or current.state == GateState.SKIPPED:
            continue
        if current.state == GateState.FAILED or (current.state == GateState.PASSED and gate.kind != "window"):
            if current.state == GateState.FAILED:
                failed.append(f"{gate.name}: {current.message}")
            continue
        seen = observed.get(gate.name)
        result = _check(gate, current, seen, zones, namespace=namespace, name=name, version=spec.version, now=now)
        update: dict[str, object] = {"message": result.message[:_MESSAGE_LIMIT]}
        if seen is not None:
            update["last_checked_time"] = now
        if result.value is not None:
            update["last_value"] = result.value
        if result.state != current.state:
            update.update(state=result.state, last_transition_time=now)
            announce.append(_transition(gate, result))
        by_name[gate.name] = current.model_copy(update=update)
        if result.state == GateState.FAILED:
            failed.append(f"{gate.name}: {result.message}")
        elif result.state == GateState.PENDING:
            waiting.append(f"{gate.name}: {result.message}")
    status.gates = [by_name.get(g.name, g) for g in status.gates]
    if failed:
        return Outcome(GateState.FAILED, f"{stage.value} gate {failed[0]}"[:_MESSAGE_LIMIT])
    if waiting:
        return Outcome(GateState.PENDING, summary(spec, status, stage))
    return Outcome(GateState.PASSED, f"{stage.value} gates passed")


def summary(spec: ReleaseSpec, status: ReleaseStatus, stage: GateStage) -> str:
    """What the stage waits for, gate by gate, from `status.gates`."""
    states = {g.name: g for g in status.gates}
    waiting = [f"{g.name}: {states[g.name].message}" for g in spec.gates
               if g.stage == stage and g.name in states and states[g.name].state == GateState.PENDING]
    return (f"waiting for {stage.value} gates: " + "; ".join(waiting))[:_MESSAGE_LIMIT]


def _check(gate: Gate, current: GateStatus, seen: GateObservation | None, zones: Mapping[str, tzinfo], *,
           namespace: str, name: str, version: str, now: datetime) -> Check:
    started = current.started_at or now
    if gate.approval is not None:
        return approval.check(current, name)
    if gate.window is not None:
        zone = zones.get(gate.window.timezone)
        if zone is None:
            return Check(GateState.PENDING, f"unknown time zone {gate.window.timezone!r}")
        return window.check(gate.window, zone, now)
    if gate.metric is not None:
        return metric.check(gate.metric, seen if isinstance(seen, Measurement) else None, started, now,
                            current.message)
    if gate.release is not None:
        return release.check(gate.release, namespace, version,
                             seen if isinstance(seen, ReleaseObservation) else None, current.message)
    if gate.job is not None:
        return job.check(gate.job, seen if isinstance(seen, JobObservation) else None, started, now)
    return webhook.check(seen if isinstance(seen, WebhookAnswer) else None, current.message)


def _transition(gate: Gate, result: Check) -> Announce:
    what = f"gate {gate.name} ({gate.kind}, {gate.stage.value})"
    if result.state == GateState.PASSED:
        return Announce(Reason.GATE_PASSED, f"{what} passed: {result.message}")
    if result.state == GateState.FAILED:
        return Announce(Reason.GATE_FAILED, f"{what} failed: {result.message}", warning=True)
    return Announce(Reason.GATE_WAITING, f"{what} waiting: {result.message}")
