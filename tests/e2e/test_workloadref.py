"""A Release that adopts an existing Deployment (`spec.workloadRef`), on the sandbox: a Deployment
`web` of 4 pods behind a Service `web` handed over with `glideslope.dev/adopt: web`, with the
simulator's traffic. Adopting it never drops the Ready pods behind the Service below 4, and no
simulated request finds the Service without an endpoint; a new template of the Deployment
(`kubectl set image`) is rolled out as a canary, a bad one rolled back; deleting the Release gives
the Deployment back at its size before any pod of the Release goes."""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any

import pytest
import yaml

from tests.e2e.analysis_helpers import analysis, trigger
from tests.e2e.helpers import REPO, Cluster, wait_until
from tests.e2e.operator_fixture import (
    Operator,
    deployments,
    operator_fixture,  # noqa: F401
    status,
    wait_phase,
)

pytestmark = pytest.mark.e2e

CANARY = {"type": "Canary", "canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "2s"}}]}}
ADOPTED = "glideslope.dev/adopted-replicas"


def deployment(image: str = "registry.example/web:1", replicas: int = 4, error_rate: float = 0.0) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"},
                                           "annotations": {"sim.glideslope.dev/error-rate": str(error_rate)}},
                              "spec": {"containers": [{"name": "app", "image": image}]}}},
    }


def service(adopt: str | None = "web") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web", "labels": {"team": "shop"}}
    if adopt is not None:
        meta["annotations"] = {"glideslope.dev/adopt": adopt}
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


def adopting(scale_down: str = "progressively", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "glideslope.dev/v1alpha1", "kind": "Release", "metadata": {"name": "web"},
            "spec": {"version": "1", "replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                     "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                     "scaleDown": scale_down},
                     "service": {"name": "web", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
                     "strategy": CANARY, "analysis": analysis(trigger()), **spec}}


def running(sandbox: Cluster, namespace: str) -> None:
    """The Deployment `web` with its 4 pods Ready, then the Service selecting them."""
    sandbox.apply(deployment(), namespace)
    wait_until(lambda: adopted(sandbox, namespace)["ready"] == 4, timeout=60, what="web's 4 pods Ready")
    sandbox.apply(service(), namespace)


def adopted(sandbox: Cluster, namespace: str) -> dict[str, Any]:
    """The Deployment `web`: replicas, Ready pods, its record, its image."""
    found = sandbox.get_json("deployment", "web", "-n", namespace)
    return {"replicas": found["spec"]["replicas"], "ready": (found.get("status") or {}).get("readyReplicas", 0),
            "recorded": (found["metadata"].get("annotations") or {}).get(ADOPTED),
            "image": found["spec"]["template"]["spec"]["containers"][0]["image"]}


def serving(sandbox: Cluster, namespace: str) -> tuple[int, int, int]:
    """(Ready pods behind the Service `web`, those of the Release, those terminating among the
    Release's), from one API call: pods its selector matches, Ready and not terminating."""
    items = sandbox.get_json("pods,services", "-n", namespace)["items"]
    selector = next(i["spec"]["selector"] for i in items if i["kind"] == "Service" and i["metadata"]["name"] == "web")
    behind = ours = going = 0
    for pod in (i for i in items if i["kind"] == "Pod"):
        labels = pod["metadata"].get("labels") or {}
        release = "glideslope.dev/release" in labels
        if pod["metadata"].get("deletionTimestamp"):
            going += release
            continue
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
        if ready and all(labels.get(k) == v for k, v in selector.items()):
            behind += 1
            ours += release
    return behind, ours, going


def unserved(sandbox: Cluster, namespace: str) -> float:
    """Simulated requests to the Service `web` that found no ready endpoint, so far."""
    result = sandbox.promql(f'sum(http_requests_unserved_total{{namespace="{namespace}",service="web"}})')
    return float(result[0]["value"][1]) if result else 0.0


def traffic(sandbox: Cluster, namespace: str) -> float:
    result = sandbox.promql(f'sum(http_requests_total{{namespace="{namespace}",service="web"}})')
    return float(result[0]["value"][1]) if result else 0.0


def watch_serving(sandbox: Cluster, namespace: str, done: Any, *, timeout: float, what: str) -> int:
    """Poll until `done()`; the Ready pods behind the Service never drop below 4. Returns the
    lowest count seen."""
    lowest = 4

    def check() -> bool:
        nonlocal lowest
        behind, _, _ = serving(sandbox, namespace)
        lowest = min(lowest, behind)
        assert behind >= 4, f"{behind} Ready pods behind the Service web"
        return bool(done())

    wait_until(check, timeout=timeout, what=what, interval=0.1)
    return lowest


def adopt(sandbox: Cluster, namespace: str, scale_down: str = "progressively") -> dict[str, Any]:
    """Apply the adopting Release; until it Succeeded, never fewer than 4 Ready pods serve."""
    sandbox.apply(adopting(scale_down), namespace)
    lowest = watch_serving(sandbox, namespace, lambda: status(sandbox, namespace, "web").get("phase") == "Succeeded",
                           timeout=90, what="web adopted and Succeeded")
    print(f"adoption ({scale_down}): never fewer than {lowest} Ready pods behind the Service")
    return status(sandbox, namespace, "web")


def test_adopt_progressively_canary_a_new_image_then_delete(sandbox: Cluster, namespace: str,
                                                           operator: Operator) -> None:
    running(sandbox, namespace)
    wait_until(lambda: traffic(sandbox, namespace) > 0, timeout=30, what="traffic through the Service web")
    before = unserved(sandbox, namespace)
    st = adopt(sandbox, namespace)
    # The Release's first revision serves alone; the Deployment, untouched but for its replicas.
    wait_until(lambda: adopted(sandbox, namespace)["replicas"] == 0, timeout=30, what="web scaled to 0")
    found = adopted(sandbox, namespace)
    assert found["recorded"] == "4" and found["image"] == "registry.example/web:1"
    first = st["revision"]
    # A canary by replica ratio: the Service selects the Release's pods (of every revision).
    selector = sandbox.get_json("service", "web", "-n", namespace)["spec"]["selector"]
    assert selector == {"app": "web", "glideslope.dev/release": "web"}
    assert deployments(sandbox, namespace, "web") == {first: {"replicas": 4, "ready": 4}}

    # A new image on the Deployment is a canary of the Release; the Deployment stays at 0.
    sandbox.kubectl("set", "image", "deployment/web", "app=registry.example/web:2", "-n", namespace)
    wait_until(lambda: status(sandbox, namespace, "web").get("revision") != first, timeout=30,
               what="a rollout of the new template")
    weights: set[int] = set()

    def canary_done() -> bool:
        st = status(sandbox, namespace, "web")
        weights.add(st.get("weight") or 0)
        return st.get("phase") == "Succeeded"

    watch_serving(sandbox, namespace, canary_done, timeout=90, what="the canary of web:2 Succeeded")
    st = status(sandbox, namespace, "web")
    assert st["stableRevision"] == st["revision"] != first
    assert [h["outcome"] for h in st["history"]][-1] == "Succeeded"
    assert 50 in weights, weights  # the canary's step, not a replacement at once
    found = adopted(sandbox, namespace)
    assert found["replicas"] == 0 and found["image"] == "registry.example/web:2"

    # Not one simulated request found the Service without a Ready endpoint (two scrapes later).
    time.sleep(2.5)
    assert unserved(sandbox, namespace) == before

    # Delete: the Deployment comes back at 4, Ready, before any pod of the Release goes.
    sandbox.kubectl("delete", "release", "web", "-n", namespace, "--wait=false")

    def given_back() -> bool:
        _, ours, going = serving(sandbox, namespace)
        if going or ours < 4:
            assert adopted(sandbox, namespace)["ready"] >= 4, "a pod of the Release went before web was Ready"
        gone = sandbox.kubectl("get", "release", "web", "-n", namespace, check=False).returncode != 0
        return gone and ours == 0 and not deployments(sandbox, namespace, "web")

    watch_serving(sandbox, namespace, given_back, timeout=90, what="web given back, the Release's pods gone")
    found = adopted(sandbox, namespace)
    assert found["replicas"] == 4 and found["recorded"] is None and found["image"] == "registry.example/web:2"
    given = sandbox.get_json("service", "web", "-n", namespace)
    assert given["spec"]["selector"] == {"app": "web"}
    assert given["metadata"]["labels"] == {"team": "shop"}
    assert not given["metadata"].get("ownerReferences")
    assert "glideslope.dev/adopted-from" not in given["metadata"]["annotations"]
    assert [p["port"] for p in given["spec"]["ports"]] == [80]
    time.sleep(2.5)
    assert unserved(sandbox, namespace) == before


def test_a_bad_template_is_rolled_back_and_the_release_says_the_deployment_holds_it(
        sandbox: Cluster, namespace: str, operator: Operator) -> None:
    running(sandbox, namespace)
    first = adopt(sandbox, namespace)["revision"]
    # A new image whose pods fail half their requests (the simulator's annotation).
    bad = deployment("registry.example/web:2", error_rate=0.5)["spec"]["template"]
    sandbox.kubectl("patch", "deployment", "web", "-n", namespace, "--type=merge", "-p",
                    json.dumps({"spec": {"template": bad}}))
    st = wait_phase(sandbox, namespace, "web", "RolledBack", timeout=90)
    assert st["stableRevision"] == first and st["revision"] != first
    assert f"Deployment web's template is the rolled-back revision {st['revision']}" in st["message"]
    assert "kubectl rollout undo deployment/web" in st["message"]
    assert deployments(sandbox, namespace, "web")[first] == {"replicas": 4, "ready": 4}
    assert adopted(sandbox, namespace)["replicas"] == 0
    # Going on as it says: the Deployment's template back to the good one is its stable revision.
    sandbox.kubectl("rollout", "undo", "deployment/web", "-n", namespace)
    wait_until(lambda: status(sandbox, namespace, "web").get("revision") == first, timeout=30,
               what="the undone template is the stable revision again")
    assert wait_phase(sandbox, namespace, "web", "Succeeded")["stableRevision"] == first


def test_scale_down_onsuccess_keeps_the_deployment_until_the_first_rollout_succeeds(
        sandbox: Cluster, namespace: str, operator: Operator) -> None:
    running(sandbox, namespace)
    sandbox.apply(adopting("onsuccess"), namespace)
    sizes: set[int] = set()

    def succeeded() -> bool:
        # The Deployment is read first: scaled in the tick that decides Succeeded, it may show 0
        # a moment before the status says so, but never before the Release's 4 pods are Ready.
        replicas = adopted(sandbox, namespace)["replicas"]
        _, ours, _ = serving(sandbox, namespace)
        sizes.add(replicas)
        assert replicas == 4 or ours >= 4, f"web at {replicas} while the Release has {ours} Ready pods"
        return status(sandbox, namespace, "web").get("phase") == "Succeeded"

    watch_serving(sandbox, namespace, succeeded, timeout=90, what="web adopted (onsuccess)")
    assert sizes <= {4, 0} and 4 in sizes, sizes  # from 4 to 0 at once, not progressively
    wait_until(lambda: adopted(sandbox, namespace)["replicas"] == 0, timeout=30, what="web scaled to 0 on success")
    assert adopted(sandbox, namespace)["recorded"] == "4"
    # The size to give back is recorded on the Deployment: an operator started again knows it.
    operator.kill()
    operator.start()
    sandbox.kubectl("delete", "release", "web", "-n", namespace, "--wait=false")
    watch_serving(sandbox, namespace, lambda: not deployments(sandbox, namespace, "web"), timeout=60,
                  what="web given back by a restarted operator, the Release's revisions gone")
    assert adopted(sandbox, namespace) == {"replicas": 4, "ready": 4, "recorded": None,
                                           "image": "registry.example/web:1"}


def test_scale_down_never_leaves_the_deployment_alone(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    running(sandbox, namespace)
    before = sandbox.get_json("deployment", "web", "-n", namespace)["metadata"]["generation"]
    adopt(sandbox, namespace, "never")
    time.sleep(2)
    found = sandbox.get_json("deployment", "web", "-n", namespace)
    assert found["spec"]["replicas"] == 4 and found["metadata"]["generation"] == before
    assert ADOPTED not in (found["metadata"].get("annotations") or {})
    # The Service serves the Release's pods only; deleting the Release gives it back.
    assert sandbox.get_json("service", "web", "-n", namespace)["spec"]["selector"]["glideslope.dev/release"] == "web"
    sandbox.kubectl("delete", "release", "web", "-n", namespace, "--wait=false")
    watch_serving(sandbox, namespace, lambda: not deployments(sandbox, namespace, "web"), timeout=60,
                  what="the Release's revisions gone")
    assert sandbox.get_json("service", "web", "-n", namespace)["spec"]["selector"] == {"app": "web"}
    assert adopted(sandbox, namespace)["replicas"] == 4


def test_what_cannot_be_adopted_is_degraded_naming_the_field(sandbox: Cluster, namespace: str,
                                                             operator: Operator) -> None:
    sandbox.apply(adopting(), namespace)
    st = wait_until(lambda: degraded(sandbox, namespace), timeout=30, what="Degraded: no Deployment web")
    assert "spec.workloadRef.name: Deployment" in st and "not found" in st
    # Created with pods the selector does not select: the selector is named.
    other = deployment()
    other["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    other["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    sandbox.apply(other, namespace)
    st = wait_until(lambda: (m := degraded(sandbox, namespace)) and "spec.selector.matchLabels" in m and m,
                    timeout=30, what="Degraded: the selector does not select web's pods")
    assert "app=web not on the pods of Deployment" in st
    assert adopted(sandbox, namespace)["replicas"] == 4 and not deployments(sandbox, namespace, "web")
    # A Service not handed over is not taken.
    sandbox.apply(service(adopt=None), namespace)
    sandbox.kubectl("delete", "deployment", "web", "-n", namespace)
    sandbox.apply(deployment(), namespace)
    st = wait_until(lambda: (m := degraded(sandbox, namespace)) and "Service" in m and m, timeout=30,
                    what="Degraded: the Service is not handed over")
    assert "glideslope.dev/adopt=web" in st


def test_with_its_deployment_deleted_a_deleted_release_leaves_its_revision_serving(
        sandbox: Cluster, namespace: str, operator: Operator) -> None:
    """Nothing to give back: what serves is left serving, as for a Release with a template."""
    running(sandbox, namespace)
    revision = adopt(sandbox, namespace)["revision"]
    wait_until(lambda: adopted(sandbox, namespace)["replicas"] == 0, timeout=30, what="web scaled to 0")
    sandbox.kubectl("delete", "deployment", "web", "-n", namespace)
    sandbox.kubectl("delete", "release", "web", "-n", namespace, "--wait=false")
    watch_serving(sandbox, namespace,
                  lambda: sandbox.kubectl("get", "release", "web", "-n", namespace, check=False).returncode != 0,
                  timeout=60, what="the Release gone")
    time.sleep(1)
    assert deployments(sandbox, namespace, "web") == {revision: {"replicas": 4, "ready": 4}}
    assert serving(sandbox, namespace)[0] == 4
    given = sandbox.get_json("service", "web", "-n", namespace)
    assert given["spec"]["selector"] == {"app": "web"} and not given["metadata"].get("ownerReferences")


def test_the_adopted_deployment_cannot_be_swapped(sandbox: Cluster, namespace: str) -> None:
    """Another Deployment would leave the first one scaled down: the API server refuses it."""
    sandbox.apply(adopting(), namespace)
    change = {"spec": {"workloadRef": {"name": "other"}}}
    res = sandbox.kubectl("patch", "release", "web", "-n", namespace, "--type=merge", "-p", json.dumps(change),
                          check=False)
    assert res.returncode != 0 and "spec.workloadRef.name is immutable" in res.stderr, res.stderr
    sandbox.kubectl("patch", "release", "web", "-n", namespace, "--type=merge", "-p",
                    json.dumps({"spec": {"workloadRef": {"scaleDown": "never"}}}))


def degraded(sandbox: Cluster, namespace: str) -> str | None:
    for condition in status(sandbox, namespace, "web").get("conditions") or []:
        if condition["type"] == "Degraded" and condition["status"] == "True":
            message: str = condition.get("message") or ""
            return message
    return None


def test_kubectl_release_adopt_prints_a_release_that_applies_and_adopts(sandbox: Cluster, namespace: str,
                                                                       operator: Operator) -> None:
    running(sandbox, namespace)
    printed = _plugin(sandbox, "adopt", "deployment/web", "-n", namespace, "--service", "web")
    manifest = yaml.safe_load(printed)
    assert manifest["spec"]["workloadRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                               "scaleDown": "progressively"}
    assert manifest["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    assert "# analysis:" in printed and "error-rate" in printed
    sandbox.kubectl("apply", "--validate=strict", "-n", namespace, "-f", "-", input=printed)
    watch_serving(sandbox, namespace, lambda: status(sandbox, namespace, "web").get("phase") == "Succeeded",
                  timeout=90, what="the printed Release adopted web")
    wait_until(lambda: adopted(sandbox, namespace)["replicas"] == 0, timeout=30, what="web scaled to 0")


def _plugin(sandbox: Cluster, *args: str) -> str:
    """`kubectl release ARGS` as a user types it (kubectl finds the plugin on PATH)."""
    env = dict(os.environ, PATH=f"{REPO / '.venv/bin'}:{os.environ['PATH']}", KUBECONFIG=str(sandbox.kubeconfig))
    res = subprocess.run([sandbox.kubectl_bin, "release", *args], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout
