"""BigBang: the stable revision goes to zero, and once its pods are gone the candidate comes
up. There is downtime by design; the step's message says so and its length is recorded.
"""

from __future__ import annotations

from glideslope.api import ReleaseSpec
from glideslope.core.model import Step, StepKind, Target, View


def plan(spec: ReleaseSpec) -> tuple[Step, ...]:
    return (Step(StepKind.REPLACE, weight=100),)


def pins_active(spec: ReleaseSpec) -> bool:
    return False


def takes_old_down_first(spec: ReleaseSpec) -> bool:
    return True


def full_step(steps: tuple[Step, ...]) -> int:
    return 0


def target(spec: ReleaseSpec, steps: tuple[Step, ...], index: int, view: View) -> Target:
    total = spec.replicas
    # Every other revision counts, a superseded candidate's pods included.
    old_pods = sum(s.pods for r, s in view.observed.revisions.items() if r != view.candidate)
    # Once the candidate was asked for, keep it even if an old pod reappears (a restart).
    started = view.observed.replicas(view.candidate) > 0
    if old_pods > 0 and not started:
        return Target(stable_replicas=0, candidate_replicas=0, active=None, weight=0, done=False,
                      message=f"downtime window: waiting for {old_pods} old pods to terminate")
    ready = view.observed.ready(view.candidate)
    if ready < total:
        return Target(stable_replicas=0, candidate_replicas=total, active=None, weight=0, done=False,
                      message=f"downtime window: {ready}/{total} pods of {view.candidate} ready")
    return Target(stable_replicas=0, candidate_replicas=total, active=None, weight=100, done=True,
                  message=f"{view.candidate} serving")
