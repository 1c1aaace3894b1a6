"""`decide`: from spec, status, observation and `now` to actions and the new status.

Each call computes the whole desired state (replicas of every revision, Services, weights)
from `status`, so a restarted operator resumes where status says, and at most one step is
taken per call, so none is skipped. Commands (annotations) are consumed whatever happens, and
obeyed once: `status.obeyedCommands` records them until they are removed.

A call is one `Tick` (tick.py) through its phases, each in a module of its own: the commands
(commands.py), the triggers' verdict (verdicts.py), the gates (gates.py), then which revisions
run and serve: the steps and the validation window (stepping.py), or the stable revision and
the rollback (rollback.py); what the status keeps of the past is history.py.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from glideslope.api import (
    FINAL_PHASES,
    ROLLING_OUT_PHASES,
    Phase,
    ReleaseSpec,
    ReleaseStatus,
    gates_display,
    parse_duration,
    step_display,
    weight_display,
)
from glideslope.core.analysis import Verdict, next_due
from glideslope.core.decide import commands, convergence, gates, history, rollback, stepping, verdicts
from glideslope.core.decide.commands import OBEYED_VALUE_LIMIT
from glideslope.core.decide.history import PHASE_CONDITIONS, REVISION_HISTORY_LIMIT
from glideslope.core.decide.tick import HANDOVER_SECONDS, Tick
from glideslope.core.gates import checklist
from glideslope.core.judge import baseline_replicas, baseline_weight, next_look
from glideslope.core.model import (
    Action,
    Decision,
    DeleteRevision,
    Observation,
    RestartRevision,
    ScaleBaseline,
    ScaleRevision,
    SetTraffic,
    Step,
)
from glideslope.core.revision import revision_of
from glideslope.core.strategies import strategy_for
from glideslope.core.triggers import stage as analysis_stage

__all__ = [
    "HANDOVER_SECONDS",
    "OBEYED_VALUE_LIMIT",
    "PHASE_CONDITIONS",
    "REVISION_HISTORY_LIMIT",
    "Tick",
    "decide",
    "plan",
    "wake_at",
]


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
        looked = next_look(spec, status, revision_of(spec.template))
        if looked is not None:
            deadlines.append(looked)
    verify = convergence.verify_of(spec)
    if verify is not None and status.weight_set_at is not None and status.phase in ROLLING_OUT_PHASES:
        # The next measurement of a weight waiting for its share, and when it times out.
        deadlines += [now + timedelta(seconds=convergence.MEASURE_EVERY),
                      status.weight_set_at + timedelta(seconds=verify.timeout_seconds)]
    upcoming = [d for d in deadlines if d > now]
    return min(upcoming) if upcoming else None


def decide(spec: ReleaseSpec, status: ReleaseStatus, observation: Observation, now: datetime) -> Decision:
    """The actions that bring the cluster one tick closer to `spec`, and the status to write."""
    tick = Tick.begin(spec, status, observation, now)
    # A rollout's first step is never finished in the tick that starts it: the step is written
    # to status (and so survives a crash) before anything it ends can happen.
    starting = _begin(tick)
    consumed = commands.obey(tick)
    found = verdicts.judge(tick)
    gates.run(tick)
    convergence.measure(tick)
    _serve(tick, found, advance=not starting)
    convergence.note_change(tick)
    _older(tick)
    actions = _actions(tick)
    _summarise(tick)
    return Decision(actions, tick.status, consumed)


def _begin(tick: Tick) -> bool:
    """Start a rollout if the template is new (True then); keep the version a rollout shows current."""
    status = tick.status
    status.total_steps = len(tick.steps)
    starting = status.revision != tick.candidate
    if starting:
        stepping.start(tick)
    elif status.version != tick.spec.version and status.phase in ROLLING_OUT_PHASES:
        status.version = tick.spec.version
    checklist.sync(tick.spec, status, tick.now, rolling_out=status.phase in ROLLING_OUT_PHASES)
    return starting


def _serve(tick: Tick, found: Verdict | None, *, advance: bool) -> None:
    """Which revisions run, at which size, and which one serves: by phase."""
    status, spec, candidate = tick.status, tick.spec, tick.candidate
    stable = status.stable_revision
    started = status.step_started_at
    tick.settled = started is None or (tick.now - started).total_seconds() >= HANDOVER_SECONDS
    if stable is None and status.phase in (Phase.GATED, Phase.FAILED):
        return  # A first rollout held (or stopped) by its preDeploy gates: nothing exists yet.
    if stable is None:
        _first_rollout(tick)
    elif status.phase == Phase.GATED:
        # Nothing of the candidate is created until its preDeploy gates pass.
        tick.replicas[stable] = spec.replicas
        tick.traffic = SetTraffic(stable if tick.pinned else None, stable, 0)
    elif status.phase == Phase.VALIDATING and candidate != stable:
        stepping.validate(tick, stable, found)
    elif status.phase in ROLLING_OUT_PHASES and candidate != stable:
        stepping.step(tick, stable, found, advance=advance)
    else:
        rollback.serve_stable(tick, stable)


def _first_rollout(tick: Tick) -> None:
    """Nothing serves yet, so there is nothing to be careful of."""
    spec, status, candidate = tick.spec, tick.status, tick.candidate
    ready = tick.observation.ready(candidate)
    tick.replicas[candidate] = spec.replicas
    tick.traffic = SetTraffic(candidate if tick.pinned else None, candidate, 0)
    status.message = f"first rollout: {ready}/{spec.replicas} pods ready"
    if ready >= spec.replicas:
        stepping.finish(tick, candidate, downtime=None)


def _older(tick: Tick) -> None:
    """Older revisions (a superseded candidate) keep their pods until the current ones carry
    the load, so superseding never drops capacity; unless the strategy takes the old revisions
    down first anyway."""
    observation, spec = tick.observation, tick.spec
    serving = sum(observation.ready(r) for r in tick.replicas)
    keep = (serving < spec.replicas or not tick.settled) and not tick.strategy.takes_old_down_first(spec)
    for revision in observation.revisions:
        if revision not in tick.replicas:
            tick.replicas[revision] = observation.replicas(revision) if keep else 0


def _actions(tick: Tick) -> tuple[Action, ...]:
    """In the order to apply them: revisions growing (or created), then the traffic onto them,
    then revisions shrinking, then restarts of those that keep pods, then the deletions, then
    the announcements."""
    observation = tick.observation

    def grows(revision: str, replicas: int) -> bool:
        return replicas > observation.replicas(revision) or revision not in observation.revisions

    scaled = sorted(tick.replicas.items())
    baselines = _baselines(tick)  # before the traffic: it carries the baseline's weight
    actions: list[Action] = [ScaleRevision(r, n) for r, n in scaled if grows(r, n)]
    if tick.traffic is not None:
        actions.append(tick.traffic)
    actions += [ScaleRevision(r, n) for r, n in scaled if not grows(r, n)]
    if tick.restart is not None:
        actions += [RestartRevision(r, tick.restart) for r, n in scaled if n > 0 and r in observation.revisions]
    actions += [DeleteRevision(r) for r in history.expired(tick.status, tick.candidate, observation, tick.replicas)]
    # After the traffic: a route names the baseline's Service before its pods come, and no
    # longer does before they go.
    actions += baselines
    actions += tick.events
    return tuple(actions)


def _baselines(tick: Tick) -> list[ScaleBaseline]:
    """The judge's baseline: as many pods of the stable revision as the candidate has (started
    with it), while the rollout is judged against it; any other baseline goes. Behind a router
    (the stable Service pinned to the stable revision) it has a Service of its own, and its
    share of the route (`judge.baseline_weight`) goes into `tick.traffic`; once traffic left it
    (full promotion, a rollback) its pods stay through the hand-over, as a candidate's do."""
    status, observation = tick.status, tick.observation
    stable = status.stable_revision
    wanted = baseline_replicas(tick.spec, status, tick.candidate, tick.replicas.get(tick.candidate, 0))
    seen = observation.baselines.get(stable) if stable is not None else None
    traffic = tick.traffic
    routed = tick.pinned and traffic is not None and stable is not None and traffic.active == stable
    if routed and traffic is not None and (wanted > 0 or (seen is not None and not tick.settled)):
        weight = baseline_weight(traffic.weight, seen.ready if seen else 0, tick.spec.replicas) if wanted else 0
        tick.traffic = dataclasses.replace(traffic, baseline=weight)
        wanted = wanted or (seen.replicas if seen else 0)
    out: list[ScaleBaseline] = []
    if stable is not None and wanted > 0 and (seen is None or seen.replicas != wanted):
        out.append(ScaleBaseline(stable, wanted))
    out += [ScaleBaseline(r, 0) for r in sorted(observation.baselines) if r != stable or wanted == 0]
    return out


def _summarise(tick: Tick) -> None:
    """What the status shows besides the decision: counts, displays, step starts, conditions."""
    status, observation, spec = tick.status, tick.observation, tick.spec
    status.observed_generation = observation.generation
    status.total_steps = len(tick.steps)
    status.step_display = step_display(status.current_step, status.total_steps)
    status.gates_display = gates_display(status.gates)
    status.weight_display = weight_display(status.weight, status.measured_weight)
    status.replicas = sum(s.pods for s in observation.revisions.values())
    status.ready_replicas = sum(s.ready for s in observation.revisions.values())
    status.selector = ",".join(f"{k}={v}" for k, v in sorted(spec.selector.match_labels.items()))
    history.note_step(tick.before, status, len(tick.steps))
    history.conditions(status, observation.generation, tick.now)
