"""The notification formats of chat services and PagerDuty, and a notification's own template,
each delivered through the publisher to a receiver on 127.0.0.1 that checks what the real
service requires of a body (keys, types, limits, as its documentation states)."""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kubernetes
import pytest

from glideslope.api import (
    AnalysisState,
    HistoryEntry,
    HistoryOutcome,
    NotificationEvent,
    Phase,
    Release,
    ReleaseStatus,
    Severity,
    StrategyType,
    TriggerStatus,
    WebhookFormat,
)
from glideslope.api.spec import PAGERDUTY_EVENTS_URL
from glideslope.core.model import RELEASE_SECRET_LABEL, Announce, Reason
from glideslope.egress import Egress, EgressPolicy
from glideslope.kube.client import Kube
from glideslope.notify import ReleaseEvent, WebhookNotifier, render
from glideslope.notify.message import pagerduty_dedup_key, pagerduty_payload, template_variables
from glideslope.notify.publish import NOTIFICATION_FAILED, Delivery, Publisher, release_event, webhook_url
from tests.unit.test_api_cel import validate

pytestmark = pytest.mark.unit

# The receivers listen on 127.0.0.1, which the default egress policy denies.
EGRESS = Egress(EgressPolicy.from_flags(prometheus_url=None, egress_allow=["127.0.0.0/8"]))
ROUTING_KEY = "R0ut1ngK3yR0ut1ngK3yR0ut1ngK3y01"  # 32 characters, as PagerDuty's are
AT = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
NOTES = "### What's new\n- Faster search <@everyone> & more\n" + "- a line\n" * 4000  # 36 KB: over every limit


@pytest.fixture(scope="module", autouse=True)
def _close_egress() -> Iterator[None]:
    yield
    EGRESS.close()


# ---------------------------------------------------------------------------------------------
# A receiver that keeps what it was sent, raw


@dataclass
class Received:
    path: str
    content_type: str
    body: bytes

    def json(self) -> Any:
        assert self.content_type == "application/json"
        return json.loads(self.body)


class Receiver(http.server.ThreadingHTTPServer):
    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[Received] = []
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(Received(self.path, self.headers["Content-Type"], body))
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.shutdown()


@dataclass
class FakeCore:
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)

    def read_namespaced_secret(self, name: str, namespace: str) -> Any:
        if name not in self.secrets:
            raise kubernetes.client.ApiException(status=404, reason="Not Found")
        data = {k: base64.b64encode(v.encode()).decode() for k, v in self.secrets[name].items()}
        return kubernetes.client.V1Secret(
            metadata=kubernetes.client.V1ObjectMeta(name=name, namespace=namespace,
                                                    labels={RELEASE_SECRET_LABEL: "true"}),
            type="Opaque", data=data)

    def create_namespaced_event(self, namespace: str, body: dict[str, Any], **_: Any) -> None:
        self.events.append(body)


def release(*webhooks: dict[str, Any]) -> Release:
    return Release.model_validate({
        "metadata": {"name": "checkout", "namespace": "shop", "uid": "u-1"},
        "spec": {"version": "2.5.0", "selector": {"matchLabels": {"app": "c"}},
                 "template": {"metadata": {"labels": {"app": "c"}},
                              "spec": {"containers": [{"name": "a", "image": "c:1"}]}},
                 "strategy": {"type": "Canary", "canary": {"steps": [{"setWeight": 10}]}},
                 "notifications": [{"name": f"n{i}", "webhook": w} for i, w in enumerate(webhooks)]},
    })


def event(kind: NotificationEvent = NotificationEvent.ROLLED_BACK, **extra: Any) -> ReleaseEvent:
    fields: dict[str, Any] = dict(
        release="checkout", namespace="shop", event=kind, version="2.5.0", at=AT, revision="7f9c2d1a4b",
        stable_version="2.4.1", stable_revision="5e11a0c9d2", phase=Phase.ROLLED_BACK, strategy=StrategyType.CANARY,
        step=2, total_steps=5, weight=0, message="rolled back to 2.4.1 (5e11a0c9d2): error-rate <!channel> @everyone",
        reason="trigger error-rate: 0.31 > 0.05", trigger_name="error-rate", trigger_severity=Severity.CRITICAL,
        trigger_value=0.31, trigger_query="sum(rate(http_errors[1m])) / sum(rate(http_requests[1m]))",
        release_notes=NOTES)
    fields.update(extra)
    return ReleaseEvent(**fields)


def deliver(rel: Release, *events: ReleaseEvent, core: FakeCore | None = None) -> FakeCore:
    """Each event to each of the Release's notifications, through the publisher; waits for them."""
    core = core or FakeCore(secrets={"pd": {"key": ROUTING_KEY + "\n"}})
    publisher = Publisher(EGRESS, notifier=WebhookNotifier(EGRESS, attempts=1), timeout=2.0)
    for said in events:
        for notification in rel.spec.notifications:
            assert publisher.submit(Delivery(Kube(None, core, None, None), rel, said, notification))
    assert publisher.drain(10.0)
    return core


def one(receiver: Receiver) -> Any:
    assert len(receiver.received) == 1, receiver.received
    return receiver.received[0].json()


# ---------------------------------------------------------------------------------------------
# Microsoft Teams: a message with one Adaptive Card attachment


def test_teams_is_a_message_with_an_adaptive_card(receiver: Receiver) -> None:
    deliver(release({"url": receiver.url(), "format": "teams"}), event())
    body = one(receiver)
    assert body["type"] == "message" and isinstance(body["attachments"], list) and len(body["attachments"]) == 1
    attachment = body["attachments"][0]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["$schema"].startswith("http://adaptivecards.io/schemas/")
    assert isinstance(card["version"], str) and card["version"] <= "1.5"  # what Teams renders
    assert card["body"] and all(element["type"] in ("TextBlock", "FactSet") for element in card["body"])
    for element in card["body"]:
        if element["type"] == "TextBlock":
            assert isinstance(element["text"], str) and element["text"]
        else:
            assert all(set(f) == {"title", "value"} and all(isinstance(v, str) for v in f.values())
                       for f in element["facts"])
    assert card["body"][0]["text"] == "\u274c checkout 2.5.0: Rolled back" and card["body"][0]["color"] == "Attention"
    facts = {f["title"]: f["value"] for e in card["body"] if e["type"] == "FactSet" for f in e["facts"]}
    assert facts["Version"] == "2.4.1 \u2192 2.5.0" and facts["Trigger"] == "error-rate (critical) = 0.31"
    assert len(receiver.received[0].body) < 28 * 1024  # Teams' limit on a message


# ---------------------------------------------------------------------------------------------
# Discord: execute-webhook with one embed, within Discord's limits, mentions disabled


def test_discord_is_an_embed_within_discords_limits(receiver: Receiver) -> None:
    deliver(release({"url": receiver.url(), "format": "discord"}), event())
    body = one(receiver)
    assert isinstance(body["content"], str) and 0 < len(body["content"]) <= 2000
    assert body["allowed_mentions"] == {"parse": []}  # "@everyone" in a message pings no one
    assert isinstance(body["embeds"], list) and 1 <= len(body["embeds"]) <= 10
    embed = body["embeds"][0]
    assert len(embed["title"]) <= 256 and len(embed["description"]) <= 4096
    assert isinstance(embed["color"], int) and 0 <= embed["color"] <= 0xFFFFFF
    assert datetime.fromisoformat(embed["timestamp"]) == AT
    assert len(embed["fields"]) <= 25
    assert all(len(f["name"]) <= 256 and 0 < len(f["value"]) <= 1024 and isinstance(f["inline"], bool)
               for f in embed["fields"])
    assert len(embed["footer"]["text"]) <= 2048
    total = (len(embed["title"]) + len(embed["description"]) + len(embed["footer"]["text"])
             + sum(len(f["name"]) + len(f["value"]) for f in embed["fields"]))
    assert total <= 6000  # Discord refuses a message whose embeds hold more
    assert "Release notes" in embed["description"] and embed["description"].endswith("\u2026")


# ---------------------------------------------------------------------------------------------
# Google Chat: text and a cardsV2 card


def test_google_chat_is_text_and_a_card(receiver: Receiver) -> None:
    deliver(release({"url": receiver.url(), "format": "googlechat"}), event())
    body = one(receiver)
    assert isinstance(body["text"], str) and len(body["text"]) <= 4096
    assert "<" not in body["text"]  # `<users/all>` would notify the whole space
    assert isinstance(body["cardsV2"], list) and len(body["cardsV2"]) == 1
    entry = body["cardsV2"][0]
    assert isinstance(entry["cardId"], str) and entry["cardId"]
    card = entry["card"]
    assert isinstance(card["header"]["title"], str) and card["header"]["title"]
    widgets = [w for section in card["sections"] for w in section["widgets"]]
    assert 0 < len(widgets) <= 100  # Chat ignores widgets past 100
    for widget in widgets:
        (kind, content), = widget.items()
        assert kind in ("textParagraph", "decoratedText") and isinstance(content["text"], str)
    assert any(w.get("decoratedText", {}).get("topLabel") == "Trigger" for w in widgets)
    assert "&lt;!channel&gt;" in widgets[0]["textParagraph"]["text"]  # HTML of a tenant's text is escaped
    assert len(receiver.received[0].body) < 32000  # Chat's limit on a message


# ---------------------------------------------------------------------------------------------
# PagerDuty Events API v2


def _check_trigger(body: dict[str, Any]) -> None:
    """What the Events API v2 requires of a trigger event."""
    assert body["routing_key"] == ROUTING_KEY and body["event_action"] == "trigger"
    assert isinstance(body["dedup_key"], str) and 0 < len(body["dedup_key"]) <= 255
    payload = body["payload"]
    assert isinstance(payload["summary"], str) and 0 < len(payload["summary"]) <= 1024
    assert isinstance(payload["source"], str) and payload["source"]
    assert payload["severity"] in ("critical", "error", "warning", "info")
    datetime.fromisoformat(payload["timestamp"])
    assert isinstance(payload["custom_details"], dict)


def test_pagerduty_triggers_on_a_rollback_and_resolves_on_success(receiver: Receiver) -> None:
    rel = release({"url": receiver.url("/v2/enqueue"), "format": "pagerduty",
                   "routingKeyFrom": {"secretKeyRef": {"name": "pd", "key": "key"}}})
    deliver(rel, event(NotificationEvent.STARTED), event(NotificationEvent.ROLLED_BACK),
            event(NotificationEvent.PROMOTED), event(NotificationEvent.FAILED, trigger_severity=None),
            event(NotificationEvent.SUCCEEDED))
    bodies = [r.json() for r in receiver.received]
    assert [b["event_action"] for b in bodies] == ["trigger", "trigger", "resolve"]  # the rest is not sent
    rolled_back, failed, resolved = bodies
    _check_trigger(rolled_back)
    _check_trigger(failed)
    assert rolled_back["payload"]["severity"] == "critical" and failed["payload"]["severity"] == "error"
    key = "glideslope/shop/checkout/7f9c2d1a4b"
    assert rolled_back["dedup_key"] == failed["dedup_key"] == resolved["dedup_key"] == key
    assert resolved == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": rolled_back["dedup_key"]}
    assert rolled_back["payload"]["custom_details"]["trigger"]["name"] == "error-rate"


def test_another_revision_is_another_incident() -> None:
    assert pagerduty_dedup_key(event(revision="aaaa")) != pagerduty_dedup_key(event(revision="bbbb"))
    assert len(pagerduty_dedup_key(event(release="r" * 253, namespace="n" * 63))) <= 255


@pytest.mark.parametrize(("severity", "expected"), [
    (Severity.CRITICAL, "critical"), (Severity.HIGH, "error"), (Severity.MEDIUM, "warning"),
    (Severity.LOW, "info"), (None, "error"),
])
def test_pagerduty_severity_follows_the_trigger(severity: Severity | None, expected: str) -> None:
    for kind in (NotificationEvent.ROLLED_BACK, NotificationEvent.FAILED):
        body = pagerduty_payload(event(kind, trigger_severity=severity), ROUTING_KEY)
        assert body is not None and body["payload"]["severity"] == expected


@pytest.mark.parametrize("kind", sorted(set(NotificationEvent) - {
    NotificationEvent.ROLLED_BACK, NotificationEvent.FAILED, NotificationEvent.SUCCEEDED}))
def test_pagerduty_hears_nothing_else(kind: NotificationEvent) -> None:
    assert render(event(kind), WebhookFormat.PAGERDUTY, routing_key=ROUTING_KEY) is None


def test_the_rollback_names_the_trigger_that_rolled_it_back() -> None:
    # Not the most severe one failing now: the one the closing Event names (history[].trigger).
    status = ReleaseStatus(phase=Phase.ROLLED_BACK, version="2.5.0", revision="7f9c2d1a4b", analysis=[
        TriggerStatus(name="latency", severity=Severity.MEDIUM, state=AnalysisState.FAILING),
        TriggerStatus(name="errors", severity=Severity.HIGH, state=AnalysisState.FAILING, last_value=0.2),
        TriggerStatus(name="saturation", severity=Severity.CRITICAL, state=AnalysisState.FAILING),
    ], history=[HistoryEntry(revision="7f9c2d1a4b", outcome=HistoryOutcome.ROLLED_BACK, reason="errors",
                             trigger="errors")])
    said = release_event(release(), status, Announce(Reason.ROLLED_BACK, "rolled back", True, trigger="errors"),
                         NotificationEvent.ROLLED_BACK, AT)
    assert (said.trigger_name, said.trigger_severity) == ("errors", Severity.HIGH)
    body = pagerduty_payload(said, ROUTING_KEY)
    assert body is not None and body["payload"]["severity"] == "error"


def test_pagerduty_goes_to_pagerduty_unless_told_otherwise() -> None:
    rel = release({"format": "pagerduty", "routingKeyFrom": {"secretKeyRef": {"name": "pd", "key": "key"}}})
    assert webhook_url(Kube(None, FakeCore(), None, None), rel, rel.spec.notifications[0]) == PAGERDUTY_EVENTS_URL


def test_the_crd_accepts_pagerduty_without_a_url_and_a_template_elsewhere() -> None:
    manifest = {"apiVersion": "glideslope.dev/v1alpha1", "kind": "Release", "metadata": {"name": "checkout"},
                "spec": release().model_dump(mode="json", by_alias=True, exclude_none=True)["spec"]}
    manifest["spec"]["notifications"] = [
        {"name": "pd", "webhook": {"format": "pagerduty",
                                   "routingKeyFrom": {"secretKeyRef": {"name": "pd", "key": "key"}}}},
        {"name": "chat", "webhook": {"url": "https://hooks.example/x", "format": "discord",
                                     "template": '{"content": {{ summary|tojson }}}'}},
    ]
    assert validate(manifest) == []


def test_a_missing_routing_key_fails_the_notification(receiver: Receiver) -> None:
    rel = release({"url": receiver.url(), "format": "pagerduty",
                   "routingKeyFrom": {"secretKeyRef": {"name": "absent", "key": "key"}}})
    core = deliver(rel, event())
    assert receiver.received == []
    (failed,) = core.events
    assert failed["reason"] == NOTIFICATION_FAILED
    assert "spec.notifications[0].webhook.routingKeyFrom: Secret shop/absent not found" in failed["message"]


# ---------------------------------------------------------------------------------------------
# A notification's own template


def test_a_json_template_is_sent_as_json(receiver: Receiver) -> None:
    template = ('{"text": {{ (event ~ ": " ~ summary)|tojson }}, "at": {{ at|tojson }}, '
                '"value": {{ trigger_value }}, "step": "{{ step }}/{{ total_steps }}"}')
    deliver(release({"url": receiver.url(), "format": "slack", "template": template}), event())
    assert one(receiver) == {"text": "RolledBack: shop/checkout 2.5.0 rolled back to 2.4.1: trigger error-rate: "
                                     "0.31 > 0.05", "at": "2026-11-26T09:00:00Z", "value": 0.31, "step": "2/5"}


def test_a_text_template_is_sent_as_text(receiver: Receiver) -> None:
    deliver(release({"url": receiver.url(), "template": "{{ release }} {{ version }} is {{ phase }}\n"}), event())
    (received,) = receiver.received
    assert received.content_type == "text/plain; charset=utf-8"
    assert received.body == b"checkout 2.5.0 is RolledBack\n"


def test_the_template_sees_every_field_of_the_event() -> None:
    names = set(template_variables(event()))
    assert names == set(ReleaseEvent.__dataclass_fields__) | {"summary"}


def test_a_hostile_template_fails_its_notification_only(receiver: Receiver) -> None:
    hostile = "{% for i in range(10**9) %}x{% endfor %}"
    runaway = "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}"
    rel = release({"url": receiver.url("/a"), "template": hostile},
                  {"url": receiver.url("/b"), "template": runaway},
                  {"url": receiver.url("/c"), "format": "teams"})
    started = time.monotonic()
    core = deliver(rel, event())
    assert time.monotonic() - started < 5.0
    assert [r.path for r in receiver.received] == ["/c"]  # the third still goes, at once
    messages = sorted(e["message"] for e in core.events)
    assert all(e["reason"] == NOTIFICATION_FAILED and e["type"] == "Warning" for e in core.events)
    assert len(messages) == 2
    assert "notification n0 (RolledBack) not sent: spec.notifications[0].webhook.template: range:" in messages[0]
    assert "spec.notifications[1].webhook.template: the template took more than 50000 steps" in messages[1]
