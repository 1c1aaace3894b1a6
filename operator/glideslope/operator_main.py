"""`glideslope operator`: kopf in-process, standalone (no peering yet), namespaced or cluster-wide."""

from __future__ import annotations

import logging

import kopf
from prometheus_client import REGISTRY, start_http_server

from glideslope import handlers, logs
from glideslope.kube.client import connect
from glideslope.metrics import OperatorMetrics


def run(*, namespaces: list[str], all_namespaces: bool, prometheus_url: str | None, metrics_port: int,
        interval: float, metrics_address: str = "0.0.0.0", health_port: int = 0,
        log_format: str = "auto") -> None:
    logs.configure(json=None if log_format == "auto" else log_format == "json")
    # One line per timer tick is noise; our own log lines say what happens.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    metrics = OperatorMetrics(REGISTRY)
    if metrics_port:
        start_http_server(metrics_port, addr=metrics_address)
    registry = kopf.OperatorRegistry()
    handlers.register(registry, connect(), interval=interval, metrics=metrics, prometheus_url=prometheus_url)
    # kopf's own health endpoint: liveness and readiness probes of the operator's pod.
    liveness = f"http://0.0.0.0:{health_port}/healthz" if health_port else None
    kopf.run(registry=registry, standalone=True, clusterwide=all_namespaces,
             namespaces=[] if all_namespaces else namespaces, liveness_endpoint=liveness)
