"""A Gateway API canary on the sandbox: the HTTPRoute's weights move, and the simulated traffic
(50 requests/s per HTTPRoute) follows them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.helpers import Cluster, wait_until
from tests.e2e.operator_fixture import (
    Operator,
    annotate,
    operator_fixture,  # noqa: F401
    release,
    wait_phase,
)

pytestmark = pytest.mark.e2e

CANARY = {"type": "Canary", "canary": {"steps": [{"setWeight": 20}, {"pause": {}}],
                                       "trafficRouting": {"gatewayAPI": {"httpRoute": "web"}}}}


def route(namespace: str) -> dict[str, Any]:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {"parentRefs": [{"name": "gateway"}],
                     "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}}


def weights(sandbox: Cluster, namespace: str) -> dict[str, int]:
    rules = sandbox.get_json("httproute", "web", "-n", namespace)["spec"]["rules"]
    return {ref["name"]: ref.get("weight", 1) for ref in rules[0]["backendRefs"]}


def share(sandbox: Cluster, namespace: str, revision: str) -> float | None:
    """The candidate's share of requests over the last 5 seconds, per Prometheus."""
    rows = sandbox.promql(f'sum by (revision) (rate(http_requests_total{{namespace="{namespace}"}}[5s]))')
    rates = {r["metric"].get("revision", ""): float(r["value"][1]) for r in rows}
    total = sum(rates.values())
    return rates.get(revision, 0.0) / total if total else None


def test_gateway_canary_traffic_follows_weights(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    sandbox.apply(route(namespace), namespace)
    sandbox.apply(release("web", "1", CANARY), namespace)
    wait_phase(sandbox, namespace, "web", "Succeeded", version="1")
    sandbox.apply(release("web", "2", CANARY), namespace)
    st = wait_phase(sandbox, namespace, "web", "Paused", version="2")
    assert st["weight"] == 20 and weights(sandbox, namespace) == {"web": 80, "web-preview": 20}
    candidate = st["revision"]
    # 20% of the route's traffic reaches the candidate's pods, and only them
    wait_until(lambda: (s := share(sandbox, namespace, candidate)) is not None and abs(s - 0.2) < 0.06,
               timeout=30, what="20% of requests on the candidate", interval=1)
    annotate(sandbox, namespace, "web", "glideslope.dev/promote", "full")
    st = wait_phase(sandbox, namespace, "web", "Succeeded", version="2")
    wait_until(lambda: weights(sandbox, namespace) == {"web": 100, "web-preview": 0}, timeout=10,
               what="all weight on the stable Service")
    wait_until(lambda: (s := share(sandbox, namespace, candidate)) is not None and s > 0.97,
               timeout=30, what="all requests on the new stable revision", interval=1)
