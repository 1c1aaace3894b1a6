"""The operator's own metrics reach the sandbox's Prometheus: job `glideslope-operator` is up
while an operator serves its metrics port, and a Release's phase and rollouts can be queried."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.helpers import REPO, Cluster, stop_process, wait_until
from tests.e2e.operator_fixture import INTERVAL, release, release_finalizers, wait_phase

pytestmark = pytest.mark.e2e

JOB = "glideslope-operator"


def scrape_address(sandbox: Cluster) -> tuple[str, int]:
    """Where Prometheus scrapes the operator, from its own list of targets."""
    with urllib.request.urlopen(f"{sandbox.prometheus_url}/api/v1/targets", timeout=5) as resp:
        targets = json.load(resp)["data"]["activeTargets"]
    url = next(t["scrapeUrl"] for t in targets if t["labels"]["job"] == JOB)
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname and parts.port, url
    return parts.hostname, parts.port


def test_prometheus_scrapes_the_operator(sandbox: Cluster, namespace: str, tmp_path: Path) -> None:
    host, port = scrape_address(sandbox)
    with socket.socket() as probe:
        if probe.connect_ex((host, port)) == 0:
            pytest.fail(f"{host}:{port} is taken (a `make demo` operator?): the scraped port must be free")
    log = tmp_path / "operator.log"
    proc = subprocess.Popen(
        [str(REPO / ".venv/bin/glideslope"), "operator", "--namespace", namespace, "--interval", INTERVAL,
         "--metrics-port", str(port), "--metrics-address", host, "--prometheus-url", sandbox.prometheus_url],
        env={**os.environ, "KUBECONFIG": str(sandbox.operator_kubeconfig)},
        stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=REPO)
    try:
        canary = {"type": "Canary", "canary": {"steps": [{"setWeight": 50}]}}
        sandbox.apply(release("scraped", "1", canary, replicas=1), namespace)
        wait_phase(sandbox, namespace, "scraped", "Succeeded", version="1")

        def up() -> list[object]:
            return sandbox.promql(f'up{{job="{JOB}"}} == 1')

        wait_until(up, 30, f"job {JOB} up")
        phase = f'glideslope_release_phase{{job="{JOB}",namespace="{namespace}",release="scraped",phase="Succeeded"}}'
        found = wait_until(lambda: sandbox.promql(f"{phase} == 1"), 30, "the Release's phase in Prometheus")
        assert found[0]["metric"]["instance"] == f"{host}:{port}"
        rollouts = f'sum(glideslope_rollouts_total{{job="{JOB}",namespace="{namespace}",outcome="Succeeded"}})'
        assert float(wait_until(lambda: sandbox.promql(rollouts), 30, "rollouts counted")[0]["value"][1]) == 1
        # The families controller dashboards graph (controller-runtime's names), beside ours.
        for family in ("workqueue_depth", "workqueue_adds_total", "workqueue_queue_duration_seconds_count",
                       "controller_runtime_reconcile_total", 'rest_client_requests_total{method="PATCH"}'):
            selector = family.replace("{", f'{{job="{JOB}",', 1) if "{" in family else f'{family}{{job="{JOB}"}}'
            wait_until(lambda s=selector: sandbox.promql(s), 30, f"{family} scraped")
    finally:
        stop_process(proc)
        print(f"--- operator log ---\n{log.read_text(errors='replace')[-4000:]}")
        release_finalizers(sandbox, namespace)
