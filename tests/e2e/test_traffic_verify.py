"""Measured traffic convergence (`trafficRouting.verify`) on the sandbox: a Gateway API route whose
new weights the simulator applies 10 s late, and one it freezes. The share is measured from the
simulator's requests, scraped by Prometheus every second."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.helpers import Cluster, wait_until
from tests.e2e.operator_fixture import (
    Operator,
    annotate,
    events,
    operator_fixture,  # noqa: F401
    release,
    snapshot,
    status,
    wait_phase,
)

pytestmark = pytest.mark.e2e

QUERY = 'sum(rate(http_requests_total{namespace="{{namespace}}",revision="{{revision}}"}[3s]))'
"""The default query with a shorter window, so that a share shows within seconds."""
DELAY = 10.0


def canary(steps: list[dict[str, Any]], timeout: int) -> dict[str, Any]:
    return {"type": "Canary", "canary": {"steps": steps, "trafficRouting": {
        "gatewayAPI": {"httpRoute": "web"},
        "verify": {"query": QUERY, "tolerance": 5, "timeoutSeconds": timeout}}}}


def route(namespace: str, annotations: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "web", "namespace": namespace, "annotations": annotations},
            "spec": {"parentRefs": [{"name": "gateway"}],
                     "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}}


def rates(sandbox: Cluster, namespace: str) -> dict[str, float]:
    """Requests per second per revision over the last 3 seconds, per Prometheus."""
    rows = sandbox.promql(f'sum by (revision) (rate(http_requests_total{{namespace="{namespace}"}}[3s]))')
    return {r["metric"].get("revision", ""): float(r["value"][1]) for r in rows}


def unserved(sandbox: Cluster, namespace: str) -> float:
    """Requests the simulator's routes sent to a Service with no ready endpoint, in total."""
    rows = sandbox.promql(f'sum(http_requests_unserved_total{{namespace="{namespace}"}})')
    return float(rows[0]["value"][1]) if rows else 0.0


def test_each_step_waits_for_the_measured_share_and_no_request_finds_no_endpoint(
        sandbox: Cluster, namespace: str, operator: Operator) -> None:
    steps = [{"setWeight": 30}, {"setWeight": 70}]
    sandbox.apply(route(namespace, {"sim.glideslope.dev/propagation-delay": f"{DELAY:g}s"}), namespace)
    sandbox.apply(release("web", "1", canary(steps, 60), replicas=2), namespace)
    stable = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")["revision"]
    # (A first rollout's Service has no ready pod for a moment: what it counts is not this test's.)
    wait_until(lambda: rates(sandbox, namespace).get(stable, 0.0) > 0, timeout=10, what="traffic on v1")
    time.sleep(2)
    before = unserved(sandbox, namespace)
    sandbox.apply(release("web", "2", canary(steps, 60), replicas=2), namespace)

    weight_since: dict[int, float] = {}  # weight -> when it was first seen set
    left: dict[int, tuple[float, int | None]] = {}  # step -> (when it was first seen over, measured then)
    drained: list[tuple[int, dict[str, float]]] = []  # stable replicas below full, and the rates then
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        st, pods = snapshot(sandbox, namespace, "web")
        now = time.monotonic()
        if st.get("version") != "2":
            time.sleep(0.3)
            continue
        weight_since.setdefault(st.get("weight") or 0, now)
        step = st.get("currentStep") or 0
        for earlier in range(1, step):
            left.setdefault(earlier, (now, st.get("measuredWeight")))
        if st.get("phase") in ("Validating", "Succeeded"):
            left.setdefault(len(steps) + 1, (now, st.get("measuredWeight")))
        if pods.get(stable, {}).get("replicas", 2) < 2:
            drained.append((pods[stable]["replicas"], rates(sandbox, namespace)))
        if st.get("phase") == "Succeeded":
            break
        assert st.get("phase") in ("Progressing", "Validating"), st
        time.sleep(0.5)
    st = status(sandbox, namespace, "web")
    assert st["phase"] == "Succeeded", st
    candidate = st["revision"]
    # Each weight was held until its share was measured: never less than the route's delay.
    for step, weight in ((1, 30), (2, 70), (3, 100)):
        assert step in left and weight in weight_since, (left, weight_since)
        held = left[step][0] - weight_since[weight]
        assert held >= DELAY - 1.0, f"step {step} (weight {weight}) ended {held:.1f}s after its weight was set"
    # As each of the first two steps ended, the measured share was within the tolerance of its weight.
    for step, weight in ((1, 30), (2, 70)):
        measured = left[step][1]
        assert measured is not None and abs(measured - weight) <= 5, (step, weight, measured)
    # The stable revision lost pods only once (almost) no request reached it.
    for replicas, seen in drained:
        total = sum(seen.values())
        assert total == 0 or seen.get(stable, 0.0) / total <= 0.01, (replicas, seen)
    wait_until(lambda: rates(sandbox, namespace).get(candidate, 0.0) > 0, timeout=10, what="traffic on v2")
    time.sleep(2)  # a last scrape
    assert unserved(sandbox, namespace) == before
    assert "TrafficNotConverged" not in events(sandbox, namespace)


def test_a_frozen_route_rolls_back_with_traffic_not_converged(
        sandbox: Cluster, namespace: str, operator: Operator) -> None:
    timeout = 8
    steps = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}]
    sandbox.apply(route(namespace, {}), namespace)
    sandbox.apply(release("web", "1", canary(steps, timeout), replicas=2), namespace)
    stable = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")["revision"]
    sandbox.apply(release("web", "2", canary(steps, timeout), replicas=2), namespace)
    st = wait_phase(sandbox, namespace, "web", "Paused", version="2")
    candidate = st["revision"]
    # Step 1 ended on its measured share; the Weight column shows both.
    assert st["weight"] == 20 and abs(st["measuredWeight"] - 20) <= 5, st
    assert st["weightDisplay"] == f"20 ({st['measuredWeight']})"
    columns = sandbox.kubectl("get", "release", "web", "-n", namespace).stdout
    assert f"20 ({st['measuredWeight']})" in columns, columns

    sandbox.kubectl("annotate", "httproute", "web", "-n", namespace, "sim.glideslope.dev/frozen=true")
    time.sleep(1.5)  # the simulator lists routes every second
    promoted = time.monotonic()
    annotate(sandbox, namespace, "web", "glideslope.dev/promote", "step")
    wait_until(lambda: status(sandbox, namespace, "web").get("weight") == 60, timeout=10, what="weight 60 set")

    def stable_alone() -> bool:
        seen = rates(sandbox, namespace)
        return seen.get(stable, 0.0) > 0 and seen.get(candidate, 0.0) == 0.0

    wait_until(stable_alone, timeout=timeout + 10, what="the stable revision serving every request", interval=0.5)
    took = time.monotonic() - promoted
    st = wait_phase(sandbox, namespace, "web", "RolledBack", version="2", timeout=30)
    assert "TrafficNotConverged" in events(sandbox, namespace)
    assert "did not converge" in st["history"][-1]["reason"], st["history"][-1]
    assert "weight of 60%" in st["history"][-1]["reason"]
    assert took <= timeout + 10, f"the stable revision served alone {took:.1f}s after the weight changed"


def test_the_replica_ratio_is_measured_too(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    # No router: the stable Service selects every revision, and the expected share is the
    # candidate's share of Ready pods. (The simulator sends the preview Service traffic of its
    # own, so the query counts the stable Service's requests only.)
    strategy = {"type": "Canary", "canary": {"steps": [{"setWeight": 50}, {"pause": {}}], "trafficRouting": {
        "verify": {"query": QUERY.replace("revision=", 'service="{{service}}",revision='), "tolerance": 8,
                   "timeoutSeconds": 60}}}}
    sandbox.apply(release("web", "1", strategy, replicas=2), namespace)
    wait_phase(sandbox, namespace, "web", "Succeeded", version="1")
    sandbox.apply(release("web", "2", strategy, replicas=2), namespace)
    st = wait_phase(sandbox, namespace, "web", "Paused", version="2", timeout=60)
    # Step 1 ended only once half of the requests were measured on the candidate's pod.
    assert st["weight"] == 50 and abs(st["measuredWeight"] - 50) <= 8, st
    assert st["weightDisplay"] == f"50 ({st['measuredWeight']})"
    annotate(sandbox, namespace, "web", "glideslope.dev/promote", "step")
    st = wait_phase(sandbox, namespace, "web", "Succeeded", version="2", timeout=60)
    assert "TrafficNotConverged" not in events(sandbox, namespace)


def test_a_verify_query_prometheus_refuses_is_invalid_spec(sandbox: Cluster, namespace: str,
                                                           operator: Operator) -> None:
    sandbox.apply(route(namespace, {}), namespace)
    good = canary([{"setWeight": 20}], 30)
    sandbox.apply(release("web", "1", good, replicas=1), namespace)
    v1 = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")["revision"]
    bad = canary([{"setWeight": 20}], 30)
    bad["canary"]["trafficRouting"]["verify"]["query"] = 'sum(rate(http_requests_total{revision="{{revision}}"}[5s]'
    sandbox.apply(release("web", "2", bad, replicas=1), namespace)

    def degraded() -> dict[str, Any] | None:
        st = status(sandbox, namespace, "web")
        cond = {c["type"]: c for c in st.get("conditions", [])}.get("Degraded", {})
        return cond if cond.get("status") == "True" and cond.get("reason") == "InvalidSpec" else None

    cond = wait_until(degraded, timeout=30, what="Degraded InvalidSpec")
    assert "spec.strategy.canary.trafficRouting.verify.query" in str(cond["message"]), cond
    # nothing of the candidate: the stable revision serves alone
    st, pods = snapshot(sandbox, namespace, "web")
    assert st["stableRevision"] == v1 and set(pods) == {v1}, (st, pods)
