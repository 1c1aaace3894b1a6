"""The statistical judge (core/judge.py): the test, the score, alpha spending over repeated
looks, the verdict's orders, the baseline's size, and the judge driving `decide`."""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glideslope.api import (
    Classification,
    Direction,
    HistoryOutcome,
    JudgeMetric,
    JudgeMetricStatus,
    JudgeSpec,
    JudgeStatus,
    JudgeVerdict,
    Phase,
    ReleaseSpec,
    Severity,
    Spending,
    parse_spec,
)
from glideslope.core import judge
from glideslope.core.analysis import Order, QueryTemplateError, Verdict
from glideslope.core.decide import decide, wake_at
from glideslope.core.model import Announce, Decision, ScaleBaseline, stable_weight
from glideslope.core.revision import revision_of
from glideslope.core.triggers import variables
from tests.unit.fakes import T0, Run

pytestmark = pytest.mark.unit

ERRORS = ('sum by (pod) (rate(http_requests_total{namespace="{{namespace}}",revision="{{sideRevision}}",'
          'role="{{sideRole}}",code="500"}[2s]))')


def metric(direction: str = "increase", tolerance: float = 0.0) -> JudgeMetric:
    return JudgeMetric(name="errors", query=ERRORS, direction=Direction(direction), tolerance=tolerance)


def normal(rng: random.Random, mean: float, n: int, sd: float = 1.0) -> list[float]:
    return [rng.gauss(mean, sd) for _ in range(n)]


# -- one metric --------------------------------------------------------------------------------


def test_a_clearly_worse_canary_is_high_and_an_equal_one_passes() -> None:
    rng = random.Random(1)
    base = normal(rng, 0.0, 60)
    high, p, _ = judge.compare(metric(), normal(rng, 1.5, 60), base, 0.01, 30)
    assert high == Classification.HIGH and p is not None and p < 1e-6
    same, p, _ = judge.compare(metric(), normal(rng, 0.0, 60), base, 0.01, 30)
    assert same == Classification.PASS and p is not None and p > 0.01


def test_direction_only_the_bad_way_counts() -> None:
    rng = random.Random(2)
    base, lower = normal(rng, 0.0, 60), normal(rng, -2.0, 60)
    assert judge.compare(metric("increase"), lower, base, 0.05, 30)[0] == Classification.PASS
    assert judge.compare(metric("decrease"), lower, base, 0.05, 30)[0] == Classification.LOW
    assert judge.compare(metric("either"), lower, base, 0.05, 30)[0] == Classification.LOW
    assert judge.compare(metric("either"), normal(rng, 2.0, 60), base, 0.05, 30)[0] == Classification.HIGH


def test_tolerance_absorbs_a_shift_smaller_than_it() -> None:
    rng = random.Random(3)
    base = normal(rng, 0.0, 200, sd=0.1)
    canary = [v + 0.2 for v in normal(rng, 0.0, 200, sd=0.1)]
    assert judge.compare(metric(tolerance=0.0), canary, base, 0.01, 30)[0] == Classification.HIGH
    assert judge.compare(metric(tolerance=0.5), canary, base, 0.01, 30)[0] == Classification.PASS


def test_too_few_samples_is_no_data_and_all_ties_are_no_evidence() -> None:
    assert judge.compare(metric(), [1.0] * 29, [0.0] * 100, 0.05, 30)[0] == Classification.NO_DATA
    classification, p, _ = judge.compare(metric(), [0.0] * 50, [0.0] * 50, 0.05, 30)
    assert classification == Classification.PASS and p == 1.0


def test_level_zero_never_rejects() -> None:
    """Past the horizon nothing is left to spend: the look shows, it cannot fail."""
    assert judge.compare(metric(), [10.0] * 50, [0.0] * 50, 0.0, 30)[0] == Classification.PASS


# -- alpha spending ------------------------------------------------------------------------------


@given(st.sampled_from(list(Spending)), st.floats(0.001, 0.5), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_spending_rises_from_nothing_to_alpha(spending: Spending, alpha: float, a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert judge.spent(spending, alpha, 0.0) == 0.0
    assert judge.spent(spending, alpha, 1.0) == pytest.approx(alpha, rel=1e-6)
    assert 0.0 <= judge.spent(spending, alpha, lo) <= judge.spent(spending, alpha, hi) + 1e-15 <= alpha + 1e-12


def test_pocock_spends_earlier_than_obrien_fleming() -> None:
    assert judge.spent(Spending.POCOCK, 0.05, 0.2) > 10 * judge.spent(Spending.OBRIEN_FLEMING, 0.05, 0.2)


def _rollout(rng: random.Random, spec: JudgeSpec, shift: float, looks: int = 10, per_look: int = 12) -> bool:
    """One simulated rollout: data grows by `per_look` samples a side between looks; True if any
    look fails it."""
    canary: list[float] = []
    baseline: list[float] = []
    status: JudgeStatus | None = None
    for k in range(1, looks + 1):
        canary += normal(rng, shift, per_look)
        baseline += normal(rng, 0.0, per_look)
        at = T0 + timedelta(seconds=30 * k)
        sides = {m.name: (judge.Side("c", tuple((float(i), v) for i, v in enumerate(canary))),
                          judge.Side("b", tuple((float(i), v) for i, v in enumerate(baseline))))
                 for m in spec.metrics}
        status = judge.look(spec, status, judge.Look(at, sides),
                            rollout_started=T0, horizon=30.0 * looks)
        if status.verdict == JudgeVerdict.FAIL:
            return True
    assert status is not None and status.alpha_spent <= spec.alpha + 1e-12
    return False


@pytest.mark.parametrize("spending", list(Spending))
def test_repeated_looks_keep_false_aborts_under_alpha(spending: Spending) -> None:
    """Ten looks at growing data from two equal revisions: the share of rollouts that any look
    fails stays under alpha (a naive test at 0.05 every look would fail about a fifth)."""
    spec = JudgeSpec(metrics=[metric()], min_samples=10, alpha=0.05, spending=spending)
    rng = random.Random(42)
    aborted = sum(_rollout(rng, spec, 0.0) for _ in range(300))
    assert aborted / 300 <= 0.05 + 0.02  # binomial slack at n=300


def test_repeated_looks_still_catch_a_real_regression() -> None:
    spec = JudgeSpec(metrics=[metric()], min_samples=10, alpha=0.05)
    rng = random.Random(7)
    assert sum(_rollout(rng, spec, 1.0) for _ in range(50)) >= 48


def test_a_look_without_data_spends_nothing() -> None:
    spec = JudgeSpec(metrics=[metric()], min_samples=30)
    few = judge.Look(T0 + timedelta(seconds=60), {"errors": (judge.Side("c", ((1.0, 0.1),)),
                                                             judge.Side("b", ((1.0, 0.1),)))})
    status = judge.look(spec, None, few, rollout_started=T0, horizon=600)
    assert status.verdict == JudgeVerdict.INCONCLUSIVE and status.alpha_spent == 0 and status.looks == 0
    assert status.metrics[0].classification == Classification.NO_DATA
    assert "minSamples is 30" in (status.metrics[0].message or "")


def test_a_failed_query_is_no_data_never_a_pass() -> None:
    spec = JudgeSpec(metrics=[metric()], min_samples=3)
    broken = judge.Look(T0 + timedelta(seconds=60), {"errors": (judge.Side("c", error="cannot reach Prometheus"),
                                                                judge.Side("b", ((1.0, 0.1),) * 5))})
    status = judge.look(spec, None, broken, rollout_started=T0, horizon=600)
    assert status.verdict == JudgeVerdict.INCONCLUSIVE
    assert status.metrics[0].message == "error: cannot reach Prometheus"


# -- score and verdict ----------------------------------------------------------------------------


def _rows(*classes: Classification) -> list[JudgeMetricStatus]:
    return [JudgeMetricStatus(name=f"m{i}", classification=c) for i, c in enumerate(classes)]


P, H, N = Classification.PASS, Classification.HIGH, Classification.NO_DATA


@pytest.mark.parametrize(("rows", "expected"), [
    ((P, P, P, P), (100, JudgeVerdict.PASS)),
    ((P, P, P, H), (75, JudgeVerdict.MARGINAL)),
    ((P, H), (50, JudgeVerdict.FAIL)),
    ((N, N), (None, JudgeVerdict.INCONCLUSIVE)),
    ((P, N), (100, JudgeVerdict.INCONCLUSIVE)),  # a pass needs every metric
    ((H, N), (0, JudgeVerdict.FAIL)),  # evidence of harm stands without the others
])
def test_score_as_kayenta(rows: tuple[Classification, ...], expected: tuple[int | None, JudgeVerdict]) -> None:
    assert judge.score(_rows(*rows), 90, 75) == expected


@pytest.mark.parametrize(("verdict", "severity", "automatic", "action", "promotable"), [
    (JudgeVerdict.PASS, Severity.CRITICAL, True, Order.CONTINUE, True),
    (JudgeVerdict.INCONCLUSIVE, Severity.CRITICAL, True, Order.CONTINUE, False),
    (JudgeVerdict.MARGINAL, Severity.CRITICAL, True, Order.PAUSE, False),
    (JudgeVerdict.FAIL, Severity.CRITICAL, True, Order.ROLLBACK, False),
    (JudgeVerdict.FAIL, Severity.CRITICAL, False, Order.PAUSE, False),
    (JudgeVerdict.FAIL, Severity.HIGH, True, Order.CONTINUE, False),  # below failureLimit
    (JudgeVerdict.FAIL, Severity.MEDIUM, True, Order.PAUSE, False),
    (JudgeVerdict.FAIL, Severity.LOW, True, Order.NOTIFY, True),
])
def test_orders_follow_the_severity_table(verdict: JudgeVerdict, severity: Severity, automatic: bool,
                                          action: Order, promotable: bool) -> None:
    spec = JudgeSpec(metrics=[metric()], severity=severity)
    status = JudgeStatus(verdict=verdict, failures=1, last_look_time=T0, message=str(verdict))
    found = judge.order(spec, status, automatic=automatic, stage="rollout")
    assert (found.action, found.promotable) == (action, promotable)
    assert found.message.startswith(("judge:", "waiting: judge:"))


def test_high_rolls_back_at_its_failure_limit() -> None:
    spec = JudgeSpec(metrics=[metric()], severity=Severity.HIGH, failure_limit=2)
    status = JudgeStatus(verdict=JudgeVerdict.FAIL, failures=2, last_look_time=T0)
    assert judge.order(spec, status, automatic=True, stage="rollout").action == Order.ROLLBACK


# -- templates --------------------------------------------------------------------------------------


def test_each_side_renders_its_revision_and_role() -> None:
    values = {"namespace": "ns", "release": "web", "revision": "cand", "stableRevision": "stab"}
    spec, compared_with_stable = judged_spec(), judged_spec(baseline=False)
    assert 'revision="cand",role=""' in judge.render(ERRORS, values, "canary", spec)
    # The baseline's pods carry a revision label of their own, which the stable Service does not select.
    assert 'revision="stab-baseline",role="baseline"' in judge.render(ERRORS, values, "baseline", spec)
    assert 'revision="stab",role=""' in judge.render(ERRORS, values, "baseline", compared_with_stable)
    first = {**values, "stableRevision": ""}  # a first rollout is not judged, but its queries are checked
    assert 'revision="",role="baseline"' in judge.render(ERRORS, first, "baseline", spec)
    with pytest.raises(QueryTemplateError, match="sideRole"):
        judge.render("up{x=\"{{nope}}\"}", values, "canary", spec)


def test_each_side_renders_the_service_its_requests_come_through() -> None:
    values = {"namespace": "ns", "release": "web", "revision": "cand", "stableRevision": "stab"}
    query = 'up{service="{{sideService}}"}'
    ports = {"ports": [{"port": 80}]}
    ratio = judged_spec().model_copy(update={"service": parse_spec({**BODY, "service": ports}).service})
    assert [judge.render(query, values, side, ratio) for side in judge.SIDES] == ['up{service="web"}'] * 2
    routed = parse_spec({**BODY, "service": {**ports, "name": "shop"}, "strategy": {"type": "Canary", "canary": {
        "trafficRouting": {"gatewayAPI": {"httpRoute": "shop"}}, "steps": [{"setWeight": 20}]}},
        "analysis": {"judge": {"baseline": True, "metrics": [{"name": "errors", "query": query}]}}})
    assert [judge.render(query, values, side, routed) for side in judge.SIDES] == [
        'up{service="shop-preview"}', 'up{service="shop-baseline"}']
    with_stable = routed.model_copy(update={"analysis": routed.analysis.model_copy(
        update={"judge": routed.analysis.judge.model_copy(update={"baseline": False})})})
    assert judge.render(query, values, "baseline", with_stable) == 'up{service="shop"}'


def test_chart_is_bounded_and_averaged_per_time() -> None:
    samples = [(float(t), float(t)) for t in range(240)] + [(float(t), float(t) + 2) for t in range(240)]
    points = judge.chart(samples)
    assert len(points) == 24 and points[0] == pytest.approx(5.5) and points == sorted(points)


# -- the judge driving decide ------------------------------------------------------------------------

CANARY_JUDGED = {"type": "Canary", "canary": {"steps": [{"setWeight": 50}, {"analysis": {"duration": "20s"}}]}}


BODY: dict[str, Any] = {"version": "1", "replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "app", "image": "app:1"}]}},
                        "strategy": CANARY_JUDGED}


def judged_spec(image: str = "app:1", **judge_fields: Any) -> ReleaseSpec:
    body: dict[str, Any] = {
        "version": image.split(":")[1], "replicas": 4,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "app", "image": image}]}},
        "strategy": copy.deepcopy(CANARY_JUDGED),
        "analysis": {"interval": "2s", "judge": {"baseline": True, "minSamples": 10, "step": "1s",
                                                 "metrics": [{"name": "errors", "query": ERRORS}], **judge_fields}},
    }
    return parse_spec(body)


@dataclass
class Judged(Run):
    """A Run whose judge's looks are answered from samples drawn around `canary`/`baseline`."""

    canary: float = 0.0
    baseline: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    looked: int = 0

    def tick(self, commands: dict[str, str] | None = None, seconds: float = 1.0,
             lose_actions: bool = False, lose_status: bool = False) -> Decision:
        candidate = revision_of(self.spec.template)
        values = variables(self.spec, self.status, candidate, namespace="ns", release="web", service="web")
        asked = judge.ask(self.spec, self.status, candidate, values, self.now)
        look = None
        if asked is not None:
            self.looked += 1
            span = int((asked.end - asked.start).total_seconds())
            sides = {m: (judge.Side(c, tuple((float(t), self.rng.gauss(self.canary, 0.01)) for t in range(span))),
                         judge.Side(b, tuple((float(t), self.rng.gauss(self.baseline, 0.01)) for t in range(span))))
                     for m, (c, b) in asked.queries.items()}
            look = judge.Look(asked.at, sides)
        observation = replace(self.cluster.observe(commands), judge=look)
        decision = decide(self.spec, self.status, observation, self.now)
        self.cluster.apply(decision)
        self.status = decision.status
        self.cluster.progress(self.speed)
        self.now += timedelta(seconds=seconds)
        return decision


def judged_run(canary: float, **judge_fields: Any) -> Judged:
    run = Judged(judged_spec(**judge_fields))
    run.until(Phase.SUCCEEDED)
    run.canary, run.baseline = canary, 0.0
    run.deploy(judged_spec("app:2", **judge_fields))
    return run


def test_a_worse_candidate_is_rolled_back_by_the_judge_and_its_baseline_goes() -> None:
    run = judged_run(0.05)
    stable = run.status.stable_revision
    assert stable is not None
    run.tick()
    run.until(Phase.PROGRESSING)
    run.tick()
    assert run.cluster.baselines == {stable: 2}  # as many as the candidate's 50%, started with it
    run.until(Phase.ROLLING_BACK)
    status = run.status.judge
    assert status is not None and status.verdict == JudgeVerdict.FAIL and status.score == 0
    row = status.metrics[0]
    assert row.classification == Classification.HIGH and (row.canary_median or 0) > (row.baseline_median or 0)
    assert row.canary_values and row.baseline_values
    assert "judge: Fail" in (run.status.history[-1].reason or "")
    reasons = [e.reason for e in run.cluster.events if isinstance(e, Announce)]
    assert "JudgeFailed" in reasons and "RollingBack" in reasons
    run.until(Phase.ROLLED_BACK)
    assert run.status.history[-1].outcome == HistoryOutcome.ROLLED_BACK
    run.tick()
    assert run.cluster.baselines == {}


def test_a_healthy_candidate_passes_and_its_baseline_goes() -> None:
    run = judged_run(0.0)
    run.until(Phase.SUCCEEDED, limit=400)
    status = run.status
    assert status.history[-1].outcome == HistoryOutcome.SUCCEEDED and run.looked > 0
    run.tick()
    assert run.cluster.baselines == {}


def test_too_few_samples_holds_the_step_and_never_passes() -> None:
    run = judged_run(0.0, minSamples=1000)
    for _ in range(60):
        run.tick()
    assert run.status.phase == Phase.PROGRESSING and run.status.judge is not None
    assert run.status.judge.verdict == JudgeVerdict.INCONCLUSIVE
    assert "waiting for analysis: waiting: judge: Inconclusive" in (run.status.message or "")


def test_the_next_look_wakes_the_release() -> None:
    run = judged_run(0.0)
    run.until(Phase.PROGRESSING)
    woken = wake_at(run.spec, run.status, run.now)
    assert woken is not None and woken <= run.now + timedelta(seconds=2)


def test_scale_baseline_is_only_asked_when_it_changes() -> None:
    run = judged_run(0.0)
    run.until(Phase.PROGRESSING)
    for _ in range(3):
        run.tick()
    decision = run.tick()
    assert not [a for a in decision.actions if isinstance(a, ScaleBaseline)]


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 20), st.integers(0, 100))
def test_baseline_never_exceeds_the_largest_canary_weight(replicas: int, weight: int) -> None:
    spec = judged_spec()
    spec = spec.model_copy(update={"replicas": replicas})
    status = Run(spec).status.model_copy(update={"phase": Phase.PROGRESSING, "revision": revision_of(spec.template),
                                                 "stable_revision": "old"})
    candidate = -(-replicas * weight // 100)
    wanted = judge.baseline_replicas(spec, status, revision_of(spec.template), candidate)
    assert wanted <= max(-(-replicas * 50 // 100), 1) and wanted <= candidate


def test_the_validation_window_is_judged_against_the_kept_baseline() -> None:
    """After full promotion the stable revision is gone, so a replica-ratio canary keeps its
    baseline through the validation window, and a candidate that turns bad there rolls back."""
    spec = judged_spec().model_copy(update={"validation": judged_spec().validation.model_copy(
        update={"window_seconds": 60})})
    run = Judged(spec)
    run.until(Phase.SUCCEEDED)
    run.deploy(judged_spec("app:2").model_copy(update={"validation": spec.validation}))
    run.until(Phase.VALIDATING, limit=400)
    stable = run.status.stable_revision
    assert stable is not None
    run.tick()
    assert run.cluster.baselines == {stable: 2}
    run.canary = 0.05
    run.until(Phase.ROLLING_BACK, limit=100)
    assert "judge: Fail" in (run.status.history[-1].reason or "")


def test_the_triggers_and_the_judge_combine_heaviest_first() -> None:
    passing = Verdict(Order.CONTINUE, True, message="all triggers pass")
    holding = Verdict(Order.CONTINUE, False, message="waiting: judge: Inconclusive")
    rollback = Verdict(Order.ROLLBACK, False, trigger="errors", message="trigger errors (critical): ...")
    judged_fail = Verdict(Order.ROLLBACK, False, severity=Severity.CRITICAL, message="judge: Fail, score 0")
    pause = Verdict(Order.PAUSE, False, trigger="latency", message="trigger latency (medium): ...")
    assert judge.combine(None, None) is None and judge.combine(passing, None) == passing
    both = judge.combine(passing, holding)
    assert both is not None and (both.action, both.promotable, both.message) == (Order.CONTINUE, False,
                                                                                 holding.message)
    assert judge.combine(rollback, holding) == rollback
    worst = judge.combine(pause, judged_fail)
    assert worst is not None and (worst.action, worst.message) == (Order.ROLLBACK, judged_fail.message)
    ok = judge.combine(passing, Verdict(Order.CONTINUE, True, message="judge: Pass"))
    assert ok is not None and ok.promotable and ok.action == Order.CONTINUE


# -- the baseline's share behind a router ------------------------------------------------------------


@pytest.mark.parametrize(("weight", "ready", "replicas", "share"), [
    (20, 1, 5, 20),   # the candidate's share, taken from the stable revision's
    (20, 2, 10, 20),
    (50, 3, 6, 50),   # half each: the stable revision keeps nothing
    (80, 4, 5, 20),   # never more than the stable revision has (100 - weight)
    (20, 0, 5, 0),    # no Ready pod, no traffic
    (40, 1, 5, 20),   # one of the two pods it needs Ready: what one pod carries
    (0, 2, 5, 0),
    (100, 5, 5, 0),
    (20, 1, 0, 0),
])
def test_the_baseline_gets_the_candidates_share_from_the_stables(weight: int, ready: int, replicas: int,
                                                                   share: int) -> None:
    assert judge.baseline_weight(weight, ready, replicas) == share


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 100), st.integers(0, 40), st.integers(0, 40))
def test_the_three_weights_always_add_up_to_100(weight: int, ready: int, replicas: int) -> None:
    baseline = judge.baseline_weight(weight, ready, replicas)
    assert 0 <= baseline <= min(weight, 100 - weight)
    assert stable_weight(weight, baseline) + weight + baseline == 100


def routed_spec(image: str) -> ReleaseSpec:
    spec = judged_spec(image)
    body = spec.to_dict()
    body["strategy"] = {"type": "Canary", "canary": {
        "steps": [{"setWeight": 20}, {"analysis": {"duration": "20s"}}],
        "trafficRouting": {"gatewayAPI": {"httpRoute": "web"}}}}
    body["service"] = {"ports": [{"port": 80}]}
    body["replicas"] = 5
    return parse_spec(body)


def test_behind_a_router_the_baseline_has_its_share_until_the_rollout_ends() -> None:
    run = Judged(routed_spec("app:1"))
    run.until(Phase.SUCCEEDED)
    assert run.cluster.traffic is not None and run.cluster.traffic.baseline is None
    run.deploy(routed_spec("app:2"))
    stable = run.status.stable_revision
    shares: list[int | None] = []
    for _ in range(8):
        run.tick()
        assert run.cluster.traffic is not None
        shares.append(run.cluster.traffic.baseline)
    # Its Service is named (at 0) from the tick its pods are asked for; then it takes the
    # candidate's 20%, from the stable revision's 80%.
    assert run.cluster.baselines == {stable: 1}
    assert shares[-1] == 20 and run.cluster.traffic.weight == 20 and run.cluster.traffic.active == stable
    assert stable_weight(20, shares[-1]) == 60
    run.until(Phase.SUCCEEDED, limit=400)
    assert run.status.history[-1].outcome == HistoryOutcome.SUCCEEDED
    for _ in range(4):  # the hand-over
        run.tick()
    assert run.cluster.traffic.baseline is None and run.cluster.baselines == {}


def test_a_rollback_takes_the_baselines_share_away_before_its_pods() -> None:
    run = Judged(routed_spec("app:1"))
    run.until(Phase.SUCCEEDED)
    run.canary = 0.05
    run.deploy(routed_spec("app:2"))
    stable = run.status.stable_revision
    run.until(Phase.ROLLING_BACK, limit=400)
    assert run.cluster.traffic is not None
    # The route sends it nothing at once; its pods stay through the hand-over, then go with its Service.
    assert run.cluster.traffic.baseline == 0 and run.cluster.baselines == {stable: 1}
    run.until(Phase.ROLLED_BACK)
    run.tick()
    assert run.cluster.traffic.baseline is None and run.cluster.baselines == {}


def test_the_replica_ratio_has_no_baseline_service() -> None:
    run = judged_run(0.0)
    run.until(Phase.PROGRESSING)
    for _ in range(3):
        run.tick()
    assert run.cluster.baselines and run.cluster.traffic is not None and run.cluster.traffic.baseline is None
