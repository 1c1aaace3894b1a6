"""The forward path of a rollout: starting it, taking its steps (at most one a tick, so none
is skipped), the validation window after full promotion, and its success."""

from __future__ import annotations

from datetime import datetime

from glideslope.api import (
    ROLLING_OUT_PHASES,
    GateStage,
    GateState,
    HistoryEntry,
    HistoryOutcome,
    Phase,
    ReleaseStatus,
)
from glideslope.core.analysis import Order, Verdict
from glideslope.core.decide import convergence, history
from glideslope.core.decide.gates import gate_deploy
from glideslope.core.decide.tick import Tick
from glideslope.core.gates import checklist
from glideslope.core.model import Reason, Routes, SetTraffic, Target, View, until


def start(tick: Tick) -> None:
    """A new template: supersede an unfinished rollout, start the new one from the stable revision."""
    spec, status, now, candidate, steps = tick.spec, tick.status, tick.now, tick.candidate, tick.steps
    if status.phase in ROLLING_OUT_PHASES and status.revision and status.revision != status.stable_revision:
        history.append(status, HistoryEntry(version=status.version, revision=status.revision,
                                            outcome=HistoryOutcome.SUPERSEDED, started_at=status.started_at,
                                            finished_at=now, duration_seconds=history.seconds(status.started_at, now),
                                            reason=f"superseded by {candidate} ({spec.version})"))
        tick.announce(Reason.SUPERSEDED, f"rollout of {status.revision} superseded by {candidate}")
    status.revision, status.version = candidate, spec.version
    status.started_at = status.step_started_at = now
    status.current_step, status.weight = 1, 0
    reset_analysis(status)
    # Gates belong to one revision: an approval given for another does not count.
    status.gates, status.gate_stage = checklist.fresh(spec, now, first_rollout=status.stable_revision is None), None
    if status.stable_revision == candidate:
        status.phase, status.message = Phase.SUCCEEDED, f"{candidate} is already stable"
        status.current_step = len(steps)
        status.gates = [g.model_copy(update={"state": GateState.SKIPPED, "message": "the revision is already stable"})
                        for g in status.gates]
        return
    if gate_deploy(tick):
        return
    status.phase = Phase.PROGRESSING
    status.message = f"step 1/{len(steps)}: {steps[0].describe()}" if status.stable_revision else "first rollout"
    tick.announce(Reason.STARTED, f"rollout of {spec.version} ({candidate}) started")


def reset_analysis(status: ReleaseStatus) -> None:
    """A new rollout (or a retry) is analysed from scratch."""
    status.analysis, status.breach_at, status.promoted_step = [], None, None
    status.judge = None


def step(tick: Tick, stable: str, found: Verdict | None, *, advance: bool = True) -> None:
    """Run the current step of a rollout; advance by one when it is done (and `advance`)."""
    status, now = tick.status, tick.now
    index = min(max(status.current_step or 1, 1), len(tick.steps)) - 1
    started = status.step_started_at or now
    view = View(stable, tick.candidate, tick.observation, status.weight or 0, (now - started).total_seconds(), started)
    held = _held(tick, index)
    target = _held_target(tick, view) if held else tick.strategy.target(tick.spec, tick.steps, index, view)
    _apply(tick, stable, target)
    status.current_step = index + 1
    target = _conclude(tick, stable, index, target, found, started, held=held, advance=advance)
    # The preview Service always shows the candidate; routers only carry weight for strategies
    # that pin the stable Service to one revision.
    tick.traffic = SetTraffic(target.active, tick.candidate, target.weight if tick.pinned else 0,
                              target.routes if tick.pinned else Routes())


def _held(tick: Tick, index: int) -> bool:
    """Whether step `index` waits for the prePromotion gates: it is full promotion or after."""
    return index >= tick.strategy.full_step(tick.steps) and checklist.waits(tick.spec, tick.status,
                                                                            GateStage.PRE_PROMOTION)


def _held_target(tick: Tick, view: View) -> Target:
    """Until the prePromotion gates pass, the rollout holds where the step before full
    promotion left it (a strategy that promotes at once: nothing of the candidate)."""
    spec, steps = tick.spec, tick.steps
    before = tick.strategy.full_step(steps) - 1
    if before >= 0:
        target = tick.strategy.target(spec, steps, before, view)
    else:
        target = Target(stable_replicas=spec.replicas, candidate_replicas=0,
                        active=view.stable if tick.pinned else None, weight=0, done=False, message="")
    # Held, so not done; and Progressing, whatever the step before would say.
    return Target(stable_replicas=target.stable_replicas, candidate_replicas=target.candidate_replicas,
                  active=target.active, weight=target.weight, done=False,
                  message=checklist.summary(spec, tick.status, GateStage.PRE_PROMOTION), routes=target.routes)


def _apply(tick: Tick, stable: str, target: Target) -> None:
    tick.replicas[stable] = target.stable_replicas
    tick.replicas[tick.candidate] = target.candidate_replicas
    tick.status.weight = target.weight


def _conclude(tick: Tick, stable: str, index: int, target: Target, found: Verdict | None, started: datetime, *,
              held: bool, advance: bool) -> Target:
    """The step's phase and message, and what ends it; returns the target that applies now
    (the next step's, when this one ended and the next one starts at once)."""
    spec, status = tick.spec, tick.status
    prefix = f"step {index + 1}/{len(tick.steps)}: "
    # A step a person promoted to ends without waiting for the triggers; any other step ends
    # only once every trigger has passed (no data, an error or a failure holds it).
    waived = status.promoted_step is not None and index + 1 <= status.promoted_step
    hold = found is not None and not found.promotable and not waived
    if spec.paused or status.paused_by:
        why = "spec.paused" if spec.paused else status.paused_by
        status.phase, status.message = Phase.PAUSED, prefix + f"paused ({why})"
    elif held:
        status.phase, status.message = Phase.PROGRESSING, prefix + target.message
    elif found is not None and found.action == Order.PAUSE and not waived:
        status.phase, status.message = Phase.PAUSED, prefix + f"paused by analysis: {found.message}"
    elif target.done and (waiting := convergence.pending(tick)) is not None:
        # The weight this step set is not measured yet: its traffic may not have moved.
        status.phase, status.message = target.phase, prefix + f"{target.message}; {waiting}"
    elif target.done and hold:
        assert found is not None
        status.phase, status.message = target.phase, prefix + f"{target.message}; waiting for analysis: {found.message}"
    elif target.done and not advance:
        status.phase, status.message = target.phase, prefix + target.message
    elif target.done and index + 1 == len(tick.steps):
        _fully_promoted(tick, started)
    elif target.done:
        following = _next(tick, stable, index)
        return following if following is not None else target
    else:
        status.phase, status.message = target.phase, prefix + target.message
    return target


def _fully_promoted(tick: Tick, started: datetime) -> None:
    """The last step is done: the validation window (and postDeploy gates) starts, if there is
    one; else the rollout has succeeded."""
    spec, status, now, candidate = tick.spec, tick.status, tick.now, tick.candidate
    downtime = (now - started).total_seconds() if tick.strategy.takes_old_down_first(spec) else None
    post = checklist.waits(spec, status, GateStage.POST_DEPLOY)
    if spec.validation.window_seconds <= 0 and not post:
        finish(tick, candidate, downtime=downtime)
        return
    status.phase, status.weight, status.step_started_at = Phase.VALIDATING, 100, now
    # A rollback in the window is timed from a failure in the window.
    status.downtime_seconds, status.breach_at = downtime, None
    status.message = f"validating {spec.version} ({candidate}) " + until(now, spec.validation.window_seconds)
    also = "; postDeploy gates start" if post else ""
    if post:
        checklist.begin(spec, status, GateStage.POST_DEPLOY, now)
    tick.announce(Reason.VALIDATING, f"{spec.version} ({candidate}) fully promoted; validation "
                  f"window of {spec.validation.window_seconds}s started{also}")


def _next(tick: Tick, stable: str, index: int) -> Target | None:
    """Step `index` is done: the next one starts now. Its target if it applies at once (None:
    prePromotion gates hold it, and the next tick says where)."""
    status = tick.status
    status.current_step = index + 2
    status.step_started_at = tick.now
    # The next step's message as its own first tick will say it, so that tick writes nothing;
    # and its replicas and weight at once, as that tick would: a new step's pods must not
    # wait for the stepper's queue (unless prePromotion gates hold it: the next tick says).
    view = View(stable, tick.candidate, tick.observation, status.weight or 0, 0.0, tick.now)
    following = tick.strategy.target(tick.spec, tick.steps, index + 1, view)
    status.phase, status.message = following.phase, f"step {index + 2}/{len(tick.steps)}: {following.message}"
    if _held(tick, index + 1):
        return None
    _apply(tick, stable, following)
    return following


def validate(tick: Tick, stable: str, found: Verdict | None) -> None:
    """The validation window: the candidate serves everything; the previous revision is kept,
    scaled down, for a fast rollback; the window ends only once every trigger has passed."""
    spec, status, now, candidate = tick.spec, tick.status, tick.now, tick.candidate
    tick.replicas[candidate] = spec.replicas
    tick.replicas[stable] = 0 if tick.settled else tick.observation.replicas(stable)
    tick.traffic = SetTraffic(candidate if tick.pinned else None, candidate, 0)
    started = status.step_started_at or now
    left = spec.validation.window_seconds - (now - started).total_seconds()
    waived = status.promoted_step is not None and status.promoted_step > (status.total_steps or 0)
    gated = checklist.waits(spec, status, GateStage.POST_DEPLOY)
    paused = spec.paused or status.paused_by is not None
    if left <= 0 and (found is None or found.promotable or waived) and not gated and not paused:
        finish(tick, candidate, downtime=status.downtime_seconds)
        return
    status.weight = 100
    if left > 0:
        status.message = f"validating {spec.version} ({candidate}) " + until(started, spec.validation.window_seconds)
    else:
        status.message = f"validation window over for {spec.version} ({candidate})"
    if gated:
        status.message += "; " + checklist.summary(spec, status, GateStage.POST_DEPLOY)
    if paused:
        status.message += f"; paused ({'spec.paused' if spec.paused else status.paused_by})"
    if found is not None and not found.promotable:
        why = "paused by" if found.action == Order.PAUSE else "waiting for"
        status.message += f"; {why} analysis: {found.message}"


def finish(tick: Tick, revision: str, downtime: float | None) -> None:
    """The rollout of `revision` succeeded: it is the stable revision now."""
    spec, status, now = tick.spec, tick.status, tick.now
    history.append(status, HistoryEntry(version=spec.version, revision=revision, outcome=HistoryOutcome.SUCCEEDED,
                                        started_at=status.started_at, finished_at=now,
                                        duration_seconds=history.seconds(status.started_at, now),
                                        downtime_seconds=downtime))
    status.stable_revision, status.stable_version = revision, spec.version
    status.phase, status.weight, status.current_step = Phase.SUCCEEDED, 100, status.total_steps or status.current_step
    status.step_started_at = now
    status.downtime_seconds = downtime
    status.message = f"{spec.version} ({revision}) is stable" + (
        f"; downtime {downtime:.1f}s" if downtime is not None else "")
    tick.announce(Reason.SUCCEEDED, status.message)

