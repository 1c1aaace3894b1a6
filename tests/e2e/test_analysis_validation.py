"""The validation window after full promotion, and Prometheus credentials from a Secret."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.analysis_helpers import analysis, trigger, trigger_status
from tests.e2e.helpers import Cluster, wait_until
from tests.e2e.operator_fixture import (
    Operator,
    deployments,
    events,
    grant_secrets,
    operator_fixture,  # noqa: F401
    release,
    selector,
    snapshot,
    status,
    wait_phase,
)

pytestmark = pytest.mark.e2e

BLUE_GREEN = {"type": "BlueGreen", "blueGreen": {"autoPromotionSeconds": 1, "scaleDownDelaySeconds": 0}}

PROBE_ERRORS = (
    'sum(rate(http_requests_total{namespace="{{namespace}}",service="probe",code="500"}[3s]))'
    ' / sum(rate(http_requests_total{namespace="{{namespace}}",service="probe"}[3s]))')
"""A metric the test controls: the error rate of a Deployment and Service of its own."""


def probe(error_rate: float) -> list[dict[str, Any]]:
    labels = {"app": "probe"}
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "probe"},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels,
                                            "annotations": {"sim.glideslope.dev/error-rate": str(error_rate)}},
                               "spec": {"containers": [{"name": "app", "image": "registry.example/probe:1"}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "probe"},
         "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}},
    ]


def test_failure_in_validation_window_rolls_back(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    sandbox.apply(probe(0.0), namespace)
    spec = {"analysis": analysis(trigger("critical", query=PROBE_ERRORS)), "validation": {"windowSeconds": 300}}
    sandbox.apply(release("web", "1", BLUE_GREEN, **spec), namespace)
    v1 = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")["stableRevision"]
    sandbox.apply(release("web", "2", BLUE_GREEN, **spec), namespace)
    st = wait_phase(sandbox, namespace, "web", "Validating", version="2", timeout=90)
    v2 = st["revision"]
    assert selector(sandbox, namespace, "web")["glideslope.dev/revision"] == v2
    # the previous revision is kept, scaled down
    wait_until(lambda: deployments(sandbox, namespace, "web").get(v1, {}).get("replicas") == 0,
               timeout=20, what="v1 kept at 0")
    assert trigger_status(status(sandbox, namespace, "web"))["state"] == "Passing"
    sandbox.apply(probe(1.0), namespace)

    def rolled_back() -> bool:
        active = selector(sandbox, namespace, "web")["glideslope.dev/revision"]
        st, pods = snapshot(sandbox, namespace, "web")
        # traffic moves back only once the previous revision is Ready again
        if active == v1:
            assert pods[v1]["ready"] >= 4, pods
        return st.get("phase") == "RolledBack"

    wait_until(rolled_back, timeout=90, what="RolledBack", interval=0.2)
    st = status(sandbox, namespace, "web")
    assert st["stableRevision"] == v1 and st["history"][-1]["outcome"] == "RolledBack"
    assert "error-rate" in st["message"] and 'service="probe"' in st["message"], st["message"]
    assert st["history"][-1]["rollbackSeconds"] > 0
    assert selector(sandbox, namespace, "web")["glideslope.dev/revision"] == v1
    assert "Validating" in events(sandbox, namespace)


def test_prometheus_secret(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    canary = {"type": "Canary", "canary": {"steps": [{"setWeight": 50}, {"analysis": {"duration": "2s"}}]}}
    spec = {"analysis": {**analysis(trigger("critical")), "prometheus": {
        "address": sandbox.prometheus_url, "secretRef": {"name": "prom-auth"}}}}
    sandbox.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "prom-auth"},
                   "stringData": {"token": "not-checked-by-the-sandbox"}}, namespace)
    # the operator may not read Secrets here yet: Degraded, an Event, nothing deployed
    sandbox.apply(release("web", "1", canary, **spec), namespace)

    def degraded() -> dict[str, Any] | None:
        cond = {c["type"]: c for c in status(sandbox, namespace, "web").get("conditions", [])}.get("Degraded", {})
        return cond if cond.get("reason") == "SecretUnreadable" else None

    cond = wait_until(degraded, timeout=30, what="Degraded SecretUnreadable")
    assert "prom-auth" in cond["message"] and cond["status"] == "True", cond
    assert "SecretUnreadable" in events(sandbox, namespace)
    assert deployments(sandbox, namespace, "web") == {}
    # a namespaced Role lets it read the Secret, but its owner has not consented: still Degraded,
    # told how to consent, the token in no message
    grant_secrets(sandbox, namespace)

    def unlabelled() -> dict[str, Any] | None:
        cond = degraded()
        return cond if cond is not None and "glideslope.dev/release-secret" in cond["message"] else None

    cond = wait_until(unlabelled, timeout=30, what="Degraded SecretUnreadable (not labelled)")
    assert f"spec.analysis.prometheus.secretRef: Secret {namespace}/prom-auth is not labelled" in cond["message"]
    assert "not-checked-by-the-sandbox" not in cond["message"]
    assert deployments(sandbox, namespace, "web") == {}
    # the label lets it go on, with the token
    sandbox.kubectl("label", "secret", "prom-auth", "-n", namespace, "glideslope.dev/release-secret=true")
    wait_phase(sandbox, namespace, "web", "Succeeded", version="1", timeout=60)
    sandbox.apply(release("web", "2", canary, **spec), namespace)
    st = wait_phase(sandbox, namespace, "web", "Succeeded", version="2", timeout=90)
    assert trigger_status(st)["state"] == "Passing"
    # a Secret that goes away stops the next rollout, with the stable revision serving
    sandbox.kubectl("delete", "secret", "prom-auth", "-n", namespace)
    sandbox.apply(release("web", "3", canary, **spec), namespace)
    wait_until(degraded, timeout=30, what="Degraded SecretUnreadable (gone)")
    time.sleep(1)
    assert status(sandbox, namespace, "web")["stableVersion"] == "2"
