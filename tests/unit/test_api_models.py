"""The Release models: parsing, names on the wire, defaults, helpers and status round-trips."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from glideslope.api import (
    HISTORY_LIMIT,
    AnalysisState,
    Condition,
    ConditionStatus,
    ConditionType,
    GateStage,
    GateState,
    GateStatus,
    HistoryEntry,
    HistoryOutcome,
    OnNoData,
    Phase,
    Release,
    ReleaseSpec,
    ReleaseStatus,
    Severity,
    StrategyType,
    TriggerStatus,
    Weekday,
    gates_display,
    parse_duration,
    parse_release,
    parse_spec,
    parse_status,
    scaled_value,
    status_patch,
    step_display,
)
from glideslope.api.crd import openapi_schema
from tests.e2e.invalid import base

pytestmark = pytest.mark.unit

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
T0 = datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)


def _example(name: str) -> Release:
    return parse_release(yaml.safe_load((EXAMPLES / name).read_text()))


@pytest.mark.parametrize(("name", "strategy"), [
    ("canary.yaml", StrategyType.CANARY), ("bluegreen.yaml", StrategyType.BLUE_GREEN),
    ("rolling.yaml", StrategyType.ROLLING), ("bigbang.yaml", StrategyType.BIG_BANG),
    ("full.yaml", StrategyType.CANARY),
])
def test_each_example_parses_with_its_strategy(name: str, strategy: StrategyType) -> None:
    release = _example(name)
    assert release.spec.strategy.type == strategy
    blocks = {"Canary": "canary", "BlueGreen": "blue_green", "Rolling": "rolling", "BigBang": "big_bang"}
    assert [b for b in blocks.values() if getattr(release.spec.strategy, b) is not None] == [blocks[strategy]]


def test_full_example_reads_every_field() -> None:
    spec = _example("full.yaml").spec
    assert spec.version == "2.5.0" and spec.replicas == 4 and spec.paused is False
    assert spec.selector.match_labels == {"app": "storefront"}
    assert spec.template.metadata.labels == {"app": "storefront", "tier": "web"}
    assert spec.service is not None and spec.service.preview_name == "storefront-preview"
    assert spec.service.ports[0].target_port == 8080
    canary = spec.strategy.canary
    assert canary is not None and canary.traffic_routing is not None
    assert canary.traffic_routing.gateway_api is not None
    assert canary.traffic_routing.gateway_api.http_route == "storefront"
    assert [s.set_weight for s in canary.steps] == [10, None, None, 50, None]
    assert canary.steps[1].pause is not None and canary.steps[1].pause.duration == "30s"
    assert canary.steps[4].pause is not None and canary.steps[4].pause.duration is None
    assert [g.kind for g in spec.gates] == [
        "approval", "window", "release", "metric", "metric", "job", "webhook", "webhook"]
    window = spec.gates[1].window
    assert window is not None and window.days == [Weekday.MON, Weekday.TUE, Weekday.WED, Weekday.THU]
    assert window.freezes is not None and window.freezes[0].start == datetime(2026, 12, 20, tzinfo=UTC)
    release_gate = spec.gates[2].release
    assert release_gate is not None and release_gate.same_version is True
    job = spec.gates[5].job
    assert job is not None and job.timeout_seconds == 300
    # Fields the models do not declare are kept as written, for the Job and the Deployments.
    assert job.template.spec.containers[0].model_extra == {"args": ["--target", "http://storefront"]}
    gate_hook = spec.gates[6].webhook
    assert gate_hook is not None and gate_hook.headers_from is not None
    assert (gate_hook.headers_from.name, gate_hook.headers_from.keys) == ("change-api-token", ["Authorization"])
    resources = spec.template.spec.containers[0].to_dict()["resources"]
    assert resources == {"requests": {"cpu": "100m", "memory": "128Mi"}}
    assert spec.analysis.prometheus is not None and spec.analysis.prometheus.secret_ref is not None
    assert [t.severity for t in spec.analysis.triggers] == [
        Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW]
    assert spec.analysis.triggers[1].on_no_data == OnNoData.FAIL
    assert spec.validation.window_seconds == 600 and spec.rollback.automatic is True
    webhook = spec.notifications[0].webhook
    assert webhook.url_from is not None and webhook.url_from.secret_key_ref.key == "url"
    assert spec.release_notes is not None and spec.release_notes.startswith("### What's new")


def _schema_paths(schema: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for name, sub in schema.get("properties", {}).items():
        yield f"{prefix}.{name}"
        yield from _schema_paths(sub, f"{prefix}.{name}")
    if "items" in schema:
        yield from _schema_paths(schema["items"], f"{prefix}[]")


def _value_paths(value: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for key, sub in value.items():
            yield f"{prefix}.{key}"
            yield from _value_paths(sub, f"{prefix}.{key}")
    elif isinstance(value, list):
        for item in value:
            yield from _value_paths(item, f"{prefix}[]")


def test_examples_use_every_field() -> None:
    """So that every field is known to be accepted by the API server (the e2e test applies them)."""
    schema = openapi_schema()["properties"]["spec"]
    used: set[str] = set()
    for path in EXAMPLES.glob("*.yaml"):
        used |= set(_value_paths(yaml.safe_load(path.read_text())["spec"]))
    # One traffic router per Release: full.yaml uses gatewayAPI, canary-nginx.yaml nginx and
    # canary-istio.yaml istio.
    unused = set(_schema_paths(schema)) - used
    assert not unused, sorted(unused)


def test_defaults_match_the_api() -> None:
    spec = parse_spec({
        "version": "1", "selector": {"matchLabels": {"a": "b"}},
        "template": {"metadata": {"labels": {"a": "b"}},
                     "spec": {"containers": [{"name": "c", "image": "i"}]}},
        "strategy": {"type": "Rolling", "rolling": {}},
        "gates": [{"name": "g", "approval": {}},
                  {"name": "w", "window": {"days": ["Sat"]}},
                  {"name": "j", "job": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}},
                  {"name": "h", "webhook": {"url": "https://x.example"}}],
        "analysis": {"triggers": [{"name": "t", "query": "up", "successCondition": "result > 0.0"}]},
        "notifications": [{"name": "n", "webhook": {"url": "https://x.example"}}],
    })
    assert spec.replicas == 1 and spec.paused is False and spec.rollback.automatic is True
    assert spec.validation.window_seconds == 0 and spec.service is None
    rolling = spec.strategy.rolling
    assert rolling is not None and (rolling.max_surge, rolling.max_unavailable) == ("25%", 0)
    assert spec.gates[0].stage == GateStage.PRE_DEPLOY
    assert spec.gates[1].window is not None and spec.gates[1].window.timezone == "UTC"
    job = spec.gates[2].job
    assert job is not None and (job.timeout_seconds, job.backoff_limit) == (600, 0)
    assert job.template.spec.restart_policy == "Never"
    assert spec.gates[3].webhook is not None and spec.gates[3].webhook.timeout_seconds == 10
    assert (spec.analysis.interval, spec.analysis.initial_delay) == ("30s", "0s")
    trigger = spec.analysis.triggers[0]
    assert trigger.severity == Severity.HIGH
    assert (trigger.failure_limit, trigger.on_no_data) == (3, OnNoData.INCONCLUSIVE)
    assert spec.notifications[0].webhook.format == "json" and spec.notifications[0].events is None


def test_absent_blocks_parse_to_empty_defaults() -> None:
    spec = parse_spec(_without(base()["spec"], "analysis", "gates", "notifications"))
    assert spec.gates == [] and spec.analysis.triggers == [] and spec.notifications == []


def _without(spec: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k not in keys}


def test_names_are_camel_case_on_the_wire_and_snake_case_in_python() -> None:
    release = parse_release(base())
    wire = release.to_dict()
    assert wire["spec"]["selector"] == {"matchLabels": {"app": "checkout"}}
    assert wire["spec"]["strategy"]["canary"]["steps"][0] == {"setWeight": 10}
    assert wire["spec"]["analysis"]["triggers"][0]["onNoData"] == "Inconclusive"
    assert wire["apiVersion"] == "glideslope.dev/v1alpha1" and wire["kind"] == "Release"
    # populate_by_name: Python names work too, and the gatewayAPI alias is exact.
    routing = {"gateway_api": {"http_route": "r"}}
    spec = parse_spec(_without(base()["spec"], "strategy") | {
        "strategy": {"type": "Canary", "canary": {"steps": [{"set_weight": 5}], "traffic_routing": routing}}})
    assert spec.to_dict()["strategy"]["canary"]["trafficRouting"] == {"gatewayAPI": {"httpRoute": "r"}}


def test_spec_round_trips() -> None:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        spec = parse_release(yaml.safe_load(path.read_text())).spec
        assert ReleaseSpec.from_dict(spec.to_dict()) == spec, path.name


def test_parse_accepts_read_only_mappings() -> None:
    body = json.loads(json.dumps(base()))
    body["spec"] = MappingProxyType(body["spec"])
    body["status"] = {"phase": "Progressing", "unknownToUs": 1}
    release = parse_release(MappingProxyType(body))
    assert release.spec.version == "2.5.0" and release.status.phase == Phase.PROGRESSING
    assert release.metadata.name == "checkout"


def test_models_reject_what_the_schema_rejects() -> None:
    spec = base()["spec"]
    spec["strategy"]["canary"]["steps"][0] = {"setWeight": 101}
    with pytest.raises(ValidationError, match="setWeight"):
        parse_spec(spec)
    spec = base()["spec"]
    spec["analysis"]["interval"] = "30"
    with pytest.raises(ValidationError, match="interval"):
        parse_spec(spec)


# --------------------------------------------------------------------------------------------- status


def full_status() -> ReleaseStatus:
    """A status with every field set, times with and without a UTC offset."""
    cest = timezone(timedelta(hours=2))
    return ReleaseStatus(
        observed_generation=3, phase=Phase.PROGRESSING, message="step 3/5: analysis, 40s left",
        version="2.5.0", revision="7f9c2d1a4b", stable_revision="5e11a0c9d2", stable_version="2.4.1",
        current_step=3, total_steps=5, step_display="3/5", weight=10, replicas=4, ready_replicas=4,
        selector="app=checkout", gates_display="1/2",
        gates=[GateStatus(name="change-approved", stage=GateStage.PRE_DEPLOY, state=GateState.PASSED,
                          message="approved by alice", approved_by="alice", last_transition_time=T0),
               GateStatus(name="business-hours", stage=GateStage.PRE_DEPLOY)],
        analysis=[TriggerStatus(name="error-rate", severity=Severity.CRITICAL, state=AnalysisState.PASSING,
                                last_value=0.0002, query="sum(rate(x[30s]))", successes=6, failures=0,
                                inconclusive=1, errors=2, message="ok",
                                last_measured_time=T0.replace(microsecond=123456))],
        conditions=[Condition(type=ConditionType.READY, status=ConditionStatus.FALSE, reason="Progressing",
                              message="rolling out", last_transition_time=T0.astimezone(cest),
                              observed_generation=3)],
        started_at=T0,
        history=[HistoryEntry(version="2.4.1", revision="5e11a0c9d2", outcome=HistoryOutcome.SUCCEEDED,
                              started_at=T0 - timedelta(hours=1), finished_at=T0 - timedelta(minutes=55),
                              duration_seconds=312, rollback_seconds=None, reason="promoted"),
                 HistoryEntry(version="2.5.0-rc1", outcome=HistoryOutcome.ROLLED_BACK, duration_seconds=40.5,
                              rollback_seconds=3.25, reason="trigger error-rate failed")],
    )


def test_status_round_trips_losslessly() -> None:
    status = full_status()
    wire = status.to_dict()
    assert ReleaseStatus.from_dict(wire) == status
    # Through text too, as it travels to and from the API server.
    assert parse_status(json.loads(json.dumps(wire))) == status
    assert parse_status(yaml.safe_load(yaml.safe_dump(wire))) == status


def test_status_wire_form() -> None:
    wire = full_status().to_dict()
    assert wire["stableRevision"] == "5e11a0c9d2" and wire["stepDisplay"] == "3/5"
    assert wire["startedAt"] == "2026-03-14T09:26:53Z"
    assert wire["conditions"][0] == {
        "type": "Ready", "status": "False", "reason": "Progressing", "message": "rolling out",
        "lastTransitionTime": "2026-03-14T11:26:53+02:00", "observedGeneration": 3}
    assert "rollbackSeconds" not in wire["history"][0]  # None is left out, not sent as null
    assert wire["analysis"][0]["lastMeasuredTime"] == "2026-03-14T09:26:53.123456Z"


def test_empty_status() -> None:
    assert parse_status(None) == ReleaseStatus()
    assert ReleaseStatus().to_dict() == {"gates": [], "analysis": [], "conditions": [], "history": [],
                                         "obeyedCommands": {}, "announcements": [], "stepStarts": []}


def test_status_times_must_carry_a_zone() -> None:
    with pytest.raises(ValidationError):
        ReleaseStatus(started_at=datetime(2026, 1, 1))  # naive: the point of the test


def test_status_patch_deletes_what_is_gone() -> None:
    previous = full_status().to_dict()
    status = full_status().model_copy(update={"message": None, "weight": None})
    patch = status_patch(status, previous)
    assert patch["message"] is None and patch["weight"] is None and patch["phase"] == "Progressing"
    assert status_patch(status) == status.to_dict()


def test_status_patch_deletes_the_keys_a_map_no_longer_has() -> None:
    previous = ReleaseStatus(obeyed_commands={"glideslope.dev/abort": "", "glideslope.dev/pause": "x"}).to_dict()
    status = ReleaseStatus(obeyed_commands={"glideslope.dev/pause": "x"})
    assert status_patch(status, previous)["obeyedCommands"] == {"glideslope.dev/abort": None,
                                                                 "glideslope.dev/pause": "x"}


def test_history_is_bounded() -> None:
    entries = [HistoryEntry(outcome=HistoryOutcome.SUCCEEDED)] * (HISTORY_LIMIT + 1)
    with pytest.raises(ValidationError):
        ReleaseStatus(history=entries)


def test_condition_lookup() -> None:
    status = full_status()
    ready = status.condition(ConditionType.READY)
    assert ready is not None and ready.status == ConditionStatus.FALSE
    assert status.condition(ConditionType.DEGRADED) is None


def test_display_columns() -> None:
    assert step_display(3, 7) == "3/7"
    assert step_display(None, 7) is None and step_display(0, 0) is None
    gates = [GateStatus(name="a", state=GateState.PASSED), GateStatus(name="b"),
             GateStatus(name="c", state=GateState.PASSED)]
    assert gates_display(gates) == "2/3"
    assert gates_display([]) is None


# --------------------------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30), ("1m30s", 90), ("500ms", 0.5), ("2h", 7200), ("1.5m", 90), ("0s", 0), ("1h0m1s", 3601),
])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["30", "1 m", "-1s", "1d", "", "s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(("value", "total", "up", "down"), [
    (2, 10, 2, 2), ("25%", 4, 1, 1), ("25%", 5, 2, 1), ("33%", 300, 99, 99),
    ("0%", 9, 0, 0), ("100%", 7, 7, 7),
])
def test_scaled_value(value: int | str, total: int, up: int, down: int) -> None:
    assert scaled_value(value, total, round_up=True) == up
    assert scaled_value(value, total, round_up=False) == down


def test_weekday_index_matches_datetime() -> None:
    assert [d.number for d in Weekday] == list(range(7))
    assert list(Weekday)[T0.weekday()] == Weekday.SAT
