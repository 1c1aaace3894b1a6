"""Gates on the sandbox, one kind per test: approval, window, another Release (staging
first), a Job (smoke tests after promotion), a webhook (a local server), a metric (the
sandbox's Prometheus)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.e2e.helpers import Cluster, wait_until
from tests.e2e.operator_fixture import (
    Operator,
    annotate,
    deployments,
    events,
    grant_secrets,
    operator_fixture,  # noqa: F401
    release,
    selector,
    status,
    wait_phase,
)

pytestmark = pytest.mark.e2e

CANARY = {"type": "Canary", "canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "1s"}}]}}


def gated(name: str, version: str, gates: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return release(name, version, CANARY, replicas=2, gates=gates, **spec)


def gate(st: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(g for g in st.get("gates", []) if g["name"] == name)
    return found


def stable(sandbox: Cluster, namespace: str, body: dict[str, Any]) -> str:
    sandbox.apply(body, namespace)
    st = wait_phase(sandbox, namespace, body["metadata"]["name"], "Succeeded", version=body["spec"]["version"])
    revision: str = st["stableRevision"]
    return revision


def hold(sandbox: Cluster, namespace: str, name: str, phase: str, seconds: float) -> dict[str, Any]:
    """The Release stays in `phase` for `seconds`; returns its last status."""
    deadline = time.monotonic() + seconds
    st = status(sandbox, namespace, name)
    while time.monotonic() < deadline:
        st = status(sandbox, namespace, name)
        assert st.get("phase") == phase, st
        time.sleep(0.3)
    return st


def test_approval_blocks_until_approved(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    approval = [{"name": "change-approved", "stage": "preDeploy", "approval": {}}]
    sandbox.apply(gated("web", "1", approval), namespace)
    wait_phase(sandbox, namespace, "web", "Gated", version="1")
    # The admission policy admits an approval signed with the writer's own user name only.
    me = sandbox.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout.strip()
    sandbox.kubectl("annotate", "release", "web", "-n", namespace, "glideslope.dev/approve=change-approved",
                    f"glideslope.dev/approved-by={me}")
    v1 = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")["stableRevision"]

    sandbox.apply(gated("web", "2", approval), namespace)
    st = wait_phase(sandbox, namespace, "web", "Gated", version="2")
    st = hold(sandbox, namespace, "web", "Gated", 3)
    # An approval holds for one revision: v2 needs its own, and nothing of v2 exists meanwhile.
    assert gate(st, "change-approved")["state"] == "Pending"
    assert st["gatesDisplay"] == "0/1"
    assert "kubectl release approve web --gate change-approved" in st["message"]
    assert set(deployments(sandbox, namespace, "web")) == {v1}
    row = sandbox.kubectl("get", "release", "web", "-n", namespace, "--no-headers").stdout.split()
    assert "Gated" in row and "0/1" in row, row

    sandbox.kubectl("annotate", "release", "web", "-n", namespace, "glideslope.dev/approve=change-approved",
                    f"glideslope.dev/approved-by={me}")
    st = wait_phase(sandbox, namespace, "web", "Succeeded", version="2")
    approved = gate(st, "change-approved")
    assert (approved["state"], approved["approvedBy"], st["gatesDisplay"]) == ("Passed", me, "1/1")
    annotations = sandbox.get_json("release", "web", "-n", namespace)["metadata"].get("annotations") or {}
    assert "glideslope.dev/approve" not in annotations and "glideslope.dev/approved-by" not in annotations
    reasons = events(sandbox, namespace)
    assert {"Gated", "GatePassed", "Started", "Succeeded"} <= set(reasons), reasons


def test_a_closed_window_holds_then_opens(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    stable(sandbox, namespace, gated("web", "1", []))
    now = datetime.now(UTC)
    # Open hours around now (today, in UTC), frozen until a few seconds from now.
    frozen_until = now + timedelta(seconds=8)
    window = {"name": "hours", "stage": "preDeploy", "window": {
        # `days` names the day a window opens: near midnight it crosses into the next day.
        "timezone": "UTC", "days": [(now - timedelta(minutes=5)).strftime("%a")],
        "start": (now - timedelta(minutes=5)).strftime("%H:%M"), "end": (now + timedelta(minutes=30)).strftime("%H:%M"),
        "freezes": [{"start": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                     "end": frozen_until.strftime("%Y-%m-%dT%H:%M:%SZ"), "reason": "test freeze"}]}}
    sandbox.apply(gated("web", "2", [window]), namespace)
    st = wait_phase(sandbox, namespace, "web", "Gated", version="2")
    assert "frozen (test freeze)" in gate(st, "hours")["message"] and "opens at" in gate(st, "hours")["message"]
    st = wait_phase(sandbox, namespace, "web", "Succeeded", version="2", timeout=60)
    assert gate(st, "hours")["state"] == "Passed"
    started = datetime.fromisoformat(st["history"][-1]["startedAt"].replace("Z", "+00:00"))
    assert started >= frozen_until.replace(microsecond=0), "deployed only once the freeze was over"


def test_staging_gates_production(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    staging_gate = [{"name": "staging-first", "stage": "preDeploy",
                     "release": {"name": "staging", "namespace": namespace, "sameVersion": True}}]
    stable(sandbox, namespace, gated("staging", "1", []))
    prod_v1 = stable(sandbox, namespace, gated("prod", "1", staging_gate))
    # Staging rolls v2 out, paused; production waits for it.
    sandbox.apply(gated("staging", "2", [], paused=True), namespace)
    sandbox.apply(gated("prod", "2", staging_gate), namespace)
    st = wait_phase(sandbox, namespace, "prod", "Gated", version="2")
    st = hold(sandbox, namespace, "prod", "Gated", 3)
    assert f"waiting for Release {namespace}/staging to succeed with 2" in gate(st, "staging-first")["message"]
    assert set(deployments(sandbox, namespace, "prod")) == {prod_v1}
    sandbox.apply(gated("staging", "2", [], paused=False), namespace)
    wait_phase(sandbox, namespace, "staging", "Succeeded", version="2")
    st = wait_phase(sandbox, namespace, "prod", "Succeeded", version="2")
    assert gate(st, "staging-first")["state"] == "Passed"


def smoke_tests(fail: bool) -> dict[str, Any]:
    annotations = {"sandbox.glideslope.dev/fail": "true"} if fail else {}
    return {"name": "smoke-tests", "stage": "postDeploy", "job": {
        "template": {"metadata": {"annotations": annotations},
                     "spec": {"containers": [{"name": "smoke", "image": "registry.example/smoke:1"}],
                              "restartPolicy": "Never"}},
        "timeoutSeconds": 60, "ttlSecondsAfterFinished": 600}}


def test_smoke_tests_after_promotion(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    stable(sandbox, namespace, gated("web", "1", [smoke_tests(fail=False)]))
    # A passing smoke test completes v2.
    st = stable(sandbox, namespace, gated("web", "2", [smoke_tests(fail=False)]))
    v2 = st
    jobs = sandbox.get_json("jobs", "-n", namespace, "-l", "glideslope.dev/gate=smoke-tests")["items"]
    assert [j["metadata"]["labels"]["glideslope.dev/revision"] for j in jobs] == [v2]
    assert jobs[0]["spec"]["ttlSecondsAfterFinished"] == 600
    # A failing one rolls v3 back to v2, after full promotion.
    sandbox.apply(gated("web", "3", [smoke_tests(fail=True)]), namespace)
    st = wait_phase(sandbox, namespace, "web", "Validating", version="3")
    assert st["weight"] == 100
    st = wait_phase(sandbox, namespace, "web", "RolledBack", version="3", timeout=90)
    smoke = gate(st, "smoke-tests")
    assert smoke["state"] == "Failed"
    assert "failed" in smoke["message"]
    assert f"logs: kubectl logs -n {namespace} job/web-smoke-tests-" in smoke["message"]
    assert st["stableRevision"] == v2 and st["history"][-1]["outcome"] == "RolledBack"
    assert "postDeploy gate smoke-tests" in st["history"][-1]["reason"]
    wait_until(lambda: selector(sandbox, namespace, "web").get("glideslope.dev/revision") in (v2, None)
               and deployments(sandbox, namespace, "web")[v2]["ready"] == 2, timeout=30, what="v2 serving")
    assert "GateFailed" in events(sandbox, namespace)


class Receiver(BaseHTTPRequestHandler):
    """A change-ticket service: answers with the status the test sets, records what it got."""

    answer = 200
    received: list[tuple[dict[str, Any], dict[str, str]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append((body, dict(self.headers)))
        self.send_response(type(self).answer)
        self.end_headers()
        self.wfile.write(b'{"ok": true}' if type(self).answer < 300 else b"ticket CHG-1 is not approved")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[Receiver]]]:
    handler = type("Handler", (Receiver,), {"answer": 200, "received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/check", handler
    server.shutdown()


CONSENT = {"glideslope.dev/release-secret": "true"}
"""The label by which a Secret's owner lets Releases use it."""


def ticket_gate(url: str, secret: str, keys: list[str]) -> dict[str, Any]:
    return {"name": "change-ticket", "stage": "preDeploy",
            "webhook": {"url": url, "timeoutSeconds": 5, "retries": 1,
                        "headersFrom": {"name": secret, "keys": keys}}}


def test_webhook_gate_asks_a_local_server(sandbox: Cluster, namespace: str, operator: Operator,
                                          receiver: tuple[str, type[Receiver]]) -> None:
    url, handler = receiver
    grant_secrets(sandbox, namespace)
    sandbox.apply({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "ticket-token", "labels": CONSENT},
                   "stringData": {"Authorization": "Bearer s3cret", "X-Not-Named": "kept"}}, namespace)
    ticket = [ticket_gate(url, "ticket-token", ["Authorization"])]
    stable(sandbox, namespace, gated("web", "1", ticket))
    body, headers = handler.received[-1]
    assert {k: body[k] for k in ("release", "namespace", "version", "gate", "stage")} == {
        "release": "web", "namespace": namespace, "version": "1", "gate": "change-ticket", "stage": "preDeploy"}
    assert headers["Authorization"] == "Bearer s3cret"
    assert "X-Not-Named" not in headers  # only the keys headersFrom names are sent
    # A refusal fails the gate before anything changes; the stable revision keeps serving.
    handler.answer = 409
    sandbox.apply(gated("web", "2", ticket), namespace)
    st = wait_phase(sandbox, namespace, "web", "Failed", version="2")
    message = gate(st, "change-ticket")["message"]
    assert "the webhook said no: HTTP 409" in message
    assert "ticket CHG-1" not in message  # what the receiver says is never copied into status
    assert "nothing was changed" in st["message"]
    assert len(deployments(sandbox, namespace, "web")) == 1
    assert {c["type"]: c["status"] for c in st["conditions"]}["Degraded"] == "True"
    # Retry once the ticket is approved.
    handler.answer = 200
    annotate(sandbox, namespace, "web", "glideslope.dev/retry", "ticket approved")
    wait_phase(sandbox, namespace, "web", "Succeeded", version="2")
    assert [b["version"] for b, _ in handler.received] == ["1", "2", "2"]


def refused_gate(sandbox: Cluster, namespace: str, handler: type[Receiver], gates: list[dict[str, Any]]) -> str:
    """The Release fails at its webhook gate without asking the receiver; the gate's message."""
    sandbox.apply(gated("web", "1", gates), namespace)
    st = wait_phase(sandbox, namespace, "web", "Failed", version="1")
    message: str = gate(st, "change-ticket")["message"]
    assert handler.received == []
    assert deployments(sandbox, namespace, "web") == {}
    assert "nothing was changed" in st["message"] and "GateFailed" in events(sandbox, namespace)
    return message


def test_webhook_gate_refuses_a_secret_without_consent(sandbox: Cluster, namespace: str, operator: Operator,
                                                       receiver: tuple[str, type[Receiver]]) -> None:
    url, handler = receiver
    grant_secrets(sandbox, namespace)
    sandbox.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "team-db"},
                   "stringData": {"Authorization": "Bearer n0t-y0urs"}}, namespace)
    message = refused_gate(sandbox, namespace, handler, [ticket_gate(url, "team-db", ["Authorization"])])
    assert f"headersFrom: Secret {namespace}/team-db is not labelled glideslope.dev/release-secret" in message
    assert "n0t-y0urs" not in message


def test_webhook_gate_never_sends_a_service_account_token(sandbox: Cluster, namespace: str, operator: Operator,
                                                          receiver: tuple[str, type[Receiver]]) -> None:
    url, handler = receiver
    grant_secrets(sandbox, namespace)
    # The ServiceAccount first: the token controller deletes a token Secret whose account is missing.
    sandbox.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "deployer"}}, namespace)
    sandbox.apply({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
                   "metadata": {"name": "deployer-token", "labels": CONSENT,
                                "annotations": {"kubernetes.io/service-account.name": "deployer"}},
                   "stringData": {"token": "sa-t0ken"}}, namespace)
    message = refused_gate(sandbox, namespace, handler, [ticket_gate(url, "deployer-token", ["token"])])
    assert f"headersFrom: Secret {namespace}/deployer-token is of type kubernetes.io/service-account-token" in message
    assert "sa-t0ken" not in message


def test_metric_gate_waits_for_its_condition(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    stable(sandbox, namespace, gated("web", "1", []))
    # A condition on the sandbox's Prometheus that becomes true a few seconds from now.
    opens = int(time.time()) + 6
    metric = [{"name": "quiet-period", "stage": "preDeploy",
               "metric": {"query": "vector(time())", "successCondition": f"result >= {opens}.0",
                          "timeoutSeconds": 120}}]
    sandbox.apply(gated("web", "2", metric, analysis={"interval": "1s"}), namespace)
    st = wait_phase(sandbox, namespace, "web", "Gated", version="2")
    assert "does not meet successCondition" in gate(st, "quiet-period")["message"] or \
        "checking" in gate(st, "quiet-period")["message"]
    st = wait_phase(sandbox, namespace, "web", "Succeeded", version="2", timeout=60)
    passed = gate(st, "quiet-period")
    assert passed["state"] == "Passed" and passed["lastValue"] >= opens
    assert time.time() >= opens
