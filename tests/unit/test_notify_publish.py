"""Publishing a tick's announcements (notify/publish.py): who gets what, in order, off the
reconcile path on the egress layer; a receiver that keeps failing becomes a `NotificationFailed`
Event, and one namespace's black-hole receivers never hold another namespace's notifications."""

from __future__ import annotations

import base64
import http.server
import json
import logging
import socket
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
from glideslope.core.model import RELEASE_SECRET_LABEL, Announce, Reason
from glideslope.egress import Egress, EgressPolicy
from glideslope.egress import layer as egress_layer
from glideslope.kube.client import Kube
from glideslope.notify import WebhookNotifier
from glideslope.notify.publish import NOTIFICATION_FAILED, Publisher, notification_event, publish, release_event

pytestmark = pytest.mark.unit

# The receivers listen on 127.0.0.1, which the default egress policy denies.
EGRESS = Egress(EgressPolicy.from_flags(prometheus_url=None, egress_allow=["127.0.0.0/8"]))


@pytest.fixture(scope="module", autouse=True)
def _close_egress() -> Iterator[None]:
    yield
    EGRESS.close()


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


class BlackHole:
    """A receiver on 127.0.0.1 that accepts connections and never answers, until `close`."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._closed = threading.Event()
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}{path}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(connection)

    def close(self) -> None:
        """Hang up on everyone and stop listening: what waits on it fails at once."""
        self._closed.set()
        self._listener.close()
        for connection in self.accepted:
            connection.close()


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
    unlabelled: set[str] = field(default_factory=set)
    """Secrets without `glideslope.dev/release-secret: "true"`."""

    def read_namespaced_secret(self, name: str, namespace: str) -> Any:
        if name not in self.secrets:
            raise _ApiError(404)
        data = {k: base64.b64encode(v.encode()).decode() for k, v in self.secrets[name].items()}
        labels = None if name in self.unlabelled else {RELEASE_SECRET_LABEL: "true"}
        return kubernetes.client.V1Secret(
            metadata=kubernetes.client.V1ObjectMeta(name=name, namespace=namespace, labels=labels),
            type="Opaque", data=data)

    def create_namespaced_event(self, namespace: str, body: dict[str, Any], **_: Any) -> None:
        self.events.append(body)


class _ApiError(kubernetes.client.ApiException):
    def __init__(self, status: int) -> None:
        super().__init__(status=status, reason=f"HTTP {status}")


def kube(core: FakeCore | None = None) -> Kube:
    return Kube(None, core or FakeCore(), None, None)


def release(*notifications: dict[str, Any], namespace: str = "shop") -> Release:
    return Release.model_validate({
        "metadata": {"name": "checkout", "namespace": namespace, "uid": "u-1"},
        "spec": {"version": "2.5.0", "selector": {"matchLabels": {"app": "c"}},
                 "template": {"metadata": {"labels": {"app": "c"}},
                              "spec": {"containers": [{"name": "a", "image": "c:1"}]}},
                 "strategy": {"type": "Canary", "canary": {"steps": [{"setWeight": 10}]}},
                 "notifications": list(notifications)},
    })


STATUS_AT = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
STATUS = ReleaseStatus(phase=Phase.PROGRESSING, version="2.5.0", revision="7f9c2d1a4b", stable_version="2.4.1",
                       stable_revision="5e11a0c9d2", current_step=1, total_steps=2, weight=10)


def fast_publisher(egress: Egress = EGRESS, *, timeout: float = 2.0) -> Publisher:
    return Publisher(egress, notifier=WebhookNotifier(egress, attempts=2, backoff=0.0), timeout=timeout)


def wait_for(condition: Any, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


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
    announced = Announce(Reason.TRIGGER_FAILED, "trigger error-rate (critical): 0.31; query: sum(rate(x[5s]))",
                            True, trigger="error-rate")
    event = release_event(release(), status, announced, NotificationEvent.TRIGGER_FAILED, STATUS_AT)
    assert (event.trigger_name, event.trigger_severity, event.trigger_value) == ("error-rate", Severity.CRITICAL, 0.31)
    rolling_back = Announce(Reason.ROLLING_BACK, "rolling back 2.5.0: error-rate failed", trigger="error-rate")
    back = release_event(release(), status, rolling_back, NotificationEvent.ROLLING_BACK, STATUS_AT)
    assert back.trigger_name == "error-rate" and back.reason == "trigger error-rate: 0.31 > 0.05"
    assert back.stable_version == "2.4.1" and back.strategy == "Canary" and back.weight == 10
    assert back.release_notes is None  # notes open and close a rollout, they do not go with each event
    noted = release().model_copy(update={"spec": release().spec.model_copy(update={"release_notes": "- new"})})
    started = release_event(noted, status, Announce(Reason.STARTED, "go"), NotificationEvent.STARTED, STATUS_AT)
    assert started.release_notes == "- new" and started.trigger_name is None
    # A gate's rollback names no trigger, even when a failing trigger's name is in its message.
    gate = release_event(release(), status, Announce(Reason.ROLLING_BACK, "aborting: gate error-rate-check failed"),
                         NotificationEvent.ROLLING_BACK, STATUS_AT)
    assert gate.trigger_name is None


def test_every_notification_event_is_an_event_reason() -> None:
    assert {str(e) for e in NotificationEvent} <= {str(r) for r in Reason}


def test_each_receiver_gets_the_events_it_wants_in_order_in_its_format(receiver: Receiver) -> None:
    rel = release({"name": "all", "webhook": {"url": receiver.url("/all")}},
                  {"name": "ends", "webhook": {"url": receiver.url("/slack"), "format": "slack"},
                   "events": ["Succeeded", "RolledBack"]})
    pub = fast_publisher()
    for reason in ("Started", "Promoted", "CommandIgnored", "Promoted", "Succeeded"):
        publish(kube(), rel, STATUS, [Announce(reason, f"{reason} happened")], now=STATUS_AT, publisher=pub)
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
    publish(kube(core), rel, STATUS, [Announce("Started", "go")], now=STATUS_AT, publisher=pub)
    assert pub.drain(10)
    assert receiver.events("/secret") == ["Started"]
    assert [e["reason"] for e in core.events] == [NOTIFICATION_FAILED]
    assert "Secret shop/nope not found" in core.events[0]["message"] and core.events[0]["type"] == "Warning"


def test_url_from_a_secret_without_consent_is_not_read(receiver: Receiver) -> None:
    url = receiver.url("/unlabelled")
    core = FakeCore(secrets={"hooks": {"url": url}}, unlabelled={"hooks"})
    rel = release({"name": "s", "webhook": {"urlFrom": {"secretKeyRef": {"name": "hooks", "key": "url"}}}})
    pub = fast_publisher()
    publish(kube(core), rel, STATUS, [Announce("Started", "go")], now=STATUS_AT, publisher=pub)
    assert pub.drain(10)
    assert receiver.events("/unlabelled") == []
    [event] = core.events
    assert event["reason"] == NOTIFICATION_FAILED and event["type"] == "Warning"
    message = event["message"]
    assert "urlFrom: Secret shop/hooks" in message and f'{RELEASE_SECRET_LABEL}="true"' in message
    assert url not in message and "/unlabelled" not in message


def test_a_failing_receiver_is_retried_then_told_as_a_warning_event() -> None:
    failing = Receiver(status=503)
    try:
        core = FakeCore()
        rel = release({"name": "ops", "webhook": {"url": failing.url("/secret-path")}})
        pub = fast_publisher()
        publish(kube(core), rel, STATUS, [Announce("Started", "go")], now=STATUS_AT, publisher=pub)
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
            publish(kube(), rel, STATUS, [Announce(reason, "x")], now=STATUS_AT, publisher=pub)
        # Waiting on the receiver would take 1.5 s; the margin is for a loaded machine.
        assert time.monotonic() - started < 0.75
        assert pub.drain(10)
        assert slow.events() == ["Started", "Promoted", "Succeeded"]
    finally:
        slow.shutdown()


def test_too_much_waiting_in_a_namespace_is_refused_and_logged(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # One slot and room for one more to wait: of four receivers, two are heard, two refused.
    monkeypatch.setattr(egress_layer, "MAX_WAITING", 1)
    egress = Egress(EGRESS.policy, per_namespace=1)
    slow = Receiver(delay=0.5)
    try:
        rel = release(*({"name": f"n{i}", "webhook": {"url": slow.url(f"/{i}")}} for i in range(4)))
        pub = fast_publisher(egress)
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="glideslope.egress"):
            publish(kube(), rel, STATUS, [Announce("RolledBack", "x")], now=STATUS_AT, publisher=pub)
            assert time.monotonic() - started < 1.0  # never waits for the receiver
            assert pub.drain(10)
        assert sorted(p for p, _ in slow.bodies) == ["/0", "/1"]
        refused = [r.getMessage() for r in caplog.records if "not sent" in r.getMessage()]
        assert len(refused) == 2 and all("namespace='shop'" in m for m in refused)
    finally:
        slow.shutdown()
        egress.close()


def test_nothing_to_publish_costs_nothing() -> None:
    class Exploding(Publisher):
        def submit(self, delivery: Any) -> bool:
            raise AssertionError("nothing should be submitted")

    pub = Exploding(EGRESS)
    publish(kube(), release(), STATUS, [Announce("Started", "x")], publisher=pub)
    rel = release({"name": "n", "webhook": {"url": "http://127.0.0.1:9/x"}, "events": ["Failed"]})
    publish(kube(), rel, STATUS, [Announce("Started", "x"), Announce("CommandIgnored", "y")], publisher=pub)


def test_publish_never_raises() -> None:
    class Broken(Publisher):
        def submit(self, delivery: Any) -> bool:
            raise RuntimeError("boom")

    rel = release({"name": "n", "webhook": {"url": "http://127.0.0.1:9/x"}})
    publish(kube(), rel, STATUS, [Announce("Started", "x")], publisher=Broken(EGRESS))


def test_a_slow_receiver_does_not_hold_the_others(receiver: Receiver) -> None:
    slow = Receiver(delay=1.0)
    try:
        rel = release({"name": "slow", "webhook": {"url": slow.url()}},
                      {"name": "fast", "webhook": {"url": receiver.url()}})
        pub = fast_publisher()
        for reason in ("Started", "Promoted", "Succeeded"):
            publish(kube(), rel, STATUS, [Announce(reason, "x")], now=STATUS_AT, publisher=pub)
        deadline = time.monotonic() + 2.0  # the slow receiver needs 3 s for its three
        while len(receiver.bodies) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert receiver.events() == ["Started", "Promoted", "Succeeded"]
        assert len(slow.bodies) < 3  # still working through its own, in order
        assert pub.drain(10) and slow.events() == ["Started", "Promoted", "Succeeded"]
    finally:
        slow.shutdown()


def test_a_black_hole_in_one_namespace_does_not_delay_another_namespace(receiver: Receiver) -> None:
    hole = BlackHole()
    try:
        # Team A: more receivers than its namespace has slots, all black holes.
        core_a = FakeCore()
        team_a = release(*({"name": f"hole-{i}", "webhook": {"url": hole.url(f"/{i}")}}
                           for i in range(EGRESS.per_namespace + 2)), namespace="team-a")
        pub = fast_publisher(timeout=60.0)  # only `hole.close()` ends team A's deliveries
        publish(kube(core_a), team_a, STATUS, [Announce("RolledBack", "a")], now=STATUS_AT, publisher=pub)
        assert wait_for(lambda: len(hole.accepted) == EGRESS.per_namespace)  # team A's slots are all held

        # Team B's rollback is heard at once, while all of team A's are still in flight or waiting.
        team_b = release({"name": "ops", "webhook": {"url": receiver.url("/b")}}, namespace="team-b")
        publish(kube(), team_b, STATUS, [Announce("RolledBack", "b")], now=STATUS_AT, publisher=pub)
        assert wait_for(lambda: receiver.events("/b") == ["RolledBack"])
        assert core_a.events == [] and len(hole.accepted) == EGRESS.per_namespace
        assert not pub.drain(0.2)
    finally:
        hole.close()
    # Hung up on, team A's receivers each become a Warning Event.
    assert pub.drain(30)
    assert len(core_a.events) == EGRESS.per_namespace + 2
    assert {(e["reason"], e["type"]) for e in core_a.events} == {(NOTIFICATION_FAILED, "Warning")}
