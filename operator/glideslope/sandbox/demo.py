"""`make demo`: the operator on the sandbox, unattended.

1. starts the operator as its own ServiceAccount, its metrics scraped by the sandbox's Prometheus;
2. rolls `checkout` out at 1.0.0, then canaries 1.1.0 (healthy) to success, live;
3. canaries 1.2.0, whose pods fail 30 % of their requests: the error-rate trigger rolls it
   back by itself, live;
4. ends with the history, and the release notes and closing record of both canaries, as
   `kubectl release notes` prints them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kubernetes import config
from rich.console import Console
from rich.rule import Rule

from glideslope.cli.plugin import Releases, follow, release_notes, render_history
from glideslope.sandbox import build
from glideslope.sandbox.cluster import Sandbox

NAMESPACE = "glideslope-demo"
NAME = "checkout"
ERROR_RATE = (
    'sum(rate(http_requests_total{namespace="{{namespace}}",revision="{{revision}}",code=~"5.."}[10s]))'
    ' / sum(rate(http_requests_total{namespace="{{namespace}}",revision="{{revision}}"}[10s]))'
)


def release(version: str, error_rate: float, notes: str) -> dict[str, Any]:
    labels = {"app": NAME}
    return {
        "apiVersion": "glideslope.dev/v1alpha1", "kind": "Release",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "spec": {
            "version": version,
            "replicas": 5,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": {"sim.glideslope.dev/error-rate": str(error_rate)}},
                "spec": {"containers": [{"name": "app", "image": f"shop/checkout:{version}"}]},
            },
            "service": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
            "strategy": {"type": "Canary", "canary": {"steps": [
                {"setWeight": 20}, {"analysis": {"duration": "15s"}},
                {"setWeight": 60}, {"analysis": {"duration": "10s"}},
            ]}},
            # The candidate's first samples need a scrape or two before a 10 s rate has a value.
            "analysis": {"interval": "1s", "initialDelay": "3s", "triggers": [{
                "name": "error-rate", "severity": "critical", "query": ERROR_RATE,
                "failureCondition": "result > 0.05", "onNoData": "Inconclusive",
            }]},
            "releaseNotes": notes,
        },
    }


def _fresh_namespace(box: Sandbox, bins: build.Binaries) -> None:
    """A demo run starts from nothing: the last run's Release (and its finalizer) goes first."""
    found = box.kubectl(bins, "get", "releases", "-n", NAMESPACE, "-o", "name", "--ignore-not-found")
    for name in found.stdout.split():
        box.kubectl(bins, "patch", name, "-n", NAMESPACE, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    box.kubectl(bins, "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", "--timeout=60s")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and box.kubectl(
            bins, "get", "namespace", NAMESPACE, "--ignore-not-found", "-o", "name").stdout.strip():
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default=".sandbox")
    args = parser.parse_args()
    # Off a terminal (a CI log, `| tee`), rich would assume 80 columns: use a log's width.
    console = Console() if sys.stdout.isatty() else Console(width=int(os.environ.get("COLUMNS", "160")))
    box = Sandbox(Path(args.dir))
    bins = build.ensure_binaries()
    config.load_kube_config(config_file=str(box.kubeconfig))

    def apply(doc: dict[str, Any]) -> None:
        box.kubectl(bins, "apply", "-f", "-", input=json.dumps(doc))

    _fresh_namespace(box, bins)
    apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    log_path = box.dir / "logs" / "demo-operator.log"
    operator = subprocess.Popen(
        [sys.executable, "-m", "glideslope.cli.main", "operator", "--namespace", NAMESPACE,
         "--prometheus-url", box.prometheus_url, "--metrics-port", str(box.ports.operator_metrics),
         "--metrics-address", "127.0.0.1", "--interval", "1", "--log-format", "json"],
        env={**os.environ, "KUBECONFIG": str(box.operator_kubeconfig)},
        stdout=log_path.open("ab"), stderr=subprocess.STDOUT)
    console.print(f"[bold]operator[/bold] running as ServiceAccount glideslope-system/glideslope "
                  f"(pid {operator.pid}, log {log_path})")
    outcomes: list[str | None] = []
    try:
        console.print(Rule("1.0.0: the first rollout"))
        apply(release("1.0.0", 0.0, "### 1.0.0\n- First release"))
        outcomes.append(follow(NAMESPACE, NAME, console, until_final=True, timeout=120))
        console.print(Rule("1.1.0: a healthy canary"))
        apply(release("1.1.0", 0.0, "### 1.1.0\n- Faster search"))
        outcomes.append(follow(NAMESPACE, NAME, console, until_final=True, timeout=180))
        console.print(Rule("1.2.0: a canary whose pods fail 30 % of requests"))
        apply(release("1.2.0", 0.3, "### 1.2.0\n- New payment flow"))
        outcomes.append(follow(NAMESPACE, NAME, console, until_final=True, timeout=180))
        console.print(Rule("history"))
        releases = Releases(str(box.kubeconfig), None, NAMESPACE)
        body = releases.get(NAME)
        console.print(render_history(body))
        record = releases.record(NAME)
        for version in ("1.1.0", "1.2.0"):
            console.print(Rule(f"kubectl release notes {NAME} --revision {version}"))
            # Whole lines, as `kubectl release notes` prints them: Markdown tables must not be cut.
            console.print(release_notes(body, record, version), markup=False, highlight=False, emoji=False,
                          soft_wrap=True)
    finally:
        operator.terminate()
        try:
            operator.wait(timeout=10)
        except subprocess.TimeoutExpired:
            operator.kill()
    console.print(f"outcomes: {outcomes}. The sandbox keeps running: `glideslope sandbox down` stops it.")
    if outcomes != ["Succeeded", "Succeeded", "RolledBack"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
