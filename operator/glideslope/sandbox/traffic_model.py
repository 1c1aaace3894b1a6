"""The pure part of the sandbox's traffic simulator.

Given what the cluster shows (Services, EndpointSlices, Pods and HTTPRoutes, as the plain
JSON dicts the API server returns), decide for each tick how many simulated requests each
pod receives through each Service, how many of them fail and how long each one takes.

Nothing here performs I/O or reads a clock: the elapsed time of a tick is passed in and the
latency jitter comes from an injected `random.Random`, so the model is deterministic and
unit-testable. The I/O shell (listing the cluster, exporting Prometheus metrics) lives in
`glideslope.sandbox.simulator`.

Rules:

- Every Service with a selector gets `rate` requests per second (its annotation
  `sim.glideslope.dev/rate` says otherwise for it alone), split across its ready pods by their
  `sim.glideslope.dev/weight` (default 1, evenly; 0: a pod that gets no requests, as one a
  load balancer has stopped sending to). Membership and readiness come from the EndpointSlices labelled
  `kubernetes.io/service-name=<service>` (endpoint `conditions.ready`, unset meaning ready,
  mapped to pods by `targetRef`); a Service with no EndpointSlice at all falls back to the
  pods its selector matches whose `Ready` condition is `True`.
- A route gets `rate` requests per second: an HTTPRoute, an Istio VirtualService, or an Ingress
  (with the ingress-nginx canary Ingresses of its hosts and paths folded in). Each request
  takes the rules that match it and is split evenly across them and, within a rule, across its
  backends by weight (default 1). An HTTPRoute's requests take the matching rules with the most
  header matches (its precedence); a VirtualService's the first matching route; an Ingress's
  canary by header (`canary-by-header` with `-value` or `-pattern`) before its weight
  (`canary-weight`). A Service that any route names as a backend (or mirror) gets no traffic
  of its own, so a canary Service is never counted twice.
- A share of a route's requests carries a header, as its annotations say:
  `sim.glideslope.dev/header: "name: value"` and `sim.glideslope.dev/header-share` (0 to 1);
  the others carry none. Header-carrying requests are counted apart as well (`header`).
- Mirrors (an HTTPRoute's `RequestMirror` filter, a VirtualService's `mirror` with
  `mirrorPercentage`) copy that share of a rule's requests to another Service; the copies'
  answers are thrown away, so they are counted apart (`mirrored`), never as client requests.
- A route's new rules take effect `sim.glideslope.dev/propagation-delay` (a duration: `10s`,
  `500ms`, `1m`; default none) after the simulator first sees them, as a lagging router would
  apply them; `sim.glideslope.dev/frozen: "true"` keeps the rules in effect when it was set,
  whatever the route says, until it is removed. A Service the route names is never given
  traffic of its own meanwhile.
- Requests sent to a Service with no ready endpoint, by a route or to the Service itself, find
  none (a client would get an error): they are counted apart (`unserved`, per Service), never as
  served requests; a mirror's copies are not counted.
- A pod fails the fraction `sim.glideslope.dev/error-rate` of its requests with code 500 and
  answers in about `sim.glideslope.dev/latency-ms` milliseconds.
- With `sim.glideslope.dev/noise: "true"` a pod is noisy, as real ones are (so the judge has
  something honest to judge): its own error rate and latency are the annotated ones times a
  per-pod factor drawn once from a lognormal distribution (sigma `POD_ERROR_SIGMA`,
  `POD_LATENCY_SIGMA`), seeded by the model's seed and the pod's name; each request then fails
  with that probability (a Bernoulli draw, not the carried fraction), and takes a lognormal
  time around the pod's latency (sigma `REQUEST_LATENCY_SIGMA`).
- Series carry the pod's `glideslope.dev/role` label as `role` (`baseline` for the judge's
  baseline pods, whose revision label is `<stable revision>-baseline`), so queries can tell
  them apart by either.
- Fractions carry over between ticks (requests per target, errors per target), so rates and
  error ratios are exact on average and accurate over short windows.
"""

from __future__ import annotations

import math
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

REVISION_LABEL = "glideslope.dev/revision"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
ERROR_RATE_ANNOTATION = "sim.glideslope.dev/error-rate"
LATENCY_ANNOTATION = "sim.glideslope.dev/latency-ms"
NOISE_ANNOTATION = "sim.glideslope.dev/noise"
RATE_ANNOTATION = "sim.glideslope.dev/rate"
WEIGHT_ANNOTATION = "sim.glideslope.dev/weight"
MAX_SERVICE_RATE = 10_000.0
"""Requests per second one Service may ask for: each is a draw or two when pods are noisy."""
MAX_POD_WEIGHT = 100.0
ROLE_LABEL = "glideslope.dev/role"
POD_ERROR_SIGMA = 0.15
"""A noisy pod's error rate is the annotated one times exp(N(0, this))."""
POD_LATENCY_SIGMA = 0.05
"""A noisy pod's latency is the annotated one times exp(N(0, this))."""
REQUEST_LATENCY_SIGMA = 0.25
"""A noisy pod's request takes its latency times exp(N(0, this))."""
DEFAULT_ERROR_RATE = 0.0
DEFAULT_LATENCY_MS = 20.0
DEFAULT_RATE = 50.0
HEADER_ANNOTATION = "sim.glideslope.dev/header"
HEADER_SHARE_ANNOTATION = "sim.glideslope.dev/header-share"
DELAY_ANNOTATION = "sim.glideslope.dev/propagation-delay"
FROZEN_ANNOTATION = "sim.glideslope.dev/frozen"
MAX_DELAY = 3600.0
"""A longer propagation delay is taken as this long (the route's history is kept in memory)."""
NGINX = "nginx.ingress.kubernetes.io/"
MAX_REGEX = 1024
"""A longer header regex on a route matches nothing: the simulator compiles what tenants wrote."""
JITTER = 0.1
"""Durations are drawn uniformly within this fraction either side of the pod's latency."""

CODE_OK = "200"
CODE_ERROR = "500"
CODES = (CODE_OK, CODE_ERROR)

_EPSILON = 1e-9
"""Tolerance when taking whole requests out of an accumulator (0.1 + 0.2 + ... drift)."""

Json = Mapping[str, Any]
ObjectKey = tuple[str, str]
"""(namespace, name) of a namespaced object."""


class Target(NamedTuple):
    """One pod reached through one Service."""

    namespace: str
    service: str
    pod: str


class RevisionKey(NamedTuple):
    """The labels of the header and mirror counters: per revision, never per pod."""

    namespace: str
    service: str
    revision: str


class SeriesKey(NamedTuple):
    """The labels of a metric series, all but `code` (each series exists for both codes)."""

    namespace: str
    service: str
    pod: str
    revision: str
    role: str = ""
    """The pod's `glideslope.dev/role` label (`baseline`), empty without one."""


# --------------------------------------------------------------------------- cluster view


@dataclass(frozen=True)
class Behaviour:
    """How a pod answers, from its annotations; `problems` lists annotations that were bad."""

    error_rate: float = DEFAULT_ERROR_RATE
    latency_ms: float = DEFAULT_LATENCY_MS
    problems: tuple[str, ...] = ()
    noise: bool = False
    """Per-pod and per-request noise (`sim.glideslope.dev/noise: "true"`)."""
    weight: float = 1.0
    """Its share of a Service's requests beside the other ready pods' (`sim.glideslope.dev/weight`)."""


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    labels: Mapping[str, str]
    ready: bool
    """`Ready` condition is `True` and the pod is not being deleted (used without slices)."""
    behaviour: Behaviour = field(default_factory=Behaviour)

    @property
    def revision(self) -> str:
        return self.labels.get(REVISION_LABEL, "")

    @property
    def role(self) -> str:
        return self.labels.get(ROLE_LABEL, "")


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    selector: Mapping[str, str]
    rate: float | None = None
    """Its own requests per second (`sim.glideslope.dev/rate`); None: the simulator's."""


@dataclass(frozen=True)
class BackendRef:
    namespace: str
    name: str
    weight: int
    is_service: bool
    """False for a backend of another kind: it still takes its share, which is lost to us."""


HeaderCondition = tuple[str, str, str]
"""(lower-case header name, exact | prefix | regex | search, value)"""


@dataclass(frozen=True)
class Rule:
    """Where the requests a rule matches go."""

    backends: tuple[BackendRef, ...]
    matches: tuple[tuple[HeaderCondition, ...], ...] = ((),)
    """Alternatives, each the headers a request must all carry; `()` alone: every request."""
    mirrors: tuple[tuple[ObjectKey, float], ...] = ()
    """(Service, percent of the rule's requests copied to it)."""


@dataclass(frozen=True)
class Route:
    namespace: str
    name: str
    rules: tuple[Rule, ...]
    first_match: bool = False
    """Istio: the first rule that matches takes a request; else the most header matches."""
    header: tuple[str, str] | None = None
    """(lower-case name, value) of the header a share of its requests carries."""
    header_share: float = 0.0
    delay: float = 0.0
    """Seconds its new rules take to apply (`sim.glideslope.dev/propagation-delay`)."""
    frozen: bool = False
    """Its rules stay as they were when it was frozen (`sim.glideslope.dev/frozen`)."""


@dataclass(frozen=True)
class ClusterView:
    """An immutable, indexed snapshot of what the simulator needs from the cluster."""

    services: Mapping[ObjectKey, Service] = field(default_factory=dict)
    pods: Mapping[ObjectKey, Pod] = field(default_factory=dict)
    members: Mapping[ObjectKey, Mapping[str, bool]] = field(default_factory=dict)
    """Per Service: its existing pods (by name) and whether each is ready to serve."""
    routes: tuple[Route, ...] = ()


def _dig(obj: Any, *path: str) -> Any:
    """obj[path[0]][path[1]]..., or None when any step is missing or not a mapping."""
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _meta(obj: Json) -> tuple[str, str] | None:
    namespace, name = _dig(obj, "metadata", "namespace"), _dig(obj, "metadata", "name")
    if isinstance(namespace, str) and isinstance(name, str) and namespace and name:
        return namespace, name
    return None


def parse_behaviour(annotations: Mapping[str, str]) -> Behaviour:
    """Read a pod's simulation annotations; a bad value counts as the default and is named."""
    problems: list[str] = []
    error_rate = DEFAULT_ERROR_RATE
    raw = annotations.get(ERROR_RATE_ANNOTATION)
    if raw is not None:
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if 0.0 <= value <= 1.0:
            error_rate = value
        else:
            problems.append(f"{ERROR_RATE_ANNOTATION}={raw!r} is not a number from 0 to 1")
    latency_ms = DEFAULT_LATENCY_MS
    raw = annotations.get(LATENCY_ANNOTATION)
    if raw is not None:
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0.0:
            latency_ms = value
        else:
            problems.append(f"{LATENCY_ANNOTATION}={raw!r} is not a non-negative number")
    noise = annotations.get(NOISE_ANNOTATION, "").strip().lower() == "true"
    weight = 1.0
    raw = annotations.get(WEIGHT_ANNOTATION)
    if raw is not None:
        weight = _bounded(raw, MAX_POD_WEIGHT)
        if math.isnan(weight):
            weight = 1.0
            problems.append(f"{WEIGHT_ANNOTATION}={raw!r} is not a number from 0 to {MAX_POD_WEIGHT:g}")
    return Behaviour(error_rate=error_rate, latency_ms=latency_ms, problems=tuple(problems), noise=noise,
                     weight=weight)


def _bounded(raw: str, most: float) -> float:
    """`raw` as a number from 0 to `most`, or NaN."""
    try:
        value = float(raw)
    except ValueError:
        return math.nan
    return value if 0.0 <= value <= most else math.nan


def parse_pod(obj: Json) -> Pod | None:
    key = _meta(obj)
    if key is None:
        return None
    conditions = _dig(obj, "status", "conditions")
    ready = False
    if isinstance(conditions, list):
        ready = any(
            isinstance(c, Mapping) and c.get("type") == "Ready" and c.get("status") == "True"
            for c in conditions
        )
    if _dig(obj, "metadata", "deletionTimestamp"):
        ready = False
    return Pod(
        namespace=key[0],
        name=key[1],
        labels=_str_map(_dig(obj, "metadata", "labels")),
        ready=ready,
        behaviour=parse_behaviour(_str_map(_dig(obj, "metadata", "annotations"))),
    )


def parse_service(obj: Json) -> Service | None:
    """A Service the simulator sends traffic to, or None (no selector, ExternalName...)."""
    key = _meta(obj)
    if key is None or _dig(obj, "spec", "type") == "ExternalName":
        return None
    selector = _str_map(_dig(obj, "spec", "selector"))
    if not selector:
        return None
    rate = _bounded(_str_map(_dig(obj, "metadata", "annotations")).get(RATE_ANNOTATION, "nan"), MAX_SERVICE_RATE)
    return Service(namespace=key[0], name=key[1], selector=selector, rate=None if math.isnan(rate) else rate)


def parse_endpoint_slice(obj: Json) -> tuple[ObjectKey, dict[str, bool]] | None:
    """((namespace, service), {pod name: ready}) of one EndpointSlice, or None."""
    key = _meta(obj)
    service = _dig(obj, "metadata", "labels", SERVICE_NAME_LABEL)
    if key is None or not isinstance(service, str) or not service:
        return None
    pods: dict[str, bool] = {}
    endpoints = obj.get("endpoints")
    for endpoint in endpoints if isinstance(endpoints, list) else []:
        ref = _dig(endpoint, "targetRef")
        if not isinstance(ref, Mapping) or ref.get("kind", "Pod") != "Pod":
            continue
        name = ref.get("name")
        if not isinstance(name, str) or ref.get("namespace", key[0]) != key[0]:
            continue
        # The API says an unset `ready` means ready.
        ready = _dig(endpoint, "conditions", "ready") is not False
        pods[name] = pods.get(name, False) or ready
    return (key[0], service), pods


def _weight(value: Any) -> int:
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return 0
    return value


def _header_of(obj: Json) -> tuple[tuple[str, str] | None, float]:
    """The header a share of a route's requests carries, from its annotations."""
    annotations = _str_map(_dig(obj, "metadata", "annotations"))
    raw, share = annotations.get(HEADER_ANNOTATION, ""), annotations.get(HEADER_SHARE_ANNOTATION, "")
    name, _, value = raw.partition(":")
    try:
        fraction = float(share)
    except ValueError:
        fraction = 0.0
    if not name.strip() or not 0.0 < fraction <= 1.0:
        return None, 0.0
    return (name.strip().lower(), value.strip()), fraction


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")


def _propagation_of(obj: Json) -> tuple[float, bool]:
    """(delay in seconds, frozen) from a route's annotations; a malformed delay is none."""
    annotations = _str_map(_dig(obj, "metadata", "annotations"))
    found = _DURATION.match(annotations.get(DELAY_ANNOTATION, ""))
    delay = 0.0
    if found is not None:
        delay = float(found.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[found.group(2)]
    return min(delay, MAX_DELAY), annotations.get(FROZEN_ANNOTATION, "").strip().lower() == "true"


def _gateway_rule(rule: Any, namespace: str) -> Rule:
    refs = _dig(rule, "backendRefs")
    backends: list[BackendRef] = []
    for ref in refs if isinstance(refs, list) else []:
        if not isinstance(ref, Mapping) or not isinstance(ref.get("name"), str):
            continue
        is_service = ref.get("group", "") in ("", "core") and ref.get("kind", "Service") == "Service"
        backends.append(BackendRef(namespace=str(ref.get("namespace") or namespace), name=ref["name"],
                                   weight=_weight(ref.get("weight")), is_service=is_service))
    alternatives: list[tuple[HeaderCondition, ...]] = []
    raw_matches = _dig(rule, "matches")
    for match in raw_matches if isinstance(raw_matches, list) else []:
        headers = _dig(match, "headers")
        conditions = []
        for h in headers if isinstance(headers, list) else []:
            if isinstance(h, Mapping) and isinstance(h.get("name"), str) and isinstance(h.get("value"), str):
                kind = "regex" if h.get("type") == "RegularExpression" else "exact"
                conditions.append((h["name"].lower(), kind, h["value"]))
        alternatives.append(tuple(conditions))
    mirrors: list[tuple[ObjectKey, float]] = []
    filters = _dig(rule, "filters")
    for f in filters if isinstance(filters, list) else []:
        ref = _dig(f, "requestMirror", "backendRef")
        if _dig(f, "type") != "RequestMirror" or not isinstance(_dig(ref, "name"), str):
            continue
        percent = _dig(f, "requestMirror", "percent")
        numerator, denominator = _dig(f, "requestMirror", "fraction", "numerator"), \
            _dig(f, "requestMirror", "fraction", "denominator") or 100
        if isinstance(percent, int):
            share = float(percent)
        elif isinstance(numerator, int) and isinstance(denominator, int) and denominator > 0:
            share = 100.0 * numerator / denominator
        else:
            share = 100.0
        mirrors.append(((str(ref.get("namespace") or namespace), ref["name"]), share))
    return Rule(backends=tuple(backends), matches=tuple(alternatives) or ((),), mirrors=tuple(mirrors))


def parse_route(obj: Json) -> Route | None:
    """A Gateway API HTTPRoute."""
    key = _meta(obj)
    if key is None:
        return None
    raw_rules = _dig(obj, "spec", "rules")
    rules = tuple(_gateway_rule(rule, key[0]) for rule in (raw_rules if isinstance(raw_rules, list) else []))
    header, share = _header_of(obj)
    delay, frozen = _propagation_of(obj)
    return Route(namespace=key[0], name=key[1], rules=rules, header=header, header_share=share, delay=delay,
                 frozen=frozen)


def _host_service(host: Any, namespace: str) -> ObjectKey | None:
    """The Service an Istio destination host names (short, `name.ns`, or the cluster FQDN)."""
    if not isinstance(host, str) or not host:
        return None
    parts = host.split(".")
    if len(parts) == 1:
        return namespace, parts[0]
    if len(parts) == 2 or (len(parts) >= 3 and parts[2] == "svc"):
        return parts[1], parts[0]
    return None


def parse_virtual_service(obj: Json) -> Route | None:
    """An Istio VirtualService: its `http` routes, first match wins."""
    key = _meta(obj)
    if key is None:
        return None
    rules: list[Rule] = []
    http = _dig(obj, "spec", "http")
    for route in http if isinstance(http, list) else []:
        destinations = _dig(route, "route")
        destinations = [d for d in destinations if isinstance(d, Mapping)] if isinstance(destinations, list) else []
        weighted = any("weight" in d for d in destinations)
        backends = []
        for d in destinations:
            svc = _host_service(_dig(d, "destination", "host"), key[0])
            weight = (_weight(d.get("weight")) if "weight" in d else 0) if weighted else 1
            backends.append(BackendRef(namespace=svc[0] if svc else key[0], name=svc[1] if svc else "",
                                       weight=weight, is_service=svc is not None))
        alternatives = []
        matches = _dig(route, "match")
        for match in matches if isinstance(matches, list) else []:
            headers = _dig(match, "headers")
            conditions = []
            for name, condition in (headers.items() if isinstance(headers, Mapping) else ()):
                for kind in ("exact", "prefix", "regex"):
                    if isinstance(_dig(condition, kind), str):
                        conditions.append((str(name).lower(), kind, condition[kind]))
            alternatives.append(tuple(conditions))
        mirrors: list[tuple[ObjectKey, float]] = []
        mirror = _host_service(_dig(route, "mirror", "host"), key[0])
        if mirror is not None:
            percent = _dig(route, "mirrorPercentage", "value")
            mirrors.append((mirror, float(percent) if isinstance(percent, int | float) else 100.0))
        rules.append(Rule(backends=tuple(backends), matches=tuple(alternatives) or ((),), mirrors=tuple(mirrors)))
    header, share = _header_of(obj)
    delay, frozen = _propagation_of(obj)
    return Route(namespace=key[0], name=key[1], rules=tuple(rules), first_match=True, header=header,
                 header_share=share, delay=delay, frozen=frozen)


def _ingress_paths(obj: Json) -> list[tuple[tuple[str, str], str]]:
    """((host, path), Service) of each path of an Ingress (and its default backend)."""
    out = []
    default = _dig(obj, "spec", "defaultBackend", "service", "name")
    if isinstance(default, str):
        out.append((("*", "*"), default))
    rules = _dig(obj, "spec", "rules")
    for rule in rules if isinstance(rules, list) else []:
        host = _dig(rule, "host") or ""
        paths = _dig(rule, "http", "paths")
        for path in paths if isinstance(paths, list) else []:
            service = _dig(path, "backend", "service", "name")
            if isinstance(service, str):
                out.append(((str(host), str(_dig(path, "path") or "/")), service))
    return out


def parse_ingresses(objs: Iterable[Json]) -> list[Route]:
    """Each Ingress that is not an ingress-nginx canary, as a route, with the canaries of the
    same host and path folded in as ingress-nginx applies them: by header first, then by weight."""
    stable: list[tuple[ObjectKey, Json]] = []
    canaries: dict[tuple[str, tuple[str, str]], tuple[str, dict[str, str]]] = {}
    for obj in objs:
        key = _meta(obj)
        if key is None:
            continue
        annotations = _str_map(_dig(obj, "metadata", "annotations"))
        if annotations.get(NGINX + "canary") == "true":
            for place, service in _ingress_paths(obj):
                canaries[(key[0], place)] = (service, annotations)
        else:
            stable.append((key, obj))
    routes = []
    for key, obj in stable:
        rules: list[Rule] = []
        for place, service in _ingress_paths(obj):
            main = BackendRef(key[0], service, 100, True)
            found = canaries.get((key[0], place))
            if found is None:
                rules.append(Rule(backends=(main,)))
                continue
            canary, canary_annotations = found
            try:
                total = max(int(canary_annotations.get(NGINX + "canary-weight-total", "100")), 1)
                weight = min(max(int(canary_annotations.get(NGINX + "canary-weight", "0")), 0), total)
            except ValueError:
                total, weight = 100, 0
            header = canary_annotations.get(NGINX + "canary-by-header", "").lower()
            if header:
                value = canary_annotations.get(NGINX + "canary-by-header-value")
                pattern = canary_annotations.get(NGINX + "canary-by-header-pattern")
                condition = ((header, "exact", value) if value else (header, "search", pattern) if pattern
                             else (header, "exact", "always"))
                rules.append(Rule(backends=(BackendRef(key[0], canary, 1, True),), matches=((condition,),)))
            rules.append(Rule(backends=(BackendRef(key[0], service, total - weight, True),
                                        BackendRef(key[0], canary, weight, True))))
        header_, share = _header_of(obj)
        delay, frozen = _propagation_of(obj)  # the stable Ingress's: the route people own
        routes.append(Route(namespace=key[0], name=key[1], rules=tuple(rules), header=header_, header_share=share,
                            delay=delay, frozen=frozen))
    return routes


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def build_view(
    services: Iterable[Json],
    endpoint_slices: Iterable[Json],
    pods: Iterable[Json],
    routes: Iterable[Json] = (),
    virtual_services: Iterable[Json] = (),
    ingresses: Iterable[Json] = (),
) -> ClusterView:
    """Index the raw objects of one listing; malformed objects are skipped."""
    svc_index: dict[ObjectKey, Service] = {}
    for obj in services:
        svc = parse_service(obj)
        if svc is not None:
            svc_index[(svc.namespace, svc.name)] = svc

    pod_index: dict[ObjectKey, Pod] = {}
    pods_by_namespace: dict[str, list[Pod]] = defaultdict(list)
    for obj in pods:
        pod = parse_pod(obj)
        if pod is not None:
            pod_index[(pod.namespace, pod.name)] = pod
            pods_by_namespace[pod.namespace].append(pod)

    from_slices: dict[ObjectKey, dict[str, bool]] = {}
    for obj in endpoint_slices:
        parsed = parse_endpoint_slice(obj)
        if parsed is None:
            continue
        svc_key, slice_pods = parsed
        merged = from_slices.setdefault(svc_key, {})
        for name, ready in slice_pods.items():
            merged[name] = merged.get(name, False) or ready

    members: dict[ObjectKey, dict[str, bool]] = {}
    for svc_key, svc in svc_index.items():
        if svc_key in from_slices:
            members[svc_key] = {
                name: ready
                for name, ready in from_slices[svc_key].items()
                if (svc.namespace, name) in pod_index
            }
        else:
            members[svc_key] = {
                pod.name: pod.ready
                for pod in pods_by_namespace.get(svc.namespace, ())
                if _matches(svc.selector, pod.labels)
            }

    route_list = [r for r in (parse_route(obj) for obj in routes) if r is not None]
    route_list += [r for r in (parse_virtual_service(obj) for obj in virtual_services) if r is not None]
    route_list += parse_ingresses(ingresses)
    route_list.sort(key=lambda r: (r.namespace, r.name))
    return ClusterView(services=svc_index, pods=pod_index, members=members, routes=tuple(route_list))


# --------------------------------------------------------------------------- traffic split


def _condition_holds(condition: HeaderCondition, header: tuple[str, str] | None) -> bool:
    name, kind, value = condition
    if header is None or header[0] != name:
        return False
    carried = header[1]
    if kind == "exact":
        return carried == value
    if kind == "prefix":
        return carried.startswith(value)
    if len(value) > MAX_REGEX:
        return False
    try:
        found = re.search(value, carried) if kind == "search" else re.fullmatch(value, carried)
    except re.error:
        return False
    return found is not None


def _specificity(rule: Rule, header: tuple[str, str] | None) -> int | None:
    """How many header matches of the rule a request carrying `header` (or none) satisfies,
    by its best alternative; None: the rule does not match it."""
    counts = [len(alt) for alt in rule.matches if all(_condition_holds(c, header) for c in alt)]
    return max(counts) if counts else None


def _rules_for(route: Route, header: tuple[str, str] | None) -> list[Rule]:
    """The rules that take a request carrying `header` (or none), splitting it evenly."""
    live = [(rule, _specificity(rule, header)) for rule in route.rules if sum(b.weight for b in rule.backends) > 0]
    matched = [(rule, n) for rule, n in live if n is not None]
    if not matched:
        return []
    if route.first_match:
        return [matched[0][0]]
    best = max(n for _, n in matched)
    return [rule for rule, n in matched if n == best]


@dataclass(frozen=True)
class Split:
    """Requests per second each ready pod receives through each Service."""

    client: dict[Target, float]
    """Every request a client sees answered."""
    header: dict[Target, float]
    """Of those, the ones carrying a route's header."""
    mirrored: dict[Target, float]
    """Copies of requests whose answers are thrown away (not in `client`)."""
    unserved: dict[ObjectKey, float]
    """Clients' requests sent to a Service that had no ready endpoint, per Service: errors a
    client would see."""


def split(view: ClusterView, rate: float, named: frozenset[ObjectKey] = frozenset()) -> Split:
    """Where every request goes, by Service and pod. `named`: Services routes name besides
    those of their rules in effect (rules still propagating), which get no traffic of their own."""
    client: dict[Target, float] = defaultdict(float)
    header_rates: dict[Target, float] = defaultdict(float)
    mirrored: dict[Target, float] = defaultdict(float)
    unserved: dict[ObjectKey, float] = defaultdict(float)

    def spread(svc_key: ObjectKey, amount: float, *into: dict[Target, float]) -> None:
        ready = {name: _pod_weight(view, svc_key[0], name)
                 for name, ok in sorted(view.members.get(svc_key, {}).items()) if ok}
        total = sum(ready.values())
        if amount > 0.0 and total <= 0.0 and any(rates is client for rates in into) and svc_key in view.services:
            unserved[svc_key] += amount  # a mirror's copy finding nobody is no client's error
        if amount <= 0.0 or total <= 0.0:
            return
        for name, weight in ready.items():
            if weight > 0.0:
                for rates in into:
                    rates[Target(svc_key[0], svc_key[1], name)] += amount * weight / total

    routed: set[ObjectKey] = set(named)
    for route in view.routes:
        for rule in route.rules:
            routed.update((b.namespace, b.name) for b in rule.backends if b.is_service)
            routed.update(svc_key for svc_key, _ in rule.mirrors)
        classes: list[tuple[tuple[str, str] | None, float]] = [(None, rate * (1.0 - route.header_share))]
        if route.header is not None:
            classes.append((route.header, rate * route.header_share))
        for header, amount in classes:
            rules = _rules_for(route, header)
            for rule in rules:
                per_rule = amount / len(rules)
                total = sum(b.weight for b in rule.backends)
                for backend in rule.backends:
                    if backend.is_service and backend.weight > 0:
                        into = (client, header_rates) if header is not None else (client,)
                        spread((backend.namespace, backend.name), per_rule * backend.weight / total, *into)
                for svc_key, percent in rule.mirrors:
                    spread(svc_key, per_rule * min(max(percent, 0.0), 100.0) / 100.0, mirrored)

    for svc_key, svc in view.services.items():
        if svc_key not in routed:
            spread(svc_key, rate if svc.rate is None else svc.rate, client)
    return Split(dict(client), dict(header_rates), dict(mirrored), dict(unserved))


def _pod_weight(view: ClusterView, namespace: str, name: str) -> float:
    pod = view.pods.get((namespace, name))
    return 1.0 if pod is None else pod.behaviour.weight


def target_rates(view: ClusterView, rate: float) -> dict[Target, float]:
    """Requests per second that each ready pod receives through each Service (client-visible)."""
    return split(view, rate).client


# --------------------------------------------------------------------------- ticks


@dataclass(frozen=True)
class PodTraffic:
    """What one series receives in one tick."""

    key: SeriesKey
    ok_durations: tuple[float, ...]
    """Duration in seconds of each request answered with 200."""
    error_durations: tuple[float, ...]
    """Duration in seconds of each request answered with 500."""

    @property
    def ok(self) -> int:
        return len(self.ok_durations)

    @property
    def errors(self) -> int:
        return len(self.error_durations)

    @property
    def requests(self) -> int:
        return self.ok + self.errors


@dataclass(frozen=True)
class Tick:
    traffic: tuple[PodTraffic, ...]
    new_series: tuple[SeriesKey, ...]
    """Series that got their first request: create both codes, so 500 reads 0, not absent."""
    removed: tuple[SeriesKey, ...]
    """Series whose pod or Service is gone (or whose pod changed revision): drop them."""
    warnings: tuple[str, ...]
    """Bad annotations, each reported once per pod."""
    header: tuple[tuple[RevisionKey, int], ...] = ()
    """Header-carrying requests (also in `traffic`), per Service and revision."""
    mirrored: tuple[tuple[RevisionKey, int], ...] = ()
    """Mirrored copies (not in `traffic`), per Service and revision."""
    retired: tuple[RevisionKey, ...] = ()
    """Revisions of a Service whose header and mirror counts go: no pod of it is a member."""
    unserved: tuple[tuple[ObjectKey, int], ...] = ()
    """Requests a route sent to a Service with no ready endpoint, per Service."""


def sample_durations(latency_ms: float, count: int, rng: random.Random) -> tuple[float, ...]:
    """`count` durations in seconds, within JITTER either side of `latency_ms`."""
    base = latency_ms / 1000.0
    return tuple(base * (1.0 + rng.uniform(-JITTER, JITTER)) for _ in range(count))


class TrafficModel:
    """Turns successive cluster views into the requests of each tick; keeps the carry-overs.

    A series exists from a target's first request until its pod or Service disappears, the
    pod leaves the Service's endpoints, or the pod's revision label changes. A pod that stays
    a member but is not ready keeps its series, which then stop growing.
    """

    def __init__(self, rate: float = DEFAULT_RATE, rng: random.Random | None = None, seed: int = 0) -> None:
        if rate < 0 or not math.isfinite(rate):
            raise ValueError(f"rate must be a non-negative number, not {rate!r}")
        self.rate = rate
        self.seed = seed
        self._rng = rng if rng is not None else random.Random()
        self._pod_factors: dict[tuple[str, str], tuple[float, float]] = {}
        self._request_carry: dict[Target, float] = {}
        self._error_carry: dict[Target, float] = {}
        self._series: dict[Target, SeriesKey] = {}
        self._warned: set[tuple[str, str, str]] = set()
        self._side_carry: dict[tuple[str, Target], float] = {}
        """Fractions of header-carrying and mirrored requests, per kind and target."""
        self._side_groups: set[RevisionKey] = set()
        self._elapsed = 0.0
        """Seconds of ticks so far: the clock of route propagation."""
        self._versions: dict[ObjectKey, list[tuple[float, tuple[Rule, ...]]]] = {}
        """Per route: its rules as first seen at each time, from the one in effect on."""
        self._frozen: dict[ObjectKey, tuple[Rule, ...]] = {}
        self._unserved_carry: dict[ObjectKey, float] = {}

    @property
    def series(self) -> frozenset[SeriesKey]:
        return frozenset(self._series.values())

    def tick(self, view: ClusterView, seconds: float) -> Tick:
        """The requests of the `seconds` elapsed since the previous tick."""
        seconds = max(0.0, seconds)
        self._elapsed += seconds
        named = frozenset((b.namespace, b.name) for route in view.routes for rule in route.rules
                          for b in rule.backends if b.is_service)
        view = self._propagated(view)
        routed = split(view, self.rate, named)
        rates = routed.client
        removed = self._drop_stale_series(view)

        traffic: list[PodTraffic] = []
        new_series: list[SeriesKey] = []
        warnings: list[str] = []
        for target in sorted(rates):
            pod = view.pods[(target.namespace, target.pod)]
            carry = self._request_carry.get(target, 0.0) + rates[target] * seconds
            count = int(carry + _EPSILON)
            self._request_carry[target] = max(0.0, carry - count)
            if count == 0:
                continue

            behaviour = pod.behaviour
            if behaviour.noise:
                error_factor, latency_factor = self._factors(pod)
                error_rate = min(1.0, behaviour.error_rate * error_factor)
                errors = sum(self._rng.random() < error_rate for _ in range(count))
            else:
                # Start the error carry at one half: the count of errors is then rounded to the
                # nearest, so over any window it is within one request of the exact fraction.
                error_carry = self._error_carry.get(target, 0.5) + count * behaviour.error_rate
                errors = min(count, int(error_carry + _EPSILON))
                self._error_carry[target] = max(0.0, error_carry - errors)

            key = SeriesKey(target.namespace, target.service, target.pod, pod.revision, pod.role)
            if self._series.get(target) != key:
                self._series[target] = key
                new_series.append(key)
            for problem in behaviour.problems:
                marker = (pod.namespace, pod.name, problem)
                if marker not in self._warned:
                    self._warned.add(marker)
                    warnings.append(f"pod {pod.namespace}/{pod.name}: {problem}; using the default")

            if behaviour.noise:
                median = behaviour.latency_ms * latency_factor / 1000.0
                durations = tuple(median * math.exp(self._rng.gauss(0.0, REQUEST_LATENCY_SIGMA))
                                  for _ in range(count))
            else:
                durations = sample_durations(behaviour.latency_ms, count, self._rng)
            traffic.append(
                PodTraffic(key=key, ok_durations=durations[errors:], error_durations=durations[:errors])
            )

        # Carry-overs of targets that no longer receive traffic are less than one request.
        for carries in (self._request_carry, self._error_carry):
            for target in [t for t in carries if t not in rates]:
                del carries[target]
        self._warned = {w for w in self._warned if (w[0], w[1]) in view.pods}
        header = self._side("header", routed.header, view, seconds)
        mirrored = self._side("mirrored", routed.mirrored, view, seconds)
        retired = sorted(g for g in self._side_groups if not any(
            (member := view.pods.get((g.namespace, name))) is not None and member.revision == g.revision
            for name in view.members.get((g.namespace, g.service), {})))
        self._side_groups.difference_update(retired)
        self._pod_factors = {k: f for k, f in self._pod_factors.items() if k in view.pods}
        unserved: list[tuple[ObjectKey, int]] = []
        for svc_key in sorted(set(routed.unserved) | set(self._unserved_carry)):
            carry = self._unserved_carry.get(svc_key, 0.0) + routed.unserved.get(svc_key, 0.0) * seconds
            count = int(carry + _EPSILON)
            self._unserved_carry[svc_key] = max(0.0, carry - count)
            if count:
                unserved.append((svc_key, count))
            if svc_key not in routed.unserved:
                del self._unserved_carry[svc_key]
        return Tick(
            unserved=tuple(unserved),
            traffic=tuple(traffic),
            new_series=tuple(new_series),
            removed=tuple(removed),
            warnings=tuple(warnings),
            header=header,
            mirrored=mirrored,
            retired=tuple(retired),
        )

    def _propagated(self, view: ClusterView) -> ClusterView:
        """`view` with each route's rules as they are in effect now: a new version of them
        applies `delay` seconds after it was first seen; a frozen route keeps what it had."""
        routes: list[Route] = []
        for route in view.routes:
            key = (route.namespace, route.name)
            versions = self._versions.setdefault(key, [])
            if not versions or versions[-1][1] != route.rules:
                versions.append((self._elapsed, route.rules))
            ripe = [i for i, (seen, _) in enumerate(versions) if self._elapsed - seen >= route.delay]
            del versions[:ripe[-1] if ripe else 0]  # older than the one in effect: never again
            in_effect = versions[0][1]
            if route.frozen:
                in_effect = self._frozen.setdefault(key, in_effect)
            else:
                self._frozen.pop(key, None)
            routes.append(route if in_effect == route.rules else
                          Route(route.namespace, route.name, in_effect, route.first_match, route.header,
                                route.header_share, route.delay, route.frozen))
        present = {(r.namespace, r.name) for r in view.routes}
        for gone in [k for k in self._versions if k not in present]:
            del self._versions[gone]
            self._frozen.pop(gone, None)
        return ClusterView(services=view.services, pods=view.pods, members=view.members, routes=tuple(routes))

    def _side(self, kind: str, rates: Mapping[Target, float], view: ClusterView,
              seconds: float) -> tuple[tuple[RevisionKey, int], ...]:
        """Whole requests of a side count (header-carrying, mirrored) this tick, per revision."""
        counts: dict[RevisionKey, int] = defaultdict(int)
        for target in sorted(rates):
            carry = self._side_carry.get((kind, target), 0.0) + rates[target] * seconds
            count = int(carry + _EPSILON)
            self._side_carry[(kind, target)] = max(0.0, carry - count)
            if count:
                pod = view.pods[(target.namespace, target.pod)]
                group = RevisionKey(target.namespace, target.service, pod.revision)
                counts[group] += count
                self._side_groups.add(group)
        for stale in [k for k in self._side_carry if k[0] == kind and k[1] not in rates]:
            del self._side_carry[stale]
        return tuple(sorted(counts.items()))

    def _factors(self, pod: Pod) -> tuple[float, float]:
        """A noisy pod's (error rate, latency) factors: drawn once, from a generator seeded by
        the model's seed and the pod, so the same pod is the same in every run of a seed."""
        key = (pod.namespace, pod.name)
        found = self._pod_factors.get(key)
        if found is None:
            rng = random.Random(f"{self.seed}/{pod.namespace}/{pod.name}")
            found = (math.exp(rng.gauss(0.0, POD_ERROR_SIGMA)), math.exp(rng.gauss(0.0, POD_LATENCY_SIGMA)))
            self._pod_factors[key] = found
        return found

    def _drop_stale_series(self, view: ClusterView) -> list[SeriesKey]:
        removed: list[SeriesKey] = []
        for target, key in list(self._series.items()):
            pod = view.pods.get((target.namespace, target.pod))
            members = view.members.get((target.namespace, target.service))
            if pod is None or members is None or target.pod not in members or pod.revision != key.revision \
                    or pod.role != key.role:
                del self._series[target]
                removed.append(key)
        return removed
