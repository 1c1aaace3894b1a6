"""The Prometheus adapter against the sandbox's real Prometheus and simulated traffic."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from glideslope.api import AnalysisState, Severity, Trigger
from glideslope.core.analysis import Measurement, Order, render_query, tally, verdict
from glideslope.prom import PrometheusProvider
from tests.e2e.helpers import Cluster, wait_until

pytestmark = pytest.mark.e2e

ERROR_RATE = ('sum(rate(http_requests_total{namespace="{{namespace}}",revision="{{revision}}",code=~"5.."}[10s]))'
              ' / sum(rate(http_requests_total{namespace="{{namespace}}",revision="{{ revision }}"}[10s]))')


def app(namespace: str, name: str, revision: str, error_rate: str) -> list[dict[str, Any]]:
    labels = {"app": name, "glideslope.dev/revision": revision}
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
             "metadata": {"labels": labels, "annotations": {"sim.glideslope.dev/error-rate": error_rate}},
             "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
         "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
    ]


def measure(provider: PrometheusProvider, query: str) -> Measurement:
    return asyncio.run(provider.query(query))


def test_error_rate_of_a_revision_is_measured(sandbox: Cluster, namespace: str) -> None:
    sandbox.apply(app(namespace, "flaky", "bad7", "0.3"), namespace)
    query = render_query(ERROR_RATE, {"namespace": namespace, "revision": "bad7"})
    provider = PrometheusProvider(sandbox.prometheus_url, timeout=5)
    assert asyncio.run(provider.is_online())

    def settled() -> Measurement | None:
        m = measure(provider, query)
        assert m.error is None, m.error
        # Wait until the 10 s window holds only the pod's traffic.
        return m if m.value is not None and abs(m.value - 0.3) < 0.08 else None

    m = wait_until(settled, 60, "an error rate near 0.3")
    assert m.value == pytest.approx(0.3, abs=0.08)

    trigger = Trigger(name="error-rate", severity=Severity.CRITICAL, query=ERROR_RATE,
                      failure_condition="result > 0.1")
    status = tally(trigger, None, m, query)
    assert status.state == AnalysisState.FAILING and status.query == query
    v = verdict([trigger], [status], automatic=True, stage="rollout")
    assert v.action == Order.ROLLBACK
    assert v.message.startswith("trigger error-rate (critical): 0.")
    assert 'meets failureCondition "result > 0.1"' in v.message


def test_a_namespace_without_traffic_has_no_data_never_a_pass(sandbox: Cluster, namespace: str) -> None:
    query = render_query(ERROR_RATE, {"namespace": namespace, "revision": "none"})
    m = measure(PrometheusProvider(sandbox.prometheus_url, timeout=5), query)
    assert (m.value, m.error) == (None, None)

    trigger = Trigger(name="error-rate", query=ERROR_RATE, success_condition="result < 0.01")
    status = tally(trigger, None, m, query)
    assert status.state == AnalysisState.PENDING and status.successes == 0 and status.inconclusive == 1
    assert not verdict([trigger], [status], automatic=True, stage="validation").promotable


def test_invalid_promql_is_refused_by_prometheus(sandbox: Cluster) -> None:
    provider = PrometheusProvider(sandbox.prometheus_url, timeout=5)
    m = measure(provider, 'sum(rate(http_requests_total{code=~"5.."}[30s])')
    assert m.value is None and m.error is not None
    assert m.error.startswith("Prometheus refused the query:") and "parse error" in m.error
    refused = asyncio.run(provider.check('sum(rate(http_requests_total{code=~"5.."}[30s])'))
    assert refused is not None and "parse error" in refused
    assert asyncio.run(provider.check("sum(rate(http_requests_total[30s]))")) is None


def test_many_series_is_an_error(sandbox: Cluster) -> None:
    m = measure(PrometheusProvider(sandbox.prometheus_url, timeout=5), 'up{job=~"simulator|prometheus"}')
    assert m.value is None and m.error is not None and "aggregate it" in m.error


def test_an_unreachable_prometheus_is_an_error_quickly() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    provider = PrometheusProvider(f"http://127.0.0.1:{port}", timeout=5)
    started = time.monotonic()
    m = measure(provider, "up")
    assert m.value is None and m.error is not None and "cannot reach Prometheus" in m.error
    assert time.monotonic() - started < 2
    assert not asyncio.run(provider.is_online())
