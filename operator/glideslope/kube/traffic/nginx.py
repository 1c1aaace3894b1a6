"""ingress-nginx: an operator-owned canary copy `<ingress>-canary` of the stable Ingress.

The copy keeps the stable Ingress's hosts and paths (ingress-nginx pairs a canary with the
Ingress of the same host and path), points the paths that reach the stable Service at the
preview Service instead, and carries ingress-nginx's canary annotations: `canary-weight`, and
for a header route `canary-by-header` with `canary-by-header-value` (exact) or
`canary-by-header-pattern` (prefix, regex). The stable Ingress is never written. With no weight
and no header route the copy is deleted, so a finished or rolled back rollout leaves only the
stable Ingress. The copy is claimed as the Release's other objects are (`kube/ownership.py`): one
that exists and is someone else's makes the Release Degraded with reason Conflict, on any tick,
and is never written or deleted.

ingress-nginx has one canary per host and path and one header per canary: a plan whose header
route matches more than one header, or that has header routes of more than one name, is refused;
so is the judge's baseline (`judge.baseline`), which would need a third backend.
"""

from __future__ import annotations

import copy
from typing import Any

import kubernetes

from glideslope.api import Release
from glideslope.core.model import RELEASE_LABEL, Routes, StepKind
from glideslope.kube import ownership, services
from glideslope.kube.client import APPLY, FIELD_MANAGER, UNREAD, Kube, drain, not_found
from glideslope.kube.traffic.routes import NO_ROUTES, as_regex, unsupported
from glideslope.kube.workloads import owner_reference

GROUP, VERSION, PLURAL = "networking.k8s.io", "v1", "ingresses"
PREFIX = "nginx.ingress.kubernetes.io/"
CANARY, WEIGHT = PREFIX + "canary", PREFIX + "canary-weight"
BY_HEADER, BY_VALUE, BY_PATTERN = PREFIX + "canary-by-header", PREFIX + "canary-by-header-value", \
    PREFIX + "canary-by-header-pattern"
FIELD = "spec.strategy.canary.trafficRouting.nginx.ingress"


def canary_name(ingress: str) -> str:
    return f"{ingress}-canary"


def _backend_to(backend: Any, stable: str, preview: str) -> dict[str, Any] | None:
    """The backend sent to the preview Service if it is the stable one, else None."""
    service = backend.get("service") if isinstance(backend, dict) else None
    if not isinstance(service, dict) or service.get("name") != stable:
        return None
    return {**copy.deepcopy(backend), "service": {**copy.deepcopy(service), "name": preview}}


def canary_spec(stable_spec: dict[str, Any], stable: str, preview: str) -> dict[str, Any] | None:
    """The stable Ingress's spec with only the paths (and default backend) that reach the stable
    Service, sent to the preview Service; None when nothing reaches it."""
    out: dict[str, Any] = {}
    if stable_spec.get("ingressClassName"):
        out["ingressClassName"] = stable_spec["ingressClassName"]
    default = _backend_to(stable_spec.get("defaultBackend"), stable, preview)
    if default is not None:
        out["defaultBackend"] = default
    rules = []
    for rule in stable_spec.get("rules") or []:
        paths = []
        for path in ((rule.get("http") or {}).get("paths") or []):
            backend = _backend_to(path.get("backend"), stable, preview)
            if backend is not None:
                paths.append({**copy.deepcopy(path), "backend": backend})
        if paths:
            rules.append({**({"host": rule["host"]} if rule.get("host") else {}), "http": {"paths": paths}})
    if rules:
        out["rules"] = rules
    return out if default is not None or rules else None


def canary_annotations(weight: int, routes: Routes) -> dict[str, str]:
    annotations = {CANARY: "true", WEIGHT: str(weight)}
    header = routes.headers[-1] if routes.headers else None
    if header is not None and header.match:
        condition = header.match[0]
        annotations[BY_HEADER] = condition.name
        if condition.kind == "exact":
            annotations[BY_VALUE] = condition.value
        else:
            annotations[BY_PATTERN] = f"^{as_regex(condition)}$"
    return annotations


def canary_ingress(release: Release, stable_ingress: dict[str, Any], stable: str, preview: str, weight: int,
                   routes: Routes) -> dict[str, Any] | None:
    """The canary copy to apply, or None when it should not exist (no weight, no header route,
    or no path of the stable Ingress reaches the stable Service)."""
    if weight <= 0 and not routes.headers:
        return None
    spec = canary_spec(stable_ingress.get("spec") or {}, stable, preview)
    if spec is None:
        return None
    name = canary_name(stable_ingress["metadata"]["name"])
    annotations = canary_annotations(weight, routes)
    # An Ingress class given by the older annotation must be the stable one's, or nginx ignores the copy.
    old_class = (stable_ingress["metadata"].get("annotations") or {}).get("kubernetes.io/ingress.class")
    if old_class:
        annotations["kubernetes.io/ingress.class"] = old_class
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Ingress",
            "metadata": {"name": name, "namespace": release.metadata.namespace,
                         "labels": {RELEASE_LABEL: release.metadata.name or ""},
                         "annotations": annotations, "ownerReferences": [owner_reference(release)]},
            "spec": spec}


def _ingress(release: Release) -> str:
    canary = release.spec.strategy.canary
    assert canary and canary.traffic_routing and canary.traffic_routing.nginx
    return canary.traffic_routing.nginx.ingress


def _read_ingress(kube: Kube) -> Any:
    """`read(name, namespace)` of an Ingress as a client model, as `ownership` reads metadata."""
    return kubernetes.client.NetworkingV1Api(kube.api).read_namespaced_ingress


def _get(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except Exception as exc:
        if not_found(exc):
            return None
        raise
    return found


def plan_problem(release: Release) -> str | None:
    """What of the plan ingress-nginx cannot do: one header per canary, one canary per path."""
    canary = release.spec.strategy.canary
    names: set[str] = set()
    for i, step in enumerate(canary.steps if canary else ()):
        route = step.set_header_route
        if route is None:
            continue
        if len(route.match or ()) > 1:
            return (f"spec.strategy.canary.steps[{i}].setHeaderRoute.match: ingress-nginx routes a canary by "
                    "one header only")
        names.add(route.name)
        if len(names) > 1:
            return (f"spec.strategy.canary.steps[{i}].setHeaderRoute.name: ingress-nginx has one header route "
                    f"per canary; use one name ({sorted(names)[0]}) and replace it")
    return None


class NginxRouter:
    supports: frozenset[StepKind] = frozenset({StepKind.HEADER_ROUTE})
    weighs_baseline = False
    """ingress-nginx pairs one canary with each host and path: no third backend for a baseline."""

    def check(self, kube: Kube, release: Release) -> str | None:
        name, namespace = _ingress(release), release.metadata.namespace or ""
        stable_ingress = _get(kube, namespace, name)
        if stable_ingress is None:
            return f"{FIELD}: Ingress {namespace}/{name} not found"
        stable = services.stable_name(release)
        if canary_spec(stable_ingress.get("spec") or {}, stable, "-") is None:
            return f"{FIELD}: no path of Ingress {namespace}/{name} has the stable Service {stable} as its backend"
        return unsupported(release, self.supports, "trafficRouting.nginx", weighs_baseline=self.weighs_baseline) \
            or plan_problem(release)

    def claim(self, kube: Kube, release: Release) -> None:
        # The copy comes and goes with the weight, so someone else's may appear between two
        # rollouts of one generation: the engine claims it on every tick, not once per generation.
        ownership.claim(release, "Ingress", _read_ingress(kube), canary_name(_ingress(release)))

    def set_weight(self, kube: Kube, release: Release, stable: str, preview: str, weight: int,
                   routes: Routes = NO_ROUTES, baseline: int | None = None) -> None:
        # `baseline` is always None: `check` refuses a Release that asks for one.
        namespace = release.metadata.namespace or ""
        name = _ingress(release)
        stable_ingress = _get(kube, namespace, name)
        wanted = canary_ingress(release, stable_ingress, stable, preview, weight, routes) if stable_ingress else None
        if wanted is None:
            try:
                present = _read_ingress(kube)(canary_name(name), namespace)
            except Exception as exc:
                if not_found(exc):
                    return
                raise
            if ownership.whose(release, "Ingress", present.metadata) is not None:
                return  # someone else's: never deleted (the engine's claim says so, as Conflict)
            try:
                kube.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, canary_name(name))
            except Exception as exc:
                if not not_found(exc):
                    raise
            return
        drain(kube.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, wanted["metadata"]["name"], wanted, field_manager=FIELD_MANAGER,
            force=True, _content_type=APPLY, **UNREAD))
