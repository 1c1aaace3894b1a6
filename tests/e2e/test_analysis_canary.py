"""Analysis during a canary, on the sandbox: the simulator's traffic, scraped by Prometheus,
measured by the operator's triggers. A bad candidate (30 % errors) rolls back by itself."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from tests.e2e.analysis_helpers import analysis, trigger, trigger_status
from tests.e2e.helpers import Cluster, wait_until
from tests.e2e.operator_fixture import (
    Operator,
    annotate,
    deployments,
    events,
    operator_fixture,  # noqa: F401
    release,
    snapshot,
    status,
    wait_phase,
)

pytestmark = pytest.mark.e2e

STEPS = {"type": "Canary", "canary": {"steps": [
    {"setWeight": 25}, {"analysis": {"duration": "4s"}}, {"setWeight": 50}, {"analysis": {"duration": "2s"}}]}}


def first(sandbox: Cluster, namespace: str, **spec: object) -> str:
    sandbox.apply(release("web", "1", STEPS, **spec), namespace)
    revision: str = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")["stableRevision"]
    return revision


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_bad_canary_rolls_back_by_itself(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    spec = {"analysis": analysis(trigger("critical"))}
    v1 = first(sandbox, namespace, **spec)
    sandbox.apply(release("web", "2", STEPS, error_rate=0.3, **spec), namespace)
    weights: set[int] = set()

    def rolled_back() -> bool:
        st, pods = snapshot(sandbox, namespace, "web")
        if st.get("version") == "2":
            weights.add(st.get("weight") or 0)
        # the stable Service (every revision) never has fewer than 4 ready pods
        assert sum(d["ready"] for d in pods.values()) >= 4, pods
        assert st.get("phase") != "Succeeded" or st.get("version") != "2", st
        return st.get("phase") == "RolledBack"

    wait_until(rolled_back, timeout=90, what="RolledBack", interval=0.2)
    st = status(sandbox, namespace, "web")
    last = st["history"][-1]
    assert st["stableRevision"] == v1 and last["outcome"] == "RolledBack"
    assert max(weights) <= 25, weights
    # the message, the history and an Event name the trigger, the value and the query
    for text in (st["message"], last["reason"]):
        assert "error-rate" in text and "failureCondition" in text and "http_requests_total" in text, text
    t = trigger_status(st)
    assert t["state"] == "Failing" and t["failures"] >= 1 and t["lastValue"] > 0.1, t
    rollback = last["rollbackSeconds"]
    breach = _time(st["breachAt"])
    assert breach <= _time(last["finishedAt"])
    print(f"breach-to-rollback: {rollback:.2f}s")
    assert 0 < rollback < 30, last
    assert {"TriggerFailed", "RollingBack", "RolledBack"} <= set(events(sandbox, namespace))
    wait_until(lambda: deployments(sandbox, namespace, "web").get(st["revision"], {}).get("replicas") == 0,
               timeout=20, what="v2 at 0")
    assert deployments(sandbox, namespace, "web")[v1] == {"replicas": 4, "ready": 4}


def test_good_canary_succeeds(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    spec = {"analysis": analysis(trigger("critical"))}
    first(sandbox, namespace, **spec)
    sandbox.apply(release("web", "2", STEPS, **spec), namespace)
    st = wait_phase(sandbox, namespace, "web", "Succeeded", version="2", timeout=90)
    t = trigger_status(st)
    assert t["state"] == "Passing" and t["successes"] >= 2 and t["failures"] == 0, t
    assert st["history"][-1]["outcome"] == "Succeeded" and "breachAt" not in st


def test_high_trigger_rolls_back_after_failure_limit(sandbox: Cluster, namespace: str,
                                                     operator: Operator) -> None:
    spec = {"analysis": analysis(trigger("high", failureLimit=3))}
    first(sandbox, namespace, **spec)
    sandbox.apply(release("web", "2", STEPS, error_rate=0.3, **spec), namespace)
    seen: list[int] = []

    def failing() -> bool:
        st = status(sandbox, namespace, "web")
        failures = trigger_status(st).get("failures", 0)
        if st.get("version") != "2":
            return False
        if st.get("phase") in ("RollingBack", "RolledBack"):
            return True
        seen.append(failures)
        # below the limit it holds the step, neither advancing nor rolling back
        assert st.get("weight", 0) <= 25, st
        return False

    wait_until(failing, timeout=90, what="rollback", interval=0.2)
    st = wait_phase(sandbox, namespace, "web", "RolledBack", timeout=60)
    assert trigger_status(st)["failures"] == 3, trigger_status(st)
    assert {1, 2} <= set(seen), seen
    assert "3 of failureLimit 3" in st["history"][-1]["reason"]


def test_medium_trigger_pauses(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    spec = {"analysis": analysis(trigger("medium"))}
    first(sandbox, namespace, **spec)
    sandbox.apply(release("web", "2", STEPS, error_rate=0.3, **spec), namespace)
    st = wait_phase(sandbox, namespace, "web", "Paused", version="2", timeout=60)
    assert "paused by analysis" in st["message"] and "error-rate" in st["message"], st["message"]
    time.sleep(3)
    st = status(sandbox, namespace, "web")
    assert st["phase"] == "Paused" and st["weight"] == 25 and st["history"][-1]["outcome"] == "Succeeded"
    # a person decides: promote full goes on despite the medium trigger
    annotate(sandbox, namespace, "web", "glideslope.dev/promote", "full")
    wait_phase(sandbox, namespace, "web", "Succeeded", version="2", timeout=60)


def test_unreachable_prometheus_never_promotes(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    spec = {"analysis": analysis(trigger("critical"), address="http://127.0.0.1:1")}
    first(sandbox, namespace, **spec)
    sandbox.apply(release("web", "2", STEPS, **spec), namespace)

    def inconclusive() -> dict[str, object] | None:
        st = status(sandbox, namespace, "web")
        assert st.get("version") != "2" or st.get("phase") != "Succeeded", st
        t = trigger_status(st)
        return st if st.get("phase") == "Paused" and t.get("state") == "Inconclusive" else None

    st = wait_until(inconclusive, timeout=60, what="Paused, Inconclusive", interval=0.3)
    assert "cannot reach Prometheus" in trigger_status(st)["message"]
    time.sleep(3)
    st = status(sandbox, namespace, "web")
    assert st["phase"] == "Paused" and st["currentStep"] <= 2 and st["weight"] == 25, st
    assert "AnalysisInconclusive" in events(sandbox, namespace)


def test_no_automatic_rollback_pauses(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    # initialDelay: the candidate's first requests must reach Prometheus before three
    # measurements without data would pause it as Inconclusive instead (not what is tested here).
    spec = {"analysis": analysis(trigger("critical"), initialDelay="3s"), "rollback": {"automatic": False}}
    v1 = first(sandbox, namespace, **spec)
    sandbox.apply(release("web", "2", STEPS, error_rate=0.3, **spec), namespace)
    st = wait_phase(sandbox, namespace, "web", "Paused", version="2", timeout=60)
    assert "rollback.automatic is false" in st["message"], st["message"]
    time.sleep(3)
    st = status(sandbox, namespace, "web")
    assert st["phase"] == "Paused" and st["stableRevision"] == v1 and st["weight"] == 25, st
    # a person aborts
    annotate(sandbox, namespace, "web", "glideslope.dev/abort", "bad errors")
    wait_phase(sandbox, namespace, "web", "RolledBack", timeout=60)


def test_refused_promql_is_invalid_spec(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    v1 = first(sandbox, namespace, analysis=analysis(trigger("critical")))
    bad = analysis(trigger("critical"), trigger("low", name="typo", query="sum(rate(http_requests_total[5s]"))
    sandbox.apply(release("web", "2", STEPS, analysis=bad), namespace)

    def degraded() -> dict[str, object] | None:
        st = status(sandbox, namespace, "web")
        cond = {c["type"]: c for c in st.get("conditions", [])}.get("Degraded", {})
        return cond if cond.get("status") == "True" and cond.get("reason") == "InvalidSpec" else None

    cond = wait_until(degraded, timeout=30, what="Degraded InvalidSpec")
    assert "spec.analysis.triggers[1].query" in str(cond["message"]), cond
    assert "InvalidSpec" in events(sandbox, namespace)
    # nothing changed: v1 keeps serving, no candidate was created
    assert set(deployments(sandbox, namespace, "web")) == {v1}
    # fixing the query lets the rollout go on
    sandbox.apply(release("web", "2", STEPS, analysis=analysis(trigger("critical"))), namespace)
    wait_phase(sandbox, namespace, "web", "Succeeded", version="2", timeout=90)
