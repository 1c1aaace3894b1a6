"""The side-by-side benchmarks' plot, `results/compare.png`: breach to rollback per scenario (every
run, with its median), and the scale scenario per N (time until all are done, controller CPU
and API server CPU per Release-step, the controller's peak RSS), one colour per tool. Drawn from
`results/compare_rollback.json` and `results/compare_scale_<N>.json`, whichever exist;
`python -m tests.bench.plot_compare` redraws it."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from tests.bench.plot import pyplot

RESULTS = Path(__file__).parent / "results"
COLOURS = {"glideslope": "tab:blue", "argo-rollouts": "tab:orange", "argo-rollouts-tuned": "tab:red",
           "flagger": "tab:green"}
SCALE_FIGURES = (
    ("canary_all_done_seconds", "seconds", "Time until all canaries are done"),
    ("controller_cpu_ms_per_release_step", "ms", "Controller CPU per Release-step"),
    ("kube_apiserver_cpu_ms_per_release_step", "ms", "API server CPU per Release-step"),
)


def _scale_runs(results: Path) -> list[dict[str, Any]]:
    runs = [json.loads(p.read_text()) for p in results.glob("compare_scale_*.json")]
    return sorted(runs, key=lambda r: int(r["canaries"]))


def draw(results: Path = RESULTS) -> Path | None:
    """Writes results/compare.png; None when matplotlib (the `bench` extra) or every result is missing."""
    plt = pyplot()
    if plt is None:
        return None
    rollback_path = results / "compare_rollback.json"
    scenarios: dict[str, Any] = json.loads(rollback_path.read_text())["scenarios"] if rollback_path.exists() else {}
    scale = _scale_runs(results)
    if not scenarios and not scale:
        return None
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    for axis, (key, title) in zip(axes[0][:2], (("replica_ratio", "Breach to rollback: replica ratio"),
                                                ("httproute", "Breach to rollback: HTTPRoute")), strict=True):
        tools = (scenarios.get(key) or {}).get("tools") or {}
        for x, (tool, summary) in enumerate(tools.items()):
            values = [r["breach_to_rolled_back_seconds"] for r in summary["runs"]]
            axis.scatter([x] * len(values), values, color=COLOURS.get(tool), alpha=0.6)
            axis.hlines(statistics.median(values), x - 0.3, x + 0.3, color=COLOURS.get(tool))
        axis.set_xticks(range(len(tools)), list(tools))
        axis.set(ylabel="seconds (each run; line: median)", title=title)
        axis.set_ylim(bottom=0)
    panels = [axes[0][2], *axes[1]]
    figures = (*SCALE_FIGURES, ("peak_rss_mib", "MiB", "Controller peak RSS"))
    for axis, (key, unit, title) in zip(panels, figures, strict=True):
        for tool in {t for run in scale for t in run["tools"]}:
            points = [(run["canaries"], _figure(run["tools"][tool]["figures"], key))
                      for run in scale if tool in run["tools"]]
            points = [(n, v) for n, v in points if v is not None]
            if points:
                axis.plot(*zip(*points, strict=True), "o-", color=COLOURS.get(tool), label=tool)
        axis.set_xticks([run["canaries"] for run in scale])
        axis.set(xlabel="canaries at once (N)", ylabel=unit, title=title)
        axis.set_ylim(bottom=0)
        axis.legend(fontsize="small")
    for axis in axes.flat:
        axis.grid(alpha=0.3)
    fig.tight_layout()
    out = results / "compare.png"
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def _figure(figures: dict[str, Any], key: str) -> float | None:
    value = (figures.get("controller") or {}).get(key) if key == "peak_rss_mib" else figures.get(key)
    return float(value) if isinstance(value, int | float) else None


if __name__ == "__main__":
    print(draw())
