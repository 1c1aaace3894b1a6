"""Canary on the sandbox: v1 to v2, abort, promote full, a spec change mid-rollout, and an
operator killed mid-rollout that resumes from status."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import Cluster, wait_until
from tests.e2e.operator_fixture import (
    Operator,
    annotate,
    deployments,
    events,
    operator_fixture,  # noqa: F401
    release,
    selector,
    snapshot,
    status,
    wait_phase,
)

pytestmark = pytest.mark.e2e

STEPS = {"type": "Canary", "canary": {"steps": [{"setWeight": 25}, {"pause": {"duration": "2s"}},
                                                {"setWeight": 50}, {"analysis": {"duration": "2s"}}]}}
MANUAL = {"type": "Canary", "canary": {"steps": [{"setWeight": 25}, {"pause": {}}, {"setWeight": 75}]}}


def first(sandbox: Cluster, namespace: str, strategy: dict[str, object]) -> str:
    """Deploys v1 and waits for it to be stable; returns its revision."""
    sandbox.apply(release("web", "1", strategy), namespace)
    st = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")
    revision: str = st["stableRevision"]
    return revision


def test_canary_v1_to_v2(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    v1 = first(sandbox, namespace, STEPS)
    sandbox.apply(release("web", "2", STEPS), namespace)
    seen: set[tuple[str, int]] = set()

    def done() -> bool:
        st, pods = snapshot(sandbox, namespace, "web")
        seen.add((st.get("stepDisplay", ""), st.get("weight", 0)))
        # never fewer ready pods than replicas behind the stable Service (it selects every revision)
        assert sum(d["ready"] for d in pods.values()) >= 4, pods
        return st.get("phase") == "Succeeded" and st.get("version") == "2"

    wait_until(done, timeout=90, what="v2 Succeeded", interval=0.2)
    st = status(sandbox, namespace, "web")
    v2 = st["stableRevision"]
    assert v2 != v1 and st["stableVersion"] == "2" and st["weight"] == 100
    assert ("2/5", 25) in seen and ("4/5", 50) in seen, seen
    assert [h["outcome"] for h in st["history"]] == ["Succeeded", "Succeeded"]
    assert {c["type"]: c["status"] for c in st["conditions"]} == {
        "Ready": "True", "Progressing": "False", "Degraded": "False"}
    # the old revision is kept, scaled to zero
    wait_until(lambda: deployments(sandbox, namespace, "web") == {
        v1: {"replicas": 0, "ready": 0}, v2: {"replicas": 4, "ready": 4}}, timeout=30, what="v1 at 0, v2 at 4")
    assert selector(sandbox, namespace, "web-preview")["glideslope.dev/revision"] == v2
    # re-applying the same manifest changes nothing
    before = sandbox.get_json("release", "web", "-n", namespace)["metadata"]["generation"]
    sandbox.apply(release("web", "2", STEPS), namespace)
    after = sandbox.get_json("release", "web", "-n", namespace)
    assert after["metadata"]["generation"] == before and after["status"]["phase"] == "Succeeded"


def test_abort_mid_canary(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    v1 = first(sandbox, namespace, MANUAL)
    sandbox.apply(release("web", "2", MANUAL), namespace)
    st = wait_phase(sandbox, namespace, "web", "Paused", version="2")
    v2 = st["revision"]
    assert st["weight"] == 25 and deployments(sandbox, namespace, "web")[v2]["replicas"] == 1
    annotate(sandbox, namespace, "web", "glideslope.dev/abort", "looks wrong")
    st = wait_phase(sandbox, namespace, "web", "RolledBack", timeout=30)
    assert st["stableRevision"] == v1 and st["history"][-1]["outcome"] == "RolledBack"
    assert "looks wrong" in st["history"][-1]["reason"]
    wait_until(lambda: deployments(sandbox, namespace, "web")[v2]["replicas"] == 0, timeout=20, what="v2 at 0")
    assert deployments(sandbox, namespace, "web")[v1] == {"replicas": 4, "ready": 4}
    annotations = sandbox.get_json("release", "web", "-n", namespace)["metadata"].get("annotations", {})
    assert "glideslope.dev/abort" not in annotations
    assert "Aborted" in events(sandbox, namespace)
    # retry rolls the same revision out again
    annotate(sandbox, namespace, "web", "glideslope.dev/retry", "1")
    wait_phase(sandbox, namespace, "web", "Paused", version="2")


def test_promote_full(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    first(sandbox, namespace, MANUAL)
    sandbox.apply(release("web", "2", MANUAL), namespace)
    wait_phase(sandbox, namespace, "web", "Paused", version="2")
    annotate(sandbox, namespace, "web", "glideslope.dev/promote", "full")
    st = wait_phase(sandbox, namespace, "web", "Succeeded", version="2", timeout=30)
    assert st["stepDisplay"] == "4/4" and "Promoted" in events(sandbox, namespace)


def test_spec_change_mid_rollout(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    v1 = first(sandbox, namespace, MANUAL)
    sandbox.apply(release("web", "2", MANUAL), namespace)
    v2 = wait_phase(sandbox, namespace, "web", "Paused", version="2")["revision"]
    sandbox.apply(release("web", "3", MANUAL), namespace)
    st = wait_phase(sandbox, namespace, "web", "Paused", version="3")
    v3 = st["revision"]
    assert st["stableRevision"] == v1 and st["weight"] == 25
    superseded = [h for h in st["history"] if h["outcome"] == "Superseded"]
    assert [h["revision"] for h in superseded] == [v2]
    wait_until(lambda: deployments(sandbox, namespace, "web")[v2]["replicas"] == 0, timeout=20, what="v2 at 0")
    annotate(sandbox, namespace, "web", "glideslope.dev/promote", "full")
    st = wait_phase(sandbox, namespace, "web", "Succeeded", version="3")
    assert st["stableRevision"] == v3


def test_operator_killed_mid_rollout_resumes(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    first(sandbox, namespace, MANUAL)
    sandbox.apply(release("web", "2", MANUAL), namespace)
    before = wait_phase(sandbox, namespace, "web", "Paused", version="2")
    operator.kill()
    operator.start()
    annotate(sandbox, namespace, "web", "glideslope.dev/promote", "step")
    st = wait_phase(sandbox, namespace, "web", "Succeeded", version="2")
    # the paused step was neither repeated nor skipped: one promote took it to step 3
    assert before["stepDisplay"] == "2/4" and st["history"][-1]["outcome"] == "Succeeded"
    assert events(sandbox, namespace).count("Promoted") == 1


def test_undo_after_success(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    v1 = first(sandbox, namespace, MANUAL)
    sandbox.apply(release("web", "2", MANUAL), namespace)
    wait_phase(sandbox, namespace, "web", "Paused", version="2")
    annotate(sandbox, namespace, "web", "glideslope.dev/promote", "full")
    v2 = wait_phase(sandbox, namespace, "web", "Succeeded", version="2")["stableRevision"]
    wait_until(lambda: deployments(sandbox, namespace, "web")[v1]["replicas"] == 0, timeout=20, what="v1 at 0")
    annotate(sandbox, namespace, "web", "glideslope.dev/undo", "")

    def rolled_back() -> bool:
        st, pods = snapshot(sandbox, namespace, "web")
        # v2 keeps serving until v1 is back at full size
        assert sum(d["ready"] for d in pods.values()) >= 4, pods
        return st.get("phase") == "RolledBack"

    wait_until(rolled_back, timeout=60, what="RolledBack", interval=0.2)
    st = status(sandbox, namespace, "web")
    assert st["stableRevision"] == v1 and st["revision"] == v2 and st["stableVersion"] == "1"
    assert st["history"][-1]["outcome"] == "RolledBack" and "Undo" in events(sandbox, namespace)
    wait_until(lambda: deployments(sandbox, namespace, "web") == {
        v1: {"replicas": 4, "ready": 4}, v2: {"replicas": 0, "ready": 0}}, timeout=30, what="v1 at 4, v2 at 0")
