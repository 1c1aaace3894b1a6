"""Measured traffic convergence (`trafficRouting.verify`) in the pure core: a step that set a
weight ends, and the revision traffic left loses its pods, only once the measured share matches;
a share that never does rolls back with `TrafficNotConverged`."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from glideslope.api import Phase, parse_spec
from glideslope.core.decide import convergence, decide, wake_at
from glideslope.core.decide.tick import Tick
from glideslope.core.model import Observation, Reason, RevisionState, TrafficSample
from glideslope.core.revision import revision_of
from tests.unit.fakes import T0, Run, make_spec, stable_run

pytestmark = pytest.mark.unit

RATE = 50.0
STEPS: dict[str, Any] = {"type": "Canary", "canary": {"steps": [
    {"setWeight": 20}, {"pause": {"duration": "2s"}}, {"setWeight": 60}, {"pause": {"duration": "2s"}}]}}


def verified(strategy: dict[str, Any], *, router: bool = True, tolerance: int = 5, timeout: int = 30,
             **kwargs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {**strategy, "canary": dict(strategy["canary"])}
    routing: dict[str, Any] = {"gatewayAPI": {"httpRoute": "web"}} if router else {}
    out["canary"]["trafficRouting"] = {**routing, "verify": {"tolerance": tolerance, "timeoutSeconds": timeout}}
    return out


class Lagging:
    """A router that applies a written weight `lag` seconds late (never, when frozen), measured
    exactly: the share the core is shown is what the route does now."""

    def __init__(self, run: Run, lag: float, frozen_at: int | None = None) -> None:
        self.run, self.lag, self.frozen_at = run, lag, frozen_at
        self.written: list[tuple[float, int]] = [(0.0, 0)]
        self.clock = 0.0

    def effective(self) -> int:
        ripe = [w for at, w in self.written if self.clock - at >= self.lag]
        weight = ripe[-1] if ripe else self.written[0][1]
        if self.frozen_at is not None and weight > self.frozen_at:
            return self.frozen_at
        return weight

    def tick(self, commands: dict[str, str] | None = None) -> None:
        run = self.run
        share = self.effective()
        candidate = RATE * share / 100
        sample = TrafficSample(candidate, RATE - candidate, run.now)
        observation = dataclasses.replace(run.cluster.observe(commands), traffic=sample)
        decision = decide(run.spec, run.status, observation, run.now)
        run.cluster.apply(decision)
        run.status = decision.status
        traffic = run.cluster.traffic
        weight = 0 if traffic is None else traffic.weight
        if traffic is not None and traffic.active == traffic.preview:
            # Both Services on one revision: the route's weights no longer matter.
            weight = 100 if traffic.preview == revision_of(run.spec.template) else 0
        if weight != self.written[-1][1]:
            self.written.append((self.clock, weight))
        run.cluster.progress(run.speed)
        run.now += timedelta(seconds=1)
        self.clock += 1


@given(st.floats(0, 1e6), st.floats(0, 1e6))
def test_the_share_is_a_percentage_and_needs_enough_requests(candidate: float, stable: float) -> None:
    found = convergence.share(TrafficSample(candidate, stable, T0))
    if candidate + stable < convergence.MIN_RATE:
        assert found is None
    else:
        assert found is not None and 0.0 <= found <= 100.0
        assert found == pytest.approx(100 * candidate / (candidate + stable))


@pytest.mark.parametrize(("weight", "baseline"), [(20, 20), (50, 50), (80, 20), (20, 0)])
def test_the_baselines_requests_are_part_of_the_whole(weight: int, baseline: int) -> None:
    """The judge's baseline has its own revision label, so its rate is measured apart; the
    candidate's share is still of every request."""
    sample = TrafficSample(RATE * weight / 100, RATE * (100 - weight - baseline) / 100, T0,
                           baseline=RATE * baseline / 100)
    assert convergence.share(sample) == pytest.approx(weight)


def test_an_error_is_no_share() -> None:
    assert convergence.share(TrafficSample(None, None, T0, "Prometheus down")) is None
    assert convergence.share(TrafficSample(10.0, 40.0, T0, "one query failed")) is None


@given(st.floats(0, 100), st.floats(0, 100), st.integers(0, 50))
def test_converged_within_tolerance_and_drained_within_one_point(measured: float, weight: float,
                                                                 tolerance: int) -> None:
    ok = convergence.converged(measured, weight, tolerance)
    limit = min(tolerance, convergence.DRAINED_POINTS) if weight in (0.0, 100.0) else tolerance
    assert ok == (abs(measured - weight) <= limit)


@pytest.mark.parametrize("lag", [0, 4, 9])
def test_each_weight_waits_for_its_share_and_the_stable_keeps_its_pods_while_it_has_traffic(lag: int) -> None:
    run = stable_run(verified(STEPS))
    candidate, stable = revision_of(run.spec.template), run.status.stable_revision
    router = Lagging(run, lag)
    ended: list[tuple[int, int, int]] = []  # (step, weight, effective share) as each step ended
    for _ in range(300):
        step, weight, share = run.status.current_step, run.status.weight, router.effective()
        ours = run.status.revision == candidate  # (the first tick starts the rollout)
        router.tick()
        if ours and run.status.current_step != step:
            ended.append((step or 0, weight or 0, share))
        stable_pods = run.cluster.revisions[stable or ""].desired if stable in run.cluster.revisions else 0
        if stable_pods < run.spec.replicas:
            # Pods that traffic left go only once the route sends them (almost) nothing.
            assert 100 - router.effective() <= convergence.DRAINED_POINTS
        if run.status.phase == Phase.SUCCEEDED:
            break
    assert run.status.phase == Phase.SUCCEEDED, run.status.message
    assert [s for s, _, _ in ended] == [1, 2, 3, 4]  # the last one ends in success
    for step, weight, share in ended:
        if weight:  # a step that set a weight ended on a share within the tolerance of it
            assert abs(share - weight) <= 5, (step, weight, share)
    assert run.status.weight_set_at is None


def test_a_step_that_waits_for_traffic_says_so_and_shows_both_weights() -> None:
    run = stable_run(verified(STEPS))
    router = Lagging(run, 30)
    for _ in range(15):
        router.tick()
    assert run.status.phase == Phase.PROGRESSING and run.status.current_step == 1
    assert "waiting for traffic: 0% measured, weight 20% ± 5" in (run.status.message or "")
    assert run.status.weight == 20 and run.status.measured_weight == 0
    assert run.status.weight_display == "20 (0)"
    assert run.status.weight_set_at is not None
    # woken for the next measurement, and for the timeout
    due = wake_at(run.spec, run.status, run.now)
    assert due is not None and due <= run.now + timedelta(seconds=convergence.MEASURE_EVERY)


def test_a_frozen_route_rolls_back_with_traffic_not_converged_at_the_timeout() -> None:
    run = stable_run(verified(STEPS, timeout=20))
    stable = run.status.stable_revision
    router = Lagging(run, 0, frozen_at=20)
    seen: list[Reason] = []
    set_at = None
    for _ in range(120):
        router.tick()
        if run.status.weight == 60 and set_at is None:
            set_at = run.now - timedelta(seconds=1)
        seen += [e.reason for e in run.cluster.events if e.reason not in seen]
        if run.status.phase == Phase.ROLLED_BACK:
            break
    assert run.status.phase == Phase.ROLLED_BACK
    assert Reason.TRAFFIC_NOT_CONVERGED in seen
    event = next(e for e in run.cluster.events if e.reason == Reason.TRAFFIC_NOT_CONVERGED)
    assert event.warning and "20% measured" in event.message and "weight of 60%" in event.message
    assert run.status.history[-1].reason is not None and "did not converge" in run.status.history[-1].reason
    # both Services on the stable revision: it serves whatever the frozen route says
    assert run.cluster.traffic is not None
    assert run.cluster.traffic.active == stable and run.cluster.traffic.preview == stable
    assert set_at is not None and run.status.breach_at is not None
    assert timedelta(seconds=20) < run.status.breach_at - set_at <= timedelta(seconds=22)


def test_no_requests_never_converge() -> None:
    run = stable_run(verified(STEPS, timeout=10))
    for _ in range(40):
        sample = TrafficSample(0.0, 0.5, run.now)  # below MIN_RATE: says nothing
        decision = decide(run.spec, run.status, dataclasses.replace(run.cluster.observe(), traffic=sample), run.now)
        run.cluster.apply(decision)
        run.status = decision.status
        run.cluster.progress(run.speed)
        run.now += timedelta(seconds=1)
    assert run.status.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK)
    assert run.status.measured_weight is None
    assert "no measurement with enough requests" in (run.status.history[-1].reason or "")


def test_the_replica_ratio_is_measured_against_its_ready_pods() -> None:
    run = stable_run(verified(STEPS, router=False))
    candidate, stable = revision_of(run.spec.template), run.status.stable_revision
    assert convergence.verify_of(run.spec) is not None
    for _ in range(200):
        ready_c, ready_s = run.cluster.revisions.get(candidate), run.cluster.revisions.get(stable or "")
        c, s = (ready_c.ready if ready_c else 0), (ready_s.ready if ready_s else 0)
        # the Services split by ready pods, measured as such
        sample = TrafficSample(RATE * c / (c + s), RATE * s / (c + s), run.now) if c + s else None
        decision = decide(run.spec, run.status, dataclasses.replace(run.cluster.observe(), traffic=sample), run.now)
        run.cluster.apply(decision)
        run.status = decision.status
        assert run.cluster.traffic is not None and run.cluster.traffic.active is None  # no router: no pinning
        run.cluster.progress(run.speed)
        run.now += timedelta(seconds=1)
        if run.status.phase == Phase.SUCCEEDED:
            break
    assert run.status.phase == Phase.SUCCEEDED, run.status.message


def test_the_replica_ratio_counts_the_baselines_ready_pods() -> None:
    """Without a router the judge's baseline pods join the stable Service, so the candidate's
    expected share is of every Ready pod, theirs included."""
    body = make_spec(verified(STEPS, router=False)).to_dict()
    body["analysis"] = {"judge": {"baseline": True, "metrics": [{"name": "e", "query": "up"}]}}
    spec = parse_spec(body)
    candidate = revision_of(spec.template)
    status = Run(spec).status.model_copy(update={"phase": Phase.PROGRESSING, "revision": candidate,
                                                 "stable_revision": "old", "weight": 20})
    observation = Observation(1, {candidate: RevisionState(1, 1, 1), "old": RevisionState(4, 4, 4)},
                              baselines={"old": RevisionState(1, 1, 1)})
    assert convergence.expected(Tick.begin(spec, status, observation, T0)) == pytest.approx(100 / 6)


def test_without_verify_nothing_is_measured_or_waited_for() -> None:
    run = stable_run(STEPS, routed=True)
    run.until(Phase.SUCCEEDED)
    assert run.status.measured_weight is None and run.status.weight_set_at is None
    assert run.status.weight_display == "100"


def test_the_crd_model_bounds_verify() -> None:
    base = make_spec(STEPS).to_dict()
    for bad in ({"tolerance": 51}, {"tolerance": -1}, {"timeoutSeconds": 0}, {"timeoutSeconds": 3601},
                {"query": "x" * 9000}, {"query": ""}):
        body = {**base, "strategy": {**base["strategy"], "canary": {
            **base["strategy"]["canary"], "trafficRouting": {"verify": bad}}}}
        with pytest.raises(ValueError):
            parse_spec(body)
    body = {**base, "strategy": {**base["strategy"], "canary": {
        **base["strategy"]["canary"], "trafficRouting": {"verify": {}}}}}
    verify = convergence.verify_of(parse_spec(body))
    assert verify is not None and verify.tolerance == 5 and verify.timeout_seconds == 120
    assert 'revision="{{revision}}"' in verify.query and "http_requests_total" in verify.query


def test_without_automatic_rollback_it_pauses_and_a_paused_rollout_does_not_time_out() -> None:
    strategy = verified(STEPS, timeout=10)
    run = stable_run(strategy)
    run.spec = parse_spec({**run.spec.to_dict(), "rollback": {"automatic": False}})
    router = Lagging(run, 0, frozen_at=0)  # the route never moves
    for _ in range(30):
        router.tick()
        if run.status.paused_by is not None:
            break
    assert run.status.phase == Phase.PAUSED and "did not converge" in (run.status.paused_by or "")
    assert Reason.TRAFFIC_NOT_CONVERGED in [e.reason for e in run.cluster.events]
    assert run.status.weight_set_at is not None and run.status.current_step == 1
    for _ in range(30):  # paused: no rollback, however long
        router.tick()
    assert run.status.phase == Phase.PAUSED and run.status.history[-1].outcome != "RolledBack"
    router.frozen_at = None  # the route is fixed; a person resumes
    router.tick({"glideslope.dev/resume": "route fixed"})
    for _ in range(20):
        router.tick()
    assert run.status.current_step is not None and run.status.current_step > 1, run.status.message
