"""Breach to rollback, Glideslope beside Argo Rollouts, in the same run (issue 17, scenario 1).

Both tools run the same scenario on the same sandbox, one run each in turn (Glideslope, Argo,
Glideslope, ...) so that machine noise falls on both: 4 replicas, a canary with a replica-ratio
step of 20% and then a long wait under analysis, the same error-rate query over the same 5 s
window, checked every second, failing at the first bad measurement. Once the candidate is
healthy under analysis, its pods are flipped in place to fail half their requests, and the
clock runs until no candidate pod is Ready and the stable revision has all its replicas Ready
again: the same check on pods for both tools. Each tool's own figure is recorded beside it.

The simulator labels its series with each pod's `glideslope.dev/revision` label; Glideslope sets
it, and the Argo Rollout's pod template carries it as a per-version label (`v<N>`), so the one
query selects the candidate of either tool.

Prints a table and writes results/compare_rollback.json; asserts no time, only that every run
rolled back. `GLIDESLOPE_COMPARE_RUNS` sets the runs per tool (default 10).
"""

from __future__ import annotations

import datetime
import json
import os
import statistics
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from glideslope.sandbox.anchors import ARGO_ROLLOUTS_VERSION
from tests.bench.argo import ArgoController
from tests.e2e.analysis_helpers import ERROR_RATE, analysis, trigger
from tests.e2e.helpers import Cluster, wait_until
from tests.e2e.operator_fixture import Operator, operator_fixture, release, status, wait_phase  # noqa: F401

pytestmark = pytest.mark.bench

RESULTS = Path(__file__).parent / "results"
RUNS = int(os.environ.get("GLIDESLOPE_COMPARE_RUNS", "10"))
NAME = "bench"
REPLICAS = 4
WEIGHT = 20
HOLD = "120s"
"""How long each tool would keep the canary at 20% under analysis: far longer than a rollback."""
HEALTHY_MEASUREMENTS = 2
"""Passing measurements of the candidate before it is flipped to failing."""
ERROR_RATE_FLIP = "0.5"
ROLLBACK_TIMEOUT = 90.0

ARGO_QUERY = ERROR_RATE.replace("{{namespace}}", "{{args.namespace}}").replace("{{revision}}", "{{args.revision}}")
"""Glideslope's query, with Argo's spelling of the same two arguments."""

GLIDESLOPE_CANARY = {"type": "Canary", "canary": {"steps": [{"setWeight": WEIGHT}, {"analysis": {"duration": HOLD}}]}}
GLIDESLOPE_TRIGGER = trigger("critical", query=ERROR_RATE)
GLIDESLOPE_ANALYSIS = analysis(GLIDESLOPE_TRIGGER)

SETTINGS = {
    "glideslope": {
        "strategy": f"Canary, replica ratio (no router): setWeight {WEIGHT}, then analysis for {HOLD}",
        "analysis_interval": GLIDESLOPE_ANALYSIS["interval"],
        "analysis_interval_minimum": "1s (validated)",
        "failure_limit": "none: a critical trigger rolls back at its first failed measurement "
                         "(failureLimit counts only for high severity)",
        "failure_condition": GLIDESLOPE_TRIGGER["failureCondition"],
        "query": ERROR_RATE, "query_window": "5s",
    },
    "argo-rollouts": {
        "version": ARGO_ROLLOUTS_VERSION,
        "strategy": f"canary, basic replica ratio (no trafficRouting): setWeight {WEIGHT}, then pause {HOLD}; "
                    "background analysis from step 1",
        "analysis_interval": "1s",
        "failure_limit": 0,
        "count": "unset (runs until the rollout completes or aborts)",
        "consecutive_error_limit": "unset (default 4)",
        "failure_condition": "result[0] > 0.1",
        "query": ARGO_QUERY, "query_window": "5s",
    },
}


def _argo_manifests(namespace: str, prometheus_url: str, version: int) -> list[dict[str, Any]]:
    revision = f"v{version}"
    template = {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate", "metadata": {"name": "error-rate"},
        "spec": {
            "args": [{"name": "namespace"}, {"name": "revision"}],
            "metrics": [{
                "name": "error-rate", "interval": "1s", "failureLimit": 0, "failureCondition": "result[0] > 0.1",
                "provider": {"prometheus": {"address": prometheus_url, "query": ARGO_QUERY}},
            }],
        },
    }
    service = {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": NAME},
        "spec": {"selector": {"app": NAME}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }
    rollout = {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": NAME},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": {"app": NAME}},
            "template": {
                "metadata": {"labels": {"app": NAME, "glideslope.dev/revision": revision},
                             "annotations": {"sim.glideslope.dev/error-rate": "0.0"}},
                "spec": {"containers": [{"name": "app", "image": f"registry.example/{NAME}:{version}"}]},
            },
            "strategy": {"canary": {
                "steps": [{"setWeight": WEIGHT}, {"pause": {"duration": HOLD}}],
                "analysis": {"templates": [{"templateName": "error-rate"}], "startingStep": 1,
                             "args": [{"name": "namespace", "value": namespace},
                                      {"name": "revision", "value": revision}]},
            }},
        },
    }
    return [template, service, rollout]


# Pods, the same check for both tools -----------------------------------------------------------


def _ready(pod: dict[str, Any]) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and any(
        c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions", []))


def _pods(sandbox: Cluster, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = sandbox.get_json("pods", "-n", namespace, "-l", f"app={NAME}")["items"]
    return items


def _revision(pod: dict[str, Any]) -> str:
    return str(pod["metadata"]["labels"].get("glideslope.dev/revision", ""))


def _ready_counts(sandbox: Cluster, namespace: str, candidate: str) -> tuple[int, int]:
    """(Ready candidate pods, Ready pods of other revisions)."""
    ready = [p for p in _pods(sandbox, namespace) if _ready(p)]
    ours = sum(1 for p in ready if _revision(p) == candidate)
    return ours, len(ready) - ours


def _flip(sandbox: Cluster, namespace: str, candidate: str) -> tuple[float, DataClock]:
    """Make the candidate's pods fail half their requests, in place; return when it began, and
    the clock of when Prometheus shows it."""
    names = [p["metadata"]["name"] for p in _pods(sandbox, namespace) if _revision(p) == candidate]
    assert names, f"no pods of {candidate} in {namespace}"
    clock = DataClock(sandbox.prometheus_url, namespace, candidate)
    breach = time.monotonic()
    clock.start(breach)
    sandbox.kubectl("annotate", "--overwrite", "pod", *names, "-n", namespace,
                    f"sim.glideslope.dev/error-rate={ERROR_RATE_FLIP}")
    return breach, clock


class DataClock:
    """When Prometheus itself first shows the breach: the same query, asked every 0.1 s from the
    flip, until it reads above the failure threshold. The floor of either tool's detection, and
    the same for both, so each tool's lag behind its data can be told apart from the data's own."""

    def __init__(self, prometheus_url: str, namespace: str, revision: str) -> None:
        query = ERROR_RATE.replace("{{namespace}}", namespace).replace("{{revision}}", revision)
        self._url = f"{prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        self.seconds: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def start(self, breach: float) -> None:
        self._breach = breach
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.1):
            try:
                with urllib.request.urlopen(self._url, timeout=2) as answer:
                    result = json.load(answer)["data"]["result"]
            except OSError:
                continue
            if result and float(result[0]["value"][1]) > 0.1:
                self.seconds = round(time.monotonic() - self._breach, 2)
                return

    def stop(self) -> float | None:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.seconds


def _decided(tool: dict[str, Any]) -> bool:
    """Whether the tool has decided to roll back, from its own resource's status."""
    st = tool.get("status") or {}
    if tool["kind"] == "Release":
        return st.get("phase") in ("RollingBack", "RolledBack")
    return bool(st.get("abort"))


def _wait_rolled_back(sandbox: Cluster, namespace: str, kind: str, candidate: str,
                      breach: float) -> dict[str, float]:
    """Seconds from the breach until the tool's resource shows its decision to roll back, until
    no candidate pod is Ready (the Service sends the stable revision all traffic), and until,
    besides, the stable revision has all its replicas Ready. One API call per poll, both tools."""
    times: dict[str, float] = {}

    def check() -> bool:
        items = sandbox.get_json(f"pods,{kind}", "-n", namespace)["items"]
        now = round(time.monotonic() - breach, 2)
        tool = next((i for i in items if i["kind"] != "Pod" and i["metadata"]["name"] == NAME), {"kind": kind})
        if _decided(tool):
            times.setdefault("breach_to_decision_seconds", now)
        ready = [p for p in items if p["kind"] == "Pod" and p["metadata"]["labels"].get("app") == NAME
                 and _ready(p)]
        ours = sum(1 for p in ready if _revision(p) == candidate)
        if ours == 0:
            times.setdefault("breach_to_candidate_out_seconds", now)
            if len(ready) - ours >= REPLICAS:
                times["breach_to_rolled_back_seconds"] = now
                return True
        return False
    wait_until(check, ROLLBACK_TIMEOUT, f"{candidate} rolled back in {namespace}", interval=0.1)
    return times


# One run per tool -------------------------------------------------------------------------------


def _glideslope_run(sandbox: Cluster, namespace: str, version: int) -> dict[str, Any]:
    sandbox.apply(release(NAME, str(version), GLIDESLOPE_CANARY, replicas=REPLICAS, analysis=GLIDESLOPE_ANALYSIS),
                  namespace)
    st = wait_until(lambda: (s := status(sandbox, namespace, NAME)).get("currentStep") == 2
                    and s.get("version") == str(version) and s, 60, "Glideslope's analysis step")
    candidate = st["revision"]
    wait_until(lambda: _ready_counts(sandbox, namespace, candidate)[0] >= 1, 30, "a Ready candidate pod")
    wait_until(lambda: next((t for t in status(sandbox, namespace, NAME).get("analysis", [])
                             if t["state"] == "Passing" and t["successes"] >= HEALTHY_MEASUREMENTS), None),
               30, "Glideslope's trigger passing")
    candidates = _ready_counts(sandbox, namespace, candidate)
    wall_breach = time.time()
    breach, clock = _flip(sandbox, namespace, candidate)
    times = _wait_rolled_back(sandbox, namespace, "release", candidate, breach)
    times["breach_in_data_seconds"] = clock.stop()
    final = wait_phase(sandbox, namespace, NAME, "RolledBack", version=str(version), timeout=60)
    return {**times, "ready_pods_at_flip": {"candidate": candidates[0], "stable": candidates[1]},
            "own_figure": {"status.history[-1].rollbackSeconds": final["history"][-1].get("rollbackSeconds")},
            "breach_at": datetime.datetime.fromtimestamp(wall_breach, datetime.UTC).isoformat()}


def _rollout(sandbox: Cluster, namespace: str) -> dict[str, Any]:
    body: dict[str, Any] = sandbox.get_json("rollout", NAME, "-n", namespace)
    return body


def _analysis_run(sandbox: Cluster, namespace: str, pod_hash: str) -> dict[str, Any] | None:
    runs = sandbox.get_json("analysisruns", "-n", namespace, "-l", f"rollouts-pod-template-hash={pod_hash}")["items"]
    return max(runs, key=lambda r: r["metadata"]["creationTimestamp"], default=None)


def _argo_healthy(sandbox: Cluster, namespace: str, pod_hash: str) -> bool:
    run = _analysis_run(sandbox, namespace, pod_hash)
    if not run or (run.get("status") or {}).get("phase") != "Running":
        return False
    results = run["status"].get("metricResults") or []
    return any(r.get("successful", 0) >= HEALTHY_MEASUREMENTS for r in results)


def _argo_run(sandbox: Cluster, namespace: str, version: int) -> dict[str, Any]:
    sandbox.apply(_argo_manifests(namespace, sandbox.prometheus_url, version), namespace)
    candidate = f"v{version}"

    def at_step() -> dict[str, Any] | None:
        ro = _rollout(sandbox, namespace)
        st = ro.get("status") or {}
        fresh = str(st.get("observedGeneration")) == str(ro["metadata"]["generation"])
        return st if fresh and st.get("currentStepIndex") == 1 and not st.get("abort") else None
    st = wait_until(at_step, 60, "Argo's pause step")
    pod_hash = st["currentPodHash"]
    wait_until(lambda: _ready_counts(sandbox, namespace, candidate)[0] >= 1, 30, "a Ready candidate pod")
    wait_until(lambda: _argo_healthy(sandbox, namespace, pod_hash), 30, "Argo's analysis passing")
    candidates = _ready_counts(sandbox, namespace, candidate)
    wall_breach = time.time()
    breach, clock = _flip(sandbox, namespace, candidate)
    times = _wait_rolled_back(sandbox, namespace, "rollout", candidate, breach)
    times["breach_in_data_seconds"] = clock.stop()
    aborted_at = wait_until(lambda: (_rollout(sandbox, namespace).get("status") or {}).get("abortedAt"),
                            30, "Argo's abortedAt")
    aborted = datetime.datetime.fromisoformat(aborted_at.replace("Z", "+00:00")).timestamp()
    run = _analysis_run(sandbox, namespace, pod_hash) or {}
    return {**times, "ready_pods_at_flip": {"candidate": candidates[0], "stable": candidates[1]},
            "own_figure": {"status.abortedAt - breach (1 s resolution)": round(aborted - wall_breach, 2),
                           "analysisrun_phase": (run.get("status") or {}).get("phase"),
                           "analysisrun_measurements": [
                               {k: r.get(k, 0) for k in ("count", "successful", "failed", "error")}
                               for r in (run.get("status") or {}).get("metricResults") or []]},
            "breach_at": datetime.datetime.fromtimestamp(wall_breach, datetime.UTC).isoformat()}


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for run in runs:
        if run.get("breach_in_data_seconds") is not None and "breach_to_decision_seconds" in run:
            lag = run["breach_to_decision_seconds"] - run["breach_in_data_seconds"]
            run["data_to_decision_seconds"] = round(lag, 2)
    for key in ("breach_to_rolled_back_seconds", "breach_to_candidate_out_seconds", "breach_to_decision_seconds",
                "breach_in_data_seconds", "data_to_decision_seconds"):
        values = [r[key] for r in runs if key in r]
        if not values:
            continue
        summary[key] = {"median": round(statistics.median(values), 2), "min": min(values), "max": max(values)}
    return {**summary, "runs": runs}


@pytest.mark.timeout(180 + 60 * RUNS)
def test_compare_breach_to_rollback(sandbox: Cluster, namespace: str, operator: Operator,
                                    argo: ArgoController, argo_namespace: str) -> None:
    # Version 0 of each becomes stable without a canary (the first release of either has none).
    sandbox.apply(release(NAME, "0", GLIDESLOPE_CANARY, replicas=REPLICAS, analysis=GLIDESLOPE_ANALYSIS),
                  namespace)
    sandbox.apply(_argo_manifests(argo_namespace, sandbox.prometheus_url, 0), argo_namespace)
    wait_phase(sandbox, namespace, NAME, "Succeeded", version="0")
    wait_until(lambda: _ready_counts(sandbox, argo_namespace, "v0")[0] >= REPLICAS
               and (_rollout(sandbox, argo_namespace).get("status") or {}).get("phase") == "Healthy",
               90, "Argo's first revision Healthy")

    results: dict[str, list[dict[str, Any]]] = {"glideslope": [], "argo-rollouts": []}
    for version in range(1, RUNS + 1):
        results["glideslope"].append(_glideslope_run(sandbox, namespace, version))
        results["argo-rollouts"].append(_argo_run(sandbox, argo_namespace, version))
        print(f"run {version}: " + ", ".join(
            f"{tool}: in data {runs[-1].get('breach_in_data_seconds')}s, decided "
            f"{runs[-1].get('breach_to_decision_seconds')}s, rolled back {runs[-1]['breach_to_rolled_back_seconds']}s"
            for tool, runs in results.items()), flush=True)

    tools = {tool: {"settings": SETTINGS[tool], **_summary(runs)} for tool, runs in results.items()}
    result = {
        "benchmark": "compare_breach_to_rollback",
        "scenario": (f"{REPLICAS} replicas, canary at {WEIGHT}% by replica ratio, Service selecting both "
                     "revisions, 50 req/s from the simulator; the candidate's pods flipped in place to "
                     f"error rate {ERROR_RATE_FLIP}; timed from the flip (one API call for pods and the "
                     "tool's resource, about every 0.2 s) until the tool's status shows its decision, until no "
                     f"candidate pod is Ready and {REPLICAS} pods of the stable revision are Ready "
                     "(breach_to_rolled_back), and until no candidate pod is Ready, when the Service sends "
                     "the stable revision all traffic (breach_to_candidate_out)"),
        "resolution_seconds": 0.2,
        "differences": [
            "At 20% of 4 replicas both run 1 candidate pod, but Glideslope scales the stable revision to 3 "
            "(the candidate takes 1/4 of the Service's traffic) while Argo's basic canary keeps 4 stable pods "
            "and surges the candidate (1/5 of the traffic); so Glideslope's rollback includes starting one "
            "stable pod, Argo's does not. Glideslope restores the stable revision before it removes the "
            "candidate, so its two times coincide.",
            "Each tool's own figure measures something different: Glideslope's rollbackSeconds from its "
            "rollback decision to the stable revision ready; Argo's abortedAt has 1 s resolution.",
            "Glideslope runs from the e2e operator fixture (--interval 0.5 s between steps, default 2 s); "
            "Argo with its defaults (no step-interval setting); both on the same machine, alternating.",
            "Argo's first measurement after the analysis starts may error (no series yet for the new pod); "
            "its default consecutiveErrorLimit of 4 absorbs it. Both tools are flipped only after 2 passing "
            "measurements.",
        ],
        "order": "alternating: glideslope, argo-rollouts, glideslope, ...",
        "runs_per_tool": RUNS, "tools": tools,
        "load_average": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "compare_rollback.json").write_text(json.dumps(result, indent=2) + "\n")
    columns = (("breach_to_decision_seconds", "to decision"), ("breach_to_candidate_out_seconds", "to candidate out"),
               ("breach_to_rolled_back_seconds", "to rolled back"))
    print(f"\n{'seconds from breach':<20}" + "".join(f"{title + ': median [min-max]':>36}" for _, title in columns)
          + f"{'runs':>6}")
    for tool, summary in tools.items():
        cells = [summary.get(key) for key, _ in columns]
        print(f"{tool:<20}" + "".join(f"{c['median']:>19} [{c['min']}-{c['max']}]".rjust(36) if c else " " * 36
                                      for c in cells) + f"{len(summary['runs']):>6}")
    print(f"load average {result['load_average']} on {result['cpus']} CPUs")
    assert all(len(runs) == RUNS for runs in results.values())
