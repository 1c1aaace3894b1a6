"""The scale benchmark's plot: step overhead (p50, p99, and the p99 of the operator's share) and
the operator's peak RSS against N, beside their targets, from `results/scale_<N>.json`.
`python -m tests.bench.plot` redraws it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
OVERHEAD_TARGET = 2.0
RSS_TARGET = 300.0


def pyplot() -> Any:
    """matplotlib's pyplot, drawing to files; None (and says so) when the `bench` extra is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is missing (pip install -e '.[bench]'): no plot")
        return None
    return plt


def draw(results: Path = RESULTS) -> Path | None:
    """Writes results/scale.png; None when matplotlib (the `bench` extra) is missing."""
    plt = pyplot()
    if plt is None:
        return None
    runs = sorted((json.loads(p.read_text()) for p in results.glob("scale_*.json")), key=lambda r: r["releases"])
    if not runs:
        return None
    sizes = [r["releases"] for r in runs]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(sizes, [r["step_overhead_seconds"]["p50"] for r in runs], "o-", label="p50")
    left.plot(sizes, [r["step_overhead_seconds"]["p99"] for r in runs], "s-", label="p99")
    shared = [r for r in runs if "step_overhead_operator_share_seconds" in r]
    if shared:
        left.plot([r["releases"] for r in shared], [r["step_overhead_operator_share_seconds"]["p99"] for r in shared],
                  "^--", label="p99, operator's share (pod waits taken off)")
    left.axhline(OVERHEAD_TARGET, color="red", linestyle="--", label=f"target p99 {OVERHEAD_TARGET:g} s")
    left.set(xlabel="Releases (N)", ylabel="step overhead (s)", title="Step overhead: actual - configured")
    left.legend()
    right.plot(sizes, [r["operator"]["peak_rss_mib"] for r in runs], "o-", label="peak RSS")
    right.axhline(RSS_TARGET, color="red", linestyle="--", label=f"target {RSS_TARGET:g} MiB")
    right.set(xlabel="Releases (N)", ylabel="MiB", title="Operator memory")
    right.legend()
    for axis in (left, right):
        axis.set_xscale("log")
        axis.set_xticks(sizes, [str(s) for s in sizes])
        axis.grid(alpha=0.3)
    fig.tight_layout()
    out = results / "scale.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


if __name__ == "__main__":
    print(draw())
