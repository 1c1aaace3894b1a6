"""Breach to rollback, Glideslope beside Argo Rollouts and Flagger, in the same run (issue 17).

Each scenario runs its tools on the same sandbox, one run each in turn (Glideslope, the other,
Glideslope, ...) so that machine noise falls on both: 4 replicas, a canary at 20% and then a
long hold under analysis, the same error-rate query over the same 5 s window, failing at the
first bad measurement. Once the candidate is healthy under analysis, its pods are flipped in
place to fail half their requests, and the clock runs until the stable revision has all the
traffic again, read the same way for both tools. Each tool's own figure is recorded beside it.

- replica ratio, beside Argo Rollouts: no router, a Service selecting both revisions; rolled
  back when no candidate pod is Ready and the stable revision has all its replicas Ready again.
- HTTPRoute, beside Flagger (Gateway API provider): the route's backendRefs weights; rolled back
  when the candidate's backend has weight 0.

The simulator labels its series with each pod's `glideslope.dev/revision` label; Glideslope sets
it, and Argo's Rollout and Flagger's target Deployment carry it in their pod templates as a
per-version label (`v<N>`), so the one query selects the candidate of any tool.

Prints a table per scenario and writes both into results/compare_rollback.json (`scenarios`,
each test its own key); asserts no time, only that every run rolled back.
`GLIDESLOPE_COMPARE_RUNS` sets the runs per tool (default 10).
"""

from __future__ import annotations

import datetime
import json
import os
import random
import statistics
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from glideslope.sandbox.anchors import ARGO_ROLLOUTS_VERSION, FLAGGER_VERSION
from tests.bench.argo import ArgoController
from tests.bench.flagger import MESH_PROVIDER, FlaggerController, TrafficHold
from tests.bench.scrape_phase import ScrapePhase
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
SCRAPE_PHASE_NOTE = (
    "Each pair of runs has Prometheus scrape the simulator at its own phase within the second, "
    "the pairs spread evenly over it (scrape_phase, seconds after the whole second). Argo Rollouts "
    "measures on whole seconds (its next measurement is due an interval after the last one's "
    "finishedAt, which the API stores to the second), so on one fixed phase it would see fresh data "
    "at the same delay in every run: its best case or its worst, by the hash of the target's labels. "
    "Glideslope measures on a grid that starts with the step, anywhere in the second.")

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
    if tool["kind"] == "Canary":
        # Flagger rolls back at its next check once failedChecks reaches the threshold (1): the
        # failed check is its decision; phase Failed is written only after the route is reset.
        return st.get("phase") == "Failed" or int(st.get("failedChecks") or 0) >= FLAGGER_THRESHOLD
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


def _write_scenario(key: str, result: dict[str, Any]) -> None:
    """Write one scenario into results/compare_rollback.json, keeping the other's last figures:
    each scenario is its own test, run alone or together."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "compare_rollback.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    scenarios = previous.get("scenarios", {}) if isinstance(previous, dict) else {}
    scenarios[key] = result
    body = {"benchmark": "compare_breach_to_rollback", "scenarios": dict(sorted(scenarios.items()))}
    path.write_text(json.dumps(body, indent=2) + "\n")


def _print_table(result: dict[str, Any], columns: tuple[tuple[str, str], ...]) -> None:
    print(f"\n{'seconds from breach':<20}" + "".join(f"{title + ': median [min-max]':>36}" for _, title in columns)
          + f"{'runs':>6}")
    for tool, summary in result["tools"].items():
        cells = [summary.get(key) for key, _ in columns]
        print(f"{tool:<20}" + "".join(f"{c['median']:>19} [{c['min']}-{c['max']}]".rjust(36) if c else " " * 36
                                      for c in cells) + f"{len(summary['runs']):>6}")
    print(f"load average {result['load_average']} on {result['cpus']} CPUs")


@pytest.mark.timeout(180 + 60 * RUNS)
def test_compare_replica_ratio(sandbox: Cluster, namespace: str, operator: Operator,
                               argo: ArgoController, argo_namespace: str, scrape_phase: ScrapePhase) -> None:
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
        # Each pair of runs on its own slice of the second for Prometheus' scrapes (scrape_phase.py).
        phase = scrape_phase.shift_into(version - 1, RUNS)
        results["glideslope"].append({**_glideslope_run(sandbox, namespace, version), "scrape_phase": phase})
        results["argo-rollouts"].append({**_argo_run(sandbox, argo_namespace, version), "scrape_phase": phase})
        print(f"run {version}: " + ", ".join(
            f"{tool}: in data {runs[-1].get('breach_in_data_seconds')}s, decided "
            f"{runs[-1].get('breach_to_decision_seconds')}s, rolled back {runs[-1]['breach_to_rolled_back_seconds']}s"
            for tool, runs in results.items()), flush=True)

    tools = {tool: {"settings": SETTINGS[tool], **_summary(runs)} for tool, runs in results.items()}
    result = {
        "scenario": (f"{REPLICAS} replicas, canary at {WEIGHT}% by replica ratio, Service selecting both "
                     "revisions, 50 req/s from the simulator; the candidate's pods flipped in place to "
                     f"error rate {ERROR_RATE_FLIP}; timed from the flip (one API call for pods and the "
                     "tool's resource, about every 0.2 s) until the tool's status shows its decision, until no "
                     f"candidate pod is Ready and {REPLICAS} pods of the stable revision are Ready "
                     "(breach_to_rolled_back), and until no candidate pod is Ready, when the Service sends "
                     "the stable revision all traffic (breach_to_candidate_out)"),
        "resolution_seconds": 0.2,
        "differences": [
            SCRAPE_PHASE_NOTE,
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
    _write_scenario("replica_ratio", result)
    _print_table(result, (("breach_in_data_seconds", "in data"), ("data_to_decision_seconds", "data to decision"),
                          ("breach_to_decision_seconds", "to decision"),
                          ("breach_to_rolled_back_seconds", "to rolled back")))
    assert all(len(runs) == RUNS for runs in results.values())


# Scenario 2: HTTPRoute, beside Flagger --------------------------------------------------------

ROUTE = NAME
"""The HTTPRoute: Flagger creates its own, named after the apex Service (the target's name);
Glideslope is given one of that name that sends everything to its stable Service."""
FLAGGER_INTERVAL = "10s"
FLAGGER_INTERVAL_SECONDS = 10.0
"""Flagger's fastest: Canary.GetAnalysisInterval raises anything under 10 s to 10 s, silently
(pkg/apis/flagger/v1beta1/canary.go), so `1s` would run at 10 s anyway; it is set as it runs."""
FLAGGER_THRESHOLD = 1
FLAGGER_QUERY = ERROR_RATE.replace("{{revision}}", "{{ variables.revision }}")
"""Glideslope's query as a Flagger MetricTemplate: `{{namespace}}` is one of its template
functions already; the revision comes from the Canary's templateVariables."""
ROUTE_ROLLBACK_TIMEOUT = 90.0

GLIDESLOPE_ROUTED = {"type": "Canary", "canary": {
    "steps": [{"setWeight": WEIGHT}, {"analysis": {"duration": HOLD}}],
    "trafficRouting": {"gatewayAPI": {"httpRoute": ROUTE}}}}

ROUTE_SETTINGS = {
    "glideslope": {
        **SETTINGS["glideslope"],
        "strategy": f"Canary, Gateway API router (trafficRouting.gatewayAPI.httpRoute {ROUTE}): "
                    f"setWeight {WEIGHT}, then analysis for {HOLD}",
    },
    "flagger": {
        "version": FLAGGER_VERSION,
        "mesh_provider": MESH_PROVIDER,
        "strategy": f"progressive canary on an HTTPRoute: stepWeight {WEIGHT} (maxWeight unset, 100), held at "
                    f"{WEIGHT}% by a confirm-traffic-increase webhook on loopback that approves each revision's "
                    "first step and refuses the later ones, so the analysis goes on at every interval",
        "analysis_interval": FLAGGER_INTERVAL,
        "analysis_interval_minimum": "10s (anything lower is raised to 10 s)",
        "threshold": FLAGGER_THRESHOLD,
        "threshold_meaning": "the check that makes failedChecks reach the threshold marks the canary; the "
                             "rollback (route to the primary, then phase Failed) runs at the next interval",
        "metric": "MetricTemplate, provider prometheus (the sandbox's), thresholdRange max 0.1",
        "query": FLAGGER_QUERY, "query_window": "5s",
    },
}


def _route(namespace: str) -> dict[str, Any]:
    """Glideslope's HTTPRoute: all to the stable Service; the operator adds the preview's weight."""
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": ROUTE, "namespace": namespace},
            "spec": {"parentRefs": [{"name": "gateway"}],
                     "rules": [{"backendRefs": [{"name": NAME, "port": 80}]}]}}


def _flagger_manifests(namespace: str, prometheus_url: str, version: int, hook_url: str) -> list[dict[str, Any]]:
    revision = f"v{version}"
    template = {
        "apiVersion": "flagger.app/v1beta1", "kind": "MetricTemplate", "metadata": {"name": "error-rate"},
        "spec": {"provider": {"type": "prometheus", "address": prometheus_url}, "query": FLAGGER_QUERY},
    }
    canary = {
        "apiVersion": "flagger.app/v1beta1", "kind": "Canary", "metadata": {"name": NAME},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": NAME},
            # No Gateway exists in the sandbox: the simulator follows the route's weights alone.
            "service": {"port": 80, "targetPort": 8080, "gatewayRefs": [{"name": "gateway", "namespace": namespace}]},
            "analysis": {
                "interval": FLAGGER_INTERVAL, "threshold": FLAGGER_THRESHOLD, "stepWeight": WEIGHT,
                "metrics": [{"name": "error-rate", "templateRef": {"name": "error-rate"},
                             "templateVariables": {"revision": revision}, "thresholdRange": {"max": 0.1}}],
                "webhooks": [{"name": "hold", "type": "confirm-traffic-increase", "url": hook_url,
                              "timeout": "5s"}],
            },
        },
    }
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": NAME},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": {"app": NAME}},
            "template": {
                # Flagger copies the template's labels to the primary's pods when it promotes (and
                # when it first creates the primary), so the stable pods keep their own revision.
                "metadata": {"labels": {"app": NAME, "glideslope.dev/revision": revision},
                             "annotations": {"sim.glideslope.dev/error-rate": "0.0"}},
                "spec": {"containers": [{"name": "app", "image": f"registry.example/{NAME}:{version}"}]},
            },
        },
    }
    # The Canary's revision variable before the Deployment: Flagger reads both at its next check.
    return [template, canary, deployment]


def _weights(route: dict[str, Any]) -> dict[str, int]:
    """Backend name -> weight, over the route's rules (the Gateway API default weight is 1)."""
    found: dict[str, int] = {}
    for rule in (route.get("spec") or {}).get("rules") or []:
        for ref in rule.get("backendRefs") or []:
            found[ref["name"]] = found.get(ref["name"], 0) + int(ref.get("weight", 1))
    return found


def _route_weights(sandbox: Cluster, namespace: str) -> dict[str, int]:
    return _weights(sandbox.get_json("httproutes.gateway.networking.k8s.io", ROUTE, "-n", namespace))


def _ready_by_revision(sandbox: Cluster, namespace: str, candidate: str) -> dict[str, int]:
    """Ready pods of the candidate and of other revisions, over every pod of the namespace (Flagger's
    primary pods are labelled app=<name>-primary)."""
    ready = [p for p in sandbox.get_json("pods", "-n", namespace)["items"] if _ready(p)]
    ours = sum(1 for p in ready if _revision(p) == candidate)
    return {"candidate": ours, "stable": len(ready) - ours}


def _wait_route_stable(sandbox: Cluster, namespace: str, kind: str, canary_backend: str,
                       breach: float) -> dict[str, Any]:
    """Seconds from the breach until the tool's resource shows its decision to roll back, and until
    the route gives the candidate's backend weight 0 (the stable revision takes all traffic). One
    kubectl get per poll, for the route and the tool's resource, about every 0.1 s plus its own time."""
    times: dict[str, Any] = {}
    polls = 0

    def check() -> bool:
        nonlocal polls
        polls += 1
        items = sandbox.get_json(f"httproutes.gateway.networking.k8s.io,{kind}", "-n", namespace)["items"]
        now = round(time.monotonic() - breach, 2)
        tool = next((i for i in items if i["kind"] != "HTTPRoute" and i["metadata"]["name"] == NAME), None)
        if tool and _decided(tool):
            times.setdefault("breach_to_decision_seconds", now)
        if tool and tool["kind"] == "Canary" and (tool.get("status") or {}).get("phase") == "Failed":
            times.setdefault("breach_to_phase_failed_seconds", now)
        route = next((i for i in items if i["kind"] == "HTTPRoute" and i["metadata"]["name"] == ROUTE), {})
        if route and _weights(route).get(canary_backend, 0) == 0:
            times.setdefault("breach_to_rolled_back_seconds", now)
        # Past the route, Flagger's phase Failed follows within its same check; wait for it too.
        return "breach_to_rolled_back_seconds" in times and "breach_to_decision_seconds" in times and (
            kind != "canaries.flagger.app" or "breach_to_phase_failed_seconds" in times)
    wait_until(check, ROUTE_ROLLBACK_TIMEOUT, f"the route back on the stable revision in {namespace}", interval=0.1)
    times["poll_interval_seconds"] = round((time.monotonic() - breach) / polls, 2)
    return times


def _glideslope_route_run(sandbox: Cluster, namespace: str, version: int) -> dict[str, Any]:
    sandbox.apply(release(NAME, str(version), GLIDESLOPE_ROUTED, replicas=REPLICAS, analysis=GLIDESLOPE_ANALYSIS),
                  namespace)
    st = wait_until(lambda: (s := status(sandbox, namespace, NAME)).get("currentStep") == 2
                    and s.get("version") == str(version) and s, 60, "Glideslope's analysis step")
    candidate = st["revision"]
    wait_until(lambda: _route_weights(sandbox, namespace).get(f"{NAME}-preview") == WEIGHT, 30,
               f"{WEIGHT}% on Glideslope's preview Service")
    wait_until(lambda: next((t for t in status(sandbox, namespace, NAME).get("analysis", [])
                             if t["state"] == "Passing" and t["successes"] >= HEALTHY_MEASUREMENTS), None),
               30, "Glideslope's trigger passing")
    pods = _ready_by_revision(sandbox, namespace, candidate)
    wall_breach = time.time()
    breach, clock = _flip(sandbox, namespace, candidate)
    times = _wait_route_stable(sandbox, namespace, "releases", f"{NAME}-preview", breach)
    times["breach_in_data_seconds"] = clock.stop()
    final = wait_phase(sandbox, namespace, NAME, "RolledBack", version=str(version), timeout=60)
    return {**times, "ready_pods_at_flip": pods,
            "own_figure": {"status.history[-1].rollbackSeconds": final["history"][-1].get("rollbackSeconds")},
            "breach_at": datetime.datetime.fromtimestamp(wall_breach, datetime.UTC).isoformat()}


def _canary(sandbox: Cluster, namespace: str) -> dict[str, Any]:
    body: dict[str, Any] = sandbox.get_json("canaries.flagger.app", NAME, "-n", namespace)
    return body


def _flagger_run(sandbox: Cluster, namespace: str, version: int, hold: TrafficHold) -> dict[str, Any]:
    hold.reset()
    sandbox.apply(_flagger_manifests(namespace, sandbox.prometheus_url, version, hold.url), namespace)
    candidate = f"v{version}"
    # Flagger notices the new revision at its next check, scales the canary up, takes its first
    # step at the check after the canary is ready, then analyses at every check: each passing
    # check at 20% ends with a refusal from the hold.
    wait_until(lambda: len(hold.refusals()) >= HEALTHY_MEASUREMENTS, 10 * FLAGGER_INTERVAL_SECONDS,
               "Flagger's analysis passing at 20%")
    st = _canary(sandbox, namespace).get("status") or {}
    weights = _route_weights(sandbox, namespace)
    assert st.get("phase") == "Progressing" and weights.get(f"{NAME}-canary") == WEIGHT, (st, weights)
    pods = _ready_by_revision(sandbox, namespace, candidate)
    # Flip at a random moment of Flagger's interval, as a breach would come: right after a check
    # (when this test sees it) would always be its worst case.
    phase = random.uniform(0, FLAGGER_INTERVAL_SECONDS)
    flip_at = hold.refusals()[-1] + phase
    while flip_at < time.monotonic():
        flip_at += FLAGGER_INTERVAL_SECONDS
    time.sleep(flip_at - time.monotonic())
    wall_breach = time.time()
    breach, clock = _flip(sandbox, namespace, candidate)
    times = _wait_route_stable(sandbox, namespace, "canaries.flagger.app", f"{NAME}-canary", breach)
    times["breach_in_data_seconds"] = clock.stop()
    st = _canary(sandbox, namespace).get("status") or {}
    failed = datetime.datetime.fromisoformat(st["lastTransitionTime"].replace("Z", "+00:00")).timestamp()
    return {**times, "ready_pods_at_flip": pods, "flip_after_last_check_seconds": round(phase, 2),
            "own_figure": {"status.lastTransitionTime (phase Failed) - breach (1 s resolution)":
                           round(failed - wall_breach, 2),
                           "phase": st.get("phase")},
            "breach_at": datetime.datetime.fromtimestamp(wall_breach, datetime.UTC).isoformat()}


@pytest.mark.timeout(240 + 150 * RUNS)
def test_compare_httproute(sandbox: Cluster, namespace: str, operator: Operator, flagger: FlaggerController,
                           flagger_namespace: str, traffic_hold: TrafficHold, scrape_phase: ScrapePhase) -> None:
    # Version 0 of each becomes stable without a canary: Glideslope's first release has none, and
    # Flagger initialises (primary from the target, the route at 100/0) without analysis.
    sandbox.apply(_route(namespace), namespace)
    sandbox.apply(release(NAME, "0", GLIDESLOPE_ROUTED, replicas=REPLICAS, analysis=GLIDESLOPE_ANALYSIS), namespace)
    sandbox.apply(_flagger_manifests(flagger_namespace, sandbox.prometheus_url, 0, traffic_hold.url),
                  flagger_namespace)
    wait_phase(sandbox, namespace, NAME, "Succeeded", version="0")
    wait_until(lambda: (_canary(sandbox, flagger_namespace).get("status") or {}).get("phase") == "Initialized"
               and _ready_by_revision(sandbox, flagger_namespace, "v0")["candidate"] >= REPLICAS,
               90, "Flagger's canary Initialized")
    assert _route_weights(sandbox, flagger_namespace) == {f"{NAME}-primary": 100, f"{NAME}-canary": 0}

    results: dict[str, list[dict[str, Any]]] = {"glideslope": [], "flagger": []}
    for version in range(1, RUNS + 1):
        phase = scrape_phase.shift_into(version - 1, RUNS)
        started = time.monotonic()
        results["glideslope"].append({**_glideslope_route_run(sandbox, namespace, version), "scrape_phase": phase})
        middle = time.monotonic()
        results["flagger"].append({**_flagger_run(sandbox, flagger_namespace, version, traffic_hold),
                                   "scrape_phase": phase})
        print(f"run {version} ({middle - started:.0f}s + {time.monotonic() - middle:.0f}s): " + ", ".join(
            f"{tool}: in data {runs[-1].get('breach_in_data_seconds')}s, decided "
            f"{runs[-1].get('breach_to_decision_seconds')}s, route stable {runs[-1]['breach_to_rolled_back_seconds']}s"
            for tool, runs in results.items()), flush=True)

    tools = {tool: {"settings": ROUTE_SETTINGS[tool], **_summary(runs)} for tool, runs in results.items()}
    result = {
        "scenario": (f"{REPLICAS} replicas, canary at {WEIGHT}% on an HTTPRoute (gateway.networking.k8s.io/v1), "
                     "50 req/s from the simulator through the route, split by its backendRefs weights; the "
                     f"candidate's pods flipped in place to error rate {ERROR_RATE_FLIP}; timed from the flip (one "
                     "kubectl get for the route and the tool's resource per poll, about every 0.2 s: see "
                     "poll_interval_seconds) until the tool's status shows its decision, and until the route "
                     "gives the candidate's backend weight 0, the stable revision all traffic "
                     "(breach_to_rolled_back)"),
        "resolution_seconds": 0.2,
        "differences": [
            SCRAPE_PHASE_NOTE,
            "Flagger analyses at most every 10 s (its minimum interval) where Glideslope does every 1 s; and "
            "with threshold 1 its failing check only marks the canary (failedChecks 1, counted here as its "
            "decision): it resets the route at its next check, 10 s later. So its time to the route is the "
            "breach's wait for a check that sees it in the data, plus one interval.",
            "Flagger is flipped at a uniformly random point of its 10 s interval after its last passing check "
            "(flip_after_last_check_seconds), as a breach would come; Glideslope as soon as the test sees its "
            "trigger passing (its checks are 1 s apart). Both only after 2 passing measurements at 20%.",
            "Flagger holds the canary at 20% through a confirm-traffic-increase webhook that refuses (its "
            "phase stays Progressing; the hook runs only after a passing analysis, so it counts them); "
            "Glideslope through an analysis step of 120 s.",
            f"At 20% Flagger's canary runs at full size ({REPLICAS} pods, the target's replicas) beside "
            f"{REPLICAS} primary pods, while Glideslope runs 1 candidate pod beside {REPLICAS} stable ones; the "
            "route's 20% is the same. Flagger's apex Service (not a backend of the route) also gets the "
            "simulator's 50 req/s on the primary pods; the candidate's error rate is unaffected.",
            "Decision: Glideslope's phase RollingBack; Flagger's failedChecks reaching its threshold (its phase "
            "Failed is written after the route is reset, breach_to_phase_failed_seconds). Own figures differ: "
            "Glideslope's rollbackSeconds (decision to stable ready); Flagger's lastTransitionTime to Failed "
            "has 1 s resolution.",
            "Glideslope runs from the e2e operator fixture (--interval 0.5 s between steps); Flagger as a process "
            f"with its shipped RBAC, -mesh-provider={MESH_PROVIDER}, watching its namespace only; both on the "
            "same machine, alternating.",
        ],
        "order": "alternating: glideslope, flagger, glideslope, ...",
        "runs_per_tool": RUNS, "tools": tools,
        "load_average": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _write_scenario("httproute", result)
    _print_table(result, (("breach_in_data_seconds", "in data"), ("data_to_decision_seconds", "data to decision"),
                          ("breach_to_decision_seconds", "to decision"),
                          ("breach_to_rolled_back_seconds", "to route stable")))
    assert all(len(runs) == RUNS for runs in results.values())
