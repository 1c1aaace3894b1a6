"""Operator metrics follow status, count finished rollouts once, and forget deleted Releases."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from glideslope.api import parse_status
from glideslope.metrics import OperatorMetrics, ReleaseKey

pytestmark = pytest.mark.unit

KEY = ReleaseKey("shop", "checkout", "Canary")
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC).isoformat()


def status(**fields: Any) -> Any:
    base: dict[str, Any] = {"phase": "Progressing", "version": "2.0", "revision": "abc", "currentStep": 2,
                            "totalSteps": 5, "weight": 20}
    base.update(fields)
    return parse_status(base)


def value(reg: CollectorRegistry, name: str, **labels: str) -> float | None:
    return reg.get_sample_value(name, {"namespace": "shop", "release": "checkout", **labels})


def test_gauges_mirror_status() -> None:
    m = OperatorMetrics()
    m.observe(KEY, None, status(
        gates=[{"name": "approval", "stage": "preDeploy", "state": "Passed"}],
        analysis=[{"name": "errors", "severity": "critical", "state": "Passing", "lastValue": 0.002,
                   "successes": 4, "failures": 1}]))
    r = m.registry
    assert value(r, "glideslope_release_phase", phase="Progressing") == 1
    assert value(r, "glideslope_release_phase", phase="Succeeded") == 0
    assert value(r, "glideslope_release_step") == 2 and value(r, "glideslope_release_steps") == 5
    assert value(r, "glideslope_release_weight_percent") == 20
    assert value(r, "glideslope_gate_state", gate="approval", stage="preDeploy", state="Passed") == 1
    assert value(r, "glideslope_gate_state", gate="approval", stage="preDeploy", state="Pending") == 0
    assert value(r, "glideslope_trigger_last_value", trigger="errors", severity="critical") == 0.002
    assert value(r, "glideslope_trigger_measurements", trigger="errors", result="failure") == 1


def test_each_finished_rollout_is_counted_once() -> None:
    m = OperatorMetrics()
    ok = {"version": "1.0", "revision": "a", "outcome": "Succeeded", "startedAt": T0, "durationSeconds": 90}
    bad = {"version": "2.0", "revision": "b", "outcome": "RolledBack", "startedAt": T0, "durationSeconds": 40,
           "rollbackSeconds": 3.5}
    first = status(history=[ok])
    m.observe(KEY, None, first)
    m.observe(KEY, first, first)  # the same status again: nothing new finished
    second = status(history=[ok, bad])
    m.observe(KEY, first, second)
    r = m.registry
    assert value(r, "glideslope_rollouts_total", strategy="Canary", outcome="Succeeded") == 1
    assert value(r, "glideslope_rollouts_total", strategy="Canary", outcome="RolledBack") == 1
    assert value(r, "glideslope_change_failures_total", strategy="Canary") == 1
    assert value(r, "glideslope_rollbacks_total", strategy="Canary") == 1
    assert r.get_sample_value("glideslope_rollback_seconds_sum", {"strategy": "Canary"}) == 3.5
    assert r.get_sample_value("glideslope_rollout_duration_seconds_count",
                              {"strategy": "Canary", "outcome": "Succeeded"}) == 1


def test_removed_gates_and_triggers_and_deleted_releases_leave_no_series() -> None:
    m = OperatorMetrics()
    with_gate = status(gates=[{"name": "g", "stage": "preDeploy", "state": "Pending"}],
                       analysis=[{"name": "t", "severity": "low", "lastValue": 1.0}])
    m.observe(KEY, None, with_gate)
    m.observe(KEY, with_gate, status(version="3.0"))
    r = m.registry
    assert value(r, "glideslope_gate_state", gate="g", stage="preDeploy", state="Pending") is None
    assert value(r, "glideslope_trigger_last_value", trigger="t", severity="low") is None
    assert value(r, "glideslope_release_info", strategy="Canary", version="2.0", revision="abc",
                 stable_version="", stable_revision="") is None
    assert value(r, "glideslope_release_info", strategy="Canary", version="3.0", revision="abc",
                 stable_version="", stable_revision="") == 1
    m.forget("shop", "checkout")
    names = {s.name for fam in r.collect() for s in fam.samples if s.labels.get("release") == "checkout"}
    assert names == set()
