"""Breach to rollback: how long from a healthy canary turning bad to the stable revision
serving all traffic again. Prints the figure beside its floor and writes JSON; asserts no time.

The candidate's pods are flipped to failing in place (the simulator reads each pod's
annotations), as a real regression appears under load mid-analysis.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import pytest

from tests.e2e.analysis_helpers import ERROR_RATE, analysis, trigger
from tests.e2e.helpers import Cluster, wait_until
from tests.e2e.operator_fixture import Operator, operator_fixture, release, status, wait_phase  # noqa: F401

pytestmark = pytest.mark.bench

RESULTS = Path(__file__).parent / "results"
RUNS = 3
SCRAPE_INTERVAL = 1.0   # the sandbox's Prometheus
RATE_WINDOW = 5.0       # ERROR_RATE's [5s]
ANALYSIS_INTERVAL = 1.0
CANARY = {"type": "Canary", "canary": {"steps": [{"setWeight": 40}, {"analysis": {"duration": "120s"}}]}}


def _candidate_pods(sandbox: Cluster, namespace: str, revision: str) -> list[str]:
    pods = sandbox.get_json("pods", "-n", namespace, "-l", f"glideslope.dev/revision={revision}")["items"]
    return [p["metadata"]["name"] for p in pods]


def test_breach_to_rollback(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    spec = {"analysis": analysis(trigger("critical", query=ERROR_RATE))}
    sandbox.apply(release("bench", "0", CANARY, replicas=4, **spec), namespace)
    wait_phase(sandbox, namespace, "bench", "Succeeded", version="0")
    samples: list[dict[str, float]] = []
    for run in range(1, RUNS + 1):
        sandbox.apply(release("bench", str(run), CANARY, replicas=4, **spec), namespace)
        version = str(run)
        st = wait_until(lambda v=version: (s := status(sandbox, namespace, "bench")).get("currentStep") == 2
                        and s.get("version") == v and s, 60, "the analysis step")
        candidate = st["revision"]
        # Healthy for a few measurements first, so the trigger is known to pass.
        wait_until(lambda: next((t for t in status(sandbox, namespace, "bench").get("analysis", [])
                                 if t["state"] == "Passing" and t["successes"] >= 2), None), 30, "passing")
        breach = time.monotonic()
        for pod in _candidate_pods(sandbox, namespace, candidate):
            sandbox.kubectl("annotate", "--overwrite", "pod", pod, "-n", namespace,
                            "sim.glideslope.dev/error-rate=0.5")
        final = wait_phase(sandbox, namespace, "bench", "RolledBack", version=str(run), timeout=60)
        wall = time.monotonic() - breach
        samples.append({"breach_to_rolled_back_seconds": round(wall, 2),
                        "status_rollback_seconds": final["history"][-1]["rollbackSeconds"]})
    floor = SCRAPE_INTERVAL + RATE_WINDOW + ANALYSIS_INTERVAL
    walls = [s["breach_to_rolled_back_seconds"] for s in samples]
    result = {
        "benchmark": "breach_to_rollback", "runs": samples,
        "median_breach_to_rolled_back_seconds": statistics.median(walls),
        "floor_seconds": floor,
        "floor": f"scrape {SCRAPE_INTERVAL}s + rate window {RATE_WINDOW}s + analysis interval {ANALYSIS_INTERVAL}s",
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "rollback_time.json").write_text(json.dumps(result, indent=2) + "\n")
    measured = [s["status_rollback_seconds"] for s in samples]
    print(f"\nbreach to rollback: median {result['median_breach_to_rolled_back_seconds']}s over {RUNS} runs "
          f"(floor {floor}s = {result['floor']}); status.rollbackSeconds {measured}")
    assert len(samples) == RUNS
