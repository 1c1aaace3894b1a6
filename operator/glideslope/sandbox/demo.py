"""`make demo`: show the sandbox working, live.

Two revisions of an app run on kwok nodes behind an HTTPRoute that sends 90 % of the
traffic to the stable one; the simulator's traffic shows up in Prometheus, per revision,
in a table that refreshes every second.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from glideslope.sandbox import build
from glideslope.sandbox.cluster import Sandbox

NAMESPACE = "glideslope-demo"


def _revision(name: str, revision: str, replicas: int, error_rate: str) -> dict[str, Any]:
    labels = {"app": "checkout", "glideslope.dev/revision": revision}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": {"sim.glideslope.dev/error-rate": error_rate}},
                "spec": {"containers": [{"name": "app", "image": f"shop/checkout:{revision}"}]},
            },
        },
    }


def _service(name: str, revision: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"selector": {"app": "checkout", "glideslope.dev/revision": revision},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }


def manifests() -> list[dict[str, Any]]:
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "checkout", "namespace": NAMESPACE},
        "spec": {"rules": [{"backendRefs": [
            {"name": "checkout", "port": 80, "weight": 90},
            {"name": "checkout-preview", "port": 80, "weight": 10},
        ]}]},
    }
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        _revision("checkout-v1", "v1", 3, "0"),
        _revision("checkout-v2", "v2", 1, "0.2"),
        _service("checkout", "v1"),
        _service("checkout-preview", "v2"),
        route,
    ]


def _promql(url: str, query: str) -> list[dict[str, Any]]:
    full = f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(full, timeout=3) as resp:
        result: list[dict[str, Any]] = json.load(resp)["data"]["result"]
    return result


def _view(box: Sandbox, bins: build.Binaries) -> Group:
    pods = json.loads(box.kubectl(bins, "get", "pods", "-n", NAMESPACE, "-o", "json").stdout)["items"]
    pod_table = Table(title=f"pods in {NAMESPACE}")
    for col in ("pod", "revision", "node", "phase"):
        pod_table.add_column(col)
    for pod in pods:
        pod_table.add_row(pod["metadata"]["name"], pod["metadata"]["labels"].get("glideslope.dev/revision", ""),
                          pod["spec"].get("nodeName", "-"), pod["status"].get("phase", "?"))
    sel = f'namespace="{NAMESPACE}"'
    rates = {r["metric"]["revision"]: float(r["value"][1]) for r in _promql(
        box.prometheus_url, f"sum by (revision) (rate(http_requests_total{{{sel}}}[5s]))")}
    errors = {r["metric"]["revision"]: float(r["value"][1]) for r in _promql(
        box.prometheus_url, f'sum by (revision) (rate(http_requests_total{{{sel},code=~"5.."}}[5s]))')}
    total = sum(rates.values()) or 1.0
    traffic = Table(title="simulated traffic, from Prometheus (HTTPRoute 90/10)")
    for col in ("revision", "requests/s", "share", "error ratio"):
        traffic.add_column(col, justify="right")
    for rev in sorted(rates):
        ratio = errors.get(rev, 0.0) / rates[rev] if rates[rev] else 0.0
        traffic.add_row(rev, f"{rates[rev]:.1f}", f"{100 * rates[rev] / total:.0f} %", f"{ratio:.2f}")
    return Group(pod_table, traffic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", default=".sandbox")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to watch")
    parser.add_argument("--keep", action="store_true", help="leave the demo namespace in place")
    args = parser.parse_args()
    box = Sandbox(Path(args.dir))
    bins = build.ensure_binaries()
    console = Console()
    console.print(f"[bold]Applying the demo app to namespace {NAMESPACE}[/bold]")
    box.kubectl(bins, "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                              "items": manifests()}))
    deadline = time.monotonic() + args.seconds
    with Live(console=console, refresh_per_second=2) as live:
        while time.monotonic() < deadline:
            try:
                live.update(_view(box, bins))
            except (OSError, RuntimeError, KeyError, ValueError) as exc:
                live.update(f"waiting for the cluster: {exc}")
            time.sleep(1)
    if not args.keep:
        box.kubectl(bins, "delete", "namespace", NAMESPACE, "--wait=false")
    console.print("The sandbox keeps running: `glideslope sandbox down` stops it.")


if __name__ == "__main__":
    main()
