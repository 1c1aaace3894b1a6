"""Faults of the sandbox's own processes: Prometheus and kube-apiserver stopped and started
again mid-rollout. They disturb every test that shares the sandbox, so `make test-faults` runs
them alone, after the others.

Prometheus merely going away is `tests/e2e/test_analysis_outage.py` (through a relay, so other
tests are undisturbed); here the real one stops and comes back, and the rollout must go on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from glideslope.sandbox.cluster import Sandbox
from tests.e2e.analysis_helpers import analysis, trigger, trigger_status
from tests.e2e.helpers import REPO, Cluster, wait_until
from tests.e2e.operator_fixture import Operator, release, status, wait_phase
from tests.faults.timeline import Timeline, check_one_clean_rollout

pytestmark = pytest.mark.faults

CANARY = {"type": "Canary", "canary": {"steps": [{"setWeight": 25}, {"pause": {"duration": "3s"}},
                                                 {"setWeight": 50}, {"pause": {"duration": "3s"}}]}}
ANALYSED = {"type": "Canary", "canary": {"steps": [{"setWeight": 25}, {"analysis": {"duration": "15s"}}]}}


@pytest.fixture
def own_sandbox(sandbox: Cluster) -> Iterator[Sandbox]:
    """The sandbox whose processes these tests may stop: only one `glideslope sandbox up` made."""
    box = Sandbox(Path(os.environ.get("GLIDESLOPE_SANDBOX_DIR", REPO / ".sandbox")))
    if box.process("kube-apiserver").pid() is None or box.process("prometheus").pid() is None:
        pytest.skip(f"needs a sandbox of `glideslope sandbox up` in {box.dir} to restart its processes")
    yield box
    # Whatever happened, leave it running for the next test.
    for name in Sandbox.RESTARTABLE:
        if box.process(name).pid() is None:
            box.start_component(name)


def test_prometheus_stopped_and_started_mid_analysis(sandbox: Cluster, namespace: str, operator: Operator,
                                                     own_sandbox: Sandbox) -> None:
    spec = {"analysis": analysis(trigger("critical"))}
    sandbox.apply(release("web", "1", ANALYSED, **spec), namespace)
    wait_phase(sandbox, namespace, "web", "Succeeded", version="1")
    timeline = Timeline(sandbox, namespace, "web")
    try:
        sandbox.apply(release("web", "2", ANALYSED, **spec), namespace)
        wait_until(lambda: (s := status(sandbox, namespace, "web")).get("currentStep") == 2
                   and trigger_status(s).get("successes", 0) >= 2, 60, "the analysis step, passing")
        own_sandbox.stop_component("prometheus")

        def held() -> bool:
            st = status(sandbox, namespace, "web")
            assert not (st.get("version") == "2" and st.get("phase") == "Succeeded"), st
            return trigger_status(st).get("errors", 0) >= 1 and st.get("phase") == "Paused"

        wait_until(held, timeout=60, what="Paused on analysis errors", interval=0.3)
        own_sandbox.start_component("prometheus")
        st = wait_phase(sandbox, namespace, "web", "Succeeded", version="2", timeout=120)
        assert trigger_status(st)["state"] == "Passing" or st["analysis"], st
        check_one_clean_rollout(timeline, sandbox, namespace, "web", "2", st["totalSteps"])
    finally:
        timeline.close()


def test_kube_apiserver_restarted_mid_rollout(sandbox: Cluster, namespace: str, operator: Operator,
                                              own_sandbox: Sandbox) -> None:
    sandbox.apply(release("web", "1", CANARY), namespace)
    wait_phase(sandbox, namespace, "web", "Succeeded", version="1")
    timeline = Timeline(sandbox, namespace, "web")
    try:
        sandbox.apply(release("web", "2", CANARY), namespace)
        wait_until(lambda: status(sandbox, namespace, "web").get("currentStep") == 2, 60, "step 2")
        own_sandbox.stop_component("kube-apiserver")
        time.sleep(5)  # the operator's requests and watches fail meanwhile
        own_sandbox.start_component("kube-apiserver")
        st = wait_phase(sandbox, namespace, "web", "Succeeded", version="2", timeout=180)
        check_one_clean_rollout(timeline, sandbox, namespace, "web", "2", st["totalSteps"],
                                every_status_seen=False)
        assert operator.proc is not None and operator.proc.poll() is None, "the operator died"
    finally:
        timeline.close()
