"""Rolling on the sandbox: batches of maxSurge, ready capacity never below replicas - maxUnavailable."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import Cluster, wait_until
from tests.e2e.operator_fixture import (
    Operator,
    deployments,
    operator_fixture,  # noqa: F401
    release,
    snapshot,
    status,
    wait_phase,
)

pytestmark = pytest.mark.e2e

ROLLING = {"type": "Rolling", "rolling": {"maxSurge": 1, "maxUnavailable": 0, "pauseBetweenBatches": "1s"}}


def test_rolling_v1_to_v2(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    sandbox.apply(release("web", "1", ROLLING), namespace)
    v1 = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")["stableRevision"]
    sandbox.apply(release("web", "2", ROLLING), namespace)
    steps: list[int] = []

    def done() -> bool:
        st, pods = snapshot(sandbox, namespace, "web")
        assert sum(d["ready"] for d in pods.values()) >= 4, pods  # maxUnavailable 0
        assert sum(d["replicas"] for d in pods.values()) <= 5, pods  # maxSurge 1
        if st.get("version") == "2" and st.get("currentStep"):
            steps.append(st["currentStep"])
        return st.get("phase") == "Succeeded" and st.get("version") == "2"

    wait_until(done, timeout=90, what="v2 Succeeded", interval=0.2)
    # 4 batches with 3 pauses between; polling sees most of them, always in order
    assert steps == sorted(steps) and steps[-1] == 7 and len(set(steps)) >= 4, steps
    v2 = status(sandbox, namespace, "web")["stableRevision"]
    wait_until(lambda: deployments(sandbox, namespace, "web") == {
        v1: {"replicas": 0, "ready": 0}, v2: {"replicas": 4, "ready": 4}}, timeout=20, what="v1 at 0")
