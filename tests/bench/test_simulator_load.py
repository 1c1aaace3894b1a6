"""The traffic simulator's exposition at N Releases: bytes, lines and the time to render it,
against the sandbox's 1 s scrape interval (Prometheus drops a scrape that takes longer and marks
the target down, and every trigger then reads no data).

Each Release is mid-canary: 4 pods of its stable revision and 1 of the candidate behind one
Service, each having served requests with both codes. Nothing here needs the sandbox: the
simulator's own `MetricsSink` is fed synthetic ticks, and the exposition rendered as its HTTP
server renders it. Prints the figures and writes `results/simulator_load.json`; asserts no time.

Before the exposition was trimmed (a per-pod histogram of 24 buckets, and `_created` series),
300 Releases of 5 pods rendered 10.2 MiB in about 1.25 s on the project's 2-core machine.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, disable_created_metrics, generate_latest

from glideslope.sandbox.simulator import MetricsSink
from glideslope.sandbox.traffic_model import PodTraffic, SeriesKey, Tick

pytestmark = pytest.mark.bench

RESULTS = Path(__file__).parent / "results"
SIZES = (100, 300, 1000)
SCRAPE_INTERVAL = 1.0
RENDERS = 5


def mid_canary(n: int) -> tuple[SeriesKey, ...]:
    return tuple(SeriesKey(f"team-{i}", "web", f"web-{revision}-{pod}", revision)
                 for i in range(n) for revision, pods in (("stable", 4), ("candidate", 1)) for pod in range(pods))


def test_exposition_fits_the_scrape_interval() -> None:
    disable_created_metrics()  # type: ignore[no-untyped-call]  # as the simulator's main does
    results = []
    for n in SIZES:
        registry = CollectorRegistry()
        sink = MetricsSink(registry)
        keys = mid_canary(n)
        sink.apply(Tick(traffic=(), new_series=keys, removed=(), warnings=()))
        served = tuple(PodTraffic(key, (0.02,) * 10, (0.3,)) for key in keys)
        sink.apply(Tick(traffic=served, new_series=(), removed=(), warnings=()))
        took = []
        for _ in range(RENDERS):
            started = time.perf_counter()
            text = generate_latest(registry)
            took.append(time.perf_counter() - started)
        result = {"releases": n, "pods": len(keys), "bytes": len(text), "lines": text.count(b"\n"),
                  "render_seconds_median": round(statistics.median(took), 3),
                  "render_seconds_max": round(max(took), 3), "scrape_interval_seconds": SCRAPE_INTERVAL}
        results.append(result)
        print(f"{n} Releases ({len(keys)} pods): {len(text) / 1024:.0f} KiB, {result['lines']} lines, "
              f"rendered in {result['render_seconds_median']:.3f} s (max {result['render_seconds_max']:.3f} s) "
              f"against a {SCRAPE_INTERVAL:.0f} s scrape interval")
        assert result["lines"] > 0
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "simulator_load.json").write_text(json.dumps(results, indent=2) + "\n")
