"""Istio: weights on the named HTTP routes of a VirtualService, header routes as HTTP routes of
their own, and mirrors on the named routes.

In each named route the destination whose host is the stable Service gets `100 - weight` and a
copy of it to the preview Service (its subset dropped: subsets are the stable host's) gets
`weight`; while the judge's baseline runs, a third copy to the baseline Service gets its weight,
taken from the stable one's. With no weight (and no baseline) the preview destination is
removed and the stable one's weight with it, so a finished or rolled back rollout leaves the
route as its author wrote it. A header route
is an HTTP route named like the step's route, placed before the first named route, matching
what it matches plus the headers, to the preview Service. A mirror is `mirror` and
`mirrorPercentage` on the named routes. Everything else is kept as written; the
VirtualService is only written when something differs. The names of the routes it wrote are
kept in the annotation `glideslope.dev/header-routes`, so that it never removes one its author
wrote.
"""

from __future__ import annotations

import copy
from typing import Any

from glideslope.api import Release
from glideslope.core.model import HeaderRoute, Routes, StepKind, stable_weight
from glideslope.kube import services
from glideslope.kube.client import FIELD_MANAGER, Kube, not_found
from glideslope.kube.traffic.routes import NO_ROUTES, baseline_written, clash, unsupported, written, written_patch

GROUP, VERSION, PLURAL = "networking.istio.io", "v1beta1", "virtualservices"
"""v1beta1: served by every Istio release since 1.8, v1 only since 1.22."""
FIELD = "spec.strategy.canary.trafficRouting.istio"


def hosts(service: str, namespace: str) -> frozenset[str]:
    """The spellings of a Service's host a destination may use."""
    return frozenset({service, f"{service}.{namespace}", f"{service}.{namespace}.svc",
                      f"{service}.{namespace}.svc.cluster.local"})


def _host(destination: dict[str, Any]) -> str:
    return str((destination.get("destination") or {}).get("host") or "")


def _preview_host(stable_host: str, stable: str, preview: str) -> str:
    """The preview Service spelt as the stable destination spells its host."""
    return preview + stable_host[len(stable):] if stable_host.startswith(stable) else preview


def _header_route(route: HeaderRoute, template: dict[str, Any], preview_destination: dict[str, Any]) -> dict[str, Any]:
    headers = {c.name.lower(): {c.kind: c.value} for c in route.match}
    matches = [{**copy.deepcopy(m), "headers": {**(m.get("headers") or {}), **headers}}
               for m in (template.get("match") or [{}])]
    destination = {k: v for k, v in preview_destination.items() if k != "weight"}
    return {"name": route.name, "match": matches, "route": [destination]}


def _copy_to(stable_dest: dict[str, Any], old: dict[str, Any] | None, stable: str, service: str) -> dict[str, Any]:
    """The destination to `service`: as it was (`old`), or a copy of the stable one (its subset
    dropped: subsets are the stable host's), its host spelt as the stable one's."""
    new = copy.deepcopy(old) if old is not None else {**copy.deepcopy(stable_dest), "destination": {
        k: v for k, v in (stable_dest.get("destination") or {}).items() if k != "subset"}}
    new["destination"]["host"] = _preview_host(_host(stable_dest), stable, service)
    return new


def rerouted(http: list[dict[str, Any]], names: list[str], stable: str, preview: str, namespace: str,
             weight: int, routes: Routes = NO_ROUTES,
             header_names: frozenset[str] = frozenset(), baseline: int | None = None,
             baseline_named: bool = False) -> list[dict[str, Any]]:
    """The HTTP routes of a VirtualService with the weights, mirrors and header routes wanted;
    `baseline`: the weight of a destination to the judge's baseline Service (None: none).
    `header_names`: the names of the routes it wrote for header routes (removed unless still wanted);
    `baseline_named`: it wrote a destination to the baseline Service (removed unless still
    wanted; else one to that host is its author's, kept)."""
    out = [copy.deepcopy(r) for r in http if r.get("name") not in header_names]
    control = services.baseline_name(stable)
    stable_hosts, preview_hosts = hosts(stable, namespace), hosts(preview, namespace)
    baseline_hosts = hosts(control, namespace) if baseline is not None or baseline_named else frozenset()
    mirror = max((m.percentage for m in routes.mirrors), default=0)
    keep_preview = weight > 0 or bool(routes) or baseline is not None
    first: tuple[int, dict[str, Any], dict[str, Any]] | None = None
    for index, route in enumerate(out):
        if route.get("name") not in names:
            continue
        destinations: list[dict[str, Any]] = route.get("route") or []
        stable_dest = next((d for d in destinations if _host(d) in stable_hosts), None)
        if stable_dest is None:
            continue
        others = [d for d in destinations if _host(d) not in stable_hosts | preview_hosts | baseline_hosts]
        new_preview = _copy_to(stable_dest, next((d for d in destinations if _host(d) in preview_hosts), None),
                               stable, preview)
        if keep_preview:
            route["route"] = [*others, dict(stable_dest, weight=stable_weight(weight, baseline)),
                              dict(new_preview, weight=weight)]
            if baseline is not None:
                old = next((d for d in destinations if _host(d) in baseline_hosts), None)
                route["route"].append(dict(_copy_to(stable_dest, old, stable, control), weight=baseline))
        else:
            route["route"] = [*others, {k: v for k, v in stable_dest.items() if k != "weight"}]
        if first is None:
            first = (index, route, new_preview)
        ours = _host({"destination": route.get("mirror") or {}}) in preview_hosts
        if mirror > 0:
            route["mirror"] = {k: v for k, v in new_preview["destination"].items()}
            route["mirrorPercentage"] = {"value": float(mirror)}
        elif ours:
            route.pop("mirror", None)
            route.pop("mirrorPercentage", None)
    if first is None or not routes.headers:
        return out
    index, template, preview_destination = first
    headed = [_header_route(h, template, preview_destination) for h in routes.headers]
    return out[:index] + headed + out[index:]


def _routing(release: Release) -> tuple[str, list[str]]:
    canary = release.spec.strategy.canary
    assert canary and canary.traffic_routing and canary.traffic_routing.istio
    return canary.traffic_routing.istio.virtual_service, list(canary.traffic_routing.istio.routes)



def problem(release: Release, virtual_service: dict[str, Any], stable: str) -> str | None:
    """What the VirtualService lacks for the spec: a named route, or the stable destination in it."""
    name, names = _routing(release)
    namespace = release.metadata.namespace or ""
    http = (virtual_service.get("spec") or {}).get("http") or []
    by_name = {r.get("name"): r for r in http if isinstance(r, dict)}
    for i, route_name in enumerate(names):
        route = by_name.get(route_name)
        if route is None:
            return f"{FIELD}.routes[{i}]: VirtualService {namespace}/{name} has no http route named {route_name}"
        if not any(_host(d) in hosts(stable, namespace) for d in route.get("route") or []):
            return (f"{FIELD}.routes[{i}]: http route {route_name} of VirtualService {namespace}/{name} has no "
                    f"destination to the stable Service {stable}")
    ours = written(virtual_service)
    return clash(release, [str(n) for n in by_name if n and n not in ours], f"VirtualService {namespace}/{name}",
                 "an http route")


class IstioRouter:
    supports: frozenset[StepKind] = frozenset({StepKind.HEADER_ROUTE, StepKind.MIRROR_ROUTE})
    weighs_baseline = True

    def check(self, kube: Kube, release: Release) -> str | None:
        name, _ = _routing(release)
        namespace = release.metadata.namespace or ""
        try:
            found = kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except Exception as exc:
            if not_found(exc):
                return (f"{FIELD}.virtualService: VirtualService {namespace}/{name} not found "
                        "(or Istio's CRDs are not installed)")
            raise
        stable = services.stable_name(release)
        return problem(release, found, stable) or unsupported(release, self.supports, "trafficRouting.istio")

    def claim(self, kube: Kube, release: Release) -> None:
        return None  # it writes its own rules into the named route, and creates no object

    def set_weight(self, kube: Kube, release: Release, stable: str, preview: str, weight: int,
                   routes: Routes = NO_ROUTES, baseline: int | None = None) -> None:
        name, names = _routing(release)
        namespace = release.metadata.namespace or ""
        found = kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        http = (found.get("spec") or {}).get("http") or []
        ours, named = written(found), baseline_written(found)
        control = services.baseline_name(stable) if baseline is not None else None
        wanted = rerouted(http, names, stable, preview, namespace, weight, routes, ours, baseline,
                          baseline_named=named == services.baseline_name(stable))
        if wanted != http or ours != {h.name for h in routes.headers} or named != control:
            # The routes and the names of those it wrote, in one write.
            kube.custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name,
                {"metadata": written_patch(routes, control), "spec": {"http": wanted}}, field_manager=FIELD_MANAGER)
