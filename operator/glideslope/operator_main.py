"""`glideslope operator`: kopf in-process, namespaced or cluster-wide; with several replicas, a
Lease elects the one that acts (kopf's peering would freeze them all)."""

from __future__ import annotations

import concurrent.futures
import http.server
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable

import kopf
from prometheus_client import REGISTRY, start_http_server

from glideslope import handlers, logs
from glideslope.egress import EgressPolicy
from glideslope.kube.client import Kube, connect
from glideslope.kube.leader import LeaderElector, LeaseConfig, elector_for
from glideslope.logs import get_logger
from glideslope.metrics import OperatorMetrics
from glideslope.runtime import Runtime

log = get_logger(__name__)


def run(*, namespaces: list[str], all_namespaces: bool, prometheus_url: str | None, metrics_port: int,
        interval: float, policy: EgressPolicy | None = None, metrics_address: str = "0.0.0.0", health_port: int = 0,
        log_format: str = "auto", log_level: str = "info", lease_namespace: str | None = None,
        lease_name: str = "glideslope", lease_seconds: float = 15.0) -> None:
    logs.configure(json=None if log_format == "auto" else log_format == "json", level=log_level)
    # One line per timer tick is noise; our own log lines say what happens.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    metrics = OperatorMetrics(REGISTRY)
    if metrics_port:
        start_http_server(metrics_port, addr=metrics_address)
    kube = _connect_counted(metrics)
    # kopf waits on a threading.Event in an executor thread that outlives a SIGTERM and holds
    # the process for minutes; a concurrent Future is awaited without one.
    stop: concurrent.futures.Future[None] = concurrent.futures.Future()
    lost = threading.Event()
    elector = None
    config: LeaseConfig | None = None
    if lease_namespace:
        config = _lease_config(lease_namespace, lease_name, lease_seconds)
        elector = elector_for(kube, config)
        if not _lead(elector, health_port):
            return

    def release() -> None:
        # After a lost lease the steppers may not all have stopped: leave the lease to expire.
        if elector is not None and not lost.is_set():
            elector.release()

    registry = kopf.OperatorRegistry()
    policy = policy or EgressPolicy.from_flags(prometheus_url=prometheus_url)
    runtime = handlers.register(registry, kube, interval=interval, metrics=metrics, prometheus_url=prometheus_url,
                                policy=policy, on_stop=release if elector else None,
                                namespaces=None if all_namespaces else namespaces)
    if elector is not None and config is not None:
        elector.keep(_on_lost(config, runtime, lost, stop))
    # kopf's own health endpoint: liveness and readiness probes of the operator's pod.
    liveness = f"http://0.0.0.0:{health_port}/healthz" if health_port else None
    try:
        kopf.run(registry=registry, standalone=True, clusterwide=all_namespaces,
                 namespaces=[] if all_namespaces else namespaces, liveness_endpoint=liveness, stop_flag=stop)
    finally:
        release()
    if lost.is_set():
        # Restarted by its Deployment, it comes back as a standby.
        log.error("lost the lease: exiting so that exactly one replica acts")
        sys.exit(1)


def _connect_counted(metrics: OperatorMetrics) -> Kube:
    """The API client, its calls and errors counted in the operator's metrics."""
    kube = connect()
    kube.api.on_error = lambda verb, resource, code: metrics.api_errors.labels(verb, resource, code).inc()
    kube.api.on_call = metrics.api_call
    return kube


def _lease_config(namespace: str, name: str, lease_seconds: float) -> LeaseConfig:
    """The Lease this replica competes for, under its pod's name (or host and pid outside a pod)."""
    identity = os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
    return LeaseConfig(namespace, name, identity, lease_seconds=lease_seconds,
                       renew_seconds=lease_seconds / 3, retry_seconds=min(2.0, lease_seconds / 3))


def _lead(elector: LeaderElector, health_port: int) -> bool:
    """Waits to hold the lease (False: told to stop first)."""
    # A standby is healthy too: serve /healthz until kopf's own endpoint takes the port.
    standby = _standby_health(health_port) if health_port else None
    leading = elector.acquire()
    if standby:
        standby.shutdown()
        standby.server_close()
    return leading


def _on_lost(lease: LeaseConfig, runtime: Runtime, lost: threading.Event,
             stop: concurrent.futures.Future[None]) -> Callable[[], None]:
    """What a lost lease does: fence the steppers, then stop kopf, and exit even if kopf does not stop."""

    def on_lost() -> None:
        lost.set()
        log.error("lost the lease: stopping the steppers")
        # Between the renew deadline and the lease's expiry no other replica leads yet:
        # stop and fence the steppers in that margin, then stop kopf.
        margin = lease.lease_seconds - lease.renew_deadline
        if not runtime.fence(wait=margin):
            log.error("lost the lease with ticks still running: their calls were fenced", seconds=round(margin, 1))
        # kopf's shutdown may itself wait on the unreachable API server: exit regardless.
        exit_anyway = threading.Timer(EXIT_SECONDS, _exit_now)
        exit_anyway.daemon = True
        exit_anyway.start()
        if not stop.done():
            stop.set_result(None)

    return on_lost


EXIT_SECONDS = 20.0
"""After a lost lease, the process exits this long after kopf was told to stop, stopped or not."""


def _exit_now() -> None:
    log.error("lost the lease: kopf did not stop in time, exiting", seconds=EXIT_SECONDS)
    logging.shutdown()
    os._exit(1)


class _Healthy(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # probes every few seconds are noise
        return


def _standby_health(port: int) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("0.0.0.0", port), _Healthy)
    threading.Thread(target=server.serve_forever, name="standby-health", daemon=True).start()
    return server
