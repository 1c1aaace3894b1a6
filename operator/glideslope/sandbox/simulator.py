"""The sandbox's traffic simulator: simulated requests to every Service, as Prometheus metrics.

    python -m glideslope.sandbox.simulator --kubeconfig PATH --port 9101 [--rate 50] [--tick 0.25]

A background thread lists Services, EndpointSlices, Pods and the routes (HTTPRoutes, Istio
VirtualServices, Ingresses) in all namespaces about once a second (one list per kind) and
publishes an immutable `ClusterView`. The main loop turns that view into each tick's requests
with the pure `TrafficModel` and records them in
`http_requests_total{namespace,service,pod,revision,role,code}` and
`http_request_duration_seconds{namespace,service,revision,role,code}` (`role`: the pod's
`glideslope.dev/role` label, `baseline` for the judge's baseline pods), and the header-carrying
and mirrored requests in `http_header_requests_total` and `http_mirrored_requests_total`
(`{namespace,service,revision}`), served on `http://HOST:PORT/metrics`.

The exposition is kept small enough to be scraped every second with hundreds of Releases: the
histogram has no `pod` label and 12 buckets, and no `_created` series are exported. With 24
buckets per pod, 100 Releases' exposition was 4.5 MB, took longer than the 1 s scrape
deadline to render, and Prometheus marked the simulator down (`tests/bench/test_simulator_load.py`
measures it).

The API server may come and go (the sandbox restarts it): listing errors are logged and
retried, and traffic goes on following the last view that could be read.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    start_http_server,
)

from glideslope.sandbox.traffic_model import (
    CODE_ERROR,
    CODE_OK,
    CODES,
    DEFAULT_RATE,
    SERVICE_NAME_LABEL,
    ClusterView,
    SeriesKey,
    Tick,
    TrafficModel,
    build_view,
)

log = logging.getLogger("glideslope.sandbox.simulator")

LABELS = ("namespace", "service", "pod", "revision", "role", "code")
HISTOGRAM_LABELS = ("namespace", "service", "revision", "role", "code")
SIDE_LABELS = ("namespace", "service", "revision")
"""A latency quantile is asked per revision, never per pod: without `pod` the histogram has a
few series per Release instead of a few per pod."""
BUCKETS = (0.005, 0.01, 0.015, 0.02, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Histogram buckets, seconds: fine around the default 20 ms, up to 5 s."""

GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_VERSION = "v1"
ROUTE_KINDS = {
    "httproutes": (GATEWAY_GROUP, GATEWAY_VERSION),
    "virtualservices": ("networking.istio.io", "v1beta1"),
    "ingresses": ("networking.k8s.io", "v1"),
}
"""The routes the simulator follows, each listed across namespaces; a kind not served (its
CRD not installed) has none."""
MAX_TICK_SECONDS = 5.0
"""A longer gap (the process was stopped) is not made up for in one burst."""
REQUEST_TIMEOUT = (3.0, 15.0)
FAILURE_LOG_EVERY = 30.0


# --------------------------------------------------------------------------- metrics


class MetricsSink:
    """Records ticks into a counter (per pod) and a histogram (per revision); drops the series
    the model retires (a revision's histogram once its last pod's series goes)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "http_requests_total",
            "Simulated HTTP requests served by a pod through a Service.",
            LABELS,
            registry=registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Duration of simulated HTTP requests.",
            HISTOGRAM_LABELS,
            buckets=BUCKETS,
            registry=registry,
        )
        self.header = Counter(
            "http_header_requests_total",
            "Of the simulated requests, those carrying a route's header (sim.glideslope.dev/header).",
            SIDE_LABELS,
            registry=registry,
        )
        self.mirrored = Counter(
            "http_mirrored_requests_total",
            "Mirrored copies of simulated requests; their answers are thrown away (not in http_requests_total).",
            SIDE_LABELS,
            registry=registry,
        )
        self._pods: dict[tuple[str, str, str, str], set[str]] = {}
        """The pods with series, per (namespace, service, revision, role): its histogram's members."""
        self.unserved = Counter(
            "http_requests_unserved_total",
            "Simulated requests sent to a Service that had no ready endpoint (a client would see an error).",
            ("namespace", "service"),
            registry=registry,
        )

    def apply(self, tick: Tick) -> None:
        for key in tick.removed:
            revision = _revision(key)
            members = self._pods.get(revision, set())
            members.discard(key.pod)
            for code in CODES:
                # Older prometheus_client versions raise KeyError for an unknown series.
                with contextlib.suppress(KeyError):
                    self.requests.remove(*key, code)
                if not members:
                    with contextlib.suppress(KeyError):
                        self.duration.remove(*revision, code)
            if not members:
                self._pods.pop(revision, None)
        for key in tick.new_series:
            self._pods.setdefault(_revision(key), set()).add(key.pod)
            # Both codes exist from the first request, so an error ratio reads 0, not "no data".
            for code in CODES:
                self.requests.labels(*key, code)
                self.duration.labels(*_revision(key), code)
        for traffic in tick.traffic:
            for code, durations in ((CODE_OK, traffic.ok_durations), (CODE_ERROR, traffic.error_durations)):
                if not durations:
                    continue
                self.requests.labels(*traffic.key, code).inc(len(durations))
                histogram = self.duration.labels(*_revision(traffic.key), code)
                for seconds in durations:
                    histogram.observe(seconds)
        for counter, counts in ((self.header, tick.header), (self.mirrored, tick.mirrored)):
            for group, count in counts:
                counter.labels(*group).inc(count)
        for service, count in tick.unserved:
            self.unserved.labels(*service).inc(count)
        for group in tick.retired:
            for counter in (self.header, self.mirrored):
                with contextlib.suppress(KeyError):
                    counter.remove(*group)
        for warning in tick.warnings:
            log.warning("%s", warning)


def _revision(key: SeriesKey) -> tuple[str, str, str, str]:
    return key.namespace, key.service, key.revision, key.role


# --------------------------------------------------------------------------- cluster


class _FailureLog:
    """Logs the first failure of a streak, then at most every FAILURE_LOG_EVERY seconds."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.failing_since: float | None = None
        self.last_logged = 0.0

    def failed(self, error: BaseException) -> None:
        now = time.monotonic()
        if self.failing_since is None:
            self.failing_since = now
            self.last_logged = now
            log.warning("%s failed, retrying: %s", self.what, _describe(error))
        elif now - self.last_logged >= FAILURE_LOG_EVERY:
            self.last_logged = now
            log.warning(
                "%s still failing after %.0fs: %s", self.what, now - self.failing_since, _describe(error)
            )

    def succeeded(self) -> None:
        if self.failing_since is not None:
            log.info("%s works again after %.0fs", self.what, time.monotonic() - self.failing_since)
            self.failing_since = None


def _describe(error: BaseException) -> str:
    if isinstance(error, ApiException):
        return f"HTTP {error.status} {error.reason}"
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}"[:300]


@dataclass
class _Clients:
    api: Any
    core: Any
    discovery: Any
    custom: Any
    source_mtime: float | None


class ClusterWatcher(threading.Thread):
    """Relists the cluster every `interval` seconds and publishes the latest `ClusterView`."""

    def __init__(self, kubeconfig: str | None, interval: float, stop: threading.Event) -> None:
        super().__init__(name="cluster-watcher", daemon=True)
        self.kubeconfig = kubeconfig
        self.interval = interval
        self.stop_event = stop
        self._view = ClusterView()
        self._clients: _Clients | None = None
        self._routes: dict[str, list[dict[str, Any]]] = {plural: [] for plural in ROUTE_KINDS}
        self._routes_missing_logged: set[str] = set()
        self._list_failures = _FailureLog("listing the cluster")
        self._config_failures = _FailureLog("loading the kubeconfig")
        self._route_failures = {plural: _FailureLog(f"listing {plural}") for plural in ROUTE_KINDS}
        self.synced = threading.Event()
        """Set after the first successful listing."""

    @property
    def view(self) -> ClusterView:
        return self._view  # replaced whole, never mutated: reading it needs no lock

    def run(self) -> None:
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                self.refresh()
            except Exception as error:  # the loop must outlive any failure
                self._list_failures.failed(error)
            else:
                self._list_failures.succeeded()
            self.stop_event.wait(max(0.05, self.interval - (time.monotonic() - started)))
        if self._clients is not None:
            with contextlib.suppress(Exception):
                self._clients.api.close()

    def _mtime(self) -> float | None:
        if not self.kubeconfig:
            return None
        try:
            return os.stat(self.kubeconfig).st_mtime
        except OSError:
            return None

    def _connect(self) -> _Clients | None:
        """The API clients, rebuilt when the kubeconfig file changes (a new sandbox)."""
        mtime = self._mtime()
        if self._clients is not None and self._clients.source_mtime == mtime:
            return self._clients
        loader: Any = config  # the client's config loaders are not typed
        settings = client.Configuration()
        # No retries inside urllib3 (each one logs a warning): the next listing is the retry.
        settings.retries = 0
        try:
            if self.kubeconfig or not os.environ.get("KUBERNETES_SERVICE_HOST"):
                api = loader.new_client_from_config(
                    config_file=self.kubeconfig, client_configuration=settings
                )
            else:
                loader.load_incluster_config(client_configuration=settings)
                api = client.ApiClient(settings)
        except Exception as error:
            self._config_failures.failed(error)
            return self._clients  # keep the previous clients, if any
        self._config_failures.succeeded()
        if self._clients is not None:
            with contextlib.suppress(Exception):
                self._clients.api.close()
            log.info("kubeconfig %s changed; reconnected", self.kubeconfig)
        self._clients = _Clients(
            api=api,
            core=client.CoreV1Api(api),
            discovery=client.DiscoveryV1Api(api),
            custom=client.CustomObjectsApi(api),
            source_mtime=mtime,
        )
        return self._clients

    def refresh(self) -> None:
        clients = self._connect()
        if clients is None:
            return
        raw = {"_preload_content": False, "_request_timeout": REQUEST_TIMEOUT}
        services = _items(clients.core.list_service_for_all_namespaces(**raw))
        slices = _items(
            clients.discovery.list_endpoint_slice_for_all_namespaces(label_selector=SERVICE_NAME_LABEL, **raw)
        )
        pods = _items(clients.core.list_pod_for_all_namespaces(**raw))
        routes = {plural: self._list_routes(clients, plural) for plural in ROUTE_KINDS}
        self._view = build_view(services, slices, pods, routes["httproutes"],
                                virtual_services=routes["virtualservices"], ingresses=routes["ingresses"])
        if not self.synced.is_set():
            log.info(
                "first listing: %d services with a selector, %d pods, %d routes",
                len(self._view.services),
                len(self._view.pods),
                len(self._view.routes),
            )
            self.synced.set()

    def _list_routes(self, clients: _Clients, plural: str) -> list[dict[str, Any]]:
        """One kind of route; none while its CRD is not installed; the previous ones on other errors."""
        group, version = ROUTE_KINDS[plural]
        try:
            response = clients.custom.list_cluster_custom_object(
                group, version, plural, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
            )
            self._routes[plural] = _items(response)
        except ApiException as error:
            if error.status != 404:
                self._route_failures[plural].failed(error)
                return self._routes[plural]
            if plural not in self._routes_missing_logged:
                log.info("%s (%s/%s) is not served; will look again", plural, group, version)
                self._routes_missing_logged.add(plural)
            self._routes[plural] = []
        else:
            if plural in self._routes_missing_logged:
                log.info("%s (%s/%s) is served now", plural, group, version)
                self._routes_missing_logged.discard(plural)
            self._route_failures[plural].succeeded()
        return self._routes[plural]


def _items(response: Any) -> list[dict[str, Any]]:
    """The `items` of a raw (not deserialised) list response."""
    try:
        body = json.loads(response.data)
    finally:
        with contextlib.suppress(Exception):
            response.release_conn()
    items = body.get("items") if isinstance(body, dict) else None
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


# --------------------------------------------------------------------------- main loop


def run_ticks(
    model: TrafficModel,
    sink: MetricsSink,
    watcher: ClusterWatcher,
    tick: float,
    stop: threading.Event,
) -> None:
    """Every `tick` seconds, send the requests of the time actually elapsed."""
    last = time.monotonic()
    deadline = last
    while True:
        deadline += tick
        now = time.monotonic()
        if deadline < now - tick:  # fell behind (suspended, overloaded): do not race to catch up
            deadline = now + tick
        if stop.wait(max(0.0, deadline - now)):
            return
        now = time.monotonic()
        elapsed, last = min(now - last, MAX_TICK_SECONDS), now
        try:
            sink.apply(model.tick(watcher.view, elapsed))
        except Exception:  # a bug here must not stop the sandbox's traffic for good
            log.exception("tick failed")


def _positive(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, not {value}")
    return number


def _non_negative(value: str) -> float:
    number = float(value)
    if not number >= 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of at least 0, not {value}")
    return number


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m glideslope.sandbox.simulator",
        description="Send simulated requests to the sandbox's Services and export them as metrics.",
    )
    parser.add_argument(
        "--kubeconfig",
        default=os.environ.get("KUBECONFIG") or None,
        help="kubeconfig to read the cluster with (default: $KUBECONFIG, in-cluster, ~/.kube/config)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to serve /metrics on")
    parser.add_argument("--port", type=int, default=9101, help="port to serve /metrics on")
    parser.add_argument(
        "--rate",
        type=_non_negative,
        default=DEFAULT_RATE,
        help="requests per second per Service or HTTPRoute (default 50)",
    )
    parser.add_argument(
        "--tick", type=_positive, default=0.25, help="seconds between batches of requests (default 0.25)"
    )
    parser.add_argument(
        "--resync", type=_positive, default=1.0, help="seconds between listings of the cluster (default 1)"
    )
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of noisy pods' draws (sim.glideslope.dev/noise; default 0)")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received signal %d, stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    disable_created_metrics()  # type: ignore[no-untyped-call]  # a `_created` line per series, no query reads it
    sink = MetricsSink(REGISTRY)
    try:
        server, _ = start_http_server(args.port, addr=args.host, registry=REGISTRY)
    except OSError as error:
        log.error("cannot serve metrics on %s:%d: %s", args.host, args.port, error)
        return 1
    log.info(
        "serving metrics on http://%s:%d/metrics (%g requests/s per Service or HTTPRoute, "
        "tick %gs, kubeconfig %s)",
        args.host,
        args.port,
        args.rate,
        args.tick,
        args.kubeconfig or "default",
    )
    watcher = ClusterWatcher(args.kubeconfig, args.resync, stop)
    watcher.start()
    try:
        model = TrafficModel(rate=args.rate, rng=random.Random(args.seed), seed=args.seed)
        run_ticks(model, sink, watcher, args.tick, stop)
    finally:
        stop.set()
        server.shutdown()
        watcher.join(timeout=5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
