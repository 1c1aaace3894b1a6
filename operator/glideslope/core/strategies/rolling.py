"""Rolling: replace the stable revision in batches of maxSurge (+ maxUnavailable) pods.

Ready capacity never drops below replicas - maxUnavailable: the stable revision only loses
pods the candidate has Ready (plus maxUnavailable), and the candidate only grows while the
total stays within replicas + maxSurge.
"""

from __future__ import annotations

import math

from glideslope.api import ReleaseSpec, parse_duration, scaled_value
from glideslope.core.model import Step, StepKind, Target, View


def budget(spec: ReleaseSpec) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) in pods. Never both zero (as Deployments), and at least one
    pod always stays ready: the invariant outranks a maxUnavailable of 100%."""
    rolling = spec.strategy.rolling
    surge_spec: int | str = rolling.max_surge if rolling else "25%"
    unavailable_spec: int | str = rolling.max_unavailable if rolling else 0
    surge = scaled_value(surge_spec, spec.replicas, round_up=True)
    unavailable = scaled_value(unavailable_spec, spec.replicas, round_up=False)
    unavailable = min(unavailable, max(spec.replicas - 1, 0))
    if surge == 0 and unavailable == 0:
        if spec.replicas > 1:
            unavailable = 1
        else:
            surge = 1
    return surge, unavailable


def plan(spec: ReleaseSpec) -> tuple[Step, ...]:
    surge, unavailable = budget(spec)
    batch = surge + unavailable
    rolling = spec.strategy.rolling
    pause = rolling.pause_between_batches if rolling else None
    seconds = parse_duration(pause).total_seconds() if pause else 0.0
    count = max(math.ceil(spec.replicas / batch), 1)
    steps: list[Step] = []
    for i in range(1, count + 1):
        if steps and seconds > 0:
            steps.append(Step(StepKind.PAUSE, seconds=seconds))
        steps.append(Step(StepKind.BATCH, replicas=min(spec.replicas, i * batch)))
    return tuple(steps)


def pins_active(spec: ReleaseSpec) -> bool:
    return False


def takes_old_down_first(spec: ReleaseSpec) -> bool:
    return False


def full_step(steps: tuple[Step, ...]) -> int:
    return len(steps) - 1


def target(spec: ReleaseSpec, steps: tuple[Step, ...], index: int, view: View) -> Target:
    step = steps[index]
    # A pause holds the batch before it.
    batch = next(s for s in reversed(steps[: index + 1]) if s.kind is StepKind.BATCH)
    goal = batch.replicas or 0
    total = spec.replicas
    surge, unavailable = budget(spec)
    ready = view.observed.ready(view.candidate)
    stable = max(total - goal, total - unavailable - ready, 0)
    candidate = max(min(goal, total + surge - stable), 0)
    weight = min(ready, total) * 100 // total if total else 100
    if ready < goal:
        return Target(stable_replicas=stable, candidate_replicas=candidate, active=None, weight=weight, done=False,
                      message=f"{batch.describe()}: {ready}/{goal} pods ready")
    if step.kind is StepKind.BATCH:
        return Target(stable_replicas=stable, candidate_replicas=candidate, active=None, weight=weight, done=True,
                      message=f"{batch.describe()}: done")
    left = max((step.seconds or 0.0) - view.elapsed, 0.0)
    return Target(stable_replicas=stable, candidate_replicas=candidate, active=None, weight=weight, done=left <= 0,
                  message=f"pause between batches: {view.until(step.seconds or 0.0)}")
