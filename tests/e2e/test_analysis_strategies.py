"""Analysis in the other strategies: a bad blue-green preview never gets the active Service, and
a rolling release stops at its first bad batch."""

from __future__ import annotations

import pytest

from tests.e2e.analysis_helpers import analysis, trigger, trigger_status
from tests.e2e.helpers import Cluster, wait_until
from tests.e2e.operator_fixture import (
    Operator,
    deployments,
    operator_fixture,  # noqa: F401
    release,
    selector,
    snapshot,
    status,
    wait_phase,
)

pytestmark = pytest.mark.e2e

BLUE_GREEN = {"type": "BlueGreen", "blueGreen": {"autoPromotionSeconds": 3, "scaleDownDelaySeconds": 0}}
ROLLING = {"type": "Rolling", "rolling": {"maxSurge": 1, "maxUnavailable": 0, "pauseBetweenBatches": "1s"}}
SPEC = {"analysis": analysis(trigger("critical"))}


def test_bad_blue_green_preview_never_goes_active(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    sandbox.apply(release("web", "1", BLUE_GREEN, **SPEC), namespace)
    v1 = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")["stableRevision"]
    sandbox.apply(release("web", "2", BLUE_GREEN, error_rate=0.3, **SPEC), namespace)

    def rolled_back() -> bool:
        assert selector(sandbox, namespace, "web")["glideslope.dev/revision"] == v1
        return status(sandbox, namespace, "web").get("phase") == "RolledBack"

    wait_until(rolled_back, timeout=90, what="RolledBack", interval=0.2)
    st = status(sandbox, namespace, "web")
    assert st["stableRevision"] == v1 and st["history"][-1]["outcome"] == "RolledBack"
    assert trigger_status(st)["state"] == "Failing"
    assert selector(sandbox, namespace, "web")["glideslope.dev/revision"] == v1


def test_rolling_stops_at_first_bad_batch(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    sandbox.apply(release("web", "1", ROLLING, **SPEC), namespace)
    v1 = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")["stableRevision"]
    sandbox.apply(release("web", "2", ROLLING, error_rate=0.3, **SPEC), namespace)
    most = 0

    def rolled_back() -> bool:
        nonlocal most
        st, pods = snapshot(sandbox, namespace, "web")
        most = max([most] + [d["replicas"] for r, d in pods.items() if r != v1])
        assert sum(d["ready"] for d in pods.values()) >= 4, pods
        return st.get("phase") == "RolledBack"

    wait_until(rolled_back, timeout=90, what="RolledBack", interval=0.2)
    assert most == 1, most
    st = status(sandbox, namespace, "web")
    assert st["stableRevision"] == v1 and st["currentStep"] == 1, st
    wait_until(lambda: deployments(sandbox, namespace, "web")[v1] == {"replicas": 4, "ready": 4},
               timeout=20, what="v1 at 4")
