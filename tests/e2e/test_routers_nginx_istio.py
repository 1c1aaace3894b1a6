"""Canaries through ingress-nginx and Istio on the sandbox, with header and mirror steps: the
operator writes the routes, the simulator (50 requests/s per route, a share of them carrying a
header) sends traffic as the real router would, and Prometheus shows where it went."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.e2e.helpers import Cluster, wait_until
from tests.e2e.operator_fixture import (
    Operator,
    annotate,
    deployments,
    events,
    operator_fixture,  # noqa: F401
    release,
    status,
    wait_phase,
)

pytestmark = pytest.mark.e2e

TOLERANCE = 0.02
"""The measured split follows the weight within 2 points."""
HEADER_SHARE = 0.25
SIM_HEADER = {"sim.glideslope.dev/header": "x-canary: always", "sim.glideslope.dev/header-share": str(HEADER_SHARE)}
"""A quarter of the route's simulated requests carry `x-canary: always`."""


def rates(sandbox: Cluster, namespace: str, metric: str) -> dict[str, float]:
    """Requests per second by revision over the last 5 seconds."""
    rows = sandbox.promql(f'sum by (revision) (rate({metric}{{namespace="{namespace}"}}[5s]))')
    return {r["metric"].get("revision", ""): float(r["value"][1]) for r in rows}


def split(sandbox: Cluster, namespace: str, candidate: str) -> dict[str, float] | None:
    """The candidate's share of all requests, of header-carrying ones, of the others, and the
    mirrored requests per client request it receives; None until there is traffic to measure."""
    client = rates(sandbox, namespace, "http_requests_total")
    header = rates(sandbox, namespace, "http_header_requests_total")
    mirrored = rates(sandbox, namespace, "http_mirrored_requests_total")
    total, header_total = sum(client.values()), sum(header.values())
    if total <= 0:
        return None
    plain_total = total - header_total
    plain_candidate = client.get(candidate, 0.0) - header.get(candidate, 0.0)
    return {"all": client.get(candidate, 0.0) / total,
            "header": header.get(candidate, 0.0) / header_total if header_total > 0 else 0.0,
            "header_share": header_total / total,
            "plain": plain_candidate / plain_total if plain_total > 0 else 0.0,
            "mirrored": mirrored.get(candidate, 0.0) / total}


def settles(sandbox: Cluster, namespace: str, candidate: str, what: str, **expected: float) -> dict[str, float]:
    """Wait until every measured figure is within TOLERANCE of what is expected."""
    def check() -> dict[str, float] | None:
        found = split(sandbox, namespace, candidate)
        if found is None or any(abs(found[k] - v) > TOLERANCE for k, v in expected.items()):
            return None
        return found
    result: dict[str, float] = wait_until(check, timeout=40, what=what, interval=1)
    return result


def paused_at(sandbox: Cluster, namespace: str, name: str, step: int) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        st = status(sandbox, namespace, name)
        return st if st.get("phase") == "Paused" and st.get("currentStep") == step and st.get("version") == "2" \
            else None
    result: dict[str, Any] = wait_until(check, timeout=60, what=f"{name} paused at step {step}", interval=0.3)
    return result


# ingress-nginx ----------------------------------------------------------------------------------

NGINX = {"type": "Canary", "canary": {
    "trafficRouting": {"nginx": {"ingress": "web"}},
    "steps": [{"setHeaderRoute": {"name": "internal",
                                  "match": [{"headerName": "x-canary", "headerValue": {"exact": "always"}}]}},
              {"pause": {}},
              {"setWeight": 30},
              {"pause": {}},
              {"setWeight": 70},
              {"pause": {}}]}}


def ingress(namespace: str) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", "namespace": namespace, "annotations": SIM_HEADER},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": "web.example", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}


def canary_copy(sandbox: Cluster, namespace: str) -> dict[str, Any] | None:
    found = sandbox.kubectl("get", "ingress", "web-canary", "-n", namespace, "-o", "json", check=False)
    if found.returncode != 0:
        return None
    body: dict[str, Any] = json.loads(found.stdout)
    return body


def test_nginx_canary_by_header_then_weight(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    sandbox.apply(ingress(namespace), namespace)
    stable_ingress = sandbox.get_json("ingress", "web", "-n", namespace)
    sandbox.apply(release("web", "1", NGINX), namespace)
    wait_phase(sandbox, namespace, "web", "Succeeded", version="1")
    assert canary_copy(sandbox, namespace) is None
    sandbox.apply(release("web", "2", NGINX), namespace)
    candidate = paused_at(sandbox, namespace, "web", 2)["revision"]

    # The header step: every request carrying x-canary: always, and only those, on the candidate.
    copy_ = canary_copy(sandbox, namespace)
    assert copy_ is not None
    notes = copy_["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/canary"] == "true"
    assert notes["nginx.ingress.kubernetes.io/canary-weight"] == "0"
    assert notes["nginx.ingress.kubernetes.io/canary-by-header"] == "x-canary"
    assert notes["nginx.ingress.kubernetes.io/canary-by-header-value"] == "always"
    backend = copy_["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "web-preview", "port": {"number": 80}}
    assert copy_["metadata"]["ownerReferences"][0]["kind"] == "Release"
    settles(sandbox, namespace, candidate, "header requests, and only they, on the candidate",
            header=1.0, plain=0.0, all=HEADER_SHARE)

    # Each weight: the requests without the header follow it; header ones stay on the candidate.
    for step, weight in ((4, 30), (6, 70)):
        annotate(sandbox, namespace, "web", "glideslope.dev/promote", "step")
        paused_at(sandbox, namespace, "web", step)
        assert canary_copy(sandbox, namespace)["metadata"]["annotations"][  # type: ignore[index]
            "nginx.ingress.kubernetes.io/canary-weight"] == str(weight)
        settles(sandbox, namespace, candidate, f"{weight}% of requests without the header on the candidate",
                plain=weight / 100, header=1.0)

    annotate(sandbox, namespace, "web", "glideslope.dev/promote", "full")
    wait_phase(sandbox, namespace, "web", "Succeeded", version="2")
    # Only the stable Ingress is left, as its author wrote it; all traffic on the new stable revision.
    wait_until(lambda: canary_copy(sandbox, namespace) is None, timeout=10, what="the canary copy deleted")
    after = sandbox.get_json("ingress", "web", "-n", namespace)
    assert after["metadata"]["resourceVersion"] == stable_ingress["metadata"]["resourceVersion"]
    settles(sandbox, namespace, candidate, "all requests on the new stable revision", all=1.0)


def test_nginx_refuses_what_it_cannot_route(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    # A mirror: the CRD knows nginx cannot, and says so at apply, naming the step.
    mirror = copy.deepcopy(NGINX)
    mirror["canary"]["steps"][0] = {"setMirrorRoute": {"name": "shadow", "percentage": 10}}
    refused = sandbox.kubectl("apply", "-n", namespace, "-f", "-", check=False,
                              input=json.dumps(release("web", "1", mirror)))
    assert refused.returncode != 0 and "setMirrorRoute" in refused.stderr, refused.stderr
    # Two headers in one match: only the operator knows nginx's one-header canary.
    two = copy.deepcopy(NGINX)
    two["canary"]["steps"][0]["setHeaderRoute"]["match"].append(
        {"headerName": "x-beta", "headerValue": {"exact": "1"}})
    sandbox.apply(ingress(namespace), namespace)
    sandbox.apply(release("web", "1", two), namespace)

    def degraded() -> dict[str, Any] | None:
        conditions = status(sandbox, namespace, "web").get("conditions") or []
        found = next((c for c in conditions if c["type"] == "Degraded" and c["status"] == "True"), None)
        return found
    condition = wait_until(degraded, timeout=30, what="Degraded", interval=0.3)
    assert condition["reason"] == "InvalidSpec"
    assert "spec.strategy.canary.steps[0].setHeaderRoute.match" in condition["message"]
    assert sandbox.get_json("deployments", "-n", namespace)["items"] == []


def test_nginx_abort_removes_the_canary_copy(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    sandbox.apply(ingress(namespace), namespace)
    sandbox.apply(release("web", "1", NGINX), namespace)
    stable = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")["revision"]
    sandbox.apply(release("web", "2", NGINX), namespace)
    candidate = paused_at(sandbox, namespace, "web", 2)["revision"]
    assert canary_copy(sandbox, namespace) is not None
    settles(sandbox, namespace, candidate, "header requests on the candidate", header=1.0, plain=0.0)
    annotate(sandbox, namespace, "web", "glideslope.dev/abort", "e2e")
    wait_phase(sandbox, namespace, "web", "RolledBack", version="2")
    wait_until(lambda: canary_copy(sandbox, namespace) is None, timeout=10, what="the canary copy deleted")
    # Header or not, every request back on the stable revision.
    settles(sandbox, namespace, stable, "all requests back on the stable revision", all=1.0, header=1.0)


def test_nginx_canary_copy_of_someone_else_is_a_conflict(sandbox: Cluster, namespace: str,
                                                         operator: Operator) -> None:
    """Someone else's `web-canary` is claimed like the Release's Services (`kube/ownership.py`):
    Degraded with reason Conflict and an Event, nothing written, until its owner hands it over."""
    theirs = ingress(namespace)
    theirs["metadata"] = {"name": "web-canary", "namespace": namespace}
    sandbox.apply([ingress(namespace), theirs], namespace)
    before = sandbox.get_json("ingress", "web-canary", "-n", namespace)
    sandbox.apply(release("web", "1", NGINX), namespace)

    def degraded() -> dict[str, Any] | None:
        conditions = status(sandbox, namespace, "web").get("conditions") or []
        return next((c for c in conditions if c["type"] == "Degraded" and c["status"] == "True"), None)
    condition = wait_until(degraded, timeout=30, what="Degraded", interval=0.3)
    assert condition["reason"] == "Conflict", condition
    assert (f"Ingress {namespace}/web-canary exists and is not this Release's (it is not labelled "
            "glideslope.dev/release=web)") in condition["message"]
    assert "glideslope.dev/adopt=web" in condition["message"]
    assert "Conflict" in events(sandbox, namespace)
    assert deployments(sandbox, namespace, "web") == {}
    after = sandbox.get_json("ingress", "web-canary", "-n", namespace)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    # Its owner hands it over: the Release goes ahead, and (no canary yet) removes the copy.
    sandbox.kubectl("annotate", "ingress", "web-canary", "-n", namespace, "glideslope.dev/adopt=web")
    st = wait_phase(sandbox, namespace, "web", "Succeeded", version="1", timeout=60)
    assert {c["type"]: c["status"] for c in st["conditions"]}["Degraded"] == "False"
    wait_until(lambda: canary_copy(sandbox, namespace) is None, timeout=10, what="the handed-over copy deleted")


# Istio ------------------------------------------------------------------------------------------

ISTIO = {"type": "Canary", "canary": {
    "trafficRouting": {"istio": {"virtualService": "web", "routes": ["primary"]}},
    "steps": [{"setMirrorRoute": {"name": "shadow", "percentage": 50}},
              {"pause": {}},
              {"setMirrorRoute": {"name": "shadow"}},
              {"setHeaderRoute": {"name": "beta",
                                  "match": [{"headerName": "x-canary", "headerValue": {"prefix": "alw"}}]}},
              {"pause": {}},
              {"setWeight": 40},
              {"pause": {}}]}}


def virtual_service(namespace: str) -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
            "metadata": {"name": "web", "namespace": namespace, "annotations": SIM_HEADER},
            "spec": {"hosts": ["web.example"], "http": [
                {"name": "primary", "route": [{"destination": {"host": "web", "port": {"number": 80}}}]}]}}


def http_routes(sandbox: Cluster, namespace: str) -> list[dict[str, Any]]:
    routes: list[dict[str, Any]] = sandbox.get_json("virtualservice", "web", "-n", namespace)["spec"]["http"]
    return routes


def test_istio_canary_mirror_header_and_weight(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    sandbox.apply(virtual_service(namespace), namespace)
    original = http_routes(sandbox, namespace)
    sandbox.apply(release("web", "1", ISTIO), namespace)
    wait_phase(sandbox, namespace, "web", "Succeeded", version="1")
    assert http_routes(sandbox, namespace) == original
    sandbox.apply(release("web", "2", ISTIO), namespace)
    candidate = paused_at(sandbox, namespace, "web", 2)["revision"]

    # The mirror step: half the requests copied to the candidate, none of its answers seen.
    primary = http_routes(sandbox, namespace)[0]
    assert primary["mirror"] == {"host": "web-preview", "port": {"number": 80}}
    assert primary["mirrorPercentage"] == {"value": 50}
    settles(sandbox, namespace, candidate, "half the requests mirrored, none answered by the candidate",
            all=0.0, mirrored=0.5)

    # The header step (the mirror removed): x-canary prefixed "alw", and only it, on the candidate.
    annotate(sandbox, namespace, "web", "glideslope.dev/promote", "step")
    paused_at(sandbox, namespace, "web", 5)
    routes = http_routes(sandbox, namespace)
    assert [r["name"] for r in routes] == ["beta", "primary"]
    assert routes[0]["match"] == [{"headers": {"x-canary": {"prefix": "alw"}}}]
    assert "mirror" not in routes[1] and "mirrorPercentage" not in routes[1]
    settles(sandbox, namespace, candidate, "header requests, and only they, on the candidate",
            header=1.0, plain=0.0, all=HEADER_SHARE, mirrored=0.0)

    annotate(sandbox, namespace, "web", "glideslope.dev/promote", "step")
    paused_at(sandbox, namespace, "web", 7)
    weights = {d["destination"]["host"]: d["weight"] for d in http_routes(sandbox, namespace)[1]["route"]}
    assert weights == {"web": 60, "web-preview": 40}
    settles(sandbox, namespace, candidate, "40% of requests without the header on the candidate",
            plain=0.4, header=1.0)

    annotate(sandbox, namespace, "web", "glideslope.dev/promote", "full")
    wait_phase(sandbox, namespace, "web", "Succeeded", version="2")
    # Only the stable route is left, as its author wrote it.
    wait_until(lambda: http_routes(sandbox, namespace) == original, timeout=10,
               what="the VirtualService back to its author's routes")
    settles(sandbox, namespace, candidate, "all requests on the new stable revision", all=1.0)


# Gateway API: the same steps, through a header rule and a RequestMirror filter -------------------

GATEWAY = {"type": "Canary", "canary": {
    "trafficRouting": {"gatewayAPI": {"httpRoute": "web"}},
    "steps": [{"setHeaderRoute": {"name": "internal",
                                  "match": [{"headerName": "x-canary", "headerValue": {"regex": "al+ways"}}]}},
              {"setMirrorRoute": {"name": "shadow", "percentage": 40}},
              {"setWeight": 20},
              {"pause": {}}]}}


def http_route(namespace: str) -> dict[str, Any]:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "web", "namespace": namespace, "annotations": SIM_HEADER},
            "spec": {"parentRefs": [{"name": "gateway"}],
                     "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                                "filters": [{"type": "RequestHeaderModifier",
                                             "requestHeaderModifier": {"set": [{"name": "x-env", "value": "e2e"}]}}],
                                "backendRefs": [{"name": "web", "namespace": namespace, "port": 80}]}]}}


def test_gateway_header_and_mirror_routes(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    sandbox.apply(http_route(namespace), namespace)
    sandbox.apply(release("web", "1", GATEWAY), namespace)
    wait_phase(sandbox, namespace, "web", "Succeeded", version="1")
    sandbox.apply(release("web", "2", GATEWAY), namespace)
    candidate = paused_at(sandbox, namespace, "web", 4)["revision"]
    rules = sandbox.get_json("httproute", "web", "-n", namespace)["spec"]["rules"]
    assert [r.get("name") for r in rules] == ["internal", None]
    assert rules[0]["matches"][0]["headers"] == [{"type": "RegularExpression", "name": "x-canary",
                                                  "value": "al+ways"}]
    # The filter and the backendRef's namespace it did not write are kept beside the mirror.
    assert [f["type"] for f in rules[1]["filters"]] == ["RequestHeaderModifier", "RequestMirror"]
    assert rules[1]["filters"][1]["requestMirror"]["percent"] == 40
    assert {r["name"]: (r.get("namespace"), r["weight"]) for r in rules[1]["backendRefs"]} == {
        "web": (namespace, 80), "web-preview": (namespace, 20)}
    # Header requests all on the candidate, 20% of the others; 40% of those mirrored to it.
    settles(sandbox, namespace, candidate, "header rule, weight and mirror followed",
            header=1.0, plain=0.2, mirrored=0.4 * (1 - HEADER_SHARE))

    annotate(sandbox, namespace, "web", "glideslope.dev/promote", "full")
    wait_phase(sandbox, namespace, "web", "Succeeded", version="2")
    rules = sandbox.get_json("httproute", "web", "-n", namespace)["spec"]["rules"]
    assert len(rules) == 1 and [f["type"] for f in rules[0]["filters"]] == ["RequestHeaderModifier"]
    assert {r["name"]: r["weight"] for r in rules[0]["backendRefs"]} == {"web": 100, "web-preview": 0}
    settles(sandbox, namespace, candidate, "all requests on the new stable revision", all=1.0, mirrored=0.0)
