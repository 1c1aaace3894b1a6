"""Notifications on the sandbox: webhook receivers in this test process (the operator runs
locally, so it reaches 127.0.0.1) hear a Release's events in order, as JSON and as Slack
messages; a receiver that keeps failing is a `NotificationFailed` Warning, and a slow one
holds no rollout."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.analysis_helpers import analysis, trigger
from tests.e2e.helpers import Cluster, wait_until
from tests.e2e.operator_fixture import (  # noqa: F401
    Operator,
    grant_secrets,
    operator_fixture,
    release,
    wait_phase,
)

pytestmark = pytest.mark.e2e

STEPS = {"type": "Canary", "canary": {"steps": [{"setWeight": 25}, {"analysis": {"duration": "2s"}}]}}
# The Slack header says what happened in words; back to the event it stands for.
SLACK_LABELS = {"Rollout started": "Started", "Succeeded": "Succeeded", "Rolling back": "RollingBack",
                "Rolled back": "RolledBack", "Trigger failed": "TriggerFailed", "Promoted": "Promoted"}


class Receiver(http.server.ThreadingHTTPServer):
    """Records every POST by path; `/slow` answers after a second."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def bodies(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [b for p, b in self.received if p == path]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/slow":
            time.sleep(1.0)
        with self.server.lock:
            self.server.received.append((self.path, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def collapsed(events: list[str]) -> list[str]:
    """Repeats in a row counted once (a trigger may fail at more than one measurement)."""
    return [e for i, e in enumerate(events) if i == 0 or events[i - 1] != e]


def test_receivers_hear_the_events_in_order(sandbox: Cluster, namespace: str, operator: Operator,
                                            receiver: Receiver) -> None:
    grant_secrets(sandbox, namespace)
    sandbox.kubectl("create", "secret", "generic", "slack", "-n", namespace,
                    f"--from-literal=url={receiver.url('/slack/T0/B0/secret-token')}")
    sandbox.kubectl("label", "secret", "slack", "-n", namespace, "glideslope.dev/release-secret=true")
    notifications = [
        {"name": "audit", "webhook": {"url": receiver.url("/json")}},
        {"name": "chat", "webhook": {"urlFrom": {"secretKeyRef": {"name": "slack", "key": "url"}}, "format": "slack"},
         "events": ["Started", "Succeeded", "RollingBack", "RolledBack"]},
        {"name": "slow", "webhook": {"url": receiver.url("/slow")}, "events": ["Started", "Succeeded"]},
        # Nothing listens on port 9 (discard): every attempt fails.
        {"name": "down", "webhook": {"url": "http://127.0.0.1:9/hook"}, "events": ["Succeeded"]},
    ]
    spec = {"analysis": analysis(trigger("critical")), "notifications": notifications}

    sandbox.apply(release("web", "1", STEPS, replicas=2, **spec), namespace)
    wait_phase(sandbox, namespace, "web", "Succeeded", version="1")
    sandbox.apply(release("web", "2", STEPS, replicas=2, releaseNotes="### 2\n- Faster search", **spec), namespace)
    wait_phase(sandbox, namespace, "web", "Succeeded", version="2", timeout=60)
    sandbox.apply(release("web", "3", STEPS, replicas=2, error_rate=0.5, **spec), namespace)
    wait_phase(sandbox, namespace, "web", "RolledBack", version="3", timeout=90)

    expected = ["Started", "Succeeded", "Started", "Succeeded", "Started", "TriggerFailed", "RollingBack",
                "RolledBack"]

    def json_events() -> list[str] | None:
        events = collapsed([b["event"] for b in receiver.bodies("/json")])
        return events if events[-1:] == ["RolledBack"] else None

    assert wait_until(json_events, 30, "the JSON receiver hears RolledBack") == expected
    bodies = receiver.bodies("/json")
    assert all(b["schemaVersion"] == 1 and b["release"] == {"name": "web", "namespace": namespace} for b in bodies)
    versions = [(b["event"], b["version"]) for b in bodies]
    assert versions[:4] == [("Started", "1"), ("Succeeded", "1"), ("Started", "2"), ("Succeeded", "2")]
    # The notes open and close their rollout.
    assert [b["releaseNotes"] for b in bodies[2:4]] == ["### 2\n- Faster search"] * 2
    failed = next(b for b in bodies if b["event"] == "TriggerFailed")
    assert failed["trigger"]["name"] == "error-rate" and failed["trigger"]["value"] > 0.1
    back = next(b for b in bodies if b["event"] == "RollingBack")
    assert back["stable"]["version"] == "2" and back["version"] == "3" and back["reason"]

    def slack_events() -> list[str]:
        headers = [b["blocks"][0]["text"]["text"] for b in receiver.bodies("/slack/T0/B0/secret-token")]
        return [SLACK_LABELS[h.split(": ", 1)[1]] for h in headers]

    wait_until(lambda: len(slack_events()) >= 7, 30, "the Slack receiver hears 7 events")
    assert slack_events() == ["Started", "Succeeded", "Started", "Succeeded", "Started", "RollingBack", "RolledBack"]
    assert all("text" in b for b in receiver.bodies("/slack/T0/B0/secret-token"))

    # The slow receiver got its events, in order, and held nothing up (the rollouts are done).
    wait_until(lambda: len(receiver.bodies("/slow")) >= 5, 30, "the slow receiver hears 5 events")
    assert [b["event"] for b in receiver.bodies("/slow")] == ["Started", "Succeeded", "Started", "Succeeded",
                                                              "Started"]

    # The receiver that is down: one Warning per undelivered notification, with no secret in it.
    def warnings() -> list[dict[str, Any]] | None:
        items = sandbox.get_json("events", "-n", namespace, "--field-selector",
                                 "involvedObject.kind=Release,reason=NotificationFailed")["items"]
        return items if len(items) >= 2 else None

    found = wait_until(warnings, 60, "two NotificationFailed Events")
    assert all(e["type"] == "Warning" and "notification down (Succeeded)" in e["message"] for e in found)
    assert "after 3 attempt(s)" in found[0]["message"]
