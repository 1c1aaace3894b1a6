"""The sandbox traffic simulator's pure model, and how its ticks land in Prometheus metrics."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from glideslope.sandbox.simulator import BUCKETS, MetricsSink, _items, parse_args
from glideslope.sandbox.traffic_model import (
    DEFAULT_LATENCY_MS,
    ERROR_RATE_ANNOTATION,
    JITTER,
    LATENCY_ANNOTATION,
    NOISE_ANNOTATION,
    RATE_ANNOTATION,
    REVISION_LABEL,
    ROLE_LABEL,
    SERVICE_NAME_LABEL,
    WEIGHT_ANNOTATION,
    ClusterView,
    RevisionKey,
    SeriesKey,
    Target,
    Tick,
    TrafficModel,
    build_view,
    parse_behaviour,
    split,
    target_rates,
)

pytestmark = pytest.mark.unit

NS = "shop"


# --------------------------------------------------------------------------- builders


def pod(
    name: str,
    *,
    app: str = "web",
    revision: str | None = "r1",
    ready: bool = True,
    annotations: dict[str, str] | None = None,
    namespace: str = NS,
    deleting: bool = False,
) -> dict[str, Any]:
    labels = {"app": app}
    if revision is not None:
        labels[REVISION_LABEL] = revision
    metadata: dict[str, Any] = {"namespace": namespace, "name": name, "labels": labels}
    if annotations:
        metadata["annotations"] = annotations
    if deleting:
        metadata["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return {
        "metadata": metadata,
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def service(name: str, selector: dict[str, str] | None, namespace: str = NS) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "ClusterIP"}
    if selector is not None:
        spec["selector"] = selector
    return {"metadata": {"namespace": namespace, "name": name}, "spec": spec}


def endpoint_slice(
    svc: str, endpoints: dict[str, bool | None], namespace: str = NS, suffix: str = "abcde"
) -> dict[str, Any]:
    items = []
    for pod_name, ready in endpoints.items():
        conditions = {} if ready is None else {"ready": ready}
        items.append(
            {
                "addresses": ["10.0.0.1"],
                "conditions": conditions,
                "targetRef": {"kind": "Pod", "namespace": namespace, "name": pod_name},
            }
        )
    return {
        "metadata": {
            "namespace": namespace,
            "name": f"{svc}-{suffix}",
            "labels": {SERVICE_NAME_LABEL: svc},
        },
        "addressType": "IPv4",
        "endpoints": items,
    }


def http_route(name: str, *rules: list[dict[str, Any]], namespace: str = NS) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"namespace": namespace, "name": name},
        "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": refs} for refs in rules]},
    }


def run(model: TrafficModel, view: ClusterView, seconds: float, tick: float = 0.25) -> list[Tick]:
    return [model.tick(view, tick) for _ in range(round(seconds / tick))]


def per_pod(ticks: list[Tick]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for tick in ticks:
        for traffic in tick.traffic:
            counts[traffic.key.pod] += traffic.requests
    return counts


def per_service(ticks: list[Tick]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for tick in ticks:
        for traffic in tick.traffic:
            counts[traffic.key.service] += traffic.requests
    return counts


def errors_and_total(ticks: list[Tick], pod_name: str) -> tuple[int, int]:
    errors = total = 0
    for tick in ticks:
        for traffic in tick.traffic:
            if traffic.key.pod == pod_name:
                errors += traffic.errors
                total += traffic.requests
    return errors, total


def web_view(*pods: dict[str, Any], ready: dict[str, bool | None] | None = None) -> ClusterView:
    """Service `web` over the given pods, with an EndpointSlice saying which are ready."""
    names = {p["metadata"]["name"]: True for p in pods}
    return build_view(
        [service("web", {"app": "web"})],
        [endpoint_slice("web", ready if ready is not None else dict(names))],
        list(pods),
    )


# --------------------------------------------------------------------------- splitting


def test_even_split_over_ready_pods() -> None:
    view = web_view(pod("a"), pod("b"), pod("c"))
    rates = target_rates(view, 50)
    assert set(rates) == {Target(NS, "web", p) for p in "abc"}
    assert all(r == pytest.approx(50 / 3) for r in rates.values())

    counts = per_pod(run(TrafficModel(rate=60, rng=random.Random(1)), view, seconds=5))
    assert counts == {"a": 100, "b": 100, "c": 100}


def test_fractional_requests_carry_over_between_ticks() -> None:
    # 3 requests/s over 3 pods with 4 ticks a second: a quarter of a request per pod per tick.
    view = web_view(pod("a"), pod("b"), pod("c"))
    model = TrafficModel(rate=3, rng=random.Random(1))
    ticks = run(model, view, seconds=1)
    assert per_pod(ticks[:3]) == {}
    assert per_pod(ticks) == {"a": 1, "b": 1, "c": 1}
    assert per_pod(run(model, view, seconds=10)) == {"a": 10, "b": 10, "c": 10}


def test_uneven_ticks_still_give_the_exact_rate() -> None:
    view = web_view(pod("a"))
    model = TrafficModel(rate=50, rng=random.Random(1))
    gaps = [0.237, 0.251, 0.3, 0.19, 0.022] * 20  # 20 seconds in all
    total = sum(t.requests for gap in gaps for t in model.tick(view, gap).traffic)
    assert abs(total - 50 * sum(gaps)) <= 1


def test_not_ready_pods_get_nothing() -> None:
    view = web_view(pod("a"), pod("b"), pod("c"), ready={"a": True, "b": False, "c": None})
    rates = target_rates(view, 50)
    # An endpoint with no `ready` condition counts as ready, as the API documents.
    assert rates == {Target(NS, "web", "a"): 25.0, Target(NS, "web", "c"): 25.0}
    assert per_pod(run(TrafficModel(rng=random.Random(1)), view, seconds=2)) == {"a": 50, "c": 50}


def test_without_endpoint_slices_falls_back_to_ready_pods_matching_the_selector() -> None:
    view = build_view(
        [service("web", {"app": "web"})],
        [],
        [
            pod("a"),
            pod("b", ready=False),
            pod("c", deleting=True),
            pod("other-app", app="db"),
            pod("elsewhere", namespace="other"),
        ],
    )
    assert target_rates(view, 50) == {Target(NS, "web", "a"): 50.0}


def test_pods_are_counted_once_across_slices() -> None:
    # Dual-stack Services have one EndpointSlice per address family, naming the same pods.
    view = build_view(
        [service("web", {"app": "web"})],
        [
            endpoint_slice("web", {"a": True, "b": True}, suffix="v4"),
            endpoint_slice("web", {"a": True, "b": False}, suffix="v6"),
        ],
        [pod("a"), pod("b")],
    )
    assert target_rates(view, 50) == {Target(NS, "web", "a"): 25.0, Target(NS, "web", "b"): 25.0}


def test_service_without_ready_pods_or_selector_gets_no_series() -> None:
    view = build_view(
        [service("web", {"app": "web"}), service("external", None), service("empty", {"app": "none"})],
        [endpoint_slice("web", {"a": False}), endpoint_slice("external", {"a": True})],
        [pod("a")],
    )
    model = TrafficModel(rng=random.Random(1))
    ticks = run(model, view, seconds=2)
    assert target_rates(view, 50) == {}
    assert all(not t.traffic and not t.new_series for t in ticks)
    assert model.series == frozenset()


def test_requests_to_a_service_without_a_ready_endpoint_are_counted_unserved() -> None:
    """A client of a Service with no ready endpoint gets an error: the simulator counts those
    requests per Service (`http_requests_unserved_total`), and only those."""
    view = build_view(
        [service("web", {"app": "web"}), service("empty", {"app": "none"}), service("external", None)],
        [endpoint_slice("web", {"a": True, "b": False}), endpoint_slice("empty", {"b": False})],
        [pod("a"), pod("b", ready=False)],
    )
    ticks = run(TrafficModel(rate=40, rng=random.Random(1)), view, seconds=2)
    lost: Counter[str] = Counter()
    for tick in ticks:
        for (namespace, name), amount in tick.unserved:
            assert namespace == NS
            lost[name] += amount
    assert set(lost) == {"empty"}
    assert lost["empty"] == pytest.approx(80)
    assert per_service(ticks) == {"web": 80}

    registry = CollectorRegistry()
    sink = MetricsSink(registry)
    for tick in ticks:
        sink.apply(tick)
    assert registry.get_sample_value("http_requests_unserved_total",
                                     {"namespace": NS, "service": "empty"}) == pytest.approx(80)
    assert registry.get_sample_value("http_requests_unserved_total", {"namespace": NS, "service": "web"}) is None


def test_endpoint_naming_a_pod_not_listed_yet_is_ignored() -> None:
    view = web_view(pod("a"), ready={"a": True, "ghost": True})
    assert target_rates(view, 50) == {Target(NS, "web", "a"): 50.0}


def test_each_service_gets_the_full_rate() -> None:
    view = build_view(
        [service("web", {"app": "web"}), service("api", {"app": "api"})],
        [endpoint_slice("web", {"w1": True}), endpoint_slice("api", {"a1": True, "a2": True})],
        [pod("w1"), pod("a1", app="api"), pod("a2", app="api")],
    )
    counts = per_service(run(TrafficModel(rng=random.Random(1)), view, seconds=4))
    assert counts == {"web": 200, "api": 200}


def test_a_service_annotation_sets_its_own_rate_and_others_keep_the_simulators() -> None:
    web = service("web", {"app": "web"})
    web["metadata"]["annotations"] = {RATE_ANNOTATION: "150"}
    idle = service("idle", {"app": "idle"})
    idle["metadata"]["annotations"] = {RATE_ANNOTATION: "0"}
    bad = service("api", {"app": "api"})
    bad["metadata"]["annotations"] = {RATE_ANNOTATION: "1e9"}  # past the bound: the simulator's rate
    view = build_view([web, idle, bad],
                      [endpoint_slice("web", {"w1": True}), endpoint_slice("idle", {"i1": True}),
                       endpoint_slice("api", {"a1": True})],
                      [pod("w1"), pod("i1", app="idle"), pod("a1", app="api")])
    counts = per_service(run(TrafficModel(rng=random.Random(1)), view, seconds=4))
    assert counts == {"web": 600, "api": 200}


def test_pod_weights_split_a_service_and_weight_zero_gets_nothing() -> None:
    view = web_view(pod("a", annotations={WEIGHT_ANNOTATION: "2"}), pod("b"),
                    pod("c", annotations={WEIGHT_ANNOTATION: "0"}), pod("d", annotations={WEIGHT_ANNOTATION: "x"}))
    assert parse_behaviour({WEIGHT_ANNOTATION: "x"}).problems
    counts = per_pod(run(TrafficModel(rate=50, rng=random.Random(1)), view, seconds=4))
    assert counts == {"a": 100, "b": 50, "d": 50}
    # Only weight-0 pods ready: nobody answers, and clients see it.
    alone = web_view(pod("c", annotations={WEIGHT_ANNOTATION: "0"}))
    assert split(alone, 50).unserved == {(NS, "web"): 50}


# --------------------------------------------------------------------------- HTTPRoutes


def canary_view(*routes: dict[str, Any], extra_services: int = 0) -> ClusterView:
    """Services `web-stable` (two pods, r1) and `web-canary` (one pod, r2)."""
    return build_view(
        [service("web-stable", {"app": "web", REVISION_LABEL: "r1"}),
         service("web-canary", {"app": "web", REVISION_LABEL: "r2"})],
        [endpoint_slice("web-stable", {"s1": True, "s2": True}),
         endpoint_slice("web-canary", {"c1": True})],
        [pod("s1"), pod("s2"), pod("c1", revision="r2")],
        list(routes),
    )  # fmt: skip


def test_httproute_weights_80_20() -> None:
    route = http_route(
        "web", [{"name": "web-stable", "port": 80, "weight": 80}, {"name": "web-canary", "weight": 20}]
    )
    view = canary_view(route)
    rates = target_rates(view, 50)
    assert rates[Target(NS, "web-stable", "s1")] == pytest.approx(20)
    assert rates[Target(NS, "web-stable", "s2")] == pytest.approx(20)
    assert rates[Target(NS, "web-canary", "c1")] == pytest.approx(10)

    ticks = run(TrafficModel(rng=random.Random(1)), view, seconds=10)
    counts = per_service(ticks)
    assert counts == {"web-stable": 400, "web-canary": 100}
    assert sum(counts.values()) == 500  # 50/s for the route, not 50/s more per Service


def test_route_backends_get_no_traffic_of_their_own() -> None:
    view = canary_view(
        http_route("web", [{"name": "web-stable", "weight": 100}, {"name": "web-canary", "weight": 0}])
    )
    rates = target_rates(view, 50)
    assert set(rates) == {Target(NS, "web-stable", "s1"), Target(NS, "web-stable", "s2")}
    assert sum(rates.values()) == pytest.approx(50)


def test_route_default_weight_is_one_and_other_services_keep_their_traffic() -> None:
    view = build_view(
        [service("web-stable", {"app": "web", REVISION_LABEL: "r1"}),
         service("web-canary", {"app": "web", REVISION_LABEL: "r2"}),
         service("api", {"app": "api"})],
        [endpoint_slice("web-stable", {"s1": True}), endpoint_slice("web-canary", {"c1": True}),
         endpoint_slice("api", {"a1": True})],
        [pod("s1"), pod("c1", revision="r2"), pod("a1", app="api")],
        [http_route("web", [{"name": "web-stable"}, {"name": "web-canary"}])],
    )  # fmt: skip
    assert target_rates(view, 50) == {
        Target(NS, "web-stable", "s1"): 25.0,
        Target(NS, "web-canary", "c1"): 25.0,
        Target(NS, "api", "a1"): 50.0,
    }


def test_route_in_another_namespace_and_non_service_backends() -> None:
    view = build_view(
        [service("web", {"app": "web"})],
        [endpoint_slice("web", {"a": True})],
        [pod("a")],
        [
            http_route(
                "edge",
                [
                    {"name": "web", "namespace": NS, "weight": 1},
                    {"name": "bucket", "group": "example.com", "kind": "Bucket", "weight": 1},
                    {"name": "missing-service", "weight": 2},
                ],
                namespace="gateway",
            )
        ],
    )
    # Half of the weight goes to backends we cannot simulate; that share is lost, not moved.
    assert target_rates(view, 40) == {Target(NS, "web", "a"): 10.0}


def test_route_rules_share_the_route_rate() -> None:
    route = http_route("web", [{"name": "web-stable"}], [{"name": "web-canary"}], [])
    assert target_rates(canary_view(route), 50) == {
        Target(NS, "web-stable", "s1"): 12.5,
        Target(NS, "web-stable", "s2"): 12.5,
        Target(NS, "web-canary", "c1"): 25.0,
    }


def test_route_share_of_a_service_without_ready_pods_is_dropped() -> None:
    view = build_view(
        [service("web-stable", {"app": "web", REVISION_LABEL: "r1"}),
         service("web-canary", {"app": "web", REVISION_LABEL: "r2"})],
        [endpoint_slice("web-stable", {"s1": True}), endpoint_slice("web-canary", {"c1": False})],
        [pod("s1"), pod("c1", revision="r2", ready=False)],
        [http_route("web", [{"name": "web-stable", "weight": 90}, {"name": "web-canary", "weight": 10}])],
    )  # fmt: skip
    assert target_rates(view, 50) == {Target(NS, "web-stable", "s1"): pytest.approx(45)}


# --------------------------------------------------------------------------- header, mirror, Istio, nginx

SIM_HEADER = {"sim.glideslope.dev/header": "X-Beta: yes-please", "sim.glideslope.dev/header-share": "0.2"}


def routed_view(*, routes: Sequence[dict[str, Any]] = (), virtual_services: Sequence[dict[str, Any]] = (),
                ingresses: Sequence[dict[str, Any]] = ()) -> ClusterView:
    """`web-stable` (two pods, r1) and `web-canary` (one pod, r2) behind the given routes."""
    return build_view(
        [service("web-stable", {"app": "web", REVISION_LABEL: "r1"}),
         service("web-canary", {"app": "web", REVISION_LABEL: "r2"})],
        [endpoint_slice("web-stable", {"s1": True, "s2": True}), endpoint_slice("web-canary", {"c1": True})],
        [pod("s1"), pod("s2"), pod("c1", revision="r2")],
        routes, virtual_services=virtual_services, ingresses=ingresses,
    )  # fmt: skip


def by_service(rates: dict[Target, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for target, rate in rates.items():
        out[target.service] = out.get(target.service, 0.0) + rate
    return {k: pytest.approx(v) for k, v in out.items()}


def test_httproute_header_rule_takes_header_requests_and_only_them() -> None:
    route = http_route("web", [{"name": "web-stable", "weight": 90}, {"name": "web-canary", "weight": 10}])
    route["metadata"]["annotations"] = SIM_HEADER
    route["spec"]["rules"].insert(0, {"matches": [{"headers": [{"name": "x-beta", "value": "yes-please"}]}],
                                      "backendRefs": [{"name": "web-canary"}]})
    found = split(routed_view(routes=[route]), 50)
    # 10 requests/s carry the header, all to the canary; of the other 40, 10% to the canary.
    assert by_service(found.header) == {"web-canary": 10}
    assert by_service(found.client) == {"web-stable": 36, "web-canary": 14}
    assert found.mirrored == {}


def test_httproute_regex_header_and_request_mirror() -> None:
    route = http_route("web", [{"name": "web-stable"}])
    route["metadata"]["annotations"] = SIM_HEADER
    route["spec"]["rules"][0]["filters"] = [{"type": "RequestMirror", "requestMirror": {
        "backendRef": {"name": "web-canary"}, "percent": 40}}]
    route["spec"]["rules"].insert(0, {"matches": [{"headers": [
        {"type": "RegularExpression", "name": "X-Beta", "value": "yes-.*"}]}], "backendRefs": [{"name": "web-canary"}]})
    found = split(routed_view(routes=[route]), 50)
    assert by_service(found.client) == {"web-stable": 40, "web-canary": 10}
    # 40% of the stable rule's 40 requests/s are copied; the copies are not client requests.
    assert by_service(found.mirrored) == {"web-canary": 16}


def virtual_service(*http: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"namespace": NS, "name": "web", "annotations": SIM_HEADER}, "spec": {"http": list(http)}}


def test_virtual_service_first_match_weights_and_mirror() -> None:
    vs = virtual_service(
        {"name": "beta", "match": [{"headers": {"x-beta": {"prefix": "yes"}}}],
         "route": [{"destination": {"host": "web-canary"}}]},
        {"name": "primary",
         "route": [{"destination": {"host": f"web-stable.{NS}.svc.cluster.local"}, "weight": 70},
                   {"destination": {"host": f"web-canary.{NS}"}, "weight": 30}],
         "mirror": {"host": "web-canary"}, "mirrorPercentage": {"value": 50.0}},
        # Never reached: the route before matches every request.
        {"name": "unreached", "route": [{"destination": {"host": "web-stable"}}]})
    found = split(routed_view(virtual_services=[vs]), 50)
    assert by_service(found.client) == {"web-stable": 28, "web-canary": 22}
    assert by_service(found.header) == {"web-canary": 10}
    assert by_service(found.mirrored) == {"web-canary": 20}


def ingress(name: str, service_name: str, annotations: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"namespace": NS, "name": name, "annotations": annotations},
            "spec": {"rules": [{"host": "web.example", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": service_name, "port": {"number": 80}}}}]}}]}}


@pytest.mark.parametrize("by_header", [
    {"nginx.ingress.kubernetes.io/canary-by-header-value": "yes-please"},
    {"nginx.ingress.kubernetes.io/canary-by-header-pattern": "^yes-.*$"},
])
def test_nginx_canary_by_header_then_by_weight(by_header: dict[str, str]) -> None:
    canary = ingress("web-canary", "web-canary", {"nginx.ingress.kubernetes.io/canary": "true",
                                                  "nginx.ingress.kubernetes.io/canary-weight": "25",
                                                  "nginx.ingress.kubernetes.io/canary-by-header": "x-beta",
                                                  **by_header})
    found = split(routed_view(ingresses=[ingress("web", "web-stable", SIM_HEADER), canary]), 50)
    assert by_service(found.header) == {"web-canary": 10}
    assert by_service(found.client) == {"web-stable": 30, "web-canary": 20}


def test_nginx_canary_of_another_path_or_without_its_ingress_takes_nothing() -> None:
    canary = ingress("web-canary", "web-canary", {"nginx.ingress.kubernetes.io/canary": "true",
                                                  "nginx.ingress.kubernetes.io/canary-weight": "50"})
    canary["spec"]["rules"][0]["host"] = "other.example"
    found = split(routed_view(ingresses=[ingress("web", "web-stable", {}), canary]), 50)
    # The canary's Service is its own (no route names it); the Ingress's goes all to the stable one.
    assert by_service(found.client) == {"web-stable": 50, "web-canary": 50}


def test_header_and_mirror_counts_per_revision_and_retired() -> None:
    vs = virtual_service({"name": "primary", "route": [{"destination": {"host": "web-stable"}}],
                          "mirror": {"host": "web-canary"}, "mirrorPercentage": {"value": 50}})
    model = TrafficModel(rate=40, rng=random.Random(1))
    ticks = run(model, routed_view(virtual_services=[vs]), seconds=5)
    header: Counter[RevisionKey] = Counter()
    mirrored: Counter[RevisionKey] = Counter()
    for tick in ticks:
        header.update(dict(tick.header))
        mirrored.update(dict(tick.mirrored))
    assert header == {RevisionKey(NS, "web-stable", "r1"): 40}  # 20% of 40/s for 5 s
    assert mirrored == {RevisionKey(NS, "web-canary", "r2"): 100}
    assert per_service(ticks) == {"web-stable": 200}  # the copies are not client requests
    # The canary's pod goes: its counts go with it.
    gone = build_view([service("web-stable", {"app": "web", REVISION_LABEL: "r1"})],
                      [endpoint_slice("web-stable", {"s1": True})], [pod("s1")], virtual_services=[vs])
    assert model.tick(gone, 0.25).retired == (RevisionKey(NS, "web-canary", "r2"),)


def test_sink_exports_header_and_mirrored_counters() -> None:
    registry = CollectorRegistry()
    sink = MetricsSink(registry)
    key = RevisionKey(NS, "web-canary", "r2")
    sink.apply(Tick(traffic=(), new_series=(), removed=(), warnings=(), header=((key, 3),), mirrored=((key, 5),)))
    labels = {"namespace": NS, "service": "web-canary", "revision": "r2"}
    assert registry.get_sample_value("http_header_requests_total", labels) == 3
    assert registry.get_sample_value("http_mirrored_requests_total", labels) == 5
    sink.apply(Tick(traffic=(), new_series=(), removed=(), warnings=(), retired=(key,)))
    assert registry.get_sample_value("http_mirrored_requests_total", labels) is None


# --------------------------------------------------------------------------- behaviour


@pytest.mark.parametrize("error_rate", [0.5, 0.1, 0.05, 0.333])
def test_error_rate_is_accurate_over_short_windows(error_rate: float) -> None:
    view = web_view(pod("bad", annotations={ERROR_RATE_ANNOTATION: str(error_rate)}), pod("good"))
    model = TrafficModel(rng=random.Random(1))
    ticks = run(model, view, seconds=60)
    # Any window of 3 s (12 ticks, 75 requests) is within one request of the exact fraction.
    for start in range(0, len(ticks) - 12):
        errors, total = errors_and_total(ticks[start : start + 12], "bad")
        assert total == pytest.approx(75, abs=1)
        assert abs(errors - error_rate * total) <= 1
    assert errors_and_total(ticks, "good")[0] == 0


def test_error_rate_one_fails_everything() -> None:
    view = web_view(pod("a", annotations={ERROR_RATE_ANNOTATION: "1"}))
    errors, total = errors_and_total(run(TrafficModel(rng=random.Random(1)), view, seconds=2), "a")
    assert errors == total == 100


def test_latency_annotation_sets_the_durations() -> None:
    view = web_view(pod("slow", annotations={LATENCY_ANNOTATION: "200"}), pod("default"))
    ticks = run(TrafficModel(rng=random.Random(1)), view, seconds=4)
    durations: dict[str, list[float]] = {"slow": [], "default": []}
    for tick in ticks:
        for traffic in tick.traffic:
            durations[traffic.key.pod].extend(traffic.ok_durations + traffic.error_durations)
    for name, latency in (("slow", 0.2), ("default", DEFAULT_LATENCY_MS / 1000)):
        values = durations[name]
        assert len(values) == 100
        assert all(latency * (1 - JITTER) <= d <= latency * (1 + JITTER) for d in values)
        assert sum(values) / len(values) == pytest.approx(latency, rel=0.03)
        assert len(set(values)) > 1  # jittered, not constant


def test_errors_have_the_same_latency() -> None:
    view = web_view(pod("a", annotations={ERROR_RATE_ANNOTATION: "0.5", LATENCY_ANNOTATION: "100"}))
    ticks = run(TrafficModel(rng=random.Random(1)), view, seconds=2)
    errors = [d for t in ticks for tr in t.traffic for d in tr.error_durations]
    assert errors and all(0.09 <= d <= 0.11 for d in errors)


@pytest.mark.parametrize(
    ("annotations", "error_rate", "latency_ms", "problems"),
    [
        ({}, 0.0, 20.0, 0),
        ({ERROR_RATE_ANNOTATION: "0.25", LATENCY_ANNOTATION: "150.5"}, 0.25, 150.5, 0),
        ({ERROR_RATE_ANNOTATION: " 0 ", LATENCY_ANNOTATION: "0"}, 0.0, 0.0, 0),
        ({ERROR_RATE_ANNOTATION: "lots"}, 0.0, 20.0, 1),
        ({ERROR_RATE_ANNOTATION: "1.5"}, 0.0, 20.0, 1),
        ({ERROR_RATE_ANNOTATION: "-0.1"}, 0.0, 20.0, 1),
        ({ERROR_RATE_ANNOTATION: "nan"}, 0.0, 20.0, 1),
        ({LATENCY_ANNOTATION: "fast"}, 0.0, 20.0, 1),
        ({LATENCY_ANNOTATION: "-5"}, 0.0, 20.0, 1),
        ({LATENCY_ANNOTATION: "inf"}, 0.0, 20.0, 1),
        ({ERROR_RATE_ANNOTATION: "", LATENCY_ANNOTATION: "20ms"}, 0.0, 20.0, 2),
    ],
)
def test_parse_behaviour(
    annotations: dict[str, str], error_rate: float, latency_ms: float, problems: int
) -> None:
    behaviour = parse_behaviour(annotations)
    assert (behaviour.error_rate, behaviour.latency_ms, len(behaviour.problems)) == (
        error_rate,
        latency_ms,
        problems,
    )


def test_bad_annotation_falls_back_to_the_default_and_is_reported_once() -> None:
    view = web_view(pod("a", annotations={ERROR_RATE_ANNOTATION: "half", LATENCY_ANNOTATION: "-1"}))
    model = TrafficModel(rng=random.Random(1))
    ticks = run(model, view, seconds=3)
    warnings = [w for t in ticks for w in t.warnings]
    assert len(warnings) == 2
    assert all(w.startswith(f"pod {NS}/a: ") for w in warnings)
    assert any(ERROR_RATE_ANNOTATION in w and "'half'" in w for w in warnings)
    assert errors_and_total(ticks, "a") == (0, 150)
    durations = [d for t in ticks for tr in t.traffic for d in tr.ok_durations]
    assert all(0.018 <= d <= 0.022 for d in durations)


def test_missing_revision_label_is_an_empty_revision() -> None:
    view = web_view(pod("a", revision=None))
    tick = TrafficModel(rng=random.Random(1)).tick(view, 1.0)
    assert tick.new_series == (SeriesKey(NS, "web", "a", ""),)


# --------------------------------------------------------------------------- series lifecycle


def test_removed_pods_series_are_dropped() -> None:
    model = TrafficModel(rng=random.Random(1))
    before = web_view(pod("a"), pod("b"))
    first = model.tick(before, 1.0)
    assert set(first.new_series) == {SeriesKey(NS, "web", "a", "r1"), SeriesKey(NS, "web", "b", "r1")}

    after = web_view(pod("b"))
    tick = model.tick(after, 1.0)
    assert tick.removed == (SeriesKey(NS, "web", "a", "r1"),)
    assert model.series == {SeriesKey(NS, "web", "b", "r1")}
    assert [t.requests for t in tick.traffic] == [50]


def test_series_lifecycle_follows_membership_and_revision() -> None:
    model = TrafficModel(rng=random.Random(1))
    model.tick(web_view(pod("a"), pod("b")), 1.0)

    # Not ready but still an endpoint: the series stays (and stops growing).
    tick = model.tick(web_view(pod("a"), pod("b"), ready={"a": True, "b": False}), 1.0)
    assert tick.removed == ()
    assert [(t.key.pod, t.requests) for t in tick.traffic] == [("a", 50)]

    # Gone from the endpoints: dropped, although the pod still exists.
    tick = model.tick(web_view(pod("a"), pod("b"), ready={"a": True}), 1.0)
    assert tick.removed == (SeriesKey(NS, "web", "b", "r1"),)

    # The pod's revision label changes: the old series goes, a new one comes.
    tick = model.tick(web_view(pod("a", revision="r2")), 1.0)
    assert tick.removed == (SeriesKey(NS, "web", "a", "r1"),)
    assert tick.new_series == (SeriesKey(NS, "web", "a", "r2"),)

    # The Service is deleted.
    tick = model.tick(build_view([], [], [pod("a", revision="r2")]), 1.0)
    assert tick.removed == (SeriesKey(NS, "web", "a", "r2"),)
    assert model.series == frozenset()


def test_metrics_sink_records_and_drops_series() -> None:
    registry = CollectorRegistry()
    sink = MetricsSink(registry)
    model = TrafficModel(rng=random.Random(1))

    def value(name: str, pod_name: str, code: str) -> float | None:
        labels = {"namespace": NS, "service": "web", "pod": pod_name, "revision": "r1", "role": "", "code": code}
        return registry.get_sample_value(name, labels)

    def latency(name: str, code: str, revision: str = "r1", **more: str) -> float | None:
        labels = {"namespace": NS, "service": "web", "revision": revision, "role": "", "code": code, **more}
        return registry.get_sample_value(name, labels)

    view = web_view(pod("a", annotations={ERROR_RATE_ANNOTATION: "0.2"}), pod("b"))
    for tick in run(model, view, seconds=4):
        sink.apply(tick)
    assert value("http_requests_total", "a", "200") == 80
    assert value("http_requests_total", "a", "500") == 20
    assert value("http_requests_total", "b", "200") == 100
    assert value("http_requests_total", "b", "500") == 0  # present from the start, so ratios read 0
    # The histogram is per revision: both pods' requests.
    assert latency("http_request_duration_seconds_count", "500") == 20
    assert latency("http_request_duration_seconds_count", "200") == 180
    assert latency("http_request_duration_seconds_bucket", "200") is None  # needs `le`
    assert latency("http_request_duration_seconds_bucket", "200", le="0.025") == 180

    # One pod goes: its counter goes, the revision's histogram stays while a pod serves it.
    sink.apply(model.tick(web_view(pod("b")), 0.25))
    for code in ("200", "500"):
        assert value("http_requests_total", "a", code) is None
    assert value("http_requests_total", "b", "200") is not None
    assert latency("http_request_duration_seconds_count", "500") == 20
    # Its last pod changes revision: the old revision's histogram goes, the new one's comes.
    sink.apply(model.tick(web_view(pod("b", revision="r2")), 0.25))
    assert latency("http_request_duration_seconds_count", "200") is None
    assert latency("http_request_duration_seconds_count", "500", revision="r2") == 0


def test_buckets_cover_5ms_to_5s() -> None:
    assert BUCKETS[0] == 0.005 and BUCKETS[-1] == 5.0
    assert list(BUCKETS) == sorted(set(BUCKETS))


# --------------------------------------------------------------------------- shell helpers


def test_malformed_objects_are_skipped() -> None:
    view = build_view(
        [{"metadata": {}}, {"spec": {"selector": {"a": "b"}}}, service("web", {"app": "web"})],
        [
            {"metadata": {"namespace": NS, "name": "x"}},
            {"endpoints": "nope"},
            endpoint_slice("web", {"a": True}),
        ],
        [{"metadata": {"name": "no-namespace"}}, {"status": None}, pod("a")],
        [{"metadata": {"namespace": NS, "name": "r"}, "spec": {"rules": "bad"}}, {"spec": {}}],
    )
    assert target_rates(view, 50) == {Target(NS, "web", "a"): 50.0}


def test_items_of_a_raw_list_response() -> None:
    class Raw:
        data = b'{"kind": "PodList", "items": [{"metadata": {"name": "a"}}, 3]}'
        released = False

        def release_conn(self) -> None:
            self.released = True

    raw = Raw()
    assert _items(raw) == [{"metadata": {"name": "a"}}]
    assert raw.released


def test_command_line() -> None:
    args = parse_args(["--kubeconfig", "/tmp/kc", "--port", "9199"])
    assert (args.kubeconfig, args.port, args.rate, args.tick, args.host) == (
        "/tmp/kc",
        9199,
        50.0,
        0.25,
        "127.0.0.1",
    )
    with pytest.raises(SystemExit):
        parse_args(["--tick", "0"])
    with pytest.raises(SystemExit):
        parse_args(["--rate", "-1"])


def test_rate_must_be_sane() -> None:
    with pytest.raises(ValueError):
        TrafficModel(rate=float("nan"))


def test_noisy_pods_draw_their_own_rates_from_the_seed() -> None:
    """Item 4: with `sim.glideslope.dev/noise`, errors are Bernoulli draws around a per-pod rate and
    latencies lognormal around a per-pod latency; the same seed gives the same pods and draws."""
    noisy = {ERROR_RATE_ANNOTATION: "0.1", LATENCY_ANNOTATION: "40", NOISE_ANNOTATION: "true"}

    def totals(seed: int) -> tuple[dict[str, tuple[int, int]], list[float]]:
        model = TrafficModel(rate=400, rng=random.Random(seed), seed=seed)
        counts: dict[str, tuple[int, int]] = {}
        durations: list[float] = []
        for tick in run(model, web_view(pod("a", annotations=noisy), pod("b", annotations=noisy)), seconds=20):
            for traffic in tick.traffic:
                done, failed = counts.get(traffic.key.pod, (0, 0))
                counts[traffic.key.pod] = (done + traffic.requests, failed + traffic.errors)
                durations += traffic.ok_durations
        return counts, durations

    first, durations = totals(7)
    assert first == totals(7)[0]  # seeded: reproducible
    assert first != totals(8)[0]
    rates = {p: failed / done for p, (done, failed) in first.items()}
    # About 4000 requests a pod: each pod's rate is near 10%, but not exactly (noise), and they differ.
    assert all(0.06 < r < 0.15 for r in rates.values()), rates
    assert rates["a"] != rates["b"]  # a quiet pod would read exactly 0.1 over whole requests
    # Lognormal around ~40 ms: spread well beyond the fixed ±10% jitter of quiet pods.
    assert min(durations) < 0.036 and max(durations) > 0.044
    assert 0.035 < sorted(durations)[len(durations) // 2] < 0.045


def test_series_carry_the_pods_role() -> None:
    """The judge's baseline pods share the stable revision's label; `role` tells them apart."""
    baseline = pod("base")
    baseline["metadata"]["labels"][ROLE_LABEL] = "baseline"
    model = TrafficModel(rng=random.Random(1))
    tick = model.tick(web_view(pod("a"), baseline), 1.0)
    assert set(tick.new_series) == {SeriesKey(NS, "web", "a", "r1", ""), SeriesKey(NS, "web", "base", "r1", "baseline")}


# --------------------------------------------------------------------------- propagation delay, freeze, unserved


def lagging_route(weights: tuple[int, int], annotations: dict[str, str]) -> dict[str, Any]:
    route = http_route("web", [{"name": "web-stable", "weight": weights[0]},
                               {"name": "web-canary", "weight": weights[1]}])
    route["metadata"]["annotations"] = annotations
    return route


def canary_share(ticks: list[Tick]) -> float:
    counts = per_service(ticks)
    return counts["web-canary"] / (counts["web-canary"] + counts["web-stable"])


def test_new_route_weights_apply_only_after_the_propagation_delay() -> None:
    delay = {"sim.glideslope.dev/propagation-delay": "10s"}
    model = TrafficModel(rng=random.Random(1))
    run(model, canary_view(lagging_route((80, 20), delay)), seconds=5)
    moved = canary_view(lagging_route((40, 60), delay))
    assert canary_share(run(model, moved, seconds=9.5)) == pytest.approx(0.2, abs=0.01)  # not yet
    run(model, moved, seconds=0.5)
    assert canary_share(run(model, moved, seconds=5)) == pytest.approx(0.6, abs=0.01)  # 10 s after it was seen


def test_a_route_seen_first_applies_at_once_and_each_version_keeps_its_delay() -> None:
    delay = {"sim.glideslope.dev/propagation-delay": "2000ms"}
    model = TrafficModel(rng=random.Random(1))
    assert canary_share(run(model, canary_view(lagging_route((80, 20), delay)), seconds=1)) == pytest.approx(0.2)
    run(model, canary_view(lagging_route((50, 50), delay)), seconds=1)
    # a third version seen 1 s after the second: the second applies first, at its own time
    third = canary_view(lagging_route((0, 100), delay))
    assert canary_share(run(model, third, seconds=1)) == pytest.approx(0.2, abs=0.02)
    assert canary_share(run(model, third, seconds=1)) == pytest.approx(0.5, abs=0.02)
    assert canary_share(run(model, third, seconds=1)) == pytest.approx(1.0)


def test_a_frozen_route_keeps_its_weights_until_thawed() -> None:
    model = TrafficModel(rng=random.Random(1))
    run(model, canary_view(lagging_route((80, 20), {})), seconds=1)
    run(model, canary_view(lagging_route((80, 20), {"sim.glideslope.dev/frozen": "true"})), seconds=1)
    frozen = canary_view(lagging_route((0, 100), {"sim.glideslope.dev/frozen": "true"}))
    assert canary_share(run(model, frozen, seconds=5)) == pytest.approx(0.2, abs=0.01)
    assert canary_share(run(model, canary_view(lagging_route((0, 100), {})), seconds=1)) == pytest.approx(1.0)


@pytest.mark.parametrize("bad", ["soon", "-5s", "1h", ""])
def test_a_malformed_delay_is_none(bad: str) -> None:
    model = TrafficModel(rng=random.Random(1))
    run(model, canary_view(lagging_route((80, 20), {"sim.glideslope.dev/propagation-delay": bad})), seconds=1)
    moved = canary_view(lagging_route((50, 50), {"sim.glideslope.dev/propagation-delay": bad}))
    assert canary_share(run(model, moved, seconds=1)) == pytest.approx(0.5, abs=0.02)


def test_a_backend_named_only_by_rules_still_propagating_gets_no_traffic_of_its_own() -> None:
    delay = {"sim.glideslope.dev/propagation-delay": "10s"}
    model = TrafficModel(rng=random.Random(1))
    only_stable = http_route("web", [{"name": "web-stable"}])
    only_stable["metadata"]["annotations"] = delay
    run(model, canary_view(only_stable), seconds=1)
    ticks = run(model, canary_view(lagging_route((80, 20), delay)), seconds=2)
    assert per_service(ticks) == {"web-stable": 100}  # the canary Service is the route's, not its own


def test_requests_a_route_sends_to_a_service_without_ready_endpoints_are_unserved() -> None:
    view = build_view(
        [service("web-stable", {"app": "web", REVISION_LABEL: "r1"}),
         service("web-canary", {"app": "web", REVISION_LABEL: "r2"}), service("idle", {"app": "idle"})],
        [endpoint_slice("web-stable", {"s1": True}), endpoint_slice("web-canary", {"c1": False})],
        [pod("s1"), pod("c1", revision="r2", ready=False)],
        [http_route("web", [{"name": "web-stable", "weight": 90}, {"name": "web-canary", "weight": 10}])],
    )  # fmt: skip
    # `idle` has no endpoint either: its own requests (a client's, not a route's) are unserved too.
    assert split(view, 50).unserved == {(NS, "web-canary"): pytest.approx(5), (NS, "idle"): pytest.approx(50)}
    ticks = run(TrafficModel(rng=random.Random(1)), view, seconds=10)
    assert sum(n for t in ticks for key, n in t.unserved if key == (NS, "web-canary")) == 50
    sink = MetricsSink(CollectorRegistry())
    for tick in ticks:
        sink.apply(tick)
    assert sink.unserved.labels(NS, "web-canary")._value.get() == 50
