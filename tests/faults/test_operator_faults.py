"""Faults around one Release while the cluster stays up: the operator SIGKILLed at every step
boundary and mid-step of each strategy; the Release deleted mid-rollout; an abort during a
blue-green promotion; the scale subresource written mid-canary (as an HPA does); a GitOps tool
re-applying the manifest every few seconds.

These assert outcomes and order, never time: a fault may make a rollout slower, never wrong.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any

import pytest

from tests.e2e.helpers import Cluster, wait_until
from tests.e2e.operator_fixture import Operator, annotate, deployments, release, selector, snapshot, status, wait_phase
from tests.faults.timeline import Timeline, check_one_clean_rollout, release_events

pytestmark = pytest.mark.faults

STRATEGIES = {
    "Canary": {"type": "Canary", "canary": {"steps": [{"setWeight": 25}, {"pause": {"duration": "3s"}},
                                                      {"setWeight": 50}, {"pause": {"duration": "3s"}}]}},
    "BlueGreen": {"type": "BlueGreen", "blueGreen": {"autoPromotionSeconds": 3, "scaleDownDelaySeconds": 3}},
    "Rolling": {"type": "Rolling", "rolling": {"maxSurge": "50%", "maxUnavailable": 0,
                                               "pauseBetweenBatches": "3s"}},
    "BigBang": {"type": "BigBang", "bigBang": {}},
}
MANUAL = {"type": "Canary", "canary": {"steps": [{"setWeight": 25}, {"pause": {}}, {"setWeight": 75}]}}


def _restart(operator: Operator) -> None:
    operator.kill()
    operator.start()


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_sigkill_at_every_step_boundary_and_mid_step(sandbox: Cluster, namespace: str, operator: Operator,
                                                     strategy: str) -> None:
    spec = STRATEGIES[strategy]
    sandbox.apply(release("web", "1", spec), namespace)
    wait_phase(sandbox, namespace, "web", "Succeeded", version="1")
    timeline = Timeline(sandbox, namespace, "web")
    try:
        sandbox.apply(release("web", "2", spec), namespace)
        boundaries: list[tuple[str | None, int | None]] = []
        mid_step = False
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            try:
                version, phase, step = timeline.changes.get(timeout=0.5)
            except queue.Empty:
                continue
            if version != "2":
                continue
            if phase == "Succeeded":
                break
            # Just after the status of a new step is written: the next tick acts on it.
            _restart(operator)
            boundaries.append((phase, step))
            st = timeline.statuses[-1]
            if (not mid_step and "until" in (st.get("message") or "")) or (
                    not mid_step and "pause" in (st.get("message") or "")):
                # Mid-step: once the restarted operator has been in a timed step for a moment.
                time.sleep(2.5)
                _restart(operator)
                mid_step = True
        st = wait_phase(sandbox, namespace, "web", "Succeeded", version="2", timeout=60)
        total = st["totalSteps"]
        assert len({s for _, s in boundaries}) == total, boundaries
        assert strategy == "BigBang" or mid_step, "no timed step was seen"
        check_one_clean_rollout(timeline, sandbox, namespace, "web", "2", total)
        assert operator.starts >= total + 1
    finally:
        timeline.close()


def test_delete_mid_rollout_keeps_the_stable_revision_serving(sandbox: Cluster, namespace: str,
                                                              operator: Operator) -> None:
    sandbox.apply(release("web", "1", MANUAL), namespace)
    v1 = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")["stableRevision"]
    sandbox.apply(release("web", "2", MANUAL), namespace)
    v2 = wait_phase(sandbox, namespace, "web", "Paused", version="2")["revision"]
    sandbox.kubectl("delete", "release", "web", "-n", namespace, "--wait=false")

    def gone() -> bool:
        _, pods = snapshot(sandbox, namespace, "web")
        # what serves never drops below the canary's stable share
        assert pods.get(v1, {}).get("ready", 0) >= 3, pods
        return sandbox.kubectl("get", "release", "web", "-n", namespace, check=False).returncode != 0

    wait_until(gone, timeout=60, what="the Release gone", interval=0.3)
    wait_until(lambda: deployments(sandbox, namespace, "web") == {v1: {"replicas": 4, "ready": 4}}, timeout=60,
               what=f"only {v1} left, at 4 Ready (the candidate {v2} collected)")
    stable = sandbox.get_json("deployment", f"web-{v1}", "-n", namespace)
    service = sandbox.get_json("service", "web", "-n", namespace)
    assert not stable["metadata"].get("ownerReferences") and not service["metadata"].get("ownerReferences")
    assert service["spec"]["selector"]["glideslope.dev/release"] == "web"


def test_abort_during_blue_green_promotion(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    spec = {"type": "BlueGreen", "blueGreen": {"scaleDownDelaySeconds": 30}}
    sandbox.apply(release("web", "1", spec), namespace)
    v1 = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")["stableRevision"]
    sandbox.apply(release("web", "2", spec), namespace)
    v2 = wait_phase(sandbox, namespace, "web", "Paused", version="2")["revision"]
    annotate(sandbox, namespace, "web", "glideslope.dev/promote", "step")
    wait_until(lambda: (status(sandbox, namespace, "web").get("currentStep") or 0) >= 3, timeout=30,
               what="the switch")
    annotate(sandbox, namespace, "web", "glideslope.dev/abort", "bad promotion")

    def rolled_back() -> bool:
        st, pods = snapshot(sandbox, namespace, "web")
        active = selector(sandbox, namespace, "web").get("glideslope.dev/revision")
        # the stable Service always selects a revision with every pod Ready
        assert active in (v1, v2) and pods[active]["ready"] >= 4, (active, pods)
        return st.get("phase") == "RolledBack" and active == v1

    wait_until(rolled_back, timeout=60, what="RolledBack onto v1", interval=0.2)
    st = status(sandbox, namespace, "web")
    assert st["stableRevision"] == v1 and st["history"][-1]["outcome"] == "RolledBack"
    assert "bad promotion" in st["history"][-1]["reason"]
    assert [r for r, _ in release_events(sandbox, namespace, "web")].count("Aborted") == 1
    wait_until(lambda: deployments(sandbox, namespace, "web")[v2]["replicas"] == 0, timeout=60, what="v2 at 0")


def test_scale_subresource_mid_canary_keeps_the_ratio(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    """What an HPA does, written by hand: kwok pods have no metrics for a real one."""
    sandbox.apply(release("web", "1", MANUAL), namespace)
    v1 = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")["stableRevision"]
    sandbox.apply(release("web", "2", MANUAL), namespace)
    v2 = wait_phase(sandbox, namespace, "web", "Paused", version="2")["revision"]
    for replicas, candidate in ((8, 2), (12, 3), (4, 1)):  # 25 %, rounded up
        sandbox.kubectl("scale", "release/web", "-n", namespace, f"--replicas={replicas}")
        want = {v1: {"replicas": replicas - candidate, "ready": replicas - candidate},
                v2: {"replicas": candidate, "ready": candidate}}
        wait_until(lambda w=want: deployments(sandbox, namespace, "web") == w, timeout=60,
                   what=f"{replicas} replicas split {replicas - candidate}/{candidate}")
        st = status(sandbox, namespace, "web")
        assert st["phase"] == "Paused" and st["weight"] == 25 and st["currentStep"] == 2, st
    sandbox.kubectl("scale", "release/web", "-n", namespace, "--replicas=8")
    annotate(sandbox, namespace, "web", "glideslope.dev/promote", "step")
    st = wait_phase(sandbox, namespace, "web", "Succeeded", version="2")
    scale = sandbox.get_json("release", "web", "-n", namespace)
    assert scale["spec"]["replicas"] == 8 and st["stableRevision"] == v2
    wait_until(lambda: deployments(sandbox, namespace, "web") == {
        v1: {"replicas": 0, "ready": 0}, v2: {"replicas": 8, "ready": 8}}, timeout=60, what="v2 at 8")


def test_gitops_reapply_every_few_seconds_changes_nothing(sandbox: Cluster, namespace: str,
                                                          operator: Operator) -> None:
    spec = STRATEGIES["Canary"]
    sandbox.apply(release("web", "1", spec), namespace)
    wait_phase(sandbox, namespace, "web", "Succeeded", version="1")
    timeline = Timeline(sandbox, namespace, "web")
    stop = threading.Event()
    applied: list[Any] = []

    def reapply() -> None:
        # As Argo CD (client-side apply) and Flux (server-side apply, its own field manager) do.
        manifest = release("web", "2", spec)
        while not stop.wait(2.0):
            if len(applied) % 2:
                sandbox.apply(manifest, namespace)
            else:
                sandbox.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=flux", "-n",
                                namespace, "-f", "-", input=json.dumps(manifest))
            applied.append(time.monotonic())

    try:
        sandbox.apply(release("web", "2", spec), namespace)
        generation = sandbox.get_json("release", "web", "-n", namespace)["metadata"]["generation"]
        thread = threading.Thread(target=reapply, daemon=True)
        thread.start()
        st = wait_phase(sandbox, namespace, "web", "Succeeded", version="2", timeout=90)
        time.sleep(4)  # two more applies on the finished Release
        stop.set()
        thread.join(10)
        assert len(applied) >= 4
        body = sandbox.get_json("release", "web", "-n", namespace)
        assert body["metadata"]["generation"] == generation and body["status"]["phase"] == "Succeeded"
        check_one_clean_rollout(timeline, sandbox, namespace, "web", "2", st["totalSteps"])
        assert len([h for h in body["status"]["history"] if h["version"] == "2"]) == 1
    finally:
        stop.set()
        timeline.close()
