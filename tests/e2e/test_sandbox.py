"""The sandbox is a real cluster: pods run on kwok nodes, RBAC holds, Prometheus sees traffic."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest

from tests.e2e.helpers import Cluster, wait_until

pytestmark = pytest.mark.e2e


def deployment(name: str, app: str, replicas: int, annotations: dict[str, str] | None = None,
               revision: str = "r1") -> dict[str, Any]:
    labels = {"app": app, "glideslope.dev/revision": revision}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations or {}},
                "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]},
            },
        },
    }


def service(name: str, selector: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }


def ready_replicas(sandbox: Cluster, namespace: str, name: str) -> int:
    obj = sandbox.get_json("deployment", name, "-n", namespace)
    return int(obj.get("status", {}).get("readyReplicas") or 0)


def test_deployment_pods_become_ready_on_kwok_nodes(sandbox: Cluster, namespace: str) -> None:
    sandbox.apply(deployment("web", "web", 3), namespace)
    wait_until(lambda: ready_replicas(sandbox, namespace, "web") == 3, 60, "3 ready replicas")
    pods = sandbox.get_json("pods", "-n", namespace)["items"]
    assert len(pods) == 3
    nodes = {n["metadata"]["name"]: n for n in sandbox.get_json("nodes")["items"]}
    for pod in pods:
        assert pod["status"]["phase"] == "Running"
        node = nodes[pod["spec"]["nodeName"]]
        assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
        assert ready == "True"


def test_operator_identity_is_bound_by_shipped_rbac(sandbox: Cluster) -> None:
    who = json.loads(sandbox.kubectl("auth", "whoami", "-o", "json", as_operator=True).stdout)
    assert who["status"]["userInfo"]["username"] == "system:serviceaccount:glideslope-system:glideslope"

    denied = sandbox.kubectl("get", "secrets", "--all-namespaces", as_operator=True, check=False)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()
    denied = sandbox.kubectl("create", "namespace", "operator-may-not", as_operator=True, check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()

    # What deploy/rbac.yaml grants, it gets.
    sandbox.kubectl("get", "deployments", "--all-namespaces", as_operator=True)
    sandbox.kubectl("get", "services", "--all-namespaces", as_operator=True)
    sandbox.kubectl("get", "pods", "--all-namespaces", as_operator=True)
    # ...and nothing it does not use: an HTTPRoute is read and patched by name, never listed.
    denied = sandbox.kubectl("get", "httproutes.gateway.networking.k8s.io", "--all-namespaces", as_operator=True,
                             check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()


def test_prometheus_scrapes_its_targets(sandbox: Cluster) -> None:
    def targets_up() -> dict[str, str]:
        with urllib.request.urlopen(f"{sandbox.prometheus_url}/api/v1/targets", timeout=5) as resp:
            body = json.load(resp)
        health = {t["labels"]["job"]: t["health"] for t in body["data"]["activeTargets"]}
        return health if health.get("simulator") == "up" and health.get("prometheus") == "up" else {}

    health = wait_until(targets_up, 30, "simulator and prometheus targets up")
    # The operator's port is a target too; it is up only while an operator runs.
    assert "glideslope-operator" in health
    interval = sandbox.promql('prometheus_target_interval_length_seconds{job="prometheus",quantile="0.5"}')
    assert interval and float(interval[0]["value"][1]) == pytest.approx(1.0, abs=0.2)


def test_error_rate_annotation_shows_in_promql(sandbox: Cluster, namespace: str) -> None:
    sandbox.apply([
        deployment("flaky", "flaky", 2, {"sim.glideslope.dev/error-rate": "0.5"}, revision="bad1"),
        service("flaky", {"app": "flaky"}),
    ], namespace)
    wait_until(lambda: ready_replicas(sandbox, namespace, "flaky") == 2, 60, "2 ready replicas")
    ready_at = time.monotonic()
    query = (f'sum(rate(http_requests_total{{namespace="{namespace}",service="flaky",code=~"5.."}}[5s]))'
             f' / sum(rate(http_requests_total{{namespace="{namespace}",service="flaky"}}[5s]))')

    def ratio() -> float | None:
        result = sandbox.promql(query)
        if not result:
            return None
        value = float(result[0]["value"][1])
        return value if abs(value - 0.5) < 0.1 else None

    wait_until(ratio, 10, "error ratio near 0.5")
    assert time.monotonic() - ready_at <= 10.5
    revisions = sandbox.promql(f'count by (revision) (http_requests_total{{namespace="{namespace}"}})')
    assert {r["metric"]["revision"] for r in revisions} == {"bad1"}


def test_httproute_weights_split_traffic(sandbox: Cluster, namespace: str) -> None:
    sandbox.apply([
        deployment("shop-stable", "shop", 2, revision="stable"),
        deployment("shop-canary", "shop", 1, revision="canary"),
        service("shop", {"app": "shop", "glideslope.dev/revision": "stable"}),
        service("shop-preview", {"app": "shop", "glideslope.dev/revision": "canary"}),
        {
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "shop"},
            "spec": {"rules": [{"backendRefs": [
                {"name": "shop", "port": 80, "weight": 80},
                {"name": "shop-preview", "port": 80, "weight": 20},
            ]}]},
        },
    ], namespace)
    wait_until(lambda: ready_replicas(sandbox, namespace, "shop-stable") == 2
               and ready_replicas(sandbox, namespace, "shop-canary") == 1, 60, "shop pods ready")

    def split() -> dict[str, float] | None:
        result = sandbox.promql(
            f'sum by (service) (rate(http_requests_total{{namespace="{namespace}"}}[5s]))')
        rates = {r["metric"]["service"]: float(r["value"][1]) for r in result}
        total = sum(rates.values())
        # Wait until the 5 s window lies wholly after the pods came up.
        if set(rates) != {"shop", "shop-preview"} or abs(total - 50) > 5:
            return None
        shares = {k: v / total for k, v in rates.items()}
        # One scrape late or early under load moves a 5 s window's share by a few points: a
        # later window settles (a wrong split, 50/50 or 100/0, never does).
        return shares if shares["shop"] == pytest.approx(0.8, abs=0.05) else None

    # The route's traffic is the route's 50/s, not the route's plus each Service's own.
    shares = wait_until(split, 30, "the HTTPRoute's 50 requests/s, 80/20")
    assert shares["shop"] == pytest.approx(0.8, abs=0.05)
    assert shares["shop-preview"] == pytest.approx(0.2, abs=0.05)
