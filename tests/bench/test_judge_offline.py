"""The statistical judge against a static threshold, offline (`make bench-judge-offline`): the
same cases as the sandbox's `test_judge.py`, in seconds instead of minutes, as a cross-check.

Offline, and labelled so in the results: no cluster and no Prometheus. Each run is the sandbox's
own `TrafficModel` (noisy pods, `sim.glideslope.dev/noise`) serving a canary and its baseline,
two pods each behind one Service at 100 requests per second (about 50 per revision), for ten
minutes of simulated time. Its counters and latency histogram are "scraped" every second as
Prometheus would, and the judge's queries are computed from them as PromQL would (a per-pod
`rate` ratio per step; `histogram_quantile(0.95, ...)` per side and step, interpolated within
buckets). `core.judge.look` judges each look, exactly as the operator does; the rollout stops at
the first Fail.

The same runs also feed the seed's static triggers on the candidate alone (error rate over 1m
above 0.1%, p95 over 1m above 200 ms; critical, measured every 10 s), to show side by side what
each catches and what each cries wolf on.

Prints a table, writes `results/judge_offline.json` (and `judge_offline.png` with the `bench` extra);
asserts nothing about the figures.
"""

from __future__ import annotations

import bisect
import json
import math
import random
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from glideslope.api import JudgeSpec, JudgeStatus, JudgeVerdict
from glideslope.core import judge
from glideslope.sandbox.simulator import BUCKETS
from glideslope.sandbox.traffic_model import (
    ERROR_RATE_ANNOTATION,
    LATENCY_ANNOTATION,
    NOISE_ANNOTATION,
    REVISION_LABEL,
    ROLE_LABEL,
    SERVICE_NAME_LABEL,
    TrafficModel,
    build_view,
)
from tests.bench.judge_cases import BASE_ERROR, BASE_LATENCY_MS, CASES, TARGETS, plot

pytestmark = pytest.mark.bench

RESULTS = Path(__file__).parent / "results"
RUNS = 30
SECONDS = 600
RATE = 100.0
"""Requests per second to the Service: four pods, so about 50 per revision."""
INTERVAL = 10
"""Seconds between looks (`analysis.interval`) and between the static triggers' measurements."""
STATIC_WINDOW = 60
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SPEC = JudgeSpec.model_validate({
    "baseline": True, "minSamples": 12, "step": "5s", "horizon": f"{SECONDS}s", "alpha": 0.05,
    "spending": "pocock",
    "metrics": [{"name": "errors", "query": "-", "direction": "increase", "tolerance": 0.001},
                {"name": "latency-p95", "query": "-", "direction": "increase", "tolerance": 0.01}]})
STEP = 5

# p95 of a noisy pod is its latency times exp(1.645 * 0.25) = 1.51: +50 ms at p95 is +33 ms.


def _pod(name: str, revision: str, role: str, error: float, latency: float, ready: bool) -> dict[str, Any]:
    labels = {"app": "web", REVISION_LABEL: revision, **({ROLE_LABEL: role} if role else {})}
    annotations = {ERROR_RATE_ANNOTATION: str(error), LATENCY_ANNOTATION: str(latency), NOISE_ANNOTATION: "true"}
    return {"metadata": {"namespace": "bench", "name": name, "labels": labels, "annotations": annotations},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


@dataclass
class Scrapes:
    """Per second: each pod's cumulative (requests, errors), and each side's cumulative histogram."""

    pods: dict[str, list[tuple[int, int]]]
    buckets: dict[str, list[list[int]]]


def _simulate(case: dict[str, Any], seed: int) -> Scrapes:
    traffic = case.get("traffic", True)
    pods = [_pod(f"canary-{i}", "cand", "", case["error"], case["latency"], traffic) for i in range(2)]
    pods += [_pod(f"baseline-{i}", "stab", "baseline", BASE_ERROR, BASE_LATENCY_MS, True) for i in range(2)]
    service = {"metadata": {"namespace": "bench", "name": "web"}, "spec": {"selector": {"app": "web"}}}
    endpoints = [{"conditions": {"ready": p["status"]["conditions"][0]["status"] == "True"},
                  "targetRef": {"kind": "Pod", "name": p["metadata"]["name"]}} for p in pods]
    slice_ = {"metadata": {"namespace": "bench", "name": "web-1", "labels": {SERVICE_NAME_LABEL: "web"}},
              "endpoints": endpoints}
    view = build_view([service], [slice_], pods)
    model = TrafficModel(rate=RATE, rng=random.Random(seed), seed=seed)
    names = [p["metadata"]["name"] for p in pods]
    totals = {n: (0, 0) for n in names}
    hist = {side: [0] * (len(BUCKETS) + 1) for side in ("canary", "baseline")}
    out = Scrapes({n: [(0, 0)] for n in names}, {s: [list(h)] for s, h in hist.items()})
    for _ in range(SECONDS):
        for _ in range(4):  # the simulator's 0.25 s ticks
            for served in model.tick(view, 0.25).traffic:
                done, failed = totals[served.key.pod]
                totals[served.key.pod] = (done + served.requests, failed + served.errors)
                side = hist["baseline" if served.key.role else "canary"]
                for d in (*served.ok_durations, *served.error_durations):
                    side[bisect.bisect_left(BUCKETS, d)] += 1
        for n in names:
            out.pods[n].append(totals[n])
        for s, h in hist.items():
            out.buckets[s].append(list(h))
    return out


def _quantile(q: float, counts: list[int]) -> float:
    """`histogram_quantile` over per-bucket counts (the last bucket is +Inf), as Prometheus
    interpolates: linearly within the bucket the rank falls in."""
    total = sum(counts)
    if total == 0:
        return math.nan
    rank, seen = q * total, 0
    for i, c in enumerate(counts):
        if seen + c >= rank and c > 0:
            if i == len(BUCKETS):
                return BUCKETS[-1]
            low = BUCKETS[i - 1] if i > 0 else 0.0
            return low + (BUCKETS[i] - low) * (rank - seen) / c
        seen += c
    return BUCKETS[-1]


def _samples(s: Scrapes, end: int) -> dict[str, tuple[judge.Side, judge.Side]]:
    """The judge's two queries per side over [0, end], one value per pod (errors) or side
    (latency) and step, as a range query at `step` would give them."""
    errors: dict[str, list[tuple[float, float]]] = {"canary": [], "baseline": []}
    latency: dict[str, list[tuple[float, float]]] = {"canary": [], "baseline": []}
    for t in range(STEP, end + 1, STEP):
        for name, series in s.pods.items():
            done = series[t][0] - series[t - STEP][0]
            if done > 0:
                errors["baseline" if name.startswith("baseline") else "canary"].append(
                    (float(t), (series[t][1] - series[t - STEP][1]) / done))
        for side, h in s.buckets.items():
            p95 = _quantile(0.95, [a - b for a, b in zip(h[t], h[t - STEP], strict=True)])
            if math.isfinite(p95):
                latency[side].append((float(t), p95))
    return {"errors": (judge.Side("c", tuple(errors["canary"])), judge.Side("b", tuple(errors["baseline"]))),
            "latency-p95": (judge.Side("c", tuple(latency["canary"])), judge.Side("b", tuple(latency["baseline"])))}


def _judge_run(s: Scrapes) -> dict[str, Any]:
    status: JudgeStatus | None = None
    for t in range(INTERVAL, SECONDS + 1, INTERVAL):
        status = judge.look(SPEC, status, judge.Look(T0 + timedelta(seconds=t), _samples(s, t)),
                            rollout_started=T0, horizon=float(SECONDS))
        if status.verdict == JudgeVerdict.FAIL:
            return {"aborted": True, "seconds": t, "verdict": "Fail", "alpha_spent": status.alpha_spent}
    assert status is not None
    return {"aborted": False, "seconds": None, "verdict": str(status.verdict), "alpha_spent": status.alpha_spent}


def _static_run(s: Scrapes) -> dict[str, Any]:
    """The seed's thresholds on the candidate alone; no data is never a pass (three in a row:
    Inconclusive, as the triggers count)."""
    no_data = 0
    for t in range(STATIC_WINDOW, SECONDS + 1, INTERVAL):
        canary = [v for n, v in s.pods.items() if n.startswith("canary")]
        done = sum(v[t][0] - v[t - STATIC_WINDOW][0] for v in canary)
        if done == 0:
            no_data += 1
            continue
        rate = sum(v[t][1] - v[t - STATIC_WINDOW][1] for v in canary) / done
        h = s.buckets["canary"]
        p95 = _quantile(0.95, [a - b for a, b in zip(h[t], h[t - STATIC_WINDOW], strict=True)])
        if rate > 0.001 or p95 > 0.2:
            return {"aborted": True, "seconds": t, "verdict": "Fail", "why": "errors" if rate > 0.001 else "p95"}
    return {"aborted": False, "seconds": None, "verdict": "Inconclusive" if no_data >= 3 else "Pass"}


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    times = [r["seconds"] for r in runs if r["aborted"]]
    verdicts: dict[str, int] = {}
    why: dict[str, int] = {}
    for r in runs:
        verdicts[r["verdict"]] = verdicts.get(r["verdict"], 0) + 1
        if r.get("why"):
            why[r["why"]] = why.get(r["why"], 0) + 1
    return {**({"aborted_by": why} if why else {}),
            "aborted": len(times), "runs": len(runs), "aborted_share": round(len(times) / len(runs), 3),
            "median_seconds_to_detect": statistics.median(times) if times else None,
            "max_seconds_to_detect": max(times) if times else None, "verdicts": verdicts}


def test_judge_beside_a_static_threshold() -> None:
    started = time.monotonic()
    cases: list[dict[str, Any]] = []
    for name, case in CASES.items():
        judged: list[dict[str, Any]] = []
        static: list[dict[str, Any]] = []
        for seed in range(RUNS):
            scrapes = _simulate(case, 1000 * len(cases) + seed)
            judged.append(_judge_run(scrapes))
            static.append(_static_run(scrapes))
        row = {"case": name, "target": TARGETS[name], "candidate": case, "judge": _summary(judged),
               "static": _summary(static)}
        cases.append(row)
        j, st = row["judge"], row["static"]
        print(f"{name:28} judge: {j['aborted']:2}/{RUNS} aborted, median {j['median_seconds_to_detect']} s, "
              f"{j['verdicts']} | static: {st['aborted']:2}/{RUNS} aborted, median {st['median_seconds_to_detect']} s,"
              f" {st['verdicts']} {st.get('aborted_by', '')}")
    result = {
        "kind": "offline simulation: the sandbox's TrafficModel (noisy pods) and core.judge; no cluster, no "
                "Prometheus (PromQL's rate and histogram_quantile computed from 1 s scrapes)",
        "runs_per_case": RUNS, "seconds_per_run": SECONDS, "requests_per_second_per_revision": RATE / 2,
        "looks_every_seconds": INTERVAL, "baseline": {"error_rate": BASE_ERROR, "latency_ms": BASE_LATENCY_MS},
        "judge": SPEC.to_dict(),
        "static": {"errors": "rate over 1m > 0.001", "p95": "over 1m > 0.2 s", "every_seconds": INTERVAL,
                   "severity": "critical"},
        "cases": cases, "took_seconds": round(time.monotonic() - started, 1),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "judge_offline.json").write_text(json.dumps(result, indent=1) + "\n")
    plot(cases, RUNS, "judge vs static threshold, same seeded runs (offline simulation)", RESULTS / "judge_offline.png")

