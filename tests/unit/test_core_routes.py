"""Header and mirror steps in the pure core: which routes hold at each step, that the candidate
has a pod before any route sends to it, and that none is left at full promotion or on a rollback."""

from __future__ import annotations

from typing import Any

import pytest

from glideslope.api import Phase
from glideslope.core.model import HeaderCondition, HeaderRoute, MirrorRoute, Routes, routes_at
from glideslope.core.revision import revision_of
from glideslope.core.strategies import canary
from tests.unit.fakes import make_spec, stable_run

pytestmark = pytest.mark.unit

BETA = {"setHeaderRoute": {"name": "beta", "match": [{"headerName": "x-beta", "headerValue": {"regex": "^y.*"}}]}}
SHADOW = {"setMirrorRoute": {"name": "shadow", "percentage": 30}}
ROUTED: dict[str, Any] = {"type": "Canary", "canary": {"steps": [
    BETA, SHADOW, {"pause": {}},
    {"setMirrorRoute": {"name": "shadow"}},  # removes it
    {"setWeight": 40}, {"pause": {}},
    {"setHeaderRoute": {"name": "beta"}},  # removes it
    {"pause": {}},
]}}
EXPECTED_BETA = HeaderRoute("beta", (HeaderCondition("x-beta", "regex", "^y.*"),))


def test_routes_at_each_step_the_last_of_a_name_winning() -> None:
    steps = canary.plan(make_spec(ROUTED, routed=True))
    both = Routes((EXPECTED_BETA,), (MirrorRoute("shadow", 30),))
    assert [routes_at(steps, i) for i in range(len(steps))] == [
        Routes((EXPECTED_BETA,)), both, both,
        Routes((EXPECTED_BETA,)), Routes((EXPECTED_BETA,)), Routes((EXPECTED_BETA,)),
        Routes(), Routes(),
        Routes(),  # full promotion: none
    ]
    assert steps[0].describe() == "setHeaderRoute beta"


def test_routes_are_applied_once_the_candidate_has_a_pod_and_cleared_at_full_promotion() -> None:
    run = stable_run(ROUTED, routed=True)
    candidate = revision_of(run.spec.template)
    applied: list[Routes] = []
    for i in range(200):
        pods = run.cluster.revisions.get(candidate)
        ready_before = pods.ready if pods else 0
        # A command is obeyed once while its annotation stays: every other tick goes without it.
        promote = run.status.phase == Phase.PAUSED and i % 2 == 0
        run.tick({"glideslope.dev/promote": "step"} if promote else None)
        traffic = run.cluster.traffic
        if traffic is not None and traffic.routes and run.status.revision == candidate:
            # Decided on what was Ready then: a route never sends to a candidate without a pod.
            assert ready_before >= 1
            applied.append(traffic.routes)
        if run.status.phase == Phase.SUCCEEDED:
            break
    assert run.status.phase == Phase.SUCCEEDED
    assert Routes((EXPECTED_BETA,), (MirrorRoute("shadow", 30),)) in applied
    assert Routes((EXPECTED_BETA,)) in applied
    assert run.cluster.traffic is not None and run.cluster.traffic.routes == Routes()


def test_a_rollback_clears_the_routes() -> None:
    run = stable_run(ROUTED, routed=True)
    run.until(Phase.PAUSED)
    assert run.cluster.traffic is not None and run.cluster.traffic.routes
    run.tick({"glideslope.dev/abort": "bad"})
    assert run.status.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK)
    assert run.cluster.traffic is not None and run.cluster.traffic.routes == Routes()


def test_without_a_router_the_core_sends_no_routes() -> None:
    # The CRD refuses such a plan; were one to get through, the replica ratio has nothing to route.
    run = stable_run({"type": "Canary", "canary": {"steps": [BETA, {"pause": {}}]}})
    run.until(Phase.PAUSED)
    assert run.cluster.traffic is not None and run.cluster.traffic.routes == Routes()
