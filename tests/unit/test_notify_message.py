"""Notification bodies: the JSON contract, the Slack message, and who wants which event."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glideslope.api import (
    Notification,
    NotificationEvent,
    Phase,
    Severity,
    StrategyType,
    WebhookFormat,
)
from glideslope.notify import SCHEMA_VERSION, ReleaseEvent, emoji, json_payload, render, slack_payload, summary, wants

pytestmark = pytest.mark.unit

AT = datetime(2026, 11, 26, 6, 50, 0, tzinfo=UTC)


def full_event(event: NotificationEvent = NotificationEvent.TRIGGER_FAILED, **changes: Any) -> ReleaseEvent:
    fields: dict[str, Any] = {
        "release": "checkout", "namespace": "shop", "event": event, "version": "2.5.0", "at": AT,
        "revision": "7f9c2d1a4b", "stable_version": "2.4.1", "stable_revision": "5e11a0c9d2",
        "phase": Phase.PROGRESSING, "message": "step 3/5: analysis, 40s left", "strategy": StrategyType.CANARY,
        "step": 3, "total_steps": 5, "weight": 10, "trigger_name": "error-rate",
        "trigger_severity": Severity.CRITICAL, "trigger_value": 0.0123,
        "trigger_query": 'sum(rate(http_requests_total{code=~"5.."}[30s]))', "reason": "error-rate above 0.001",
    }
    fields.update(changes)
    return ReleaseEvent(**fields)


def bare_event(event: NotificationEvent = NotificationEvent.STARTED) -> ReleaseEvent:
    return ReleaseEvent(release="checkout", namespace="shop", event=event, version="2.5.0", at=AT)


def notification(events: list[str] | None) -> Notification:
    body: dict[str, Any] = {"name": "deploys", "webhook": {"url": "https://hooks.example/x", "format": "slack"}}
    if events is not None:
        body["events"] = events
    return Notification.from_dict(body)


def walk(value: Any) -> list[Any]:
    """Every value nested in a JSON-like structure, containers included."""
    found = [value]
    if isinstance(value, dict):
        for item in value.values():
            found += walk(item)
    elif isinstance(value, list):
        for item in value:
            found += walk(item)
    return found


def slack_texts(payload: dict[str, Any]) -> list[str]:
    """Every text string a Slack message shows."""
    texts = [payload["text"]]
    for block in payload["blocks"]:
        if "text" in block:
            texts.append(block["text"]["text"])
        texts += [f["text"] for f in block.get("fields", [])]
        texts += [e["text"] for e in block.get("elements", [])]
    return texts


# ---------------------------------------------------------------------------------------------
# wants


def test_no_events_list_wants_every_event() -> None:
    n = notification(None)
    assert all(wants(n, e) for e in NotificationEvent)


def test_events_list_selects_exactly_those() -> None:
    n = notification(["Succeeded", "RolledBack"])
    assert {e for e in NotificationEvent if wants(n, e)} == {NotificationEvent.SUCCEEDED, NotificationEvent.ROLLED_BACK}


# ---------------------------------------------------------------------------------------------
# JSON


def test_json_payload_full_shape() -> None:
    assert json_payload(full_event()) == {
        "schemaVersion": 1,
        "kind": "ReleaseEvent",
        "event": "TriggerFailed",
        "at": "2026-11-26T06:50:00Z",
        "release": {"name": "checkout", "namespace": "shop"},
        "version": "2.5.0",
        "revision": "7f9c2d1a4b",
        "stable": {"version": "2.4.1", "revision": "5e11a0c9d2"},
        "phase": "Progressing",
        "strategy": "Canary",
        "step": {"current": 3, "total": 5},
        "weight": 10,
        "message": "step 3/5: analysis, 40s left",
        "reason": "error-rate above 0.001",
        "trigger": {"name": "error-rate", "severity": "critical", "value": 0.0123,
                    "query": 'sum(rate(http_requests_total{code=~"5.."}[30s]))'},
        "summary": "shop/checkout 2.5.0: trigger error-rate failed (0.0123)",
        "releaseNotes": None,
    }


def test_json_payload_keeps_every_key_when_fields_are_absent() -> None:
    payload = json_payload(bare_event())
    assert set(payload) == set(json_payload(full_event()))
    assert payload["stable"] is None and payload["step"] is None and payload["trigger"] is None
    assert payload["schemaVersion"] == SCHEMA_VERSION


def test_json_payload_wire_values_are_plain_strings() -> None:
    # StrEnum members would serialise fine, but receivers comparing types must see str.
    payload = json_payload(full_event())
    assert type(payload["event"]) is str and type(payload["phase"]) is str and type(payload["strategy"]) is str
    assert type(payload["trigger"]["severity"]) is str


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_json_payload_has_no_nan(value: float) -> None:
    payload = json_payload(full_event(trigger_value=value))
    assert payload["trigger"]["value"] is None
    json.dumps(payload, allow_nan=False)


def test_json_payload_time_is_utc() -> None:
    berlin = timezone(timedelta(hours=1))
    payload = json_payload(full_event(at=datetime(2026, 11, 26, 7, 50, 0, 250000, tzinfo=berlin)))
    assert payload["at"] == "2026-11-26T06:50:00.250000Z"


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        full_event(at=datetime(2026, 11, 26, 6, 50))


# ---------------------------------------------------------------------------------------------
# Slack


def test_slack_payload_shape() -> None:
    payload = slack_payload(full_event(NotificationEvent.SUCCEEDED))
    assert payload["text"].startswith("\u2705 shop/checkout 2.5.0 succeeded")
    header, section, context = payload["blocks"]
    assert header == {"type": "header",
                      "text": {"type": "plain_text", "text": "\u2705 checkout 2.5.0: Succeeded", "emoji": True}}
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    fields = {f["text"].split("\n")[0]: f["text"].split("\n", 1)[1] for f in section["fields"]}
    assert fields == {"*Release*": "shop/checkout", "*Version*": "2.4.1 \u2192 2.5.0", "*Strategy*": "Canary",
                      "*Phase*": "Progressing", "*Step*": "3/5", "*Weight*": "10%",
                      "*Trigger*": "error-rate (critical) = 0.0123"}
    assert context["type"] == "context"
    assert "<!date^1795675800^" in context["elements"][0]["text"]
    assert "|2026-11-26 06:50 UTC>" in context["elements"][0]["text"]
    assert "revision `7f9c2d1a4b`" in context["elements"][0]["text"]


@pytest.mark.parametrize(("event", "mark"), [
    (NotificationEvent.SUCCEEDED, "\u2705"),
    (NotificationEvent.ROLLED_BACK, "\u274c"),
    (NotificationEvent.FAILED, "\u274c"),
    (NotificationEvent.ROLLING_BACK, "\u23ea"),
    (NotificationEvent.PAUSED, "\u23f8\ufe0f"),
    (NotificationEvent.GATED, "\u23f8\ufe0f"),
    (NotificationEvent.STARTED, "\u25b6\ufe0f"),
    (NotificationEvent.PROMOTED, "\u25b6\ufe0f"),
])
def test_slack_emoji_by_event(event: NotificationEvent, mark: str) -> None:
    assert emoji(event) == mark
    payload = slack_payload(full_event(event))
    assert payload["text"].startswith(mark)
    assert payload["blocks"][0]["text"]["text"].startswith(mark)


def test_slack_escapes_control_characters() -> None:
    payload = slack_payload(full_event(message="<!channel> deploy & pray", reason="a < b > c"))
    section = payload["blocks"][1]["text"]["text"]
    assert "&lt;!channel&gt; deploy &amp; pray" in section
    assert "a &lt; b &gt; c" in section
    assert "<!channel>" not in json.dumps(payload)


def test_slack_query_cannot_close_the_code_block() -> None:
    section = slack_payload(full_event(trigger_query="up ``` *bold*"))["blocks"][1]["text"]["text"]
    assert section.count("```") == 2


def test_slack_bare_event_has_only_what_is_known() -> None:
    payload = slack_payload(bare_event())
    fields = [f["text"] for f in payload["blocks"][1]["fields"]]
    assert fields == ["*Release*\nshop/checkout", "*Version*\n2.5.0"]
    assert "revision" not in payload["blocks"][2]["elements"][0]["text"]


def test_slack_long_texts_fit_slack_limits() -> None:
    payload = slack_payload(full_event(message="&" * 5000, reason="<" * 5000, trigger_query="x" * 9000,
                                       version="v" * 128))
    assert len(payload["blocks"][0]["text"]["text"]) <= 150
    assert len(payload["blocks"][1]["text"]["text"]) <= 3000
    assert all(len(f["text"]) <= 2000 for f in payload["blocks"][1]["fields"])
    assert len(payload["text"]) <= 3000
    # Cut between entities, never inside one.
    assert "&amp;&amp;\u2026" in payload["blocks"][1]["text"]["text"]


# ---------------------------------------------------------------------------------------------
# Every event, both formats


@pytest.mark.parametrize("event", list(NotificationEvent))
@pytest.mark.parametrize("make", [full_event, bare_event], ids=["full", "bare"])
def test_every_event_renders_in_both_formats(event: NotificationEvent, make: Any) -> None:
    release_event: ReleaseEvent = make(event)
    as_json = render(release_event, WebhookFormat.JSON)
    as_slack = render(release_event, WebhookFormat.SLACK)
    assert as_json == json_payload(release_event) and as_slack == slack_payload(release_event)
    assert as_json["event"] == str(event)
    json.dumps(as_json, allow_nan=False)
    json.dumps(as_slack, allow_nan=False)
    assert None not in walk(as_slack)
    assert all(text.strip() for text in slack_texts(as_slack))
    assert summary(release_event).startswith("shop/checkout 2.5.0")


texts = st.none() | st.text(max_size=300)


@settings(max_examples=200, deadline=None)
@given(
    event=st.sampled_from(list(NotificationEvent)),
    message=texts,
    reason=texts,
    query=texts,
    trigger=st.none() | st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
    value=st.none() | st.floats(allow_nan=True, allow_infinity=True),
    weight=st.none() | st.integers(0, 100),
    step=st.none() | st.integers(0, 20),
    total=st.none() | st.integers(0, 20),
    phase=st.none() | st.sampled_from(list(Phase)),
)
def test_any_event_renders_valid_bodies(
    event: NotificationEvent, message: str | None, reason: str | None, query: str | None, trigger: str | None,
    value: float | None, weight: int | None, step: int | None, total: int | None, phase: Phase | None,
) -> None:
    release_event = ReleaseEvent(release="web", namespace="prod", event=event, version="1.0.0", at=AT,
                                 message=message, reason=reason, trigger_query=query, trigger_name=trigger,
                                 trigger_value=value, weight=weight, step=step, total_steps=total, phase=phase)
    as_slack = slack_payload(release_event)
    as_json = json_payload(release_event)
    json.dumps(as_json, allow_nan=False)
    json.dumps(as_slack, allow_nan=False)
    assert None not in walk(as_slack)
    assert all(text.strip() for text in slack_texts(as_slack))
    assert len(as_slack["blocks"][1]["text"]["text"]) <= 3000


def test_release_notes_go_in_both_formats_within_slack_limits() -> None:
    notes = "### What's new\n- Faster <search> & more\n" + "- item\n" * 1000
    event = full_event(NotificationEvent.STARTED, release_notes=notes)
    assert json_payload(event)["releaseNotes"] == notes
    blocks = slack_payload(event)["blocks"]
    assert [b["type"] for b in blocks] == ["header", "section", "section", "context"]
    text = blocks[2]["text"]["text"]
    assert text.startswith("*Release notes*\n### What's new\n- Faster &lt;search&gt; &amp; more")
    assert len(text) <= 3000 and text.endswith("\u2026")
    assert [b["type"] for b in slack_payload(full_event(release_notes="  \n"))["blocks"]] == [
        "header", "section", "context"]
