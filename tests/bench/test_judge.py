"""The statistical judge beside a static threshold, on the sandbox (`make bench-judge`).

Real canaries: for each case, `GLIDESLOPE_BENCH_JUDGE_RUNS` (30) Releases run at once in one
namespace, one operator process, the sandbox's Prometheus (1 s scrapes) and traffic simulator.
Each Release has 4 replicas; its canary sets weight 50 and analyses for ten minutes, so the
stable Service selects 2 stable, 2 baseline and 2 candidate pods and, at 150 requests per second
(`sim.glideslope.dev/rate` on it), each side gets about 50. The preview Service gets none, so
every request the judge counts went through the Service the clients use. Pods are noisy
(`sim.glideslope.dev/noise`): the stable revision fails 0.05% of requests and answers in about
20 ms, each pod off by its own seeded factor, each request drawn.

The judge is `spec.analysis.judge` (baseline pods, errors per pod and p95 per side at a 5 s
step, `minSamples` 12, `alpha` 0.05 with Pocock spending over ten minutes, looks every 10 s).
Its verdict acts (critical: a Fail rolls back). The seed's static thresholds (error rate over 1m
above 0.1%, p95 over 1m above 200 ms, the shipped `error-rate` and `latency-p95` templates'
queries) measure the same candidate every 10 s at severity `low`, which only records, so a
static false alarm never ends a run early and both are seen on the same traffic. A static
threshold "aborts" a run at its first failed measurement, as it would at severity critical; in a
run the judge rolled back, the static threshold had until then.

Detection time is from the rollout's start (`history[].startedAt`: the new version seen) to the
look that failed (`status.judge.lastLookTime`), or to the static trigger's first failed
measurement; it includes the candidate's pods starting.

Cases run in batches of `GLIDESLOPE_BENCH_JUDGE_BATCH` Releases (default 75: the machine has two
cores). Prints a table and writes `results/judge.json` (and `judge.png` with the `bench` extra);
asserts only that every run reached an end, never a figure.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.bench.judge_cases import BASE_ERROR, BASE_LATENCY_MS, CASES, TARGETS, plot
from tests.e2e.helpers import Cluster, wait_until
from tests.e2e.operator_fixture import Operator, operator_fixture, release  # noqa: F401

pytestmark = pytest.mark.bench

RESULTS = Path(__file__).parent / "results"
RUNS = int(os.environ.get("GLIDESLOPE_BENCH_JUDGE_RUNS", "30"))
BATCH = int(os.environ.get("GLIDESLOPE_BENCH_JUDGE_BATCH", "75"))
REPLICAS = 4
SERVICE_RATE = 150
"""Requests per second to the stable Service: six pods at weight 50, so about 50 per side."""
ANALYSIS_SECONDS = int(os.environ.get("GLIDESLOPE_BENCH_JUDGE_SECONDS", "600"))
"""The analysis step, and the judge's horizon (shorter only to try the benchmark out)."""
STEPS = {"type": "Canary", "canary": {"steps": [{"setWeight": 50},
                                                 {"analysis": {"duration": f"{ANALYSIS_SECONDS}s"}}]}}
SIDE = 'namespace="{{namespace}}",service="{{service}}",revision="{{sideRevision}}",role="{{sideRole}}"'
CANDIDATE = 'namespace="{{namespace}}",service="{{service}}",revision="{{revision}}"'
JUDGE = {
    "baseline": True, "minSamples": 12, "step": "5s", "horizon": f"{ANALYSIS_SECONDS}s", "alpha": 0.05,
    "spending": "pocock", "metrics": [
        {"name": "errors", "direction": "increase", "tolerance": 0.001,
         "query": f'sum by (pod) (rate(http_requests_total{{{SIDE},code="500"}}[5s]))'
                  f" / sum by (pod) (rate(http_requests_total{{{SIDE}}}[5s]))"},
        {"name": "latency-p95", "direction": "increase", "tolerance": 0.01,
         "query": f"histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{{{SIDE}}}[5s])))"},
    ]}
STATIC = [
    {"name": "static-errors", "severity": "low", "failureCondition": "result > 0.001",
     "query": f'sum(rate(http_requests_total{{{CANDIDATE},code="500"}}[1m]))'
              f" / sum(rate(http_requests_total{{{CANDIDATE}}}[1m]))"},
    {"name": "static-p95", "severity": "low", "failureCondition": "result > 0.2",
     "query": f"histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{{{CANDIDATE}}}[1m])))"},
]
ANALYSIS = {"interval": "10s", "initialDelay": "0s", "judge": JUDGE, "triggers": STATIC}
ENDED = ("Succeeded", "RolledBack", "Failed")
GRACE = 120
"""Seconds past the analysis a batch waits for its Releases to end (a held one is then read)."""


def _release(name: str, version: str, case: dict[str, Any]) -> dict[str, Any]:
    """v1 is the stable revision's behaviour; v2 the case's candidate."""
    candidate = version != "1"
    body = release(name, version, STEPS, replicas=REPLICAS, error_rate=case["error"] if candidate else BASE_ERROR,
                   analysis=ANALYSIS)
    annotations = body["spec"]["template"]["metadata"]["annotations"]
    annotations["sim.glideslope.dev/noise"] = "true"
    annotations["sim.glideslope.dev/latency-ms"] = str(case["latency"] if candidate else BASE_LATENCY_MS)
    if candidate and not case.get("traffic", True):
        annotations["sim.glideslope.dev/weight"] = "0"
    return body


def _releases(sandbox: Cluster, namespace: str) -> dict[str, dict[str, Any]]:
    items = sandbox.get_json("releases", "-n", namespace)["items"]
    return {r["metadata"]["name"]: r for r in items}


def _seconds(since: str, until: str) -> float:
    return (datetime.fromisoformat(until.replace("Z", "+00:00"))
            - datetime.fromisoformat(since.replace("Z", "+00:00"))).total_seconds()


def _rate_services(sandbox: Cluster, namespace: str, names: list[str]) -> None:
    """Each Release's stable Service at SERVICE_RATE; its preview Service, while it has one, at 0."""
    for name in names:
        sandbox.kubectl("annotate", "--overwrite", "service", name, "-n", namespace,
                        f"sim.glideslope.dev/rate={SERVICE_RATE}")


def _preview_silent(sandbox: Cluster, namespace: str, names: list[str]) -> None:
    present = {s["metadata"]["name"] for s in sandbox.get_json("services", "-n", namespace)["items"]}
    for name in names:
        if f"{name}-preview" in present:
            sandbox.kubectl("annotate", "--overwrite", "service", f"{name}-preview", "-n", namespace,
                            "sim.glideslope.dev/rate=0", check=False)


def _batch(sandbox: Cluster, namespace: str, runs: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """Run one batch of (name, case) canaries to their ends; the outcome of each, by name."""
    names = [name for name, _ in runs]
    sandbox.apply([_release(name, "1", CASES[case]) for name, case in runs], namespace)
    wait_until(lambda: all((r.get("status") or {}).get("phase") == "Succeeded"
                           for r in _releases(sandbox, namespace).values() if r["metadata"]["name"] in names)
               and len(names), timeout=300, what="the stable revisions", interval=2)
    _rate_services(sandbox, namespace, names)
    _preview_silent(sandbox, namespace, names)
    time.sleep(5)  # the simulator lists the cluster every second; Prometheus scrapes every second
    sandbox.apply([_release(name, "2", CASES[case]) for name, case in runs], namespace)
    started = time.monotonic()
    static_first: dict[str, dict[str, str]] = {name: {} for name in names}
    silenced = False
    while True:
        seen = {n: r for n, r in _releases(sandbox, namespace).items() if n in names}
        if not silenced and time.monotonic() - started > 3:
            _preview_silent(sandbox, namespace, names)
            silenced = True
        for name, r in seen.items():
            for trigger in (r.get("status") or {}).get("analysis") or []:
                if trigger.get("failures", 0) > 0 and trigger["name"] not in static_first[name]:
                    static_first[name][trigger["name"]] = trigger.get("lastMeasuredTime") or ""
        ended = [n for n, r in seen.items() if (r.get("status") or {}).get("phase") in ENDED
                 and (r.get("status") or {}).get("version") == "2"]
        if len(ended) == len(names) or time.monotonic() - started > ANALYSIS_SECONDS + GRACE:
            break
        time.sleep(2)
    out = {}
    for name, case in runs:
        st = seen[name].get("status") or {}
        out[name] = {"case": case, **_outcome(st, static_first[name])}
    sandbox.kubectl("delete", "releases", "-n", namespace, *names, "--wait=false")
    wait_until(lambda: not set(names) & set(_releases(sandbox, namespace)), timeout=180,
               what="the batch's Releases deleted", interval=2)
    # A deleted Release leaves its stable revision serving; the next batch wants the machine.
    sandbox.kubectl("delete", "deployments", "-n", namespace, "--wait=false",
                    "-l", f"glideslope.dev/release in ({','.join(names)})")
    sandbox.kubectl("delete", "services", "-n", namespace, "--wait=false", "--ignore-not-found",
                    *names, *(f"{n}-preview" for n in names))
    return out


def _outcome(st: dict[str, Any], static_first: dict[str, str]) -> dict[str, Any]:
    last = (st.get("history") or [{}])[-1] if st.get("version") == "2" and st.get("phase") in ENDED else {}
    started = last.get("startedAt") or st.get("startedAt") or ""
    judged = st.get("judge") or {}
    rolled_back = st.get("phase") == "RolledBack" and "judge" in (last.get("reason") or "")
    judge = {"phase": st.get("phase"), "verdict": judged.get("verdict"), "score": judged.get("score"),
             "looks": judged.get("looks"), "alpha_spent": judged.get("alphaSpent"), "aborted": rolled_back,
             "seconds": round(_seconds(started, judged["lastLookTime"]), 1)
             if rolled_back and started and judged.get("lastLookTime") else None,
             "metrics": {m["name"]: m.get("classification") for m in judged.get("metrics") or []}}
    fired = {k: v for k, v in static_first.items() if v}
    first = min(fired.values()) if fired else None
    states = {t["name"]: t.get("state") for t in st.get("analysis") or []}
    static = {"aborted": first is not None, "why": sorted(k for k, v in fired.items() if v == first),
              "seconds": round(_seconds(started, first), 1) if first and started else None,
              "states": states}
    return {"judge": judge, "static": static}


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    times = [r["seconds"] for r in rows if r["aborted"] and r["seconds"] is not None]
    aborted = sum(1 for r in rows if r["aborted"])
    return {"runs": len(rows), "aborted": aborted, "aborted_share": round(aborted / len(rows), 3) if rows else None,
            "median_seconds_to_detect": statistics.median(times) if times else None,
            "max_seconds_to_detect": max(times) if times else None}


def _judge_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    verdicts: dict[str, int] = {}
    phases: dict[str, int] = {}
    for r in rows:
        verdicts[str(r["verdict"])] = verdicts.get(str(r["verdict"]), 0) + 1
        phases[str(r["phase"])] = phases.get(str(r["phase"]), 0) + 1
    return {**_summary(rows), "verdicts": verdicts, "phases": phases}


def _static_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    why: dict[str, int] = {}
    states: dict[str, int] = {}
    for r in rows:
        for name in r["why"]:
            why[name] = why.get(name, 0) + 1
        for state in set(r["states"].values()):
            states[str(state)] = states.get(str(state), 0) + 1
    return {**_summary(rows), "aborted_by": why, "last_states": states}


@pytest.mark.timeout(len(CASES) * RUNS // BATCH * (ANALYSIS_SECONDS + GRACE + 600) + 1200)
def test_judge_beside_a_static_threshold_on_the_sandbox(sandbox: Cluster, namespace: str,
                                                         operator: Operator) -> None:
    started = time.monotonic()
    load: list[float] = []
    planned = [(f"{CASES[case]['slug']}-{i}", case) for i in range(RUNS) for case in CASES]
    outcomes: dict[str, dict[str, Any]] = {}
    for first in range(0, len(planned), BATCH):
        batch = planned[first:first + BATCH]
        print(f"\nbatch of {len(batch)} canaries ({first + len(batch)}/{len(planned)})", flush=True)
        outcomes.update(_batch(sandbox, namespace, batch))
        load.append(os.getloadavg()[0])
    cases = []
    for name, case in CASES.items():
        rows = [o for o in outcomes.values() if o["case"] == name]
        row = {"case": name, "target": TARGETS[name], "candidate": {k: v for k, v in case.items() if k != "slug"},
               "judge": _judge_summary([r["judge"] for r in rows]),
               "static": _static_summary([r["static"] for r in rows])}
        cases.append(row)
        j, s = row["judge"], row["static"]
        print(f"{name:28} judge: {j['aborted']:2}/{j['runs']} aborted, median {j['median_seconds_to_detect']} s, "
              f"{j['verdicts']} | static: {s['aborted']:2}/{s['runs']} aborted, median "
              f"{s['median_seconds_to_detect']} s, {s['aborted_by']}")
    result = {
        "kind": "sandbox: real canaries (kube-apiserver, kwok pods, the operator as its ServiceAccount, "
                "Prometheus at 1 s scrapes, the traffic simulator's noisy pods)",
        "runs_per_case": RUNS, "batch": BATCH, "analysis_seconds": ANALYSIS_SECONDS,
        "service_requests_per_second": SERVICE_RATE, "requests_per_second_per_side": SERVICE_RATE / 3,
        "baseline": {"error_rate": BASE_ERROR, "latency_ms": BASE_LATENCY_MS},
        "judge": JUDGE, "static": STATIC, "interval_seconds": 10,
        "cases": cases, "runs": outcomes, "load_average_after_each_batch": load,
        "cpus": os.cpu_count(), "took_seconds": round(time.monotonic() - started, 1),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "judge.json").write_text(json.dumps(result, indent=1) + "\n")
    plot(cases, RUNS, "judge vs static threshold, same canaries on the sandbox", RESULTS / "judge.png")
    # Every run reached an end: rolled back, succeeded, or held (the no-traffic case) and read.
    assert len(outcomes) == len(planned) and all(o["judge"]["phase"] for o in outcomes.values())

