"""BlueGreen: green (the candidate) runs beside blue behind the preview Service; promotion
switches the stable Service's selector in one write; blue stays at full size for the
scale-down delay, so an abort or undo in that time is one selector write back.
"""

from __future__ import annotations

from glideslope.api import Phase, ReleaseSpec
from glideslope.core.model import Step, StepKind, Target, View


def plan(spec: ReleaseSpec) -> tuple[Step, ...]:
    bg = spec.strategy.blue_green
    auto = bg.auto_promotion_seconds if bg else None
    delay = bg.scale_down_delay_seconds if bg else 0
    return (
        Step(StepKind.PREVIEW),
        Step(StepKind.PAUSE, seconds=None if auto is None else float(auto)),
        Step(StepKind.SWITCH, weight=100),
        Step(StepKind.SCALE_DOWN_DELAY, seconds=float(delay)),
    )


def pins_active(spec: ReleaseSpec) -> bool:
    return True


def takes_old_down_first(spec: ReleaseSpec) -> bool:
    return False


def full_step(steps: tuple[Step, ...]) -> int:
    return next(i for i, s in enumerate(steps) if s.kind is StepKind.SWITCH)


def preview_replicas(spec: ReleaseSpec) -> int:
    bg = spec.strategy.blue_green
    return bg.preview_replicas if bg and bg.preview_replicas is not None else spec.replicas


def target(spec: ReleaseSpec, steps: tuple[Step, ...], index: int, view: View) -> Target:
    step = steps[index]
    total = spec.replicas
    ready = view.observed.ready(view.candidate)
    if step.kind is StepKind.PREVIEW or step.kind is StepKind.PAUSE:
        wanted = preview_replicas(spec)
        if ready < wanted:
            return Target(stable_replicas=total, candidate_replicas=wanted, active=view.stable, weight=0, done=False,
                          message=f"preview: {ready}/{wanted} green pods ready")
        if step.kind is StepKind.PREVIEW:
            return Target(stable_replicas=total, candidate_replicas=wanted, active=view.stable, weight=0, done=True,
                          message="preview: green ready")
        if step.seconds is None:
            return Target(stable_replicas=total, candidate_replicas=wanted, active=view.stable, weight=0, done=False,
                          message="green ready: waiting for promote", phase=Phase.PAUSED)
        left = max(step.seconds - view.elapsed, 0.0)
        return Target(stable_replicas=total, candidate_replicas=wanted, active=view.stable, weight=0, done=left <= 0,
                      message=f"green ready: promotion {view.until(step.seconds)}")
    if step.kind is StepKind.SWITCH:
        # The selector moves only once green can carry all the traffic.
        if ready < total:
            return Target(stable_replicas=total, candidate_replicas=total, active=view.stable, weight=0, done=False,
                          message=f"switch: {ready}/{total} green pods ready")
        return Target(stable_replicas=total, candidate_replicas=total, active=view.candidate, weight=100, done=True,
                      message="switched the stable Service to green")
    left = max((step.seconds or 0.0) - view.elapsed, 0.0)
    return Target(stable_replicas=total, candidate_replicas=total, active=view.candidate, weight=100, done=left <= 0,
                  message=f"blue kept for instant rollback: scaled down {view.until(step.seconds or 0.0)}")
