"""The statistical judge on the sandbox: a baseline Deployment of the stable revision runs
beside the candidate, the simulator's noisy per-pod traffic is scraped by Prometheus, and the
judge compares the two sides' range queries with a Mann-Whitney U test. A clearly worse
candidate is rolled back by the judge; a healthy one passes. No trigger is set: the judge
alone decides."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.helpers import Cluster, wait_until
from tests.e2e.operator_fixture import (
    Operator,
    deployments,
    events,
    operator_fixture,  # noqa: F401
    release,
    status,
    wait_phase,
)
from tests.e2e.test_plugin import kubectl_release

pytestmark = pytest.mark.e2e

STEPS = {"type": "Canary", "canary": {"steps": [{"setWeight": 50}, {"analysis": {"duration": "10s"}}]}}
SIDE = ('namespace="{{namespace}}",service="{{service}}",revision="{{sideRevision}}",role="{{sideRole}}"')
# One sample per pod and step (2 s); the stable Service only, as the preview Service's own traffic
# reaches the candidate alone.
ERRORS = (f'sum by (pod) (rate(http_requests_total{{{SIDE},code="500"}}[2s]))'
          f' / sum by (pod) (rate(http_requests_total{{{SIDE}}}[2s]))')
JUDGE = {"interval": "2s", "initialDelay": "2s", "judge": {
    "baseline": True, "minSamples": 8, "step": "2s",
    "metrics": [{"name": "errors", "query": ERRORS, "direction": "increase", "tolerance": 0.01}]}}


def noisy(name: str, version: str, error_rate: float) -> dict[str, Any]:
    body = release(name, version, STEPS, error_rate=error_rate, analysis=JUDGE)
    body["spec"]["template"]["metadata"]["annotations"]["sim.glideslope.dev/noise"] = "true"
    return body


def baselines(sandbox: Cluster, namespace: str) -> dict[str, dict[str, Any]]:
    """name -> labels and replicas of the namespace's baseline Deployments."""
    items = sandbox.get_json("deployments", "-n", namespace, "-l", "glideslope.dev/role=baseline")["items"]
    return {d["metadata"]["name"]: {"labels": d["metadata"]["labels"], "replicas": d["spec"]["replicas"],
                                    "pod": d["spec"]["template"]["metadata"]["labels"]} for d in items}


def first(sandbox: Cluster, namespace: str) -> str:
    sandbox.apply(noisy("web", "1", 0.02), namespace)
    revision: str = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")["stableRevision"]
    return revision


def test_a_clearly_worse_candidate_is_rolled_back_by_the_judge(sandbox: Cluster, namespace: str,
                                                              operator: Operator) -> None:
    v1 = first(sandbox, namespace)
    sandbox.apply(noisy("web", "2", 0.3), namespace)
    seen: dict[str, dict[str, Any]] = {}

    def rolled_back() -> bool:
        seen.update(baselines(sandbox, namespace))
        st = status(sandbox, namespace, "web")
        assert st.get("phase") != "Succeeded" or st.get("version") != "2", st
        return st.get("phase") == "RolledBack"

    wait_until(rolled_back, timeout=120, what="RolledBack by the judge", interval=0.5)
    st = status(sandbox, namespace, "web")
    assert st["stableRevision"] == v1 and st["history"][-1]["outcome"] == "RolledBack"
    assert "judge: Fail" in st["history"][-1]["reason"], st["history"][-1]
    judged = st["judge"]
    assert judged["verdict"] == "Fail" and judged["score"] == 0 and judged["failures"] >= 1, judged
    (row,) = judged["metrics"]
    assert row["classification"] == "High" and row["pValue"] < judged["threshold"], row
    assert row["canaryMedian"] > 0.15 > row["baselineMedian"], row
    assert row["canarySamples"] >= 8 and row["baselineSamples"] >= 8 and row["canaryValues"], row
    # The baseline ran the stable revision, labelled apart, as many pods as the candidate (50% of 4).
    name = f"web-{v1}-baseline"
    assert seen[name]["replicas"] == 2, seen
    assert seen[name]["pod"]["glideslope.dev/role"] == "baseline"
    # Its own revision label: the stable Service, pinned to the stable revision behind a router,
    # never selects it (with the replica ratio it selects every revision, the baseline's too).
    assert seen[name]["pod"]["glideslope.dev/revision"] == f"{v1}-baseline"
    assert {"JudgeFailed", "RollingBack", "RolledBack"} <= set(events(sandbox, namespace))
    # `kubectl release status` shows the judge, and each side's values as a small chart.
    shown = kubectl_release(sandbox, "status", "web", "-n", namespace)
    assert shown.returncode == 0, shown.stderr
    assert "Fail score=0" in shown.stdout and "judge errors" in shown.stdout and "High p=" in shown.stdout
    assert "canary   " in shown.stdout and "baseline " in shown.stdout, shown.stdout
    # ...and goes with the rollout.
    wait_until(lambda: not baselines(sandbox, namespace), timeout=30, what="baseline deleted")


def test_a_healthy_candidate_passes_the_judge(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    first(sandbox, namespace)
    sandbox.apply(noisy("web", "2", 0.02), namespace)
    st = wait_phase(sandbox, namespace, "web", "Succeeded", version="2", timeout=120)
    judged = st["judge"]
    assert judged["verdict"] == "Pass" and judged["score"] == 100 and judged["looks"] >= 1, judged
    (row,) = judged["metrics"]
    assert row["classification"] == "Pass" and row["canarySamples"] >= 8 and row["baselineSamples"] >= 8, row
    assert 0 < judged["alphaSpent"] <= 0.05, judged
    wait_until(lambda: not baselines(sandbox, namespace), timeout=30, what="baseline deleted")


def test_a_judge_query_with_an_unknown_variable_is_invalid_spec(sandbox: Cluster, namespace: str,
                                                               operator: Operator) -> None:
    v1 = first(sandbox, namespace)
    bad = noisy("web", "2", 0.02)
    bad["spec"]["analysis"]["judge"]["metrics"][0]["query"] = 'sum(rate(x{revision="{{sideRevison}}"}[2s]))'
    sandbox.apply(bad, namespace)

    def degraded() -> dict[str, Any] | None:
        st = status(sandbox, namespace, "web")
        cond = {c["type"]: c for c in st.get("conditions", [])}.get("Degraded", {})
        return cond if cond.get("status") == "True" and cond.get("reason") == "InvalidSpec" else None

    cond = wait_until(degraded, timeout=30, what="Degraded InvalidSpec")
    assert "spec.analysis.judge.metrics[0].query" in cond["message"] and "sideRevison" in cond["message"], cond
    # Nothing changed: no candidate, no baseline.
    assert set(deployments(sandbox, namespace, "web")) == {v1} and not baselines(sandbox, namespace)
