"""Canary: plan, replica arithmetic (table), and rollouts under random pod speeds and crashes."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glideslope.api import Phase
from glideslope.core.decide import plan
from glideslope.core.model import ScaleRevision, StepKind
from glideslope.core.revision import revision_of
from glideslope.core.strategies.canary import candidate_pods
from tests.unit.fakes import CANARY, Pods, Run, make_spec, stable_run, with_image

pytestmark = pytest.mark.unit


def test_plan_ends_with_full_promotion() -> None:
    steps = plan(make_spec(CANARY))
    assert [s.kind for s in steps] == [StepKind.SET_WEIGHT, StepKind.PAUSE, StepKind.SET_WEIGHT,
                                       StepKind.ANALYSIS, StepKind.PROMOTE]
    assert steps[1].seconds == 5 and steps[3].seconds == 3


@pytest.mark.parametrize(("replicas", "weight", "pods"), [
    (4, 0, 0), (4, 10, 1), (4, 25, 1), (4, 50, 2), (4, 51, 3), (4, 100, 4), (1, 1, 1), (10, 33, 4), (0, 50, 0),
])
def test_candidate_pods(replicas: int, weight: int, pods: int) -> None:
    assert candidate_pods(replicas, weight) == pods


@pytest.mark.parametrize("routed", [False, True])
def test_v1_to_v2_visits_every_step_in_order(routed: bool) -> None:
    run = stable_run(CANARY, routed=routed)
    run.until(Phase.SUCCEEDED)
    assert run.steps_seen == sorted(run.steps_seen)
    assert set(run.steps_seen) == {1, 2, 3, 4, 5}
    new = run.status.stable_revision or ""
    for _ in range(3):  # past the handover
        run.tick()
    assert run.cluster.revisions[new].desired == 4
    assert sum(p.desired for p in run.cluster.revisions.values()) == 4


def test_routed_weight_waits_for_candidate_pods() -> None:
    run = stable_run(CANARY, routed=True)
    run.speed = 0
    for _ in range(5):
        run.tick()
    assert run.cluster.traffic is not None and run.cluster.traffic.weight == 0
    assert run.status.weight == 0 and run.status.current_step == 1
    run.speed = 1
    run.tick()
    run.tick()
    assert run.cluster.traffic.weight == 25


@settings(max_examples=60, deadline=None)
@given(replicas=st.integers(1, 6), speed=st.integers(1, 3), routed=st.booleans(),
       crashes=st.lists(st.tuples(st.booleans(), st.booleans()), min_size=200, max_size=200))
def test_rollout_never_drops_serving_pods_and_never_skips(replicas: int, speed: int, routed: bool,
                                                         crashes: list[tuple[bool, bool]]) -> None:
    run = Run(make_spec(CANARY, replicas=replicas, routed=routed), speed=speed)
    run.until(Phase.SUCCEEDED)
    run.deploy(with_image(run.spec, "app:2"))
    for lose_actions, lose_status in crashes:
        if run.status.phase == Phase.SUCCEEDED and run.status.revision == run.status.stable_revision:
            break
        # A crash loses the actions or the status write of a tick, never both a tick's halves
        # out of order; the invariant is checked inside tick().
        run.tick(lose_actions=lose_actions and lose_status, lose_status=lose_status)
    run.until(Phase.SUCCEEDED, limit=300)
    seen = [s for s in run.steps_seen if s]
    assert all(b - a in (0, 1) for a, b in itertools.pairwise(seen)), seen


@settings(max_examples=40, deadline=None)
@given(replicas=st.integers(1, 6), ticks=st.integers(0, 30))
def test_decide_is_idempotent(replicas: int, ticks: int) -> None:
    """Deciding again on the same observation and status gives the same decision."""
    from glideslope.core.decide import decide

    run = stable_run(CANARY, replicas=replicas)
    for _ in range(ticks):
        run.tick()
    obs = run.cluster.observe()
    first = decide(run.spec, run.status, obs, run.now)
    second = decide(run.spec, run.status, obs, run.now)
    assert first == second
    # Re-applying the first decision's actions changes nothing in the cluster.
    run.cluster.apply(first)
    snapshot = {r: (p.desired, p.ready) for r, p in run.cluster.revisions.items()}
    run.cluster.apply(first)
    assert snapshot == {r: (p.desired, p.ready) for r, p in run.cluster.revisions.items()}


@pytest.mark.parametrize("routed", [False, True])
def test_a_step_is_written_as_its_next_tick_says_it(routed: bool) -> None:
    """Advancing writes the next step's message as that step's own first tick computes it, so a
    tick right after a transition, with nothing changed, has nothing to write (one status write
    per step, not two)."""
    from glideslope.core.decide import decide

    run = stable_run(CANARY, routed=routed)
    advanced = 0
    for _ in range(100):
        if run.status.phase == Phase.SUCCEEDED and run.status.revision == revision_of(run.spec.template):
            break
        before = run.status.current_step
        decision = decide(run.spec, run.status, run.cluster.observe(), run.now)
        run.cluster.apply(decision)
        run.status = decision.status
        if before is not None and run.status.current_step != before and run.status.phase == Phase.PROGRESSING:
            advanced += 1
            again = decide(run.spec, run.status, run.cluster.observe(), run.now + timedelta(milliseconds=20))
            assert (again.status.current_step, again.status.phase, again.status.message) == (
                run.status.current_step, run.status.phase, run.status.message)
        run.cluster.progress(run.speed)
        run.now += timedelta(seconds=1)
    assert advanced >= 3


def test_the_tick_that_starts_a_rollout_never_finishes_its_first_step() -> None:
    """Even when the candidate's pods are already Ready (its Deployment was left from an earlier
    rollout), step 1 is written to status before a later tick ends it."""
    run = stable_run(CANARY, replicas=4)
    candidate = revision_of(run.spec.template)
    run.cluster.revisions[candidate] = Pods(4, 4, 4)
    run.tick()
    assert (run.status.phase, run.status.current_step) == (Phase.PROGRESSING, 1)
    run.tick()
    assert run.status.current_step == 2


def test_a_new_steps_replicas_are_applied_in_the_tick_that_starts_it() -> None:
    """The pause before setWeight 50 ends, and that same tick asks for the second candidate pod:
    a new step's pods never wait for the next tick (behind a queue of other Releases)."""
    run = stable_run(CANARY, replicas=4)
    candidate = revision_of(run.spec.template)
    for _ in range(50):
        decision = run.tick()
        if run.status.current_step == 3:
            break
    else:
        raise AssertionError(f"never reached step 3: {run.status.message}")
    assert ScaleRevision(candidate, 2) in decision.actions
    assert run.status.weight == 25  # raised once the pods carry it, as the next tick would
