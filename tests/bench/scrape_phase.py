"""Where in each second Prometheus scrapes the traffic simulator, moved between runs.

Prometheus scrapes a target at a fixed phase within its interval, set by a hash of the target's
labels. A tool that measures on whole seconds (Argo Rollouts: its next measurement is due one
interval after the last one's `finishedAt`, which the API stores to the second) then sees fresh
data at the same delay after every scrape, in every run: a sandbox whose phase happens to fall
just before the second boundary gives it its best case every time, and one just after, its
worst. A tool whose measurements fall anywhere in the second (Glideslope's grid starts when the
step does) sees the average. A comparison on one phase would measure the sandbox's hash, not
the tools, so each run gets its own phase: a `phase` label on the simulator's target, a reload,
and the phase that came out of it, recorded with the run.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.helpers import Cluster

_TARGET = re.compile(
    r'(  - job_name: simulator\n    static_configs: \[\{targets: \["[^"]+"\])(, labels: \{[^}]*\})?\}\]')


class ScrapePhase:
    def __init__(self, sandbox_dir: Path, prometheus_url: str) -> None:
        self._config = sandbox_dir / "prometheus.yml"
        self._url = prometheus_url
        self._original = self._config.read_text()
        if not _TARGET.search(self._original):
            raise AssertionError(f"no simulator job in {self._config}")
        self._seen: dict[str, float] = {}
        """The phase each label gave (a label's phase is fixed for this Prometheus)."""

    def shift(self, label: str, timeout: float = 15.0) -> float:
        """Scrape the simulator under `phase=<label>`; returns the phase that came out, in
        seconds after the whole second (what the last scrape's timestamp says)."""
        self._config.write_text(_TARGET.sub(rf'\1, labels: {{phase: "{label}"}}}}]', self._original))
        self._reload()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            scraped = self._last_scrape(label)
            if scraped is not None:
                return scraped
            time.sleep(0.2)
        raise AssertionError(f"Prometheus never scraped the simulator under phase={label}")

    def shift_into(self, run: int, runs: int, attempts: int = 20) -> float:
        """A phase within the `run`-th of `runs` equal slices of the second, so that `runs` runs
        cover the second evenly. Labels are tried until one hashes into the slice (each try
        costs a reload and a scrape); what every label gave is remembered, so a label an earlier
        run tried is used again when it fits. If none fits, the closest one tried is kept."""
        low, high = run / runs, (run + 1) / runs

        def miss(phase: float) -> float:
            return 0.0 if low <= phase < high else min(abs(phase - low), abs(phase - high))

        known = sorted(self._seen.items(), key=lambda item: miss(item[1]))
        if known and miss(known[0][1]) == 0.0:
            return self.shift(known[0][0])
        for _ in range(attempts):
            label = f"p{len(self._seen)}"
            self._seen[label] = self.shift(label)
            if miss(self._seen[label]) == 0.0:
                return self._seen[label]
        return self.shift(min(self._seen, key=lambda name: miss(self._seen[name])))

    def restore(self) -> None:
        self._config.write_text(self._original)
        self._reload()

    def _reload(self) -> None:
        request = urllib.request.Request(f"{self._url}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def _last_scrape(self, label: str) -> float | None:
        with urllib.request.urlopen(f"{self._url}/api/v1/targets?state=active", timeout=5) as answer:
            targets = json.load(answer)["data"]["activeTargets"]
        for target in targets:
            if target["labels"].get("phase") == label and target.get("health") == "up":
                # RFC 3339 with nanoseconds: the fraction is the phase (the seconds are whole).
                fraction = re.search(r"\.(\d+)", target["lastScrape"])
                return round(float("0." + fraction.group(1)), 3) if fraction else 0.0
        return None


@pytest.fixture(scope="session")
def scrape_phase(sandbox: Cluster) -> Iterator[ScrapePhase]:
    """The sandbox's Prometheus, its simulator target movable in phase; put back afterwards."""
    # The sandbox writes its kubeconfig and Prometheus' configuration side by side.
    phase = ScrapePhase(sandbox.kubeconfig.parent, sandbox.prometheus_url)
    try:
        yield phase
    finally:
        phase.restore()
