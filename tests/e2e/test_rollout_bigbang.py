"""BigBang on the sandbox: the old revision goes, then the new one comes; the downtime is said
and recorded."""

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

BIG_BANG = {"type": "BigBang", "bigBang": {}}


def test_bigbang_v1_to_v2(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    sandbox.apply(release("web", "1", BIG_BANG, replicas=3), namespace)
    v1 = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")["stableRevision"]
    sandbox.apply(release("web", "2", BIG_BANG, replicas=3), namespace)
    messages: set[str] = set()

    def done() -> bool:
        st, pods = snapshot(sandbox, namespace, "web")
        if st.get("phase") == "Progressing" and st.get("version") == "2":
            messages.add(st.get("message", ""))
        new = [r for r in pods if r != v1]
        # the new revision never runs beside the old one
        assert not new or pods[new[0]]["ready"] == 0 or pods[v1]["ready"] == 0, pods
        return st.get("phase") == "Succeeded" and st.get("version") == "2"

    wait_until(done, timeout=60, what="v2 Succeeded", interval=0.2)
    # whenever it was seen mid-rollout, the message said this is the downtime window
    assert all("downtime window" in m for m in messages), messages
    st = status(sandbox, namespace, "web")
    assert st["downtimeSeconds"] > 0 and st["history"][-1]["downtimeSeconds"] == st["downtimeSeconds"]
    assert "downtime" in st["message"]
    wait_until(lambda: deployments(sandbox, namespace, "web")[v1]["replicas"] == 0, timeout=10, what="v1 at 0")
