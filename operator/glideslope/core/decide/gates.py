"""The checklist's part of a tick: the gates of the stage the rollout is in.

preDeploy while Gated, prePromotion once the rollout reaches full promotion, postDeploy while
Validating. A failed preDeploy gate stops the release before anything changed; a failed
prePromotion gate aborts to the stable revision; a failed postDeploy gate rolls back.
"""

from __future__ import annotations

from glideslope.api import GateStage, GateState, HistoryEntry, HistoryOutcome, Phase
from glideslope.core.decide import history
from glideslope.core.decide.rollback import roll_back
from glideslope.core.decide.tick import Tick
from glideslope.core.gates import checklist
from glideslope.core.model import Reason


def gate_deploy(tick: Tick) -> bool:
    """Hold a new (or retried) rollout behind its preDeploy gates, if it has any waiting."""
    spec, status = tick.spec, tick.status
    if not checklist.waits(spec, status, GateStage.PRE_DEPLOY):
        return False
    checklist.begin(spec, status, GateStage.PRE_DEPLOY, tick.now)
    status.phase = Phase.GATED
    status.message = checklist.summary(spec, status, GateStage.PRE_DEPLOY)
    tick.announce(Reason.GATED, f"rollout of {status.version} ({status.revision}) waits for its preDeploy gates: "
                  + ", ".join(g.name for g in spec.gates if g.stage == GateStage.PRE_DEPLOY))
    return True


def run(tick: Tick) -> None:
    """Run the gates of the stage the rollout is in, and obey what they say."""
    spec, status, candidate = tick.spec, tick.status, tick.candidate
    if status.revision != candidate:
        return
    if status.phase == Phase.GATED:
        _pre_deploy(tick)
        return
    stable = status.stable_revision
    if stable is None or candidate == stable:
        return
    at_promotion = (status.current_step or 1) - 1 >= tick.strategy.full_step(tick.steps)
    if status.phase in (Phase.PROGRESSING, Phase.PAUSED) and at_promotion and checklist.waits(
            spec, status, GateStage.PRE_PROMOTION):
        outcome = _check(tick, GateStage.PRE_PROMOTION)
        if outcome.state == GateState.FAILED:
            roll_back(tick, candidate, outcome.message)
            tick.announce(Reason.ROLLING_BACK, f"aborting {status.version} ({candidate}): {outcome.message}",
                          warning=True)
        elif outcome.state == GateState.PASSED:
            status.step_started_at = tick.now
    elif status.phase == Phase.VALIDATING and checklist.waits(spec, status, GateStage.POST_DEPLOY):
        outcome = _check(tick, GateStage.POST_DEPLOY)
        if outcome.state == GateState.FAILED:
            # The previous revision is scaled down: traffic stays until it is Ready again.
            roll_back(tick, candidate, outcome.message, keep_traffic=True)
            tick.announce(Reason.ROLLING_BACK, f"rolling back {status.version} ({candidate}): {outcome.message}",
                          warning=True)


def _pre_deploy(tick: Tick) -> None:
    """A Gated rollout: it starts once its preDeploy gates pass, and fails, changing nothing,
    when one fails."""
    status, now, candidate = tick.status, tick.now, tick.candidate
    outcome = _check(tick, GateStage.PRE_DEPLOY)
    if outcome.state == GateState.PASSED:
        # The deployment starts now: its durations and analysis count from here.
        status.phase, status.started_at, status.step_started_at = Phase.PROGRESSING, now, now
        status.message = (f"step 1/{len(tick.steps)}: {tick.steps[0].describe()}" if status.stable_revision
                          else "first rollout")
        tick.announce(Reason.STARTED, f"preDeploy gates passed; rollout of {status.version} ({candidate}) started")
    elif outcome.state == GateState.FAILED:
        history.append(status, HistoryEntry(version=status.version, revision=candidate,
                                            outcome=HistoryOutcome.FAILED, started_at=status.started_at,
                                            finished_at=now, duration_seconds=history.seconds(status.started_at, now),
                                            reason=outcome.message))
        status.phase = Phase.FAILED
        status.message = f"{outcome.message}; nothing was changed; retry to check the gates again"
        tick.announce(Reason.FAILED, status.message, warning=True)
    else:
        status.message = outcome.message


def _check(tick: Tick, stage: GateStage) -> checklist.Outcome:
    """Run the gates of `stage` (begun if they are not yet); the stage is over once they pass or fail."""
    spec, status, observation = tick.spec, tick.status, tick.observation
    if status.gate_stage != stage:
        checklist.begin(spec, status, stage, tick.now)
    outcome = checklist.run(spec, status, stage, observation.gates, observation.zones,
                            namespace=observation.namespace, name=observation.name, now=tick.now,
                            announce=tick.events)
    if outcome.state != GateState.PENDING:
        status.gate_stage = None
    return outcome
