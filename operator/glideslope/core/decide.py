"""`decide`: from spec, status, observation and `now` to actions and the new status.

Each call computes the whole desired state (replicas of every revision, Services, weights)
from `status`, so a restarted operator resumes where status says, and at most one step is
taken per call, so none is skipped. Commands (annotations) are consumed whatever happens, and
obeyed once: `status.obeyedCommands` records them until they are removed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from glideslope.api import (
    FINAL_PHASES,
    HISTORY_LIMIT,
    ROLLING_OUT_PHASES,
    AnalysisState,
    Condition,
    ConditionStatus,
    ConditionType,
    GateStage,
    GateState,
    HistoryEntry,
    HistoryOutcome,
    Phase,
    ReleaseSpec,
    ReleaseStatus,
    Severity,
    StepStart,
    TriggerStatus,
    gates_display,
    parse_duration,
    step_display,
)
from glideslope.core.analysis import Action as Order
from glideslope.core.analysis import Stage, Verdict, next_due, record, verdict
from glideslope.core.gates import approval, checklist
from glideslope.core.model import (
    ABORT,
    APPROVE,
    APPROVED_BY,
    COMMANDS,
    PAUSE,
    PROMOTE,
    RESUME,
    RETRY,
    UNDO,
    Action,
    Decision,
    DeleteRevision,
    Observation,
    Reason,
    RecordEvent,
    ScaleRevision,
    SetTraffic,
    Step,
    Target,
    View,
    until,
)
from glideslope.core.revision import revision_of
from glideslope.core.strategies import StrategyModule, strategy_for
from glideslope.core.triggers import stage as analysis_stage

REVISION_HISTORY_LIMIT = 2
"""Scaled-down revisions kept besides the stable and candidate ones (for a fast undo)."""

HANDOVER_SECONDS = 2.0
"""Pods that traffic just left keep running this long: a Service's new selector reaches
EndpointSlices and proxies a moment after it is written."""

OBEYED_VALUE_LIMIT = 256
"""Characters of a command's value kept in `status.obeyedCommands` (values are free text)."""



def plan(spec: ReleaseSpec) -> tuple[Step, ...]:
    """The steps of a rollout of `spec`."""
    return strategy_for(spec).plan(spec)


def wake_at(spec: ReleaseSpec, status: ReleaseStatus, now: datetime) -> datetime | None:
    """When `decide` next has something to do for the Release if nothing changes before: the end
    of the hand-over after a step starts (the revision traffic left is scaled down then), the end
    of a timed step or of the validation window, a trigger's next measurement
    (`core.analysis.next_due`). None when nothing ahead is timed (what is only seen by polling
    it, gates and pods, is the scheduler's to poll)."""
    started = status.step_started_at
    deadlines: list[datetime] = []
    if status.phase in FINAL_PHASES:
        if status.revision == revision_of(spec.template) and started is not None:
            deadlines.append(started + timedelta(seconds=HANDOVER_SECONDS))
    elif status.phase not in (None, Phase.PENDING, Phase.GATED):
        if started is not None:
            deadlines.append(started + timedelta(seconds=HANDOVER_SECONDS))
            steps = plan(spec)
            index = (status.current_step or 1) - 1
            if status.phase == Phase.VALIDATING:
                deadlines.append(started + timedelta(seconds=spec.validation.window_seconds))
            elif 0 <= index < len(steps) and steps[index].seconds is not None:
                deadlines.append(started + timedelta(seconds=steps[index].seconds or 0))
        analysed = analysis_stage(status, revision_of(spec.template)) if spec.analysis.triggers else None
        if analysed is not None:
            every = parse_duration(spec.analysis.interval)
            delay = parse_duration(spec.analysis.initial_delay)
            measured = {t.name: t for t in status.analysis}
            deadlines += [next_due(measured.get(t.name), every, delay, analysed[1]) for t in spec.analysis.triggers]
    upcoming = [d for d in deadlines if d > now]
    return min(upcoming) if upcoming else None


def decide(spec: ReleaseSpec, status: ReleaseStatus, observation: Observation, now: datetime) -> Decision:
    """The actions that bring the cluster one tick closer to `spec`, and the status to write."""
    st = status.model_copy(deep=True)
    events: list[RecordEvent] = []
    strategy = strategy_for(spec)
    steps = strategy.plan(spec)
    candidate = revision_of(spec.template)
    st.total_steps = len(steps)

    # A rollout's first step is never finished in the tick that starts it: the step is written
    # to status (and so survives a crash) before anything it ends can happen.
    starting = st.revision != candidate
    if starting:
        _start(st, spec, candidate, steps, now, events)
    elif st.version != spec.version and st.phase in ROLLING_OUT_PHASES:
        st.version = spec.version
    checklist.sync(spec, st, now, rolling_out=st.phase in ROLLING_OUT_PHASES)
    consumed = tuple(k for k in COMMANDS if k in observation.commands)
    obeyed = {k: observation.commands[k][:OBEYED_VALUE_LIMIT] for k in consumed}
    for key in consumed:
        if status.obeyed_commands.get(key) == obeyed[key]:
            continue  # obeyed by the status written last; only its removal did not happen
        _command(key, observation.commands[key], st, spec, strategy, steps, observation, now, events)
    # Recorded with the status that obeys them, removed once it is stored (the engine).
    st.obeyed_commands = obeyed
    if APPROVE in consumed and APPROVED_BY in observation.commands:
        consumed += (APPROVED_BY,)

    # Analysis: record what was measured, then obey the triggers' verdict (the severity table in core/analysis.py).
    judged = _analyse(st, spec, candidate, observation, events)
    if judged is not None and judged[1].action == Order.ROLLBACK:
        stage, fired = judged
        _roll_back(st, st.revision, fired.message, now, keep_traffic=stage == "validation", breach=True)
        events.append(RecordEvent(Reason.ROLLING_BACK, f"rolling back {st.version} ({st.revision}): {fired.message}",
                                  warning=True, trigger=fired.trigger))
        judged = None
    found = judged[1] if judged is not None else None
    _gates(st, spec, strategy, steps, candidate, observation, now, events)

    stable = st.stable_revision
    pinned = strategy.pins_active(spec)
    settled = st.step_started_at is None or (now - st.step_started_at).total_seconds() >= HANDOVER_SECONDS
    replicas: dict[str, int] = {}
    traffic: SetTraffic | None
    if stable is None and st.phase in (Phase.GATED, Phase.FAILED):
        # A first rollout held (or stopped) by its preDeploy gates: nothing exists yet.
        traffic = None
    elif stable is None:
        # The first rollout: nothing serves yet, so there is nothing to be careful of.
        ready = observation.ready(candidate)
        replicas[candidate] = spec.replicas
        traffic = SetTraffic(candidate if pinned else None, candidate, 0)
        st.message = f"first rollout: {ready}/{spec.replicas} pods ready"
        if ready >= spec.replicas:
            _finish(st, spec, candidate, now, events, downtime=None)
    elif st.phase == Phase.GATED:
        # Nothing of the candidate is created until its preDeploy gates pass.
        replicas[stable] = spec.replicas
        traffic = SetTraffic(stable if pinned else None, stable, 0)
    elif st.phase == Phase.VALIDATING and candidate != stable:
        traffic = _validate(st, spec, candidate, stable, pinned, settled, observation, found, now, events,
                            replicas)
    elif st.phase in ROLLING_OUT_PHASES and candidate != stable:
        traffic = _step(st, spec, strategy, steps, candidate, stable, observation, found, now, events, replicas,
                        advance=not starting)
    else:
        # Steady, rolled back or rolling back: everything on the stable revision; the candidate
        # goes only once the stable revision is Ready at full size and carries the traffic.
        replicas[stable] = spec.replicas
        stable_up = observation.ready(stable) >= spec.replicas
        if st.phase == Phase.ROLLING_BACK and st.weight and stable_up:
            # An undo: the traffic moves now that the previous revision can take it.
            st.weight, st.step_started_at, settled = 0, now, False
        moved = not (st.phase == Phase.ROLLING_BACK and st.weight)
        # Without a pinned selector (a replica ratio) no Service or route changed: removing the
        # candidate's pods is itself the traffic moving, so there is no handover to wait for.
        stable_ready = stable_up and (settled or not pinned) and moved
        if candidate != stable and candidate in observation.revisions:
            replicas[candidate] = 0 if stable_ready else observation.replicas(candidate)
        # Until it has moved, traffic stays on the revision being undone (history's last entry).
        serving_revision = stable if moved else (st.history[-1].revision if st.history else None) or candidate
        traffic = SetTraffic(serving_revision if pinned else None, serving_revision, 0)
        # Without a router the stable Service selects every revision: the stable revision serves
        # all traffic only once no candidate pod is Ready.
        if st.phase == Phase.ROLLING_BACK and stable_ready and (
                pinned or candidate == stable or observation.ready(candidate) == 0):
            _rolled_back(st, now, events)
        elif st.phase == Phase.ROLLING_BACK:
            st.message = f"rolling back to {stable}: {observation.ready(stable)}/{spec.replicas} pods ready"

    serving = sum(observation.ready(r) for r in replicas)
    for revision in observation.revisions:
        if revision not in replicas:
            # Older revisions (a superseded candidate) keep their pods until the current ones
            # carry the load, so superseding never drops capacity.
            keep = (serving < spec.replicas or not settled) and spec.strategy.type != "BigBang"
            replicas[revision] = observation.replicas(revision) if keep else 0

    actions: list[Action] = []
    actions += [ScaleRevision(r, n) for r, n in sorted(replicas.items()) if n > observation.replicas(r)
                or r not in observation.revisions]
    if traffic is not None:
        actions.append(traffic)
    actions += [ScaleRevision(r, n) for r, n in sorted(replicas.items())
                if not (n > observation.replicas(r) or r not in observation.revisions)]
    actions += [DeleteRevision(r) for r in _expired(st, candidate, observation, replicas)]
    actions += events

    st.observed_generation = observation.generation
    st.total_steps = len(steps)
    st.step_display = step_display(st.current_step, st.total_steps)
    st.gates_display = gates_display(st.gates)
    st.replicas = sum(s.pods for s in observation.revisions.values())
    st.ready_replicas = sum(s.ready for s in observation.revisions.values())
    st.selector = ",".join(f"{k}={v}" for k, v in sorted(spec.selector.match_labels.items()))
    _note_step(status, st, len(steps))
    _conditions(st, observation.generation, now)
    return Decision(tuple(actions), st, consumed, wake_at(spec, st, now))


def _step(st: ReleaseStatus, spec: ReleaseSpec, strategy: StrategyModule, steps: tuple[Step, ...],
          candidate: str, stable: str, observation: Observation, found: Verdict | None, now: datetime,
          events: list[RecordEvent], replicas: dict[str, int], *, advance: bool = True) -> SetTraffic:
    """Run the current step of a rollout; advance by one when it is done (and `advance`)."""
    index = min(max(st.current_step or 1, 1), len(steps)) - 1
    started = st.step_started_at or now
    view = View(stable, candidate, observation, st.weight or 0, (now - started).total_seconds(), started)
    held = index >= strategy.full_step(steps) and checklist.waits(spec, st, GateStage.PRE_PROMOTION)
    target: Target
    if held:
        # Until the prePromotion gates pass, the rollout holds where the step before full
        # promotion left it (a strategy that promotes at once: nothing of the candidate).
        before = strategy.full_step(steps) - 1
        target = strategy.target(spec, steps, before, view) if before >= 0 else Target(
            spec.replicas, 0, stable if strategy.pins_active(spec) else None, 0, False, "")
        target = Target(target.stable_replicas, target.candidate_replicas, target.active, target.weight, False,
                        checklist.summary(spec, st, GateStage.PRE_PROMOTION))
    else:
        target = strategy.target(spec, steps, index, view)
    replicas[stable] = target.stable_replicas
    replicas[candidate] = target.candidate_replicas
    st.weight = target.weight
    st.current_step = index + 1
    prefix = f"step {index + 1}/{len(steps)}: "
    # A step a person promoted to ends without waiting for the triggers; any other step ends
    # only once every trigger has passed (no data, an error or a failure holds it).
    waived = st.promoted_step is not None and index + 1 <= st.promoted_step
    hold = found is not None and not found.promotable and not waived
    if spec.paused or st.paused_by:
        why = "spec.paused" if spec.paused else st.paused_by
        st.phase, st.message = Phase.PAUSED, prefix + f"paused ({why})"
    elif held:
        st.phase, st.message = Phase.PROGRESSING, prefix + target.message
    elif found is not None and found.action == Order.PAUSE and not waived:
        st.phase, st.message = Phase.PAUSED, prefix + f"paused by analysis: {found.message}"
    elif target.done and hold:
        assert found is not None
        st.phase, st.message = target.phase, prefix + f"{target.message}; waiting for analysis: {found.message}"
    elif target.done and not advance:
        st.phase, st.message = target.phase, prefix + target.message
    elif target.done and index + 1 == len(steps):
        downtime = (now - started).total_seconds() if spec.strategy.type == "BigBang" else None
        post = checklist.waits(spec, st, GateStage.POST_DEPLOY)
        if spec.validation.window_seconds > 0 or post:
            st.phase, st.weight, st.step_started_at = Phase.VALIDATING, 100, now
            # A rollback in the window is timed from a failure in the window.
            st.downtime_seconds, st.breach_at = downtime, None
            st.message = f"validating {spec.version} ({candidate}) " + until(now, spec.validation.window_seconds)
            also = "; postDeploy gates start" if post else ""
            if post:
                checklist.begin(spec, st, GateStage.POST_DEPLOY, now)
            events.append(RecordEvent(Reason.VALIDATING, f"{spec.version} ({candidate}) fully promoted; validation "
                                      f"window of {spec.validation.window_seconds}s started{also}"))
        else:
            _finish(st, spec, candidate, now, events, downtime=downtime)
    elif target.done:
        st.current_step = index + 2
        st.step_started_at = now
        # The next step's message as its own first tick will say it, so that tick writes nothing;
        # and its replicas and weight at once, as that tick would: a new step's pods must not
        # wait for the stepper's queue (unless prePromotion gates hold it: the next tick says).
        following = strategy.target(spec, steps, index + 1, View(stable, candidate, observation, st.weight, 0.0, now))
        st.phase, st.message = following.phase, f"step {index + 2}/{len(steps)}: {following.message}"
        if not (index + 1 >= strategy.full_step(steps) and checklist.waits(spec, st, GateStage.PRE_PROMOTION)):
            replicas[stable] = following.stable_replicas
            replicas[candidate] = following.candidate_replicas
            st.weight = following.weight
            target = following
    else:
        st.phase, st.message = target.phase, prefix + target.message
    # The preview Service always shows the candidate; routers only carry weight for strategies
    # that pin the stable Service to one revision.
    return SetTraffic(target.active, candidate, target.weight if strategy.pins_active(spec) else 0)


def _validate(st: ReleaseStatus, spec: ReleaseSpec, candidate: str, stable: str, pinned: bool, settled: bool,
              observation: Observation, found: Verdict | None, now: datetime, events: list[RecordEvent],
              replicas: dict[str, int]) -> SetTraffic:
    """The validation window: the candidate serves everything; the previous revision is kept,
    scaled down, for a fast rollback; the window ends only once every trigger has passed."""
    replicas[candidate] = spec.replicas
    replicas[stable] = 0 if settled else observation.replicas(stable)
    traffic = SetTraffic(candidate if pinned else None, candidate, 0)
    started = st.step_started_at or now
    left = spec.validation.window_seconds - (now - started).total_seconds()
    waived = st.promoted_step is not None and st.promoted_step > (st.total_steps or 0)
    gated = checklist.waits(spec, st, GateStage.POST_DEPLOY)
    paused = spec.paused or st.paused_by is not None
    if left <= 0 and (found is None or found.promotable or waived) and not gated and not paused:
        _finish(st, spec, candidate, now, events, downtime=st.downtime_seconds)
        return traffic
    st.weight = 100
    if left > 0:
        st.message = f"validating {spec.version} ({candidate}) " + until(started, spec.validation.window_seconds)
    else:
        st.message = f"validation window over for {spec.version} ({candidate})"
    if gated:
        st.message += "; " + checklist.summary(spec, st, GateStage.POST_DEPLOY)
    if paused:
        st.message += f"; paused ({'spec.paused' if spec.paused else st.paused_by})"
    if found is not None and not found.promotable:
        st.message += f"; {'paused by' if found.action == Order.PAUSE else 'waiting for'} analysis: {found.message}"
    return traffic


def _analyse(st: ReleaseStatus, spec: ReleaseSpec, candidate: str, observation: Observation,
             events: list[RecordEvent]) -> tuple[Stage, Verdict] | None:
    """Record this tick's measurements in `status.analysis`; the triggers' verdict for the
    current stage (None when the Release is not being analysed or has no triggers)."""
    current = analysis_stage(st, candidate)
    triggers = spec.analysis.triggers
    if current is None or not triggers:
        return None
    stage, _ = current
    by_name: dict[str, TriggerStatus] = {s.name: s for s in st.analysis}
    for trigger in triggers:
        measured = observation.measurements.get(trigger.name)
        if measured is None:
            continue
        query, measurement = measured
        previous = by_name.get(trigger.name)
        new = record(trigger, previous, measurement, query)
        by_name[trigger.name] = new
        text = f"trigger {trigger.name} ({trigger.severity}): {new.message}; query: {' '.join(query.split())}"
        if new.state == AnalysisState.FAILING:
            if trigger.severity in (Severity.CRITICAL, Severity.HIGH) and st.breach_at is None:
                st.breach_at = measurement.at
            events.append(RecordEvent(Reason.TRIGGER_FAILED, text, warning=True, trigger=trigger.name))
        elif new.state == AnalysisState.INCONCLUSIVE and (previous is None or previous.state != new.state):
            events.append(RecordEvent(Reason.ANALYSIS_INCONCLUSIVE, text, warning=True, trigger=trigger.name))
    st.analysis = [by_name[t.name] for t in triggers if t.name in by_name]
    return stage, verdict(triggers, st.analysis, automatic=spec.rollback.automatic, stage=stage)


def _start(st: ReleaseStatus, spec: ReleaseSpec, candidate: str, steps: tuple[Step, ...], now: datetime,
           events: list[RecordEvent]) -> None:
    """A new template: supersede an unfinished rollout, start the new one from the stable revision."""
    if st.phase in ROLLING_OUT_PHASES and st.revision and st.revision != st.stable_revision:
        _record(st, HistoryEntry(version=st.version, revision=st.revision, outcome=HistoryOutcome.SUPERSEDED,
                                 started_at=st.started_at, finished_at=now,
                                 duration_seconds=_seconds(st.started_at, now),
                                 reason=f"superseded by {candidate} ({spec.version})"))
        events.append(RecordEvent(Reason.SUPERSEDED, f"rollout of {st.revision} superseded by {candidate}"))
    st.revision, st.version = candidate, spec.version
    st.started_at = st.step_started_at = now
    st.current_step, st.weight = 1, 0
    _reset_analysis(st)
    # Gates belong to one revision: an approval given for another does not count.
    st.gates, st.gate_stage = checklist.fresh(spec, now, first_rollout=st.stable_revision is None), None
    if st.stable_revision == candidate:
        st.phase, st.message = Phase.SUCCEEDED, f"{candidate} is already stable"
        st.current_step = len(steps)
        st.gates = [g.model_copy(update={"state": GateState.SKIPPED, "message": "the revision is already stable"})
                    for g in st.gates]
        return
    if _gate_deploy(st, spec, now, events):
        return
    st.phase = Phase.PROGRESSING
    st.message = f"step 1/{len(steps)}: {steps[0].describe()}" if st.stable_revision else "first rollout"
    events.append(RecordEvent(Reason.STARTED, f"rollout of {spec.version} ({candidate}) started"))


def _gate_deploy(st: ReleaseStatus, spec: ReleaseSpec, now: datetime, events: list[RecordEvent]) -> bool:
    """Hold a new (or retried) rollout behind its preDeploy gates, if it has any waiting."""
    if not checklist.waits(spec, st, GateStage.PRE_DEPLOY):
        return False
    checklist.begin(spec, st, GateStage.PRE_DEPLOY, now)
    st.phase = Phase.GATED
    st.message = checklist.summary(spec, st, GateStage.PRE_DEPLOY)
    events.append(RecordEvent(Reason.GATED, f"rollout of {st.version} ({st.revision}) waits for its preDeploy gates: "
                              + ", ".join(g.name for g in spec.gates if g.stage == GateStage.PRE_DEPLOY)))
    return True


def _gates(st: ReleaseStatus, spec: ReleaseSpec, strategy: StrategyModule, steps: tuple[Step, ...],
           candidate: str, observation: Observation, now: datetime, events: list[RecordEvent]) -> None:
    """Run the gates of the stage the rollout is in: preDeploy while Gated, prePromotion once
    the rollout reaches full promotion, postDeploy while Validating. A failed preDeploy gate
    stops the release before anything changed; a failed prePromotion gate aborts to the stable
    revision; a failed postDeploy gate rolls back."""
    if st.revision != candidate:
        return

    def run(stage: GateStage) -> checklist.Outcome:
        if st.gate_stage != stage:
            checklist.begin(spec, st, stage, now)
        outcome = checklist.run(spec, st, stage, observation.gates, observation.zones, namespace=observation.namespace,
                                name=observation.name, now=now, announce=events)
        if outcome.state != GateState.PENDING:
            st.gate_stage = None
        return outcome

    stable = st.stable_revision
    if st.phase == Phase.GATED:
        outcome = run(GateStage.PRE_DEPLOY)
        if outcome.state == GateState.PASSED:
            # The deployment starts now: its durations and analysis count from here.
            st.phase, st.started_at, st.step_started_at = Phase.PROGRESSING, now, now
            st.message = f"step 1/{len(steps)}: {steps[0].describe()}" if stable else "first rollout"
            events.append(RecordEvent(Reason.STARTED, f"preDeploy gates passed; rollout of {st.version} ({candidate}) "
                                      "started"))
        elif outcome.state == GateState.FAILED:
            _record(st, HistoryEntry(version=st.version, revision=candidate, outcome=HistoryOutcome.FAILED,
                                     started_at=st.started_at, finished_at=now,
                                     duration_seconds=_seconds(st.started_at, now), reason=outcome.message))
            st.phase = Phase.FAILED
            st.message = f"{outcome.message}; nothing was changed; retry to check the gates again"
            events.append(RecordEvent(Reason.FAILED, st.message, warning=True))
        else:
            st.message = outcome.message
        return
    if stable is None or candidate == stable:
        return
    at_promotion = (st.current_step or 1) - 1 >= strategy.full_step(steps)
    if st.phase in (Phase.PROGRESSING, Phase.PAUSED) and at_promotion and checklist.waits(
            spec, st, GateStage.PRE_PROMOTION):
        outcome = run(GateStage.PRE_PROMOTION)
        if outcome.state == GateState.FAILED:
            _roll_back(st, candidate, outcome.message, now)
            events.append(RecordEvent(Reason.ROLLING_BACK, f"aborting {st.version} ({candidate}): {outcome.message}",
                                      warning=True))
        elif outcome.state == GateState.PASSED:
            st.step_started_at = now
    elif st.phase == Phase.VALIDATING and checklist.waits(spec, st, GateStage.POST_DEPLOY):
        outcome = run(GateStage.POST_DEPLOY)
        if outcome.state == GateState.FAILED:
            # The previous revision is scaled down: traffic stays until it is Ready again.
            _roll_back(st, candidate, outcome.message, now, keep_traffic=True)
            events.append(RecordEvent(Reason.ROLLING_BACK,
                                      f"rolling back {st.version} ({candidate}): {outcome.message}", warning=True))


def _command(key: str, value: str, st: ReleaseStatus, spec: ReleaseSpec, strategy: StrategyModule,
             steps: tuple[Step, ...], observation: Observation, now: datetime,
             events: list[RecordEvent]) -> None:
    """Obey one command annotation, or say why not; either way it is consumed."""
    name = key.removeprefix("glideslope.dev/")
    rolling_out = (st.phase in ROLLING_OUT_PHASES and st.stable_revision is not None
                   and st.revision != st.stable_revision)
    if key == ABORT or (key == UNDO and rolling_out):
        if not rolling_out:
            events.append(RecordEvent(Reason.COMMAND_IGNORED, f"{name}: no rollout in progress", warning=True))
            return
        reason = f"{name}: {value}" if value else name
        # In the validation window the previous revision is scaled down: traffic stays on the
        # candidate until it is Ready again.
        _roll_back(st, st.revision, reason, now, keep_traffic=st.phase == Phase.VALIDATING)
        events.append(RecordEvent(Reason.ABORTED if key == ABORT else Reason.UNDO,
                                  f"{reason}; traffic back on {st.stable_revision}", warning=True))
    elif key == UNDO:
        previous = _previous(st, value, observation)
        if st.phase == Phase.ROLLING_BACK:
            events.append(RecordEvent(Reason.COMMAND_IGNORED, "undo: a rollback is already under way", warning=True))
            return
        if previous is None:
            events.append(RecordEvent(Reason.COMMAND_IGNORED, "undo: no previous revision is kept", warning=True))
            return
        revision, version = previous
        _roll_back(st, st.stable_revision, f"undo to {revision}", now)
        st.stable_revision, st.stable_version = revision, version
        # Traffic stays on the current revision until the previous one is Ready again.
        st.weight = 100
        events.append(RecordEvent(Reason.UNDO, f"undo: back to {version} ({revision})", warning=True))
    elif key == RETRY:
        if st.phase not in (Phase.ROLLED_BACK, Phase.FAILED) or st.revision == st.stable_revision:
            events.append(RecordEvent(Reason.COMMAND_IGNORED, "retry: nothing was rolled back", warning=True))
            return
        st.phase, st.current_step, st.weight = Phase.PROGRESSING, 1, 0
        st.started_at = st.step_started_at = now
        _reset_analysis(st)
        checklist.retry(spec, st, now)
        events.append(RecordEvent(Reason.RETRIED, f"rollout of {st.version} ({st.revision}) started again"))
        if not _gate_deploy(st, spec, now, events):
            st.message = f"retry: step 1/{len(steps)}: {steps[0].describe()}"
    elif key == APPROVE:
        gate = next((g for g in spec.gates if g.name == value.strip() and g.approval is not None), None)
        given = next((g for g in st.gates if gate is not None and g.name == gate.name), None)
        if gate is None or given is None:
            known = ", ".join(g.name for g in spec.gates if g.approval is not None) or "none"
            events.append(RecordEvent(Reason.COMMAND_IGNORED, f"approve: no approval gate named {value.strip()!r} "
                                      f"(approval gates: {known})", warning=True))
        elif given.state != GateState.PENDING:
            events.append(RecordEvent(Reason.COMMAND_IGNORED,
                                      f"approve: gate {gate.name} is already {given.state.value}"
                                      + (f" ({given.message})" if given.message else "")))
        elif (refused := approval.refusal(gate, observation.commands.get(APPROVED_BY))) is not None:
            events.append(RecordEvent(Reason.COMMAND_IGNORED, refused, warning=True))
        else:
            approved = approval.approve(given, observation.commands.get(APPROVED_BY), now)
            st.gates = [approved if g.name == gate.name else g for g in st.gates]
            events.append(RecordEvent(Reason.GATE_PASSED, f"gate {gate.name} (approval, {gate.stage.value}) passed: "
                                      f"{approved.message} for {st.version} ({st.revision})"))
    elif key == PAUSE:
        if not (st.phase in ROLLING_OUT_PHASES and st.revision != st.stable_revision):
            events.append(RecordEvent(Reason.COMMAND_IGNORED, "pause: no rollout in progress", warning=True))
            return
        st.paused_by = value.strip() or "paused by a person"
        events.append(RecordEvent(Reason.PAUSED, f"rollout of {st.version} ({st.revision}) paused: {st.paused_by}"))
    elif key == RESUME:
        if st.paused_by is None:
            why = "spec.paused is set: change the spec" if spec.paused else "not paused"
            events.append(RecordEvent(Reason.COMMAND_IGNORED, f"resume: {why}", warning=True))
            return
        st.paused_by = None
        st.phase = Phase.PROGRESSING if st.phase == Phase.PAUSED else st.phase
        events.append(RecordEvent(Reason.RESUMED, f"rollout of {st.version} ({st.revision}) resumed"))
    elif key == PROMOTE:
        if not rolling_out or spec.paused:
            events.append(RecordEvent(Reason.COMMAND_IGNORED, "promote: no running rollout to promote", warning=True))
            return
        if st.phase == Phase.VALIDATING:
            # Ends the validation window now, whatever the triggers say; not the postDeploy
            # gates, which are a checklist, not a judgement.
            st.promoted_step = len(steps) + 1
            events.append(RecordEvent(Reason.PROMOTED, f"promote {value or 'step'}: validation window ended"))
            if checklist.waits(spec, st, GateStage.POST_DEPLOY) or st.paused_by:
                st.step_started_at = now - timedelta(seconds=spec.validation.window_seconds)
                return
            st.step_started_at = now
            _finish(st, spec, st.revision or "", now, events, downtime=st.downtime_seconds)
            return
        current = (st.current_step or 1) - 1
        nxt = max(current, strategy.full_step(steps)) if value == "full" else min(current + 1, len(steps) - 1)
        if nxt != current:
            st.current_step, st.step_started_at = nxt + 1, now
        st.promoted_step = nxt + 1
        st.phase = Phase.PROGRESSING
        events.append(RecordEvent(Reason.PROMOTED, f"promote {value or 'step'}: step {nxt + 1}/{len(steps)}"))


def _roll_back(st: ReleaseStatus, revision: str | None, reason: str, now: datetime, *,
               keep_traffic: bool = False, breach: bool = False) -> None:
    """Start rolling back. `keep_traffic`: the stable revision is scaled down, so traffic stays
    on `revision` until it is Ready. `breach`: the triggers caused it, so it is timed from the
    first failed measurement (`status.breachAt`), else from now."""
    _record(st, HistoryEntry(version=st.version, revision=revision, outcome=HistoryOutcome.ROLLED_BACK,
                             started_at=st.started_at, finished_at=now,
                             duration_seconds=_seconds(st.started_at, now), reason=reason))
    st.phase, st.weight, st.step_started_at = Phase.ROLLING_BACK, 100 if keep_traffic else 0, now
    if not breach or st.breach_at is None:
        st.breach_at = now
    st.message = f"rolling back: {reason}"


def _rolled_back(st: ReleaseStatus, now: datetime, events: list[RecordEvent]) -> None:
    st.phase = Phase.ROLLED_BACK
    reason = st.history[-1].reason if st.history and st.history[-1].outcome == HistoryOutcome.ROLLED_BACK else None
    st.message = (f"rolled back to {st.stable_version} ({st.stable_revision})" + (f": {reason}" if reason else "")
                  + f"; retry to roll out {st.revision} again")
    if st.history and st.history[-1].outcome == HistoryOutcome.ROLLED_BACK:
        entry = st.history[-1].model_copy(update={"rollback_seconds": _seconds(st.breach_at or st.step_started_at,
                                                                                 now)})
        st.history = [*st.history[:-1], entry]
    events.append(RecordEvent(Reason.ROLLED_BACK, st.message, warning=True))


def _reset_analysis(st: ReleaseStatus) -> None:
    """A new rollout (or a retry) is analysed from scratch."""
    st.analysis, st.breach_at, st.promoted_step = [], None, None


def _finish(st: ReleaseStatus, spec: ReleaseSpec, candidate: str, now: datetime, events: list[RecordEvent],
            downtime: float | None) -> None:
    _record(st, HistoryEntry(version=spec.version, revision=candidate, outcome=HistoryOutcome.SUCCEEDED,
                             started_at=st.started_at, finished_at=now,
                             duration_seconds=_seconds(st.started_at, now), downtime_seconds=downtime))
    st.stable_revision, st.stable_version = candidate, spec.version
    st.phase, st.weight, st.current_step = Phase.SUCCEEDED, 100, st.total_steps or st.current_step
    st.step_started_at = now
    st.downtime_seconds = downtime
    st.message = f"{spec.version} ({candidate}) is stable" + (
        f"; downtime {downtime:.1f}s" if downtime is not None else "")
    events.append(RecordEvent(Reason.SUCCEEDED, st.message))


def _previous(st: ReleaseStatus, wanted: str, observation: Observation) -> tuple[str, str | None] | None:
    """The revision an undo goes back to: the one named, else the last stable one before."""
    for entry in reversed(st.history):
        revision = entry.revision
        # The spec's own revision is not "previous": `retry` rolls it out again.
        if entry.outcome != HistoryOutcome.SUCCEEDED or revision in (None, st.stable_revision, st.revision):
            continue
        if revision in observation.revisions and (not wanted or wanted == revision):
            return revision, entry.version
    return None


def _expired(st: ReleaseStatus, candidate: str, observation: Observation, replicas: dict[str, int]) -> list[str]:
    """Scaled-down revisions beyond the history limit, oldest first, once their pods are gone."""
    keep = {candidate, st.stable_revision}
    recent = [e.revision for e in reversed(st.history) if e.revision and e.revision not in keep]
    keep.update(list(dict.fromkeys(recent))[:REVISION_HISTORY_LIMIT])
    return sorted(r for r, s in observation.revisions.items()
                  if r not in keep and replicas.get(r, 0) == 0 and s.replicas == 0 and s.pods == 0)


def _record(st: ReleaseStatus, entry: HistoryEntry) -> None:
    st.history = [*st.history, entry][-HISTORY_LIMIT:]


def _note_step(before: ReleaseStatus, st: ReleaseStatus, planned: int) -> None:
    """Keeps `status.stepStarts`: the step this tick began, if it began one. Written with the
    status that begins it, so the closing record can take it from there after a crash."""
    if st.revision != before.revision:
        st.step_starts = []
    if st.phase not in (Phase.PROGRESSING, Phase.PAUSED) or st.current_step is None or st.step_started_at is None:
        return
    last = st.step_starts[-1] if st.step_starts else None
    if last is not None and (last.step, last.at) == (st.current_step, st.step_started_at):
        return
    if last is not None and st.current_step < last.step:
        st.step_starts = []  # a retry: the rollout begins again from its first step
    st.step_starts = [*st.step_starts, StepStart(step=st.current_step, at=st.step_started_at)][-(planned + 2):]


def _seconds(start: datetime | None, end: datetime) -> float | None:
    return max((end - start).total_seconds(), 0.0) if start else None


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


def _conditions(st: ReleaseStatus, generation: int, now: datetime) -> None:
    """Ready/Progressing/Degraded from the phase, in kstatus form; transition times only move
    when a condition's status does."""
    phase = st.phase or Phase.PENDING
    values = PHASE_CONDITIONS[phase]
    types = (ConditionType.READY, ConditionType.PROGRESSING, ConditionType.DEGRADED)
    conditions: list[Condition] = []
    for type_, value in zip(types, values, strict=True):
        status = ConditionStatus.TRUE if value else ConditionStatus.FALSE
        old = st.condition(type_)
        since = old.last_transition_time if old and old.status == status and old.last_transition_time else now
        conditions.append(Condition(type=type_, status=status, reason=phase.value, message=st.message,
                                    last_transition_time=since, observed_generation=generation))
    st.conditions = conditions
