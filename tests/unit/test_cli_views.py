"""What the plugin and the demo print off a terminal: whole columns, whole words, and the
versions as a reader would say them."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from glideslope.cli.live import Snapshot, render
from glideslope.cli.plugin import render_history, render_status, sparkline

pytestmark = pytest.mark.unit

REASON = ('trigger error-rate (critical): 0.31 meets failureCondition "result > 0.1"; query: '
          'sum(rate(http_requests_total{namespace="demo",code="500"}[30s]))')


def _body(stable: str | None, version: str) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Succeeded", "version": version, "history": [
        {"version": "1.0.0", "revision": "4be98f5b3e", "outcome": "Succeeded", "startedAt": "2026-11-28T10:00:00Z",
         "finishedAt": "2026-11-28T10:00:30Z", "reason": "all steps passed"},
        {"version": "1.1.0", "revision": "5be98f5b3e", "outcome": "RolledBack", "startedAt": "2026-11-28T10:01:00Z",
         "finishedAt": "2026-11-28T10:01:30Z", "reason": REASON, "rollbackSeconds": 1.2}]}
    if stable:
        status["stableVersion"] = stable
    return {"metadata": {"namespace": "demo", "name": "checkout"},
            "spec": {"version": version, "strategy": {"type": "Canary", "canary": {"steps": [{"setWeight": 25}]}}},
            "status": status}


def _text(renderable: Any, width: int) -> str:
    out = io.StringIO()
    Console(file=out, width=width).print(renderable)
    return out.getvalue()


def test_the_panel_says_where_the_versions_are() -> None:
    assert "first rollout of 1.0.0" in _text(render(Snapshot(release=_body(None, "1.0.0"))), 120)
    settled = _text(render(Snapshot(release=_body("1.0.0", "1.0.0"))), 120)
    assert "1.0.0 → 1.0.0" not in settled and "1.0.0" in settled
    assert "1.0.0 → 1.1.0" in _text(render(Snapshot(release=_body("1.0.0", "1.1.0"))), 120)


def test_history_keeps_every_column_whole_and_wraps_the_reason_by_words() -> None:
    text = _text(render_history(_body("1.0.0", "1.1.0")), 160)
    for whole in ("5be98f5b3e", "RolledBack", "2026-11-28T10:01:30+00:00", "1.2s"):
        assert whole in text
    assert "…" not in text
    words = {w for line in text.splitlines() for w in line.split()}
    assert {"failureCondition", "meets", "(critical):"} <= words  # whole words, not cut


def test_a_template_trigger_shows_its_condition() -> None:
    body = _body("1.0.0", "1.1.0")
    body["status"].update({"phase": "Progressing", "analysis": [
        {"name": "error-rate", "severity": "critical", "state": "Passing", "lastValue": 0.0002, "successes": 3}],
        "templateTriggers": {"revision": "5be98f5b3e", "digest": "d", "triggers": [
            {"name": "error-rate", "severity": "critical", "query": "x", "failureCondition": "result > 0.001"}]}})
    shown = _text(render(Snapshot(release=body)), 160)
    assert "error-rate" in shown and "result > 0.001" in shown, shown


def test_status_shows_the_judge_and_a_chart_of_both_sides() -> None:
    body = _body("1.0.0", "1.1.0")
    body["status"]["judge"] = {
        "verdict": "Fail", "score": 0, "looks": 3, "alphaSpent": 0.012, "metrics": [
            {"name": "errors", "classification": "High", "pValue": 0.00012, "canaryMedian": 0.3,
             "baselineMedian": 0.02, "canaryValues": [0.28, 0.3, 0.33], "baselineValues": [0.02, 0.01, 0.03]}]}
    text = _text(render_status(body), 120)
    assert "Fail score=0 looks=3" in text
    assert "High p=0.00012 canary=0.3 baseline=0.02" in text
    # One scale for both sides: the canary's bars are at the top, the baseline's at the bottom.
    assert "canary   ▇▇█" in text and "baseline ▁▁▁" in text and "(0.01..0.33)" in text


def test_sparkline_scales_and_survives_a_flat_series() -> None:
    assert sparkline([0.0, 0.5, 1.0], 0.0, 1.0) == "▁▅█"
    assert sparkline([2.0, 2.0], 2.0, 2.0) == "▁▁"


def test_the_weight_shows_the_measured_share_beside_it() -> None:
    body = _body("1.0.0", "1.1.0")
    body["status"].update({"phase": "Progressing", "weight": 20, "measuredWeight": 19})
    assert "20% (measured 19%)" in _text(render_status(body), 120)
    assert "20% to the candidate (19% measured)" in _text(render(Snapshot(release=body)), 160)
    del body["status"]["measuredWeight"]
    assert "measured" not in _text(render_status(body), 120)
