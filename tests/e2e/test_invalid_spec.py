"""What only the operator can find in a spec ends in Degraded/InvalidSpec and an Event that name
the field; nothing in the cluster changes and the stable revision keeps serving."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import Cluster, wait_until
from tests.e2e.operator_fixture import (
    Operator,
    deployments,
    operator_fixture,  # noqa: F401
    release,
    status,
    wait_phase,
)

pytestmark = pytest.mark.e2e

CANARY = {"type": "Canary", "canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "1s"}}]}}


def degraded(sandbox: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    conditions = {c["type"]: c for c in status(sandbox, namespace, name).get("conditions", [])}
    cond = conditions.get("Degraded")
    return cond if cond and cond["status"] == "True" and cond["reason"] == "InvalidSpec" else None


def event_messages(sandbox: Cluster, namespace: str, reason: str) -> list[str]:
    items = sandbox.get_json("events", "-n", namespace, "--field-selector", f"reason={reason}")["items"]
    return [e["message"] for e in items]


def test_bad_condition_and_zone_leave_the_stable_revision_serving(
        sandbox: Cluster, namespace: str, operator: Operator) -> None:
    sandbox.apply(release("web", "1", CANARY, replicas=2), namespace)
    stable = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")["stableRevision"]

    bad = release("web", "2", CANARY, replicas=2,
                  analysis={"triggers": [{"name": "errors", "severity": "critical", "query": "vector(0)",
                                          "failureCondition": "reslt > 0.01"}]},
                  gates=[{"name": "hours", "window": {"timezone": "Mars/Olympus_Mons", "start": "00:00",
                                                     "end": "23:59"}}])
    sandbox.apply(bad, namespace)  # the API server cannot know these are wrong
    cond = wait_until(lambda: degraded(sandbox, namespace, "web"), timeout=30, what="Degraded/InvalidSpec")
    assert "spec.analysis.triggers[0].failureCondition" in cond["message"]
    assert "undeclared reference to 'reslt'" in cond["message"]
    assert "spec.gates[0].window.timezone" in cond["message"]
    conditions = {c["type"]: c for c in status(sandbox, namespace, "web")["conditions"]}
    assert conditions["Ready"]["status"] == "False" and conditions["Ready"]["reason"] == "InvalidSpec"
    generation = sandbox.get_json("release", "web", "-n", namespace)["metadata"]["generation"]
    assert conditions["Degraded"]["observedGeneration"] == generation
    messages = wait_until(lambda: event_messages(sandbox, namespace, "InvalidSpec"), timeout=10, what="Event")
    assert any("spec.analysis.triggers[0].failureCondition" in m for m in messages)

    # Nothing changed: only the stable revision exists, still at full size and serving.
    assert deployments(sandbox, namespace, "web") == {stable: {"replicas": 2, "ready": 2}}
    selector = sandbox.get_json("service", "web", "-n", namespace)["spec"]["selector"]
    assert selector.get("glideslope.dev/revision", stable) == stable

    # Fixed, it rolls out as usual and the condition clears.
    sandbox.apply(release("web", "2", CANARY, replicas=2), namespace)
    st = wait_phase(sandbox, namespace, "web", "Succeeded", version="2", timeout=90)
    assert {c["type"]: c["status"] for c in st["conditions"]}["Degraded"] == "False"


def test_missing_httproute_is_named_and_nothing_is_deployed(
        sandbox: Cluster, namespace: str, operator: Operator) -> None:
    routed = {"type": "Canary", "canary": {"steps": [{"setWeight": 50}],
                                           "trafficRouting": {"gatewayAPI": {"httpRoute": "shop"}}}}
    sandbox.apply(release("shop", "1", routed, replicas=2), namespace)
    cond = wait_until(lambda: degraded(sandbox, namespace, "shop"), timeout=30, what="Degraded/InvalidSpec")
    assert "spec.strategy.canary.trafficRouting.gatewayAPI.httpRoute" in cond["message"]
    assert f"HTTPRoute {namespace}/shop not found" in cond["message"]
    assert deployments(sandbox, namespace, "shop") == {}
    # Once the route exists, the first rollout goes ahead.
    sandbox.apply({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "shop"},
                   "spec": {"rules": [{"backendRefs": [{"name": "shop", "port": 80}]}]}}, namespace)
    wait_phase(sandbox, namespace, "shop", "Succeeded", version="1", timeout=60)


def test_a_prometheus_outside_the_egress_policy_is_never_asked(
        sandbox: Cluster, namespace: str, operator: Operator) -> None:
    """The metadata address as a Release's own Prometheus: refused by `--prometheus-allow`, which
    allows the operator's own Prometheus and, in the tests, loopback."""
    sandbox.apply(release("web", "1", CANARY, replicas=2), namespace)
    stable = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")["stableRevision"]
    sandbox.apply(release("web", "2", CANARY, replicas=2, analysis={
        "prometheus": {"address": "http://169.254.169.254/latest/meta-data"},
        "triggers": [{"name": "errors", "severity": "critical", "query": "vector(0)",
                      "failureCondition": "result > 0.01"}]}), namespace)
    cond = wait_until(lambda: degraded(sandbox, namespace, "web"), timeout=30, what="Degraded/InvalidSpec")
    assert "spec.analysis.prometheus.address" in cond["message"]
    assert "not allowed by the operator's --prometheus-allow" in cond["message"]
    assert deployments(sandbox, namespace, "web") == {stable: {"replicas": 2, "ready": 2}}


def test_a_spec_too_large_for_its_status_changes_nothing(sandbox: Cluster, namespace: str, operator: Operator,
                                                         tmp_path: Path) -> None:
    sandbox.apply(release("web", "1", CANARY, replicas=2), namespace)
    stable = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")["stableRevision"]
    big = release("web", "2", CANARY, replicas=2)
    big["spec"]["template"]["metadata"]["annotations"]["padding"] = "x" * 1_100_000
    path = tmp_path / "big.json"
    path.write_text(json.dumps(big))
    # Server-side: the 1.1 MB manifest is too large for kubectl's last-applied annotation.
    sandbox.kubectl("apply", "--server-side", "-n", namespace, "-f", str(path))
    cond = wait_until(lambda: degraded(sandbox, namespace, "web"), timeout=30, what="Degraded/InvalidSpec")
    assert "spec: 11" in cond["message"] and "leave room for the status" in cond["message"], cond
    assert deployments(sandbox, namespace, "web") == {stable: {"replicas": 2, "ready": 2}}
