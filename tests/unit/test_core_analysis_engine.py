"""The engine's analysis: measurements recorded in status.analysis and the severity rules acted
on, in every strategy, during the rollout and the validation window."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glideslope.api import AnalysisState, HistoryOutcome, Phase, ReleaseSpec, parse_spec
from glideslope.core.analysis import Measurement
from glideslope.core.decide import decide
from glideslope.core.model import Announce, Decision
from glideslope.core.revision import revision_of
from glideslope.core.triggers import due_measurements, rendered_queries, stage, variables
from tests.unit.fakes import CANARY, Run, with_image

pytestmark = pytest.mark.unit

QUERY = 'sum(rate(http_requests_total{namespace="{{namespace}}",revision="{{revision}}",code="500"}[5s]))'
BLUE_GREEN = {"type": "BlueGreen", "blueGreen": {"autoPromotionSeconds": 2, "scaleDownDelaySeconds": 0}}
ROLLING = {"type": "Rolling", "rolling": {"maxSurge": 1, "maxUnavailable": 0}}
BIG_BANG = {"type": "BigBang", "bigBang": {}}
STRATEGIES = [CANARY, BLUE_GREEN, ROLLING, BIG_BANG]

Source = Callable[[str, datetime], Measurement]
"""(query, now) -> a measurement."""


def good(query: str, now: datetime) -> Measurement:
    return Measurement(0.0, None, now)


def bad(query: str, now: datetime) -> Measurement:
    return Measurement(0.3, None, now)


def no_data(query: str, now: datetime) -> Measurement:
    return Measurement(None, None, now)


def unreachable(query: str, now: datetime) -> Measurement:
    return Measurement(None, "cannot reach Prometheus at http://127.0.0.1:1", now)


def spec_with(strategy: dict[str, Any], *, severity: str = "critical", image: str = "app:1",
              window: int = 0, automatic: bool = True, failure_limit: int = 3, **analysis: Any) -> ReleaseSpec:
    body: dict[str, Any] = {
        "version": image.split(":")[1], "replicas": 4,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "app", "image": image}]}},
        "service": {"ports": [{"port": 80}]},
        "strategy": copy.deepcopy(strategy),
        "analysis": {"interval": "1s", "triggers": [
            {"name": "errors", "severity": severity, "query": QUERY, "failureCondition": "result > 0.1",
             "failureLimit": failure_limit}], **analysis},
        "validation": {"windowSeconds": window},
        "rollback": {"automatic": automatic},
    }
    return parse_spec(body)


@dataclass
class Analysed(Run):
    """A Run whose triggers are measured from `source` whenever they are due, as the engine does."""

    source: Source = good
    measured: list[str] = field(default_factory=list)

    def tick(self, commands: dict[str, str] | None = None, seconds: float = 1.0,
             lose_actions: bool = False, lose_status: bool = False) -> Decision:
        candidate = revision_of(self.spec.template)
        values = variables(self.spec, self.status, candidate, namespace="ns", release="web", service="web")
        due = due_measurements(self.spec, self.status, candidate, values, self.now)
        self.measured += [d.query for d in due]
        observation = replace(self.cluster.observe(commands),
                              measurements={d.trigger.name: (d.query, self.source(d.query, self.now)) for d in due})
        decision = decide(self.spec, self.status, observation, self.now)
        self.cluster.apply(decision)
        self.status = decision.status
        self.steps_seen.append(self.status.current_step or 0)
        self.cluster.progress(self.speed)
        self.now += timedelta(seconds=seconds)
        return decision

    def reasons(self) -> list[str]:
        return [e.reason for e in self.cluster.events if isinstance(e, Announce)]


def analysed_run(strategy: dict[str, Any], source: Source = good, **kwargs: Any) -> Analysed:
    """v1 stable (a first rollout, not analysed), v2 applied."""
    run = Analysed(spec_with(strategy, **kwargs))
    run.until(Phase.SUCCEEDED)
    assert run.measured == [] and run.status.analysis == []
    run.source = source
    run.deploy(spec_with(strategy, image="app:2", **kwargs))
    return run


@pytest.mark.parametrize("strategy", STRATEGIES, ids=["canary", "bluegreen", "rolling", "bigbang"])
def test_good_candidate_succeeds_and_is_measured(strategy: dict[str, Any]) -> None:
    run = analysed_run(strategy)
    run.until(Phase.SUCCEEDED)
    (trigger,) = run.status.analysis
    assert trigger.state == AnalysisState.PASSING and trigger.successes >= 1 and trigger.failures == 0
    v2 = revision_of(run.spec.template)
    assert f'revision="{v2}"' in run.measured[0] and 'namespace="ns"' in run.measured[0]


@pytest.mark.parametrize("strategy", STRATEGIES, ids=["canary", "bluegreen", "rolling", "bigbang"])
def test_critical_failure_rolls_back_at_once(strategy: dict[str, Any]) -> None:
    run = analysed_run(strategy, bad)
    stable = run.status.stable_revision
    run.until(Phase.ROLLING_BACK)
    assert len(run.measured) == 1 and run.status.analysis[0].failures == 1
    breach = run.status.breach_at
    assert breach == run.status.analysis[0].last_measured_time
    run.until(Phase.ROLLED_BACK)
    last = run.status.history[-1]
    assert last.outcome == HistoryOutcome.ROLLED_BACK and run.status.stable_revision == stable
    assert last.rollback_seconds == (run.now - timedelta(seconds=1) - breach).total_seconds()
    for text in (run.status.message or "", last.reason or ""):
        assert "errors (critical)" in text and "0.3 meets failureCondition" in text and "http_requests_total" in text
    assert {"TriggerFailed", "RollingBack", "RolledBack"} <= set(run.reasons())
    # The closing Event names the trigger that rolled it back, as the history does.
    assert last.trigger == "errors"
    assert [e.trigger for e in run.cluster.events if isinstance(e, Announce) and e.reason == "RolledBack"] == ["errors"]


def test_high_rolls_back_only_at_failure_limit() -> None:
    run = analysed_run(CANARY, bad, severity="high", failure_limit=3)
    for _ in range(40):
        run.tick()
        if run.status.phase == Phase.ROLLING_BACK:
            break
        # below the limit: measured, held at its step, not rolled back
        assert run.status.analysis == [] or run.status.analysis[0].failures < 3
        assert (run.status.current_step or 0) <= 1
    assert run.status.phase == Phase.ROLLING_BACK and run.status.analysis[0].failures == 3
    assert "3 of failureLimit 3" in (run.status.history[-1].reason or "")


def test_medium_pauses_and_a_person_promotes() -> None:
    run = analysed_run(CANARY, bad, severity="medium")
    run.until(Phase.PAUSED)
    assert "paused by analysis" in (run.status.message or "")
    for _ in range(10):
        run.tick()
        assert run.status.phase == Phase.PAUSED
    run.tick(commands={"glideslope.dev/promote": "full"})
    run.until(Phase.SUCCEEDED)


def test_low_records_and_goes_on() -> None:
    run = analysed_run(CANARY, bad, severity="low")
    run.until(Phase.SUCCEEDED)
    assert run.status.analysis[0].state == AnalysisState.FAILING and "TriggerFailed" in run.reasons()


@pytest.mark.parametrize("source", [no_data, unreachable])
def test_no_answer_is_inconclusive_and_pauses(source: Source) -> None:
    run = analysed_run(CANARY, source)
    run.until(Phase.PAUSED)
    assert run.status.analysis[0].state == AnalysisState.INCONCLUSIVE
    for _ in range(20):
        run.tick()
        assert run.status.phase == Phase.PAUSED and (run.status.weight or 0) <= 25
    assert run.reasons().count("AnalysisInconclusive") == 1
    # a passing measurement lets it go on
    run.source = good
    run.until(Phase.SUCCEEDED)


def test_automatic_false_pauses_instead_of_rolling_back() -> None:
    run = analysed_run(CANARY, bad, automatic=False)
    run.until(Phase.PAUSED)
    assert "rollback.automatic is false" in (run.status.message or "")
    for _ in range(10):
        run.tick()
        assert run.status.phase == Phase.PAUSED
    run.tick(commands={"glideslope.dev/abort": "bad"})
    run.until(Phase.ROLLED_BACK)


def test_validation_window_keeps_previous_scaled_down_then_succeeds() -> None:
    run = analysed_run(BLUE_GREEN, window=10)
    stable = run.status.stable_revision
    assert stable is not None
    run.until(Phase.VALIDATING)
    started = run.now
    for _ in range(4):
        run.tick()
    assert run.cluster.revisions[stable].desired == 0
    assert stage(run.status, revision_of(run.spec.template)) is not None
    run.until(Phase.SUCCEEDED)
    assert (run.now - started).total_seconds() >= 10
    assert run.status.stable_revision == revision_of(run.spec.template)


def test_failure_in_validation_rolls_back_traffic_once_previous_is_ready() -> None:
    run = analysed_run(BLUE_GREEN, window=60)
    stable = run.status.stable_revision
    candidate = revision_of(run.spec.template)
    run.until(Phase.VALIDATING)
    for _ in range(4):
        run.tick()
    assert run.cluster.revisions[stable].desired == 0
    run.source = bad
    run.until(Phase.ROLLING_BACK)
    breach = run.status.breach_at
    while run.status.phase == Phase.ROLLING_BACK:
        run.tick()
        traffic = run.cluster.traffic
        assert traffic is not None
        if traffic.active == stable:
            assert run.cluster.revisions[stable].ready == 4
        else:
            assert traffic.active == candidate
    assert run.status.phase == Phase.ROLLED_BACK and run.status.stable_revision == stable
    assert breach is not None and (run.status.history[-1].rollback_seconds or 0) > 0


def test_a_new_rollout_resets_analysis() -> None:
    run = analysed_run(CANARY, bad)
    run.until(Phase.ROLLED_BACK)
    assert run.status.analysis and run.status.breach_at
    run.source = good
    run.deploy(spec_with(CANARY, image="app:3"))
    run.tick()
    assert run.status.analysis == [] and run.status.breach_at is None
    run.until(Phase.SUCCEEDED)


def test_due_follows_interval_and_initial_delay() -> None:
    run = analysed_run(CANARY, initialDelay="3s")
    run.tick()  # starts the rollout
    start = run.status.started_at
    assert start is not None
    candidate = revision_of(run.spec.template)
    values = variables(run.spec, run.status, candidate, namespace="ns", release="web", service="web")
    assert due_measurements(run.spec, run.status, candidate, values, start + timedelta(seconds=2)) == []
    assert len(due_measurements(run.spec, run.status, candidate, values, start + timedelta(seconds=3))) == 1


def test_rendered_queries_name_their_field() -> None:
    spec = spec_with(CANARY)
    data = spec.to_dict()
    data["analysis"]["triggers"].append({"name": "x", "query": "up{a=\"{{nope}}\"}", "failureCondition": "result > 1"})
    queries, problems = rendered_queries(parse_spec(data), {"namespace": "ns", "revision": "r"})
    assert [p for p, _ in queries] == ["spec.analysis.triggers[0].query"]
    assert problems and problems[0].startswith("spec.analysis.triggers[1].query: unknown template variable")


OUTCOMES = st.sampled_from([bad, no_data, unreachable])


@settings(max_examples=60, deadline=None)
@given(strategy=st.sampled_from(STRATEGIES), severity=st.sampled_from(["critical", "high", "medium"]),
       window=st.sampled_from([0, 5]), automatic=st.booleans(), limit=st.integers(1, 4),
       outcomes=st.lists(OUTCOMES, min_size=1, max_size=30))
def test_bad_or_missing_measurements_never_succeed(strategy: dict[str, Any], severity: str, window: int,
                                                   automatic: bool, limit: int, outcomes: list[Source]) -> None:
    run = analysed_run(strategy, outcomes[0], severity=severity, window=window, automatic=automatic,
                       failure_limit=limit)
    for i in range(120):
        run.source = outcomes[i % len(outcomes)]
        run.tick()
        assert not (run.status.phase == Phase.SUCCEEDED and run.status.stable_revision == revision_of(
            run.spec.template)), (run.status.message, run.status.analysis)


@settings(max_examples=40, deadline=None)
@given(severity=st.sampled_from(["low", "critical"]), outcomes=st.lists(st.sampled_from([no_data, unreachable]),
                                                                          min_size=1, max_size=10))
def test_no_data_never_succeeds_whatever_the_severity(severity: str, outcomes: list[Source]) -> None:
    run = analysed_run(CANARY, outcomes[0], severity=severity)
    for i in range(60):
        run.source = outcomes[i % len(outcomes)]
        run.tick()
        assert run.status.phase != Phase.SUCCEEDED or run.status.stable_revision != revision_of(run.spec.template)


def test_with_image_keeps_analysis() -> None:
    # the shared helper keeps the analysis block, so strategies tests can reuse it
    assert with_image(spec_with(CANARY), "app:2").analysis.triggers[0].name == "errors"


def test_the_verify_query_is_checked_with_the_others_naming_its_field() -> None:
    data = spec_with(CANARY).to_dict()
    data["strategy"]["canary"]["trafficRouting"] = {"verify": {}}
    queries, problems = rendered_queries(parse_spec(data), {"namespace": "ns", "revision": "cand"})
    assert ("spec.strategy.canary.trafficRouting.verify.query",
            'sum(rate(http_requests_total{namespace="ns",revision="cand"}[10s]))') in queries and not problems
