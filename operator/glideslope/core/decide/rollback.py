"""The rollback state machine: RollingBack (traffic and replicas back to the stable revision)
until the stable revision is Ready at full size and serves alone, then RolledBack.

A rollback starts from a failing trigger (`verdicts`), a failed prePromotion or postDeploy gate
(`gates`), or a person (`commands`: abort, undo); `serve_stable` runs it, tick by tick, and is
also what a steady Release does (everything on the stable revision).
"""

from __future__ import annotations

from glideslope.api import HistoryEntry, HistoryOutcome, Phase, ReleaseStatus
from glideslope.core.decide import history
from glideslope.core.decide.tick import Tick
from glideslope.core.model import Observation, Reason, SetTraffic


def roll_back(tick: Tick, revision: str | None, reason: str, *,
              keep_traffic: bool = False, breach: bool = False, trigger: str | None = None) -> None:
    """Start rolling back. `keep_traffic`: the stable revision is scaled down, so traffic stays
    on `revision` until it is Ready. `breach`: the triggers caused it, so it is timed from the
    first failed measurement (`status.breachAt`), else from now; `trigger` is the one that did."""
    status, now = tick.status, tick.now
    history.append(status, HistoryEntry(version=status.version, revision=revision,
                                        outcome=HistoryOutcome.ROLLED_BACK, started_at=status.started_at,
                                        finished_at=now, duration_seconds=history.seconds(status.started_at, now),
                                        reason=reason, trigger=trigger))
    status.phase, status.weight, status.step_started_at = Phase.ROLLING_BACK, 100 if keep_traffic else 0, now
    if not breach or status.breach_at is None:
        status.breach_at = now
    status.message = f"rolling back: {reason}"


def serve_stable(tick: Tick, stable: str) -> None:
    """Steady, rolled back or rolling back: everything on the stable revision; the candidate
    goes only once the stable revision is Ready at full size and carries the traffic."""
    status, spec, observation, candidate = tick.status, tick.spec, tick.observation, tick.candidate
    pinned = tick.pinned
    tick.replicas[stable] = spec.replicas
    stable_up = observation.ready(stable) >= spec.replicas
    if status.phase == Phase.ROLLING_BACK and status.weight and stable_up:
        # An undo: the traffic moves now that the previous revision can take it.
        status.weight, status.step_started_at, tick.settled = 0, tick.now, False
    moved = not (status.phase == Phase.ROLLING_BACK and status.weight)
    # Without a pinned selector (a replica ratio) no Service or route changed: removing the
    # candidate's pods is itself the traffic moving, so there is no handover to wait for.
    stable_ready = stable_up and (tick.settled or not pinned) and moved
    if candidate != stable and candidate in observation.revisions:
        tick.replicas[candidate] = 0 if stable_ready else observation.replicas(candidate)
    # Until it has moved, traffic stays on the revision being undone (history's last entry).
    serving = stable if moved else (status.history[-1].revision if status.history else None) or candidate
    tick.traffic = SetTraffic(serving if pinned else None, serving, 0)
    # Without a router the stable Service selects every revision: the stable revision serves
    # all traffic only once no candidate pod is Ready.
    if status.phase == Phase.ROLLING_BACK and stable_ready and (
            pinned or candidate == stable or observation.ready(candidate) == 0):
        _rolled_back(tick)
    elif status.phase == Phase.ROLLING_BACK:
        status.message = f"rolling back to {stable}: {observation.ready(stable)}/{spec.replicas} pods ready"


def _rolled_back(tick: Tick) -> None:
    """The rollback is done: the history entry that started it gets how long it took."""
    status = tick.status
    status.phase = Phase.ROLLED_BACK
    last = status.history[-1] if status.history else None
    reason = last.reason if last is not None and last.outcome == HistoryOutcome.ROLLED_BACK else None
    status.message = (f"rolled back to {status.stable_version} ({status.stable_revision})"
                      + (f": {reason}" if reason else "") + f"; retry to roll out {status.revision} again")
    if last is not None and last.outcome == HistoryOutcome.ROLLED_BACK:
        took = history.seconds(status.breach_at or status.step_started_at, tick.now)
        status.history = [*status.history[:-1], last.model_copy(update={"rollback_seconds": took})]
    tick.announce(Reason.ROLLED_BACK, status.message, warning=True, trigger=last.trigger if last else None)


def previous(status: ReleaseStatus, wanted: str, observation: Observation) -> tuple[str, str | None] | None:
    """The revision an undo goes back to: the one named, else the last stable one before."""
    for entry in reversed(status.history):
        revision = entry.revision
        # The spec's own revision is not "previous": `retry` rolls it out again.
        if entry.outcome != HistoryOutcome.SUCCEEDED or revision in (None, status.stable_revision, status.revision):
            continue
        if revision in observation.revisions and (not wanted or wanted == revision):
            return revision, entry.version
    return None
