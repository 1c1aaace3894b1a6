"""BlueGreen on the sandbox: v1 to v2 with the one-write switch, and undo during the
scale-down delay that switches straight back to blue."""

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
    status,
    wait_phase,
)

pytestmark = pytest.mark.e2e


def blue_green(delay: int) -> dict[str, object]:
    return {"type": "BlueGreen", "blueGreen": {"autoPromotionSeconds": 2, "previewReplicas": 2,
                                                "scaleDownDelaySeconds": delay}}


def active(sandbox: Cluster, namespace: str) -> str:
    return selector(sandbox, namespace, "web")["glideslope.dev/revision"]


def test_bluegreen_v1_to_v2(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    sandbox.apply(release("web", "1", blue_green(3)), namespace)
    blue = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")["stableRevision"]
    assert active(sandbox, namespace) == blue
    sandbox.apply(release("web", "2", blue_green(3)), namespace)
    green = wait_until(lambda: status(sandbox, namespace, "web").get("revision") != blue
                       and status(sandbox, namespace, "web")["revision"], timeout=20, what="green revision")
    # green at previewReplicas behind the preview Service while blue serves
    wait_until(lambda: deployments(sandbox, namespace, "web").get(green, {}).get("ready") == 2,
               timeout=30, what="green preview pods")
    assert active(sandbox, namespace) == blue
    assert selector(sandbox, namespace, "web-preview")["glideslope.dev/revision"] == green

    def switched() -> bool:
        if active(sandbox, namespace) != green:
            return False
        # at the moment of the switch green carries everything and blue is still there
        pods = deployments(sandbox, namespace, "web")
        assert pods[green]["ready"] == 4
        return True

    wait_until(switched, timeout=30, what="the stable Service on green", interval=0.1)
    assert deployments(sandbox, namespace, "web")[blue]["replicas"] == 4
    st = wait_phase(sandbox, namespace, "web", "Succeeded", version="2")
    assert st["stableRevision"] == green
    wait_until(lambda: deployments(sandbox, namespace, "web")[blue]["replicas"] == 0, timeout=20, what="blue at 0")


def test_undo_during_scale_down_delay(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    sandbox.apply(release("web", "1", blue_green(120)), namespace)
    blue = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")["stableRevision"]
    sandbox.apply(release("web", "2", blue_green(120)), namespace)
    wait_until(lambda: status(sandbox, namespace, "web").get("stepDisplay") == "4/4"
               and active(sandbox, namespace) != blue, timeout=60, what="switched, blue kept")
    assert deployments(sandbox, namespace, "web")[blue] == {"replicas": 4, "ready": 4}
    annotate(sandbox, namespace, "web", "glideslope.dev/undo", "")
    wait_until(lambda: active(sandbox, namespace) == blue, timeout=5, what="the stable Service back on blue",
               interval=0.1)
    st = wait_phase(sandbox, namespace, "web", "RolledBack", timeout=20)
    assert st["stableRevision"] == blue and st["history"][-1]["outcome"] == "RolledBack"
    assert st["history"][-1]["rollbackSeconds"] < 5
    assert {"Undo", "Aborted"} & set(events(sandbox, namespace))
