"""Canary: shift traffic to the candidate step by step, then promote it fully.

Without a router the weight is the candidate's share of replicas, and the stable revision is
only scaled down by as many pods as the candidate has Ready. With a router (Gateway API,
Istio, ingress-nginx) the stable revision stays at full size until the end and the weight moves
on the route, only once the candidate has the pods for it. setHeaderRoute and setMirrorRoute
steps (routers only) add named routes to the candidate beside the weight (`routes_at`).
"""

from __future__ import annotations

import math

from glideslope.api import Phase, ReleaseSpec, parse_duration
from glideslope.core.model import (
    HeaderCondition,
    HeaderRoute,
    MirrorRoute,
    Step,
    StepKind,
    Target,
    View,
    routes_at,
)
from glideslope.core.services import routed


def plan(spec: ReleaseSpec) -> tuple[Step, ...]:
    canary = spec.strategy.canary
    steps: list[Step] = []
    for s in canary.steps if canary else []:
        if s.set_weight is not None:
            steps.append(Step(StepKind.SET_WEIGHT, weight=s.set_weight))
        elif s.pause is not None:
            seconds = parse_duration(s.pause.duration).total_seconds() if s.pause.duration else None
            steps.append(Step(StepKind.PAUSE, seconds=seconds))
        elif s.analysis is not None:
            steps.append(Step(StepKind.ANALYSIS, seconds=parse_duration(s.analysis.duration).total_seconds()))
        elif s.set_header_route is not None:
            match = tuple(HeaderCondition(m.header_name, kind, value) for m in s.set_header_route.match or ()
                          for kind, value in m.header_value.model_dump(exclude_none=True).items())
            steps.append(Step(StepKind.HEADER_ROUTE, route=HeaderRoute(s.set_header_route.name, match)))
        elif s.set_mirror_route is not None:
            route = MirrorRoute(s.set_mirror_route.name, s.set_mirror_route.percentage or 0)
            steps.append(Step(StepKind.MIRROR_ROUTE, route=route))
    # Full promotion is a step of its own, so `promote full` has a place to jump to.
    steps.append(Step(StepKind.PROMOTE, weight=100))
    return tuple(steps)


def pins_active(spec: ReleaseSpec) -> bool:
    return routed(spec)


def takes_old_down_first(spec: ReleaseSpec) -> bool:
    return False


def full_step(steps: tuple[Step, ...]) -> int:
    return len(steps) - 1


def weight_at(steps: tuple[Step, ...], index: int) -> int:
    """The weight a step holds: the last setWeight at or before it."""
    for step in reversed(steps[: index + 1]):
        if step.weight is not None:
            return step.weight
    return 0


def candidate_pods(replicas: int, weight: int) -> int:
    """Candidate pods for a weight: rounded up, so any weight above 0 gets at least one pod."""
    return replicas if weight >= 100 else math.ceil(replicas * weight / 100)


def target(spec: ReleaseSpec, steps: tuple[Step, ...], index: int, view: View) -> Target:
    step = steps[index]
    total = spec.replicas
    weight = weight_at(steps, index)
    wanted = candidate_pods(total, weight)
    routes = routes_at(steps, index)
    if routes and total > 0:
        # A header or mirror route sends requests to the candidate whatever the weight.
        wanted = max(wanted, 1)
    ready = view.observed.ready(view.candidate)
    has_pods = ready >= wanted
    # Lowering the weight is always safe; raising it waits for the pods to carry it.
    applied = weight if has_pods or weight <= view.weight else view.weight
    # Likewise new routes: until then, those of the step before (which had their pods).
    routes = routes if has_pods else routes_at(steps, index - 1)
    if routed(spec):
        stable, active = total, view.stable
    else:
        stable, active = max(total - wanted, total - ready, 0), None
    label = f"{step.describe()}"
    if not has_pods:
        return Target(stable_replicas=stable, candidate_replicas=wanted, active=active, weight=applied,
                      routes=routes, done=False,
                      message=f"{label}: {ready}/{wanted} candidate pods ready")
    if step.kind in (StepKind.SET_WEIGHT, StepKind.PROMOTE, StepKind.HEADER_ROUTE, StepKind.MIRROR_ROUTE):
        return Target(stable_replicas=stable, candidate_replicas=wanted, active=active, weight=applied,
                      routes=routes, done=True,
                      message=f"{label}: done")
    if step.seconds is None:
        return Target(stable_replicas=stable, candidate_replicas=wanted, active=active, weight=applied,
                      routes=routes, done=False,
                      message=f"paused at weight {weight}: waiting for promote", phase=Phase.PAUSED)
    left = max(step.seconds - view.elapsed, 0.0)
    return Target(stable_replicas=stable, candidate_replicas=wanted, active=active, weight=applied,
                      routes=routes, done=left <= 0,
                  message=f"{label}: {view.until(step.seconds)}")
