"""Rollback triggers: query templates, recording measurements, verdicts and scheduling."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from glideslope.api import AnalysisState, OnNoData, Severity, Trigger, TriggerStatus
from glideslope.core.analysis import (
    INCONCLUSIVE_LIMIT,
    TEMPLATE_VARIABLES,
    Measurement,
    Order,
    QueryTemplateError,
    Stage,
    due,
    next_due,
    render_query,
    tally,
    verdict,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
QUERY = 'sum(rate(http_requests_total{code=~"5.."}[30s])) / sum(rate(http_requests_total[30s]))'


def trig(name: str = "error-rate", severity: Severity = Severity.CRITICAL, **kw: Any) -> Trigger:
    kw.setdefault("failure_condition", "result > 0.001")
    return Trigger(name=name, severity=severity, query=QUERY, **kw)


def value(v: float, i: int = 0) -> Measurement:
    return Measurement(v, None, T0 + timedelta(seconds=30 * i))


def no_data(i: int = 0) -> Measurement:
    return Measurement(None, None, T0 + timedelta(seconds=30 * i))


def error(i: int = 0) -> Measurement:
    return Measurement(None, "cannot reach Prometheus at http://p:9090: [Errno 111] Connection refused",
                       T0 + timedelta(seconds=30 * i))


def run(trigger: Trigger, measurements: Sequence[Measurement]) -> TriggerStatus | None:
    status: TriggerStatus | None = None
    for m in measurements:
        status = tally(trigger, status, m, QUERY)
    return status


# ---------------------------------------------------------------------------------------------
# render_query

VARS = {"namespace": "shop", "release": "checkout", "service": "checkout-svc", "version": "2.5.0",
        "revision": "7f9c2d1a4b", "stableRevision": "5e11a0c9d2", "stableVersion": "2.4.1"}


def test_every_variable_is_substituted_with_spaces_allowed() -> None:
    template = ("x{namespace=\"{{namespace}}\",release=\"{{ release }}\",service=\"{{service  }}\","
                "version=\"{{\tversion}}\",revision=~\"{{revision}}|{{stableRevision}}\"} # {{stableVersion}}")
    assert render_query(template, VARS) == (
        'x{namespace="shop",release="checkout",service="checkout-svc",version="2.5.0",'
        'revision=~"7f9c2d1a4b|5e11a0c9d2"} # 2.4.1')


def test_a_query_without_variables_is_unchanged() -> None:
    assert render_query("sum(up{job=\"a\"})", {}) == 'sum(up{job="a"})'


@pytest.mark.parametrize(("template", "variables", "match"), [
    ("up{ns=\"{{ nmespace }}\"}", VARS, r"unknown template variable \{\{nmespace\}\}"),
    ("up{rev=\"{{stableRevision}}\"}", {"namespace": "a"}, r"no value for template variable \{\{stableRevision\}\}"),
    ("up{v=\"{{version}}\"}", {"version": '1"} or vector(1) #'}, r"\{\{version\}\}.*quote"),
    ("up{v=\"{{version}}\"}", {"version": "a\nb"}, r"\{\{version\}\}"),
    ("up{ns=\"{{namespace\"}", VARS, "unbalanced"),
    ("up{ns=\"namespace}}\"}", VARS, "unbalanced"),
])
def test_bad_templates_are_refused_naming_the_problem(template: str, variables: dict[str, str], match: str) -> None:
    with pytest.raises(QueryTemplateError, match=match):
        render_query(template, variables)


_SAFE_VALUE = st.text(st.characters(categories=("Ll", "Lu", "Nd"), include_characters="-._:/"),
                      max_size=20)
_LITERAL = st.text(st.characters(exclude_characters="{}"), max_size=15)


@given(st.lists(st.tuples(_LITERAL, st.sampled_from(sorted(TEMPLATE_VARIABLES)),
                          st.sampled_from(["", " ", "  ", "\t"]), st.sampled_from(["", " "])), max_size=6),
       _LITERAL, st.fixed_dictionaries({v: _SAFE_VALUE for v in sorted(TEMPLATE_VARIABLES)}))
def test_render_round_trips(parts: list[tuple[str, str, str, str]], tail: str, values: dict[str, str]) -> None:
    template = "".join(f"{lit}{{{{{pre}{name}{post}}}}}" for lit, name, pre, post in parts) + tail
    expected = "".join(f"{lit}{values[name]}" for lit, name, _, _ in parts) + tail
    assert render_query(template, values) == expected


# ---------------------------------------------------------------------------------------------
# tally

@pytest.mark.parametrize(("trigger", "measurement", "state", "counts", "last_value", "message"), [
    (trig(), value(0.0002), AnalysisState.PASSING, (1, 0, 0, 0), 0.0002,
     '0.0002 does not meet failureCondition "result > 0.001"'),
    (trig(), value(0.31), AnalysisState.FAILING, (0, 1, 0, 0), 0.31, '0.31 meets failureCondition "result > 0.001"'),
    (trig(failure_condition=None, success_condition="result < 0.01"), value(0.5), AnalysisState.FAILING,
     (0, 1, 0, 0), 0.5, '0.5 does not meet successCondition "result < 0.01"'),
    (trig(failure_condition=None, success_condition="result < 0.01"), value(0.001), AnalysisState.PASSING,
     (1, 0, 0, 0), 0.001, '0.001 meets successCondition "result < 0.01"'),
    # Both: failure if either says so.
    (trig(success_condition="result < 0.5"), value(0.01), AnalysisState.FAILING, (0, 1, 0, 0), 0.01,
     "meets failureCondition"),
    (trig(failure_condition="result > 0.9", success_condition="result < 0.5"), value(0.7), AnalysisState.FAILING,
     (0, 1, 0, 0), 0.7, "does not meet successCondition"),
    (trig(), no_data(), AnalysisState.PENDING, (0, 0, 1, 0), None, f"no data (1 of {INCONCLUSIVE_LIMIT}"),
    (trig(), value(math.nan), AnalysisState.PENDING, (0, 0, 1, 0), None, "no data (result nan)"),
    (trig(), value(math.inf), AnalysisState.PENDING, (0, 0, 1, 0), None, "no data"),
    (trig(on_no_data=OnNoData.FAIL), no_data(), AnalysisState.FAILING, (0, 1, 0, 0), None,
     "no data; onNoData is Fail"),
    (trig(on_no_data=OnNoData.FAIL), value(math.nan), AnalysisState.FAILING, (0, 1, 0, 0), None, "onNoData is Fail"),
    (trig(on_no_data=OnNoData.FAIL), error(), AnalysisState.ERROR, (0, 0, 0, 1), None, "error: cannot reach"),
    (trig(), error(), AnalysisState.ERROR, (0, 0, 0, 1), None, "Connection refused"),
    (trig(failure_condition=None), value(0.0), AnalysisState.ERROR, (0, 0, 0, 1), None, "neither"),
    # A condition that compiles but cannot be evaluated for this value is an error, not a pass.
    (trig(failure_condition="int(result) > 1"), value(1e300), AnalysisState.ERROR, (0, 0, 0, 1), None,
     "error: condition: 'int(result) > 1'"),
    (trig(severity=Severity.HIGH, failure_limit=3), value(0.31), AnalysisState.FAILING, (0, 1, 0, 0), 0.31,
     "(1 of failureLimit 3)"),
])
def test_tally_one_measurement(trigger: Trigger, measurement: Measurement, state: AnalysisState,
                                counts: tuple[int, int, int, int], last_value: float | None, message: str) -> None:
    status = tally(trigger, None, measurement, "the resolved query")
    assert status.state == state
    assert (status.successes, status.failures, status.inconclusive, status.errors) == counts
    assert status.last_value == last_value
    assert message in (status.message or "")
    assert status.name == trigger.name and status.severity == trigger.severity
    assert status.query == "the resolved query"
    assert status.last_measured_time == measurement.at


def test_counts_accumulate_and_the_limit_makes_the_trigger_inconclusive() -> None:
    trigger = trig()
    status = run(trigger, [value(0.0, 0), no_data(1), value(0.0, 2), error(3)])
    assert status is not None
    assert status.state == AnalysisState.ERROR
    assert (status.successes, status.inconclusive, status.errors) == (2, 1, 1)
    status = tally(trigger, status, no_data(4), QUERY)
    assert status.state == AnalysisState.INCONCLUSIVE
    assert "3 measurements without a result" in (status.message or "")
    # A pass afterwards is a pass; the counts keep the history.
    status = tally(trigger, status, value(0.0, 5), QUERY)
    assert status.state == AnalysisState.PASSING and status.inconclusive == 2 and status.errors == 1


def test_a_status_of_another_trigger_is_not_continued() -> None:
    other = tally(trig("latency"), None, value(0.5), QUERY)
    status = tally(trig("error-rate"), other, value(0.0), QUERY)
    assert (status.name, status.successes, status.failures) == ("error-rate", 1, 0)


_MEASUREMENT_KINDS = st.sampled_from(["pass", "fail", "none", "nan", "inf", "error"])


def measurement_of(kind: str, i: int) -> Measurement:
    return {"pass": value(0.0, i), "fail": value(0.5, i), "none": no_data(i), "nan": value(math.nan, i),
            "inf": value(-math.inf, i), "error": error(i)}[kind]


_UNANSWERED = st.lists(st.sampled_from(["none", "nan", "inf", "error"]), min_size=1, max_size=12)


@given(_UNANSWERED, st.sampled_from(list(Severity)), st.sampled_from(list(OnNoData)), st.booleans(),
       st.sampled_from(["rollout", "validation"]))
def test_errors_and_missing_data_are_never_a_pass(kinds: list[str], severity: Severity, on_no_data: OnNoData,
                                                  automatic: bool, stage: Stage) -> None:
    trigger = trig(severity=severity, on_no_data=on_no_data)
    status = run(trigger, [measurement_of(k, i) for i, k in enumerate(kinds)])
    assert status is not None
    assert status.state != AnalysisState.PASSING and status.successes == 0
    v = verdict([trigger], [status], automatic=automatic, stage=stage)
    # Never a silent go-on: at most a notification, when onNoData makes no data a failure
    # and the severity lets failures pass (low; medium during validation).
    assert not (v.action == Order.CONTINUE and v.promotable)
    if on_no_data == OnNoData.INCONCLUSIVE or kinds[-1] == "error":
        assert not v.promotable
    assert v.trigger == trigger.name


@given(st.lists(_MEASUREMENT_KINDS, max_size=12), st.lists(_MEASUREMENT_KINDS, max_size=12),
       st.sampled_from(list(Severity)), st.sampled_from(list(Severity)), st.booleans(),
       st.sampled_from(["rollout", "validation"]))
def test_never_promotable_while_a_trigger_is_inconclusive_or_unmeasured(
        a: list[str], b: list[str], sev_a: Severity, sev_b: Severity, automatic: bool, stage: Stage) -> None:
    triggers = [trig("a", severity=sev_a), trig("b", severity=sev_b)]
    statuses = [s for t, kinds in zip(triggers, (a, b), strict=True)
                if (s := run(t, [measurement_of(k, i) for i, k in enumerate(kinds)])) is not None]
    v = verdict(triggers, statuses, automatic=automatic, stage=stage)
    waiting = len(statuses) < 2 or any(
        s.state in (AnalysisState.INCONCLUSIVE, AnalysisState.PENDING, AnalysisState.ERROR) for s in statuses)
    if waiting:
        assert not v.promotable
    if any(s.state == AnalysisState.INCONCLUSIVE for s in statuses):
        assert v.action in (Order.PAUSE, Order.ROLLBACK)
    if v.promotable:
        assert v.action in (Order.CONTINUE, Order.NOTIFY)
    if not automatic:
        assert v.action != Order.ROLLBACK


# ---------------------------------------------------------------------------------------------
# verdict

def failing(trigger: Trigger, failures: int = 1) -> TriggerStatus:
    status = run(trigger, [value(0.31, i) for i in range(failures)])
    assert status is not None
    return status


@pytest.mark.parametrize(("severity", "stage", "automatic", "action", "promotable"), [
    (Severity.CRITICAL, "rollout", True, Order.ROLLBACK, False),
    (Severity.CRITICAL, "validation", True, Order.ROLLBACK, False),
    (Severity.CRITICAL, "rollout", False, Order.PAUSE, False),
    (Severity.CRITICAL, "validation", False, Order.PAUSE, False),
    (Severity.MEDIUM, "rollout", True, Order.PAUSE, False),
    (Severity.MEDIUM, "validation", True, Order.NOTIFY, True),
    (Severity.MEDIUM, "rollout", False, Order.PAUSE, False),
    (Severity.LOW, "rollout", True, Order.NOTIFY, True),
    (Severity.LOW, "validation", True, Order.NOTIFY, True),
    (Severity.LOW, "validation", False, Order.NOTIFY, True),
])
def test_severity_table_on_one_failed_measurement(severity: Severity, stage: Stage, automatic: bool,
                                                  action: Order, promotable: bool) -> None:
    trigger = trig(severity=severity)
    v = verdict([trigger], [failing(trigger)], automatic=automatic, stage=stage)
    assert (v.action, v.promotable) == (action, promotable)
    assert (v.trigger, v.severity, v.value, v.query) == ("error-rate", severity, 0.31, QUERY)
    assert v.measured_at == T0


def test_critical_message_names_trigger_value_condition_and_query() -> None:
    trigger = trig()
    status = tally(trigger, None, value(0.31), "sum(rate(x[30s]))\n  / sum(rate(y[30s]))")
    v = verdict([trigger], [status], automatic=True, stage="rollout")
    assert v.message == ('trigger error-rate (critical): 0.31 meets failureCondition "result > 0.001"; '
                         "query: sum(rate(x[30s])) / sum(rate(y[30s]))")


@given(st.integers(min_value=1, max_value=12), st.sampled_from(["rollout", "validation"]))
def test_high_rolls_back_exactly_at_failure_limit(limit: int, stage: Stage) -> None:
    trigger = trig(severity=Severity.HIGH, failure_limit=limit)
    status: TriggerStatus | None = None
    for i in range(limit):
        status = tally(trigger, status, value(0.31, i), QUERY)
        v = verdict([trigger], [status], automatic=True, stage=stage)
        if i + 1 < limit:
            assert (v.action, v.promotable) == (Order.CONTINUE, False), i
        else:
            assert v.action == Order.ROLLBACK
            assert f"({limit} of failureLimit {limit})" in v.message


def test_high_failures_are_counted_in_total_not_consecutively() -> None:
    trigger = trig(severity=Severity.HIGH, failure_limit=3)
    status = run(trigger, [value(0.31, 0), value(0.0, 1), value(0.31, 2), value(0.0, 3)])
    assert status is not None
    v = verdict([trigger], [status], automatic=True, stage="rollout")
    assert (v.action, v.promotable) == (Order.CONTINUE, True)
    status = tally(trigger, status, value(0.31, 4), QUERY)
    assert verdict([trigger], [status], automatic=True, stage="rollout").action == Order.ROLLBACK


def test_critical_rolls_back_at_the_first_failure_after_passes() -> None:
    trigger = trig()
    status = run(trigger, [value(0.0, i) for i in range(5)])
    assert verdict([trigger], [status] if status else [], automatic=True, stage="rollout").promotable
    status = tally(trigger, status, value(0.002, 5), QUERY)
    assert verdict([trigger], [status], automatic=True, stage="rollout").action == Order.ROLLBACK


def test_inconclusive_pauses_and_notifies_in_both_stages() -> None:
    trigger = trig(severity=Severity.LOW)
    status = run(trigger, [no_data(i) for i in range(INCONCLUSIVE_LIMIT)])
    assert status is not None and status.state == AnalysisState.INCONCLUSIVE
    stages: tuple[Stage, ...] = ("rollout", "validation")
    for stage in stages:
        v = verdict([trigger], [status], automatic=True, stage=stage)
        assert (v.action, v.promotable) == (Order.PAUSE, False)
        assert v.message.startswith("trigger error-rate (low): inconclusive: no data")


def test_unmeasured_and_pending_triggers_hold_promotion() -> None:
    trigger = trig()
    v = verdict([trigger], [], automatic=True, stage="rollout")
    assert (v.action, v.promotable, v.trigger) == (Order.CONTINUE, False, "error-rate")
    assert "not measured yet" in v.message
    v = verdict([trigger], [tally(trigger, None, no_data(), QUERY)], automatic=True, stage="rollout")
    assert (v.action, v.promotable) == (Order.CONTINUE, False)
    assert "waiting: no data" in v.message


def test_no_triggers_and_all_passing_continue() -> None:
    assert verdict([], [], automatic=True, stage="rollout") == verdict([], [], automatic=False, stage="validation")
    assert verdict([], [], automatic=True, stage="rollout").promotable
    a, b = trig("a"), trig("b", severity=Severity.LOW)
    statuses = [tally(a, None, value(0.0), QUERY), tally(b, None, value(0.0), QUERY)]
    v = verdict([a, b], statuses, automatic=True, stage="rollout")
    assert (v.action, v.promotable, v.trigger) == (Order.CONTINUE, True, None)


def test_heaviest_action_then_most_severe_trigger_wins() -> None:
    low, medium, critical = trig("l", Severity.LOW), trig("m", Severity.MEDIUM), trig("c", Severity.CRITICAL)
    statuses = [failing(low), failing(medium), failing(critical)]
    v = verdict([low, medium, critical], statuses, automatic=True, stage="rollout")
    assert (v.action, v.trigger) == (Order.ROLLBACK, "c")
    v = verdict([low, medium], statuses, automatic=True, stage="rollout")
    assert (v.action, v.trigger) == (Order.PAUSE, "m")
    v = verdict([low, medium], statuses, automatic=True, stage="validation")
    assert (v.action, v.trigger, v.promotable) == (Order.NOTIFY, "m", True)
    low2 = trig("l2", Severity.LOW)
    v = verdict([low2, low], [failing(low2), failing(low)], automatic=True, stage="rollout")
    assert v.trigger == "l2"


def test_statuses_of_removed_triggers_are_ignored() -> None:
    kept, removed = trig("kept"), trig("removed")
    v = verdict([kept], [failing(removed), tally(kept, None, value(0.0), QUERY)], automatic=True, stage="rollout")
    assert (v.action, v.promotable) == (Order.CONTINUE, True)


@given(st.lists(st.tuples(st.sampled_from(list(Severity)), st.integers(1, 4),
                          st.lists(_MEASUREMENT_KINDS, max_size=8)), max_size=4),
       st.sampled_from(["rollout", "validation"]))
def test_automatic_false_never_rolls_back_and_otherwise_the_same_triggers_act(
        specs: list[tuple[Severity, int, list[str]]], stage: Stage) -> None:
    triggers = [trig(f"t{i}", sev, failure_limit=limit) for i, (sev, limit, _) in enumerate(specs)]
    statuses = [s for t, (_, _, kinds) in zip(triggers, specs, strict=True)
                if (s := run(t, [measurement_of(k, i) for i, k in enumerate(kinds)])) is not None]
    manual = verdict(triggers, statuses, automatic=False, stage=stage)
    auto = verdict(triggers, statuses, automatic=True, stage=stage)
    assert manual.action != Order.ROLLBACK
    if auto.action == Order.ROLLBACK:
        assert manual.action == Order.PAUSE and "rollback.automatic is false" in manual.message
    else:
        assert manual == auto


# ---------------------------------------------------------------------------------------------
# due / next_due

INTERVAL, DELAY = timedelta(seconds=30), timedelta(seconds=10)


def test_first_measurement_waits_for_the_initial_delay() -> None:
    assert next_due(None, INTERVAL, DELAY, T0) == T0 + DELAY
    assert not due(None, INTERVAL, DELAY, T0, T0 + timedelta(seconds=9))
    assert due(None, INTERVAL, DELAY, T0, T0 + DELAY)


def test_then_every_interval_on_a_grid_from_the_first() -> None:
    status = TriggerStatus(name="x", last_measured_time=T0 + DELAY + 3 * INTERVAL)
    assert next_due(status, INTERVAL, DELAY, T0) == T0 + DELAY + 4 * INTERVAL
    assert not due(status, INTERVAL, DELAY, T0, T0 + DELAY + 4 * INTERVAL - timedelta(seconds=1))
    assert due(status, INTERVAL, DELAY, T0, T0 + DELAY + 4 * INTERVAL)


def test_never_sooner_than_half_an_interval_after_the_last() -> None:
    status = tally(trig(), None, value(0.0, 1), QUERY)  # measured at T0 + 30s, 10 s before the grid's 40 s
    assert next_due(status, INTERVAL, DELAY, T0) == T0 + timedelta(seconds=45)


def test_a_late_measurement_does_not_move_the_next_one() -> None:
    # Measured 0.2 s after it was due (the query's own latency): the next is still due on the
    # grid, not 0.2 s later, so the cadence does not drift by each query's latency.
    late = TriggerStatus(name="x", last_measured_time=T0 + DELAY + INTERVAL + timedelta(seconds=0.2))
    assert next_due(late, INTERVAL, DELAY, T0) == T0 + DELAY + 2 * INTERVAL
    # More than an interval late: the missed point is skipped, not caught up.
    very_late = TriggerStatus(name="x", last_measured_time=T0 + DELAY + timedelta(seconds=75))
    assert next_due(very_late, INTERVAL, DELAY, T0) == T0 + DELAY + 3 * INTERVAL


def test_a_measurement_from_before_the_step_does_not_skip_the_initial_delay() -> None:
    status = tally(trig(), None, value(0.0, 0), QUERY)  # at T0
    step_start = T0 + timedelta(seconds=25)
    assert next_due(status, INTERVAL, DELAY, step_start) == step_start + DELAY


@given(st.integers(0, 3600), st.integers(1, 600), st.integers(0, 600), st.one_of(st.none(), st.integers(-600, 3600)),
       st.integers(-600, 7200))
def test_due_is_now_at_or_after_next_due(start: int, interval: int, delay: int, measured: int | None,
                                         now: int) -> None:
    started_at = T0 + timedelta(seconds=start)
    status = None if measured is None else TriggerStatus(
        name="x", last_measured_time=started_at + timedelta(seconds=measured))
    when = next_due(status, timedelta(seconds=interval), timedelta(seconds=delay), started_at)
    assert when >= started_at + timedelta(seconds=delay)
    if status is not None and status.last_measured_time is not None:
        last, first = status.last_measured_time, started_at + timedelta(seconds=delay)
        if last >= first:
            assert last + timedelta(seconds=interval) / 2 <= when <= last + timedelta(seconds=interval)
            grid = (when - first) / timedelta(seconds=interval)
            assert grid == int(grid) or when == last + timedelta(seconds=interval) / 2
    at = started_at + timedelta(seconds=now)
    assert due(status, timedelta(seconds=interval), timedelta(seconds=delay), started_at, at) == (at >= when)
