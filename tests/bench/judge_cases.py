"""The judge benchmark's cases, targets and plot, shared by the sandbox run (`test_judge.py`)
and its offline cross-check (`test_judge_offline.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.bench.plot import pyplot

BASE_ERROR = 0.0005
"""The stable revision's error rate."""
BASE_LATENCY_MS = 20.0
# A noisy pod's p95 is its latency times exp(1.645 * 0.25) = 1.51: +50 ms at p95 is +33 ms.
CASES: dict[str, dict[str, Any]] = {
    "no difference": {"slug": "same", "error": BASE_ERROR, "latency": BASE_LATENCY_MS},
    "error rate +2 points": {"slug": "err2", "error": BASE_ERROR + 0.02, "latency": BASE_LATENCY_MS},
    "error rate +0.5 point": {"slug": "err05", "error": BASE_ERROR + 0.005, "latency": BASE_LATENCY_MS},
    "p95 latency +50 ms": {"slug": "p95", "error": BASE_ERROR, "latency": BASE_LATENCY_MS + 50 / 1.51},
    "no traffic to the candidate": {"slug": "idle", "error": BASE_ERROR, "latency": BASE_LATENCY_MS,
                                    "traffic": False},
}
"""The candidate's behaviour in each case (`traffic: False`: its pods get no requests)."""
TARGETS = {
    "no difference": "false aborts <= 5%",
    "error rate +2 points": ">= 95% aborted; median time to detect <= 90 s",
    "error rate +0.5 point": ">= 80% aborted within 10 minutes",
    "p95 latency +50 ms": ">= 95% aborted",
    "no traffic to the candidate": "Inconclusive in every run",
}


def plot(cases: list[dict[str, Any]], runs: int, title: str, path: Path) -> None:
    """Bars of the share of runs each case aborted, the judge beside the static threshold."""
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(8, 3.5))
    names = [c["case"] for c in cases]
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [100 * (c["judge"]["aborted_share"] or 0) for c in cases], 0.4, label="judge")
    ax.bar([x + 0.2 for x in xs], [100 * (c["static"]["aborted_share"] or 0) for c in cases], 0.4,
           label="static threshold (0.1% errors, p95 200 ms)")
    ax.set_xticks(list(xs), [n.replace(" ", "\n", 2) for n in names], fontsize=7)
    ax.set_ylabel(f"% of {runs} runs aborted")
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
