"""What the status keeps of the past: `status.history`, the revisions kept for an undo,
`status.stepStarts`, and the conditions (whose transition times only move on a change)."""

from __future__ import annotations

from datetime import datetime

from glideslope.api import (
    HISTORY_LIMIT,
    Condition,
    ConditionStatus,
    ConditionType,
    HistoryEntry,
    Phase,
    ReleaseStatus,
    StepStart,
)
from glideslope.core.model import Observation

REVISION_HISTORY_LIMIT = 2
"""Scaled-down revisions kept besides the stable and candidate ones (for a fast undo)."""

PHASE_CONDITIONS: dict[Phase, tuple[bool, bool, bool]] = {
    # phase: (Ready, Progressing, Degraded)
    Phase.SUCCEEDED: (True, False, False),
    Phase.PROGRESSING: (False, True, False),
    Phase.PENDING: (False, True, False),
    Phase.GATED: (False, True, False),
    Phase.VALIDATING: (False, True, False),
    Phase.PAUSED: (False, True, False),
    Phase.ROLLING_BACK: (False, True, True),
    Phase.ROLLED_BACK: (False, False, True),
    Phase.FAILED: (False, False, True),
}
"""Ready, Progressing and Degraded by phase, each with the phase as its reason (kstatus reads
them so); rendered into docs/api.md."""


def append(status: ReleaseStatus, entry: HistoryEntry) -> None:
    status.history = [*status.history, entry][-HISTORY_LIMIT:]


def seconds(start: datetime | None, end: datetime) -> float | None:
    return max((end - start).total_seconds(), 0.0) if start else None


def expired(status: ReleaseStatus, candidate: str, observation: Observation, replicas: dict[str, int]) -> list[str]:
    """Scaled-down revisions beyond the history limit, oldest first, once their pods are gone."""
    keep = {candidate, status.stable_revision}
    recent = [e.revision for e in reversed(status.history) if e.revision and e.revision not in keep]
    keep.update(list(dict.fromkeys(recent))[:REVISION_HISTORY_LIMIT])
    return sorted(r for r, s in observation.revisions.items()
                  if r not in keep and replicas.get(r, 0) == 0 and s.replicas == 0 and s.pods == 0)


def note_step(before: ReleaseStatus, status: ReleaseStatus, planned: int) -> None:
    """Keeps `status.stepStarts`: the step this tick began, if it began one. Written with the
    status that begins it, so the closing record can take it from there after a crash."""
    if status.revision != before.revision:
        status.step_starts = []
    current, started = status.current_step, status.step_started_at
    if status.phase not in (Phase.PROGRESSING, Phase.PAUSED) or current is None or started is None:
        return
    last = status.step_starts[-1] if status.step_starts else None
    if last is not None and (last.step, last.at) == (current, started):
        return
    if last is not None and current < last.step:
        status.step_starts = []  # a retry: the rollout begins again from its first step
    status.step_starts = [*status.step_starts, StepStart(step=current, at=started)][-(planned + 2):]


def conditions(status: ReleaseStatus, generation: int, now: datetime) -> None:
    """Ready/Progressing/Degraded from the phase, in kstatus form; transition times only move
    when a condition's status does."""
    phase = status.phase or Phase.PENDING
    values = PHASE_CONDITIONS[phase]
    types = (ConditionType.READY, ConditionType.PROGRESSING, ConditionType.DEGRADED)
    written: list[Condition] = []
    for type_, value in zip(types, values, strict=True):
        state = ConditionStatus.TRUE if value else ConditionStatus.FALSE
        old = status.condition(type_)
        since = old.last_transition_time if old and old.status == state and old.last_transition_time else now
        written.append(Condition(type=type_, status=state, reason=phase.value, message=status.message,
                                 last_transition_time=since, observed_generation=generation))
    status.conditions = written
