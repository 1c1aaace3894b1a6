"""Never overwrite what is not ours: a Release named like another application's Service, or
whose Service is another Release's preview, ends `Degraded` with reason `Conflict`, naming the
object, and writes nothing; the annotation `glideslope.dev/adopt` hands an object over; a
Release created again after a delete takes back what its predecessor left serving."""

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
    selector,
    status,
    wait_phase,
)

pytestmark = pytest.mark.e2e

CANARY = {"type": "Canary", "canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "1s"}}]}}


def service(name: str, app: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": app}, "ports": [{"port": 80, "targetPort": 9090}]}}


def conflict(sandbox: Cluster, namespace: str, name: str) -> dict[str, Any]:
    def degraded() -> dict[str, Any] | None:
        st = status(sandbox, namespace, name)
        found = next((c for c in st.get("conditions") or [] if c["type"] == "Degraded"), None)
        return found if found and found["status"] == "True" and found["reason"] == "Conflict" else None
    found: dict[str, Any] = wait_until(degraded, timeout=30, what=f"{name} Degraded/Conflict")
    return found


def test_another_applications_service_is_never_taken(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    sandbox.apply(service("web", "legacy"), namespace)
    sandbox.apply(release("web", "1", CANARY), namespace)
    found = conflict(sandbox, namespace, "web")
    assert f"Service {namespace}/web exists and is not this Release's" in found["message"]
    assert "glideslope.dev/adopt=web" in found["message"]
    assert "Conflict" in events(sandbox, namespace)
    # Nothing was written: the Service is untouched and no Deployment exists.
    assert selector(sandbox, namespace, "web") == {"app": "legacy"}
    assert deployments(sandbox, namespace, "web") == {}
    # Its owner hands it over: the rollout goes ahead, and the Service becomes the Release's.
    sandbox.kubectl("annotate", "service", "web", "-n", namespace, "glideslope.dev/adopt=web")
    wait_phase(sandbox, namespace, "web", "Succeeded", version="1", timeout=60)
    assert selector(sandbox, namespace, "web")["glideslope.dev/release"] == "web"
    owners = sandbox.get_json("service", "web", "-n", namespace)["metadata"]["ownerReferences"]
    assert [o["name"] for o in owners] == ["web"]
    st = status(sandbox, namespace, "web")
    assert {c["type"]: c["status"] for c in st["conditions"]}["Degraded"] == "False"


def test_another_releases_preview_is_never_taken(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    first = release("api", "1", CANARY)
    first["spec"]["service"]["previewName"] = "web"
    sandbox.apply(first, namespace)
    wait_phase(sandbox, namespace, "api", "Succeeded", version="1")
    before = selector(sandbox, namespace, "web")
    sandbox.apply(release("web", "1", CANARY), namespace)
    found = conflict(sandbox, namespace, "web")
    assert "controlled by Release api" in found["message"], found
    assert selector(sandbox, namespace, "web") == before and deployments(sandbox, namespace, "web") == {}
    assert status(sandbox, namespace, "api")["phase"] == "Succeeded"


def test_a_release_created_again_takes_back_what_was_left_serving(sandbox: Cluster, namespace: str,
                                                                   operator: Operator) -> None:
    sandbox.apply(release("web", "1", CANARY), namespace)
    v1 = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")["stableRevision"]
    sandbox.kubectl("delete", "release", "web", "-n", namespace)
    assert not sandbox.get_json("service", "web", "-n", namespace)["metadata"].get("ownerReferences")
    sandbox.apply(release("web", "1", CANARY), namespace)
    st = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")
    assert st["stableRevision"] == v1
    uid = sandbox.get_json("release", "web", "-n", namespace)["metadata"]["uid"]
    wait_until(lambda: [o["uid"] for o in sandbox.get_json("service", "web", "-n", namespace)["metadata"].get(
        "ownerReferences") or []] == [uid], timeout=60, what="the Service owned by the new Release")
