"""Deleting a Release never takes down what serves, and never hangs: deleted mid-canary (weight
75, no router), in the validation window, mid-Rolling and mid-BigBang, the Ready pods behind its
Service never drop below their count at the delete; with its HTTPRoute or Service already gone,
it is still let go."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.helpers import Cluster, wait_until
from tests.e2e.operator_fixture import (
    Operator,
    deployments,
    operator_fixture,  # noqa: F401
    release,
    snapshot,
    wait_phase,
)
from tests.e2e.test_rollout_gateway import route

pytestmark = pytest.mark.e2e

CANARY_75 = {"type": "Canary", "canary": {"steps": [{"setWeight": 75}, {"pause": {}}]}}
CANARY_QUICK = {"type": "Canary", "canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "1s"}}]}}
ROLLING = {"type": "Rolling", "rolling": {"maxSurge": 1, "maxUnavailable": 0, "pauseBetweenBatches": "60s"}}
BIG_BANG = {"type": "BigBang", "bigBang": {}}
ROUTED = {"type": "Canary", "canary": {"steps": [{"setWeight": 20}, {"pause": {}}],
                                       "trafficRouting": {"gatewayAPI": {"httpRoute": "web"}}}}


def serving(sandbox: Cluster, namespace: str) -> int:
    """Ready pods behind the stable Service `web` (its selector names a revision, or none)."""
    _, pods = snapshot(sandbox, namespace, "web")
    selected = sandbox.get_json("service", "web", "-n", namespace)["spec"]["selector"].get("glideslope.dev/revision")
    return sum(p["ready"] for r, p in pods.items() if selected in (None, r))


def second_version(sandbox: Cluster, namespace: str, strategy: dict[str, Any], **spec: Any) -> None:
    """v1 of Release `web` rolled out, then v2 applied."""
    sandbox.apply(release("web", "1", strategy, **spec), namespace)
    wait_phase(sandbox, namespace, "web", "Succeeded", version="1")
    sandbox.apply(release("web", "2", strategy, **spec), namespace)


def gone(sandbox: Cluster, namespace: str) -> bool:
    return sandbox.kubectl("get", "release", "web", "-n", namespace, check=False).returncode != 0


def delete_and_watch(sandbox: Cluster, namespace: str, replicas: int = 4) -> None:
    """Delete the Release; until it is gone and one revision serves at full size, the Ready
    pods behind its Service never drop below their count at the delete."""
    before = serving(sandbox, namespace)
    assert before > 0
    sandbox.kubectl("delete", "release", "web", "-n", namespace, "--wait=false")
    lowest = before

    def settled() -> bool:
        nonlocal lowest
        now = serving(sandbox, namespace)
        lowest = min(lowest, now)
        assert now >= before, f"{now} Ready pods serving, {before} before the delete"
        left = deployments(sandbox, namespace, "web")
        return gone(sandbox, namespace) and list(left.values()) == [{"replicas": replicas, "ready": replicas}]

    wait_until(settled, timeout=90, what="the Release gone, one revision serving at full size", interval=0.1)
    print(f"Ready pods serving: {before} at the delete, never fewer than {lowest}")
    service = sandbox.get_json("service", "web", "-n", namespace)
    assert not service["metadata"].get("ownerReferences")


def test_delete_at_canary_weight_75_without_a_router(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    second_version(sandbox, namespace, CANARY_75)
    st = wait_phase(sandbox, namespace, "web", "Paused", version="2")
    wait_until(lambda: sum(p["ready"] for p in snapshot(sandbox, namespace, "web")[1].values()) >= 4,
               timeout=30, what="4 Ready pods at weight 75")
    assert st["weight"] == 75
    delete_and_watch(sandbox, namespace)


def test_delete_in_the_validation_window(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    spec: dict[str, Any] = {"validation": {"windowSeconds": 300}}
    second_version(sandbox, namespace, CANARY_QUICK, **spec)
    wait_phase(sandbox, namespace, "web", "Validating", version="2")
    wait_until(lambda: serving(sandbox, namespace) >= 4, timeout=30, what="4 Ready pods validating")
    delete_and_watch(sandbox, namespace)


def test_delete_mid_rolling(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    second_version(sandbox, namespace, ROLLING)
    wait_until(lambda: (lambda st: st.get("version") == "2" and (st.get("currentStep") or 0) >= 2)(
        snapshot(sandbox, namespace, "web")[0]), timeout=60, what="the second batch of v2")
    wait_until(lambda: serving(sandbox, namespace) >= 4, timeout=30, what="4 Ready pods mid-Rolling")
    delete_and_watch(sandbox, namespace)


def test_delete_mid_big_bang(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    second_version(sandbox, namespace, BIG_BANG)

    def candidate_up() -> bool:
        st, pods = snapshot(sandbox, namespace, "web")
        candidate = st.get("revision")
        return st.get("version") == "2" and candidate in pods and pods[candidate]["ready"] > 0
    # Deleted once the candidate has Ready pods: what serves then is all there is to keep.
    wait_until(candidate_up, timeout=60, what="v2's first Ready pods", interval=0.05)
    delete_and_watch(sandbox, namespace)


def test_delete_with_its_route_gone(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    sandbox.apply(route(namespace), namespace)
    second_version(sandbox, namespace, ROUTED)
    wait_phase(sandbox, namespace, "web", "Paused", version="2")
    sandbox.kubectl("delete", "httproute", "web", "-n", namespace)
    sandbox.kubectl("delete", "release", "web", "-n", namespace, "--wait=false")
    wait_until(lambda: gone(sandbox, namespace), timeout=30, what="the Release gone")


def test_delete_with_its_service_gone(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    sandbox.apply(release("web", "1", CANARY_75), namespace)
    wait_phase(sandbox, namespace, "web", "Succeeded", version="1")
    sandbox.kubectl("delete", "service", "web", "web-preview", "-n", namespace)
    sandbox.kubectl("delete", "release", "web", "-n", namespace, "--wait=false")
    wait_until(lambda: gone(sandbox, namespace), timeout=30, what="the Release gone")
    assert list(deployments(sandbox, namespace, "web").values()) == [{"replicas": 4, "ready": 4}]
