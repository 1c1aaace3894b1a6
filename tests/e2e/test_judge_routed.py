"""The judge's baseline behind a router, on the sandbox: a Gateway API canary at setWeight 20
with `judge.baseline` gives the baseline's pods their own Service and a third backendRef, so the
simulated clients' requests split about 20% candidate, 20% baseline, 60% stable (measured by
Prometheus from the simulator's `http_requests_total{revision,role}`); the judge compares the
two like sides, passes a healthy candidate and rolls back a clearly worse one, and when the
rollout ends (or the Release is deleted mid-rollout) no baseline Service, Deployment or
backendRef is left. Istio gets a third destination likewise. ingress-nginx, which has no third
backend, refuses a baseline naming the field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.helpers import Cluster, wait_until
from tests.e2e.operator_fixture import (
    Operator,
    operator_fixture,  # noqa: F401
    release,
    status,
    wait_phase,
)
from tests.e2e.test_judge import baselines
from tests.e2e.test_rollout_gateway import route
from tests.e2e.test_routers_nginx_istio import ingress

pytestmark = pytest.mark.e2e

# Behind the route the candidate is reached through the preview Service and the baseline through
# its own: `{{sideService}}` names each, so only client requests are compared.
SIDE = 'namespace="{{namespace}}",service="{{sideService}}",revision="{{sideRevision}}",role="{{sideRole}}"'
ERRORS = (f'sum by (pod) (rate(http_requests_total{{{SIDE},code="500"}}[2s]))'
          f' / sum by (pod) (rate(http_requests_total{{{SIDE}}}[2s]))')
JUDGE = {"interval": "2s", "initialDelay": "2s", "judge": {
    "baseline": True, "minSamples": 8, "step": "2s",
    "metrics": [{"name": "errors", "query": ERRORS, "direction": "increase", "tolerance": 0.01}]}}
# The analysis step holds until the judge passes (its first look with enough samples comes
# about 18 s into the rollout); verify (3 points) holds the weight until the candidate's share
# of every request, the baseline's included, is measured at 20.
CANARY = {"type": "Canary", "canary": {
    "steps": [{"setWeight": 20}, {"analysis": {"duration": "10s"}}],
    "trafficRouting": {"gatewayAPI": {"httpRoute": "web"},
                       "verify": {"tolerance": 3, "timeoutSeconds": 60}}}}


def noisy(version: str, error_rate: float, strategy: dict[str, Any] = CANARY) -> dict[str, Any]:
    body = release("web", version, strategy, replicas=5, error_rate=error_rate, analysis=JUDGE)
    body["spec"]["template"]["metadata"]["annotations"]["sim.glideslope.dev/noise"] = "true"
    return body


def backends(sandbox: Cluster, namespace: str) -> dict[str, int]:
    rules = sandbox.get_json("httproute", "web", "-n", namespace)["spec"]["rules"]
    return {ref["name"]: ref.get("weight", 1) for rule in rules for ref in rule["backendRefs"]}


def shares(sandbox: Cluster, namespace: str) -> dict[str, float]:
    """Each revision label's share of client requests over the last 5 seconds, per Prometheus."""
    rows = sandbox.promql(f'sum by (revision) (rate(http_requests_total{{namespace="{namespace}"}}[5s]))')
    rates = {r["metric"].get("revision", ""): float(r["value"][1]) for r in rows}
    total = sum(rates.values())
    return {k: v / total for k, v in rates.items()} if total else {}


def services(sandbox: Cluster, namespace: str) -> set[str]:
    return {s["metadata"]["name"] for s in sandbox.get_json("services", "-n", namespace)["items"]}


def first(sandbox: Cluster, namespace: str) -> str:
    sandbox.apply(route(namespace), namespace)
    sandbox.apply(noisy("1", 0.02), namespace)
    revision: str = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")["stableRevision"]
    return revision


def gone(sandbox: Cluster, namespace: str) -> None:
    """No baseline Service, Deployment or backendRef left once the rollout ended."""
    wait_until(lambda: "web-baseline" not in backends(sandbox, namespace)
               and "web-baseline" not in services(sandbox, namespace) and not baselines(sandbox, namespace),
               timeout=30, what="baseline Service, backendRef and Deployment gone")
    assert {"web", "web-preview"} <= set(backends(sandbox, namespace)), backends(sandbox, namespace)
    notes = sandbox.get_json("httproute", "web", "-n", namespace)["metadata"].get("annotations") or {}
    assert "glideslope.dev/baseline-backend" not in notes, notes


def test_the_baseline_gets_the_candidates_share_and_a_healthy_candidate_passes(
        sandbox: Cluster, namespace: str, operator: Operator) -> None:
    v1 = first(sandbox, namespace)
    sandbox.apply(noisy("2", 0.02), namespace)
    st = wait_phase(sandbox, namespace, "web", "Progressing", version="2")
    v2, control = st["revision"], f"{v1}-baseline"
    # The route: the candidate's 20 and the baseline's 20, both taken from the stable's share.
    wait_until(lambda: backends(sandbox, namespace) == {"web": 60, "web-preview": 20, "web-baseline": 20},
               timeout=30, what="three backendRefs at 60/20/20", interval=0.5)
    notes = sandbox.get_json("httproute", "web", "-n", namespace)["metadata"]["annotations"]
    assert notes["glideslope.dev/baseline-backend"] == "web-baseline", notes
    found = sandbox.get_json("service", "web-baseline", "-n", namespace)
    assert found["spec"]["selector"] == {"app": "web", "glideslope.dev/release": "web",
                                         "glideslope.dev/revision": control, "glideslope.dev/role": "baseline"}
    assert found["metadata"]["ownerReferences"][0]["kind"] == "Release"
    # The stable Service selects the stable revision's pods only, and they were never restarted.
    stable_selector = sandbox.get_json("service", "web", "-n", namespace)["spec"]["selector"]
    assert stable_selector["glideslope.dev/revision"] == v1, stable_selector
    assert baselines(sandbox, namespace)[f"web-{v1}-baseline"]["pod"]["glideslope.dev/revision"] == control

    seen: dict[str, float] = {}

    def split() -> bool:
        seen.clear()
        seen.update(shares(sandbox, namespace))
        return (abs(seen.get(v2, 0) - 0.2) < 0.05 and abs(seen.get(control, 0) - 0.2) < 0.05
                and abs(seen.get(v1, 0) - 0.6) < 0.05)

    wait_until(split, timeout=30, what="20% candidate, 20% baseline, 60% stable", interval=1)
    # verify measures the candidate's share of every request, the baseline's included (of the
    # stable's and the candidate's alone it would be 25), and holds the step until it is 20 ± 3:
    # reaching Succeeded below also says it converged (else TrafficNotConverged).
    wait_until(lambda: abs((status(sandbox, namespace, "web").get("measuredWeight") or 0) - 20) <= 3, timeout=30,
               what="a measured weight of 20 ± 3", interval=0.5)
    st = wait_phase(sandbox, namespace, "web", "Succeeded", version="2", timeout=120)
    judged = st["judge"]
    assert judged["verdict"] == "Pass" and judged["looks"] >= 1, judged
    (row,) = judged["metrics"]
    assert row["classification"] == "Pass" and row["canarySamples"] >= 8 and row["baselineSamples"] >= 8, row
    gone(sandbox, namespace)


def test_a_clearly_worse_candidate_is_rolled_back_and_its_baseline_goes(
        sandbox: Cluster, namespace: str, operator: Operator) -> None:
    v1 = first(sandbox, namespace)
    sandbox.apply(noisy("2", 0.3), namespace)
    named: list[dict[str, int]] = []

    def rolled_back() -> bool:
        named.append(backends(sandbox, namespace))
        st = status(sandbox, namespace, "web")
        assert st.get("phase") != "Succeeded" or st.get("version") != "2", st
        return st.get("phase") == "RolledBack"

    wait_until(rolled_back, timeout=120, what="RolledBack by the judge", interval=0.5)
    st = status(sandbox, namespace, "web")
    assert st["stableRevision"] == v1 and "judge: Fail" in st["history"][-1]["reason"], st["history"][-1]
    (row,) = st["judge"]["metrics"]
    # Like traffic on both sides: the baseline's pods answered as the stable revision does.
    assert row["classification"] == "High" and row["canaryMedian"] > 0.15 > row["baselineMedian"], row
    assert any(b.get("web-baseline") == 20 for b in named), named
    gone(sandbox, namespace)
    assert backends(sandbox, namespace)["web"] == 100


def test_ingress_nginx_refuses_a_baseline_naming_the_field(sandbox: Cluster, namespace: str,
                                                           operator: Operator) -> None:
    nginx = {"type": "Canary", "canary": {"steps": [{"setWeight": 20}],
                                          "trafficRouting": {"nginx": {"ingress": "web"}}}}
    # The Release's own judge: refused at apply.
    refused = sandbox.kubectl("apply", "-n", namespace, "-f", "-", check=False,
                              input=json.dumps(noisy("1", 0.0, nginx)))
    assert refused.returncode != 0 and "spec.analysis.judge.baseline" in refused.stderr, refused.stderr
    assert "trafficRouting.nginx" in refused.stderr, refused.stderr
    # A template's judge (which the API server cannot see in the Release): Degraded, InvalidSpec.
    sandbox.apply(ingress(namespace), namespace)
    sandbox.apply({"apiVersion": "glideslope.dev/v1alpha1", "kind": "AnalysisTemplate",
                   "metadata": {"name": "judged"}, "spec": {"judge": JUDGE["judge"]}}, namespace)
    body = noisy("1", 0.0, nginx)
    body["spec"]["analysis"] = {"templates": [{"name": "judged"}]}
    sandbox.apply(body, namespace)

    def degraded() -> dict[str, Any] | None:
        conditions = {c["type"]: c for c in status(sandbox, namespace, "web").get("conditions", [])}
        found = conditions.get("Degraded", {})
        return found if found.get("status") == "True" and found.get("reason") == "InvalidSpec" else None

    found = wait_until(degraded, timeout=30, what="Degraded InvalidSpec")
    assert "spec.analysis.judge.baseline: not supported by trafficRouting.nginx" in found["message"], found
    assert not sandbox.get_json("deployments", "-n", namespace)["items"]  # nothing was created


def test_deleting_the_release_mid_rollout_takes_the_baseline_off_the_route(sandbox: Cluster, namespace: str,
                                                                           operator: Operator) -> None:
    held = {"type": "Canary", "canary": {"steps": [{"setWeight": 20}, {"pause": {}}],
                                         "trafficRouting": {"gatewayAPI": {"httpRoute": "web"}}}}
    sandbox.apply(route(namespace), namespace)
    sandbox.apply(noisy("1", 0.0, held), namespace)
    wait_phase(sandbox, namespace, "web", "Succeeded", version="1")
    sandbox.apply(noisy("2", 0.0, held), namespace)
    wait_until(lambda: backends(sandbox, namespace).get("web-baseline") == 20, timeout=30,
               what="the baseline's backendRef at 20")
    sandbox.kubectl("delete", "release", "web", "-n", namespace, "--wait=false")
    wait_until(lambda: not sandbox.get_json("releases", "-n", namespace)["items"], timeout=60, what="Release gone")
    # What serves is kept (the stable Service, at full weight); nothing names the baseline's Service, which is gone.
    assert backends(sandbox, namespace) == {"web": 100, "web-preview": 0}
    assert "web-baseline" not in services(sandbox, namespace) and "web" in services(sandbox, namespace)
    wait_until(lambda: not baselines(sandbox, namespace), timeout=30, what="the baseline Deployment collected")


def test_istio_gives_the_baseline_a_third_destination(sandbox: Cluster, namespace: str,
                                                      operator: Operator) -> None:
    held = {"type": "Canary", "canary": {"steps": [{"setWeight": 20}, {"pause": {}}], "trafficRouting": {
        "istio": {"virtualService": "web", "routes": ["primary"]}}}}
    sandbox.apply({"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
                   "metadata": {"name": "web", "namespace": namespace},
                   "spec": {"hosts": ["web.example"], "http": [
                       {"name": "primary", "route": [{"destination": {"host": "web", "port": {"number": 80}}}]}]}},
                  namespace)

    def destinations() -> dict[str, int]:
        http = sandbox.get_json("virtualservice", "web", "-n", namespace)["spec"]["http"]
        return {d["destination"]["host"]: d.get("weight", 100) for d in http[0]["route"]}

    sandbox.apply(noisy("1", 0.0, held), namespace)
    v1 = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")["stableRevision"]
    sandbox.apply(noisy("2", 0.0, held), namespace)
    v2 = wait_phase(sandbox, namespace, "web", "Paused", version="2")["revision"]
    wait_until(lambda: destinations() == {"web": 60, "web-preview": 20, "web-baseline": 20}, timeout=30,
               what="three destinations at 60/20/20", interval=0.5)
    seen: dict[str, float] = {}

    def split() -> bool:
        seen.clear()
        seen.update(shares(sandbox, namespace))
        return all(abs(seen.get(r, 0) - want) < 0.05 for r, want in ((v2, 0.2), (f"{v1}-baseline", 0.2), (v1, 0.6)))

    wait_until(split, timeout=30, what="20% candidate, 20% baseline, 60% stable", interval=1)
    sandbox.kubectl("annotate", "release", "web", "-n", namespace, "glideslope.dev/promote=full")
    wait_phase(sandbox, namespace, "web", "Succeeded", version="2")
    # The route as its author wrote it, and no baseline left.
    wait_until(lambda: destinations() == {"web": 100} and "web-baseline" not in services(sandbox, namespace)
               and not baselines(sandbox, namespace), timeout=30, what="the route as written, the baseline gone")
