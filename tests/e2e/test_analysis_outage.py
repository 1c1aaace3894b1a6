"""Prometheus stops answering in the middle of a rollout: the rollout never promotes, the
trigger shows Inconclusive, and the stable revision keeps serving.

The Release reaches the sandbox's real Prometheus through a TCP relay that this test owns, so
stopping the relay is, for this Release, Prometheus going away, while the other tests that
share the Prometheus go on undisturbed.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator

import pytest

from tests.e2e.analysis_helpers import analysis, trigger, trigger_status
from tests.e2e.helpers import Cluster, Relay, wait_until
from tests.e2e.operator_fixture import Operator, operator_fixture, release, status, wait_phase  # noqa: F401

pytestmark = pytest.mark.e2e

STEPS = {"type": "Canary", "canary": {"steps": [{"setWeight": 25}, {"analysis": {"duration": "60s"}}]}}


@pytest.fixture
def relay(sandbox: Cluster) -> Iterator[Relay]:
    url = urllib.parse.urlparse(sandbox.prometheus_url)
    r = Relay((url.hostname or "127.0.0.1", url.port or 9090))
    yield r
    r.cut()


def test_prometheus_outage_mid_rollout_never_promotes(sandbox: Cluster, namespace: str, operator: Operator,
                                                      relay: Relay) -> None:
    # The first measurement waits for the candidate's traffic to reach Prometheus: "no data"
    # before it would pause the rollout as Inconclusive before the outage begins.
    spec = {"analysis": analysis(trigger("critical"), address=f"http://127.0.0.1:{relay.port}", initialDelay="3s")}
    sandbox.apply(release("web", "1", STEPS, **spec), namespace)
    v1 = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")["stableRevision"]
    sandbox.apply(release("web", "2", STEPS, **spec), namespace)
    # Measured and passing through the relay first: Prometheus is really there.
    wait_until(lambda: (t := trigger_status(status(sandbox, namespace, "web"))).get("state") == "Passing"
               and t.get("successes", 0) >= 2, 60, "the trigger passing")

    relay.cut()

    def inconclusive() -> dict[str, object] | None:
        st = status(sandbox, namespace, "web")
        assert not (st.get("version") == "2" and st.get("phase") == "Succeeded"), st
        return st if trigger_status(st).get("state") == "Inconclusive" and st.get("phase") == "Paused" else None

    st = wait_until(inconclusive, timeout=60, what="Paused and Inconclusive", interval=0.3)
    time.sleep(3)
    st = status(sandbox, namespace, "web")
    assert st["phase"] == "Paused" and st["weight"] == 25 and st["stableRevision"] == v1, st
    assert trigger_status(st)["errors"] >= 1
