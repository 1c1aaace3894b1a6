"""Publishing a tick's announcements (notify/publish.py): who gets what, in order, off the
reconcile path; a receiver that keeps failing becomes a `NotificationFailed` Event."""

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
    TriggerStatus,
)
from glideslope.core.model import RecordEvent
from glideslope.kube.client import Kube
from glideslope.notify import WebhookNotifier
from glideslope.notify.publish import NOTIFICATION_FAILED, Publisher, notification_event, publish, release_event

pytestmark = pytest.mark.unit


class Receiver(http.server.ThreadingHTTPServer):
    """A webhook receiver on 127.0.0.1 that answers `status` after `delay` seconds."""

    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.status, self.delay = status, delay
        self.bodies: list[tuple[str, dict[str, Any]]] = []
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def events(self, path: str = "/hook") -> list[str]:
        return [b.get("event") or b["text"] for p, b in list(self.bodies) if p == path]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        time.sleep(self.server.delay)
        self.server.bodies.append((self.path, body))
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
    """The two calls a publisher makes: read a Secret, create an Event."""

    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)

    def read_namespaced_secret(self, name: str, namespace: str) -> Any:
        if name not in self.secrets:
            raise _ApiError(404)
        data = {k: base64.b64encode(v.encode()).decode() for k, v in self.secrets[name].items()}
        return type("Secret", (), {"data": data, "string_data": None})()

    def create_namespaced_event(self, namespace: str, body: dict[str, Any], **_: Any) -> None:
        self.events.append(body)


class _ApiError(kubernetes.client.ApiException):
    def __init__(self, status: int) -> None:
        super().__init__(status=status, reason=f"HTTP {status}")


def kube(core: FakeCore | None = None) -> Kube:
    return Kube(None, core or FakeCore(), None, None)


def release(*notifications: dict[str, Any]) -> Release:
    return Release.model_validate({
        "metadata": {"name": "checkout", "namespace": "shop", "uid": "u-1"},
        "spec": {"version": "2.5.0", "selector": {"matchLabels": {"app": "c"}},
                 "template": {"metadata": {"labels": {"app": "c"}},
                              "spec": {"containers": [{"name": "a", "image": "c:1"}]}},
                 "strategy": {"type": "Canary", "canary": {"steps": [{"setWeight": 10}]}},
                 "notifications": list(notifications)},
    })


STATUS_AT = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
STATUS = ReleaseStatus(phase=Phase.PROGRESSING, version="2.5.0", revision="7f9c2d1a4b", stable_version="2.4.1",
                       stable_revision="5e11a0c9d2", current_step=1, total_steps=2, weight=10)


def fast_publisher(**kwargs: Any) -> Publisher:
    return Publisher(notifier=WebhookNotifier(attempts=2, backoff=0.0), timeout=2.0, **kwargs)


def test_event_reasons_that_notify() -> None:
    assert notification_event("Promoted") == NotificationEvent.PROMOTED
    assert notification_event("Aborted") == notification_event("Undo") == NotificationEvent.ROLLING_BACK
    assert notification_event("Retried") == NotificationEvent.STARTED
    assert notification_event("CommandIgnored") is None and notification_event("AnalysisInconclusive") is None


def test_a_trigger_event_carries_the_trigger_and_a_rollback_its_reason() -> None:
    failing = TriggerStatus(name="error-rate", severity=Severity.CRITICAL, state=AnalysisState.FAILING,
                            last_value=0.31, query="sum(rate(x[5s]))")
    status = STATUS.model_copy(update={"analysis": [failing], "history": [HistoryEntry(
        revision="7f9c2d1a4b", outcome=HistoryOutcome.ROLLED_BACK, reason="trigger error-rate: 0.31 > 0.05")]})
    announced = RecordEvent("TriggerFailed", "trigger error-rate (critical): 0.31; query: sum(rate(x[5s]))", True)
    event = release_event(release(), status, announced, NotificationEvent.TRIGGER_FAILED, STATUS_AT)
    assert (event.trigger_name, event.trigger_severity, event.trigger_value) == ("error-rate", Severity.CRITICAL, 0.31)
    back = release_event(release(), status, RecordEvent("RollingBack", "rolling back 2.5.0: error-rate failed"),
                         NotificationEvent.ROLLING_BACK, STATUS_AT)
    assert back.trigger_name == "error-rate" and back.reason == "trigger error-rate: 0.31 > 0.05"
    assert back.stable_version == "2.4.1" and back.strategy == "Canary" and back.weight == 10
    assert back.release_notes is None  # notes open and close a rollout, they do not go with each event
    noted = release().model_copy(update={"spec": release().spec.model_copy(update={"release_notes": "- new"})})
    started = release_event(noted, status, RecordEvent("Started", "go"), NotificationEvent.STARTED, STATUS_AT)
    assert started.release_notes == "- new"


def test_each_receiver_gets_the_events_it_wants_in_order_in_its_format(receiver: Receiver) -> None:
    rel = release({"name": "all", "webhook": {"url": receiver.url("/all")}},
                  {"name": "ends", "webhook": {"url": receiver.url("/slack"), "format": "slack"},
                   "events": ["Succeeded", "RolledBack"]})
    pub = fast_publisher()
    for reason in ("Started", "Promoted", "CommandIgnored", "Promoted", "Succeeded"):
        publish(kube(), rel, STATUS, [RecordEvent(reason, f"{reason} happened")], now=STATUS_AT, publisher=pub)
    assert pub.drain(10)
    assert receiver.events("/all") == ["Started", "Promoted", "Promoted", "Succeeded"]
    slack = [b for p, b in receiver.bodies if p == "/slack"]
    assert len(slack) == 1 and "blocks" in slack[0] and "succeeded" in slack[0]["text"]
    first = next(b for p, b in receiver.bodies if p == "/all")
    assert first["release"] == {"name": "checkout", "namespace": "shop"} and first["message"] == "Started happened"


def test_url_from_a_secret_in_the_release_namespace(receiver: Receiver) -> None:
    core = FakeCore(secrets={"hooks": {"url": receiver.url("/secret") + "\n"}})
    rel = release({"name": "s", "webhook": {"urlFrom": {"secretKeyRef": {"name": "hooks", "key": "url"}}}},
                  {"name": "gone", "webhook": {"urlFrom": {"secretKeyRef": {"name": "nope", "key": "url"}}}})
    pub = fast_publisher()
    publish(kube(core), rel, STATUS, [RecordEvent("Started", "go")], now=STATUS_AT, publisher=pub)
    assert pub.drain(10)
    assert receiver.events("/secret") == ["Started"]
    assert [e["reason"] for e in core.events] == [NOTIFICATION_FAILED]
    assert "Secret shop/nope not found" in core.events[0]["message"] and core.events[0]["type"] == "Warning"


def test_a_failing_receiver_is_retried_then_told_as_a_warning_event() -> None:
    failing = Receiver(status=503)
    try:
        core = FakeCore()
        rel = release({"name": "ops", "webhook": {"url": failing.url("/secret-path")}})
        pub = fast_publisher()
        publish(kube(core), rel, STATUS, [RecordEvent("Started", "go")], now=STATUS_AT, publisher=pub)
        assert pub.drain(10)
        assert len(failing.bodies) == 2  # both attempts
        (event,) = core.events
        assert event["reason"] == NOTIFICATION_FAILED and event["type"] == "Warning"
        assert "after 2 attempt(s): HTTP 503" in event["message"] and "secret-path" not in event["message"]
    finally:
        failing.shutdown()


def test_a_slow_receiver_never_holds_the_caller_and_order_holds() -> None:
    slow = Receiver(delay=0.5)
    try:
        rel = release({"name": "slow", "webhook": {"url": slow.url()}})
        pub = fast_publisher()
        started = time.monotonic()
        for reason in ("Started", "Promoted", "Succeeded"):
            publish(kube(), rel, STATUS, [RecordEvent(reason, "x")], now=STATUS_AT, publisher=pub)
        # Waiting on the receiver would take 1.5 s; the margin is for a loaded machine.
        assert time.monotonic() - started < 0.75
        assert pub.drain(10)
        assert slow.events() == ["Started", "Promoted", "Succeeded"]
    finally:
        slow.shutdown()


def test_a_full_queue_drops_rather_than_blocks() -> None:
    slow = Receiver(delay=0.5)
    try:
        rel = release({"name": "slow", "webhook": {"url": slow.url()}})
        pub = fast_publisher(workers=1, queue_size=1)
        started = time.monotonic()
        for _ in range(5):
            publish(kube(), rel, STATUS, [RecordEvent("Promoted", "x")], now=STATUS_AT, publisher=pub)
        assert time.monotonic() - started < 1.0  # blocking would take 2.5 s
        assert pub.drain(10)
        assert 1 <= len(slow.bodies) <= 2  # one in flight, one queued; the rest dropped
    finally:
        slow.shutdown()


def test_nothing_to_publish_costs_nothing() -> None:
    class Exploding(Publisher):
        def submit(self, delivery: Any) -> bool:
            raise AssertionError("nothing should be submitted")

    pub = Exploding()
    publish(kube(), release(), STATUS, [RecordEvent("Started", "x")], publisher=pub)
    rel = release({"name": "n", "webhook": {"url": "http://127.0.0.1:9/x"}, "events": ["Failed"]})
    publish(kube(), rel, STATUS, [RecordEvent("Started", "x"), RecordEvent("CommandIgnored", "y")], publisher=pub)


def test_publish_never_raises() -> None:
    class Broken(Publisher):
        def submit(self, delivery: Any) -> bool:
            raise RuntimeError("boom")

    rel = release({"name": "n", "webhook": {"url": "http://127.0.0.1:9/x"}})
    publish(kube(), rel, STATUS, [RecordEvent("Started", "x")], publisher=Broken())


def test_a_slow_receiver_does_not_hold_the_others(receiver: Receiver) -> None:
    slow = Receiver(delay=1.0)
    try:
        rel = release({"name": "slow", "webhook": {"url": slow.url()}},
                      {"name": "fast", "webhook": {"url": receiver.url()}})
        pub = fast_publisher(workers=4)
        for reason in ("Started", "Promoted", "Succeeded"):
            publish(kube(), rel, STATUS, [RecordEvent(reason, "x")], now=STATUS_AT, publisher=pub)
        deadline = time.monotonic() + 2.0  # the slow receiver needs 3 s for its three
        while len(receiver.bodies) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert receiver.events() == ["Started", "Promoted", "Succeeded"]
        assert len(slow.bodies) < 3  # still working through its own, in order
        assert pub.drain(10) and slow.events() == ["Started", "Promoted", "Succeeded"]
    finally:
        slow.shutdown()
