"""Operator-side checks: CEL conditions and time zones, each error naming its field."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from glideslope.api import parse_spec
from glideslope.core.conditions import ConditionError, compile_condition
from glideslope.core.spec_validation import validate_spec

pytestmark = pytest.mark.unit

ZONES = {"UTC", "Europe/Berlin", "America/New_York"}


def spec(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "version": "1.0.0",
        "selector": {"matchLabels": {"app": "a"}},
        "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "a", "image": "a:1"}]}},
        "strategy": {"type": "BigBang", "bigBang": {}},
    }
    body.update(extra)
    return body


def trigger(name: str, **conds: str) -> dict[str, Any]:
    return {"name": name, "severity": "critical", "query": "vector(0)", **conds}


@pytest.mark.parametrize(("source", "result", "holds"), [
    ("result > 0.001", 0.01, True),
    ("result > 0.001", 0.0, False),
    ("result == 0.0", 0.0, True),
    ("result >= 0.5 && result < 2.0", 1.0, True),
    ("result < 100.0 || result > 1000.0", 500.0, False),
])
def test_conditions_evaluate(source: str, result: float, holds: bool) -> None:
    assert compile_condition(source).holds(result) is holds


@pytest.mark.parametrize(("source", "reason"), [
    ("result >", "not valid CEL"),
    ("reslt > 1.0", "undeclared reference to 'reslt'"),
    ("result + 1.0", "not a boolean"),
    ("'text'", "not a boolean"),
])
def test_bad_conditions_are_refused_with_a_reason(source: str, reason: str) -> None:
    with pytest.raises(ConditionError, match=reason):
        compile_condition(source)


def test_nan_is_never_a_pass() -> None:
    with pytest.raises(ConditionError, match="NaN"):
        compile_condition("result < 1.0").holds(math.nan)


@given(st.floats(allow_nan=False, allow_infinity=False, width=64))
def test_complementary_conditions_never_both_hold(value: float) -> None:
    assert compile_condition("result > 0.5").holds(value) != compile_condition("result <= 0.5").holds(value)


def test_a_valid_spec_has_no_errors() -> None:
    body = spec(
        analysis={"triggers": [trigger("errors", failureCondition="result > 0.01")]},
        gates=[{"name": "hours", "window": {"timezone": "Europe/Berlin", "start": "09:00", "end": "17:00"}},
               {"name": "alerts", "metric": {"query": "vector(0)", "successCondition": "result == 0.0"}}],
    )
    assert validate_spec(parse_spec(body), ZONES) == []


def test_each_error_names_its_field() -> None:
    body = spec(
        analysis={"triggers": [trigger("ok", failureCondition="result > 0.01"),
                               trigger("bad", successCondition="result <", failureCondition="x > 1.0")]},
        gates=[{"name": "hours", "window": {"timezone": "Mars/Olympus_Mons"}},
               {"name": "alerts", "metric": {"query": "vector(0)", "successCondition": "result"}}],
    )
    errors = {e.path: e.message for e in validate_spec(parse_spec(body), ZONES)}
    assert set(errors) == {
        "spec.analysis.triggers[1].successCondition",
        "spec.analysis.triggers[1].failureCondition",
        "spec.gates[0].window.timezone",
        "spec.gates[1].metric.successCondition",
    }
    assert "Mars/Olympus_Mons" in errors["spec.gates[0].window.timezone"]
    assert "undeclared reference to 'x'" in errors["spec.analysis.triggers[1].failureCondition"]
