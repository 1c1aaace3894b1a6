"""The pure part of the sandbox's traffic simulator.

Given what the cluster shows (Services, EndpointSlices, Pods and HTTPRoutes, as the plain
JSON dicts the API server returns), decide for each tick how many simulated requests each
pod receives through each Service, how many of them fail and how long each one takes.

Nothing here performs I/O or reads a clock: the elapsed time of a tick is passed in and the
latency jitter comes from an injected `random.Random`, so the model is deterministic and
unit-testable. The I/O shell (listing the cluster, exporting Prometheus metrics) lives in
`glideslope.sandbox.simulator`.

Rules:

- Every Service with a selector gets `rate` requests per second, split evenly across its
  ready pods. Membership and readiness come from the EndpointSlices labelled
  `kubernetes.io/service-name=<service>` (endpoint `conditions.ready`, unset meaning ready,
  mapped to pods by `targetRef`); a Service with no EndpointSlice at all falls back to the
  pods its selector matches whose `Ready` condition is `True`.
- An HTTPRoute gets `rate` requests per second, split evenly across its rules and, within a
  rule, across its `backendRefs` by weight (default 1). A Service that any HTTPRoute names
  as a backend gets no traffic of its own, so a canary Service is never counted twice.
- A pod fails the fraction `sim.glideslope.dev/error-rate` of its requests with code 500 and
  answers in about `sim.glideslope.dev/latency-ms` milliseconds.
- Fractions carry over between ticks (requests per target, errors per target), so rates and
  error ratios are exact on average and accurate over short windows.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

REVISION_LABEL = "glideslope.dev/revision"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
ERROR_RATE_ANNOTATION = "sim.glideslope.dev/error-rate"
LATENCY_ANNOTATION = "sim.glideslope.dev/latency-ms"
DEFAULT_ERROR_RATE = 0.0
DEFAULT_LATENCY_MS = 20.0
DEFAULT_RATE = 50.0
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


class SeriesKey(NamedTuple):
    """The labels of a metric series, all but `code` (each series exists for both codes)."""

    namespace: str
    service: str
    pod: str
    revision: str


# --------------------------------------------------------------------------- cluster view


@dataclass(frozen=True)
class Behaviour:
    """How a pod answers, from its annotations; `problems` lists annotations that were bad."""

    error_rate: float = DEFAULT_ERROR_RATE
    latency_ms: float = DEFAULT_LATENCY_MS
    problems: tuple[str, ...] = ()


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


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    selector: Mapping[str, str]


@dataclass(frozen=True)
class BackendRef:
    namespace: str
    name: str
    weight: int
    is_service: bool
    """False for a backend of another kind: it still takes its share, which is lost to us."""


@dataclass(frozen=True)
class Route:
    namespace: str
    name: str
    rules: tuple[tuple[BackendRef, ...], ...]


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
    return Behaviour(error_rate=error_rate, latency_ms=latency_ms, problems=tuple(problems))


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
    return Service(namespace=key[0], name=key[1], selector=selector)


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


def parse_route(obj: Json) -> Route | None:
    key = _meta(obj)
    if key is None:
        return None
    rules: list[tuple[BackendRef, ...]] = []
    raw_rules = _dig(obj, "spec", "rules")
    for rule in raw_rules if isinstance(raw_rules, list) else []:
        refs = _dig(rule, "backendRefs")
        backends: list[BackendRef] = []
        for ref in refs if isinstance(refs, list) else []:
            if not isinstance(ref, Mapping) or not isinstance(ref.get("name"), str):
                continue
            namespace = ref.get("namespace") or key[0]
            is_service = ref.get("group", "") in ("", "core") and ref.get("kind", "Service") == "Service"
            backends.append(
                BackendRef(
                    namespace=str(namespace),
                    name=ref["name"],
                    weight=_weight(ref.get("weight")),
                    is_service=is_service,
                )
            )
        rules.append(tuple(backends))
    return Route(namespace=key[0], name=key[1], rules=tuple(rules))


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def build_view(
    services: Iterable[Json],
    endpoint_slices: Iterable[Json],
    pods: Iterable[Json],
    routes: Iterable[Json] = (),
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
    route_list.sort(key=lambda r: (r.namespace, r.name))
    return ClusterView(services=svc_index, pods=pod_index, members=members, routes=tuple(route_list))


# --------------------------------------------------------------------------- traffic split


def target_rates(view: ClusterView, rate: float,
                 unserved: dict[ObjectKey, float] | None = None) -> dict[Target, float]:
    """Requests per second that each ready pod receives through each Service; those sent to a
    Service with no ready endpoint are added to `unserved` (per Service), when given."""
    rates: dict[Target, float] = defaultdict(float)

    def spread(svc_key: ObjectKey, amount: float) -> None:
        ready = sorted(name for name, ok in view.members.get(svc_key, {}).items() if ok)
        if amount > 0.0 and not ready and unserved is not None and svc_key in view.services:
            unserved[svc_key] = unserved.get(svc_key, 0.0) + amount
        if amount <= 0.0 or not ready:
            return
        share = amount / len(ready)
        for name in ready:
            rates[Target(svc_key[0], svc_key[1], name)] += share

    routed: set[ObjectKey] = set()
    for route in view.routes:
        for rule in route.rules:
            routed.update((b.namespace, b.name) for b in rule if b.is_service)
        live_rules = [rule for rule in route.rules if sum(b.weight for b in rule) > 0]
        if not live_rules:
            continue
        per_rule = rate / len(live_rules)
        for rule in live_rules:
            total = sum(b.weight for b in rule)
            for backend in rule:
                if backend.is_service and backend.weight > 0:
                    spread((backend.namespace, backend.name), per_rule * backend.weight / total)

    for svc_key in view.services:
        if svc_key not in routed:
            spread(svc_key, rate)
    return dict(rates)


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
    unserved: tuple[tuple[ObjectKey, float], ...] = ()
    """Requests sent to a Service that had no ready endpoint, per Service: a client's errors."""


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

    def __init__(self, rate: float = DEFAULT_RATE, rng: random.Random | None = None) -> None:
        if rate < 0 or not math.isfinite(rate):
            raise ValueError(f"rate must be a non-negative number, not {rate!r}")
        self.rate = rate
        self._rng = rng if rng is not None else random.Random()
        self._request_carry: dict[Target, float] = {}
        self._error_carry: dict[Target, float] = {}
        self._series: dict[Target, SeriesKey] = {}
        self._warned: set[tuple[str, str, str]] = set()

    @property
    def series(self) -> frozenset[SeriesKey]:
        return frozenset(self._series.values())

    def tick(self, view: ClusterView, seconds: float) -> Tick:
        """The requests of the `seconds` elapsed since the previous tick."""
        seconds = max(0.0, seconds)
        lost: dict[ObjectKey, float] = {}
        rates = target_rates(view, self.rate, lost)
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
            # Start the error carry at one half: the count of errors is then rounded to the
            # nearest, so over any window it is within one request of the exact fraction.
            error_carry = self._error_carry.get(target, 0.5) + count * behaviour.error_rate
            errors = min(count, int(error_carry + _EPSILON))
            self._error_carry[target] = max(0.0, error_carry - errors)

            key = SeriesKey(target.namespace, target.service, target.pod, pod.revision)
            if self._series.get(target) != key:
                self._series[target] = key
                new_series.append(key)
            for problem in behaviour.problems:
                marker = (pod.namespace, pod.name, problem)
                if marker not in self._warned:
                    self._warned.add(marker)
                    warnings.append(f"pod {pod.namespace}/{pod.name}: {problem}; using the default")

            durations = sample_durations(behaviour.latency_ms, count, self._rng)
            traffic.append(
                PodTraffic(key=key, ok_durations=durations[errors:], error_durations=durations[:errors])
            )

        # Carry-overs of targets that no longer receive traffic are less than one request.
        for carries in (self._request_carry, self._error_carry):
            for target in [t for t in carries if t not in rates]:
                del carries[target]
        self._warned = {w for w in self._warned if (w[0], w[1]) in view.pods}
        return Tick(
            traffic=tuple(traffic),
            new_series=tuple(new_series),
            removed=tuple(removed),
            warnings=tuple(warnings),
            unserved=tuple((key, amount * seconds) for key, amount in sorted(lost.items()) if seconds > 0),
        )

    def _drop_stale_series(self, view: ClusterView) -> list[SeriesKey]:
        removed: list[SeriesKey] = []
        for target, key in list(self._series.items()):
            pod = view.pods.get((target.namespace, target.pod))
            members = view.members.get((target.namespace, target.service))
            if pod is None or members is None or target.pod not in members or pod.revision != key.revision:
                del self._series[target]
                removed.append(key)
        return removed
