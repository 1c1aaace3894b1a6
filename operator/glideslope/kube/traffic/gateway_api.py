"""Gateway API: the weights of an HTTPRoute's backendRefs to the stable and preview Services
(and the judge's baseline Service while one runs), header routes as rules of their own and
mirrors as `RequestMirror` filters.

Each rule that names the stable or preview Service gets both, weighted (and a third backendRef
to the baseline Service, removed again when it goes); everything else of the
route (other rules, other backendRefs, filters, a backendRef's namespace and port) is kept as
written. A header route is a rule named like the step's route, placed first, matching what the
routed rule matches plus the headers, and sending everything to the preview Service. The route
is only written when something differs. The names of the rules it wrote are kept in the
annotation `glideslope.dev/header-routes`, so that it never removes a rule its author wrote.
"""

from __future__ import annotations

import copy
from typing import Any

from glideslope.api import Release
from glideslope.core.model import HeaderRoute, Routes, StepKind, stable_weight
from glideslope.kube import services
from glideslope.kube.client import FIELD_MANAGER, Kube, not_found
from glideslope.kube.traffic.routes import (
    NO_ROUTES,
    as_regex,
    baseline_written,
    clash,
    header_route_names,
    unsupported,
    written,
    written_patch,
)

GROUP, VERSION, PLURAL = "gateway.networking.k8s.io", "v1", "httproutes"
MIRROR = "RequestMirror"
MAX_RULES = 16
"""Rules an HTTPRoute may have (its CRD's maxItems): header routes must fit beside the author's."""


def _is_ours(ref: dict[str, Any], names: tuple[str, ...], namespace: str | None) -> bool:
    """A backendRef to one of `names`, a Service in the Release's namespace."""
    return (ref.get("name") in names and ref.get("kind", "Service") == "Service" and not ref.get("group")
            and ref.get("namespace") in (None, namespace))


def _header_rule(route: HeaderRoute, template: dict[str, Any] | None, preview_ref: dict[str, Any]) -> dict[str, Any]:
    headers = [{"type": "Exact" if c.kind == "exact" else "RegularExpression", "name": c.name,
                "value": c.value if c.kind == "exact" else as_regex(c)} for c in route.match]
    # What the routed rule matches (its paths, methods), narrowed to the headers.
    matches = [{**copy.deepcopy(m), "headers": [*(m.get("headers") or []), *headers]}
               for m in ((template or {}).get("matches") or [{}])]
    ref = {k: v for k, v in preview_ref.items() if k != "weight"}
    return {"name": route.name, "matches": matches, "backendRefs": [ref]}


def reweighted(rules: list[dict[str, Any]], stable: str, preview: str, weight: int,
               default_port: int | None, routes: Routes = NO_ROUTES, *, namespace: str | None = None,
               header_names: frozenset[str] = frozenset(), baseline: int | None = None,
               baseline_named: bool = False) -> list[dict[str, Any]]:
    """The rules with preview at weight, the baseline Service (`services.baseline_name`) at
    `baseline` (None: no reference to it) and stable at the rest in every rule naming any of
    them, the mirrors of `routes` on those rules, and a rule per header route first.
    `header_names`: the names of the rules it wrote for header routes (removed unless still wanted);
    `baseline_named`: it wrote a reference to the baseline Service (removed unless still wanted;
    else one of that name is its author's, kept)."""
    out = [copy.deepcopy(r) for r in rules if r.get("name") not in header_names]
    mirror = max((m.percentage for m in routes.mirrors), default=0)
    preview_template: dict[str, Any] | None = None
    first_routed: dict[str, Any] | None = None
    control = services.baseline_name(stable)
    names = (stable, preview, control) if baseline is not None or baseline_named else (stable, preview)
    for rule in out:
        refs: list[dict[str, Any]] = rule.get("backendRefs") or []
        ours = [r for r in refs if _is_ours(r, names, namespace)]
        if not ours:
            continue
        first_routed = first_routed or rule
        base = next((r for r in ours if r.get("name") == stable), ours[0])
        port = base.get("port") or default_port
        kept = {k: v for k, v in base.items() if k not in ("name", "weight", "port")}

        def ref(name: str, share: int, kept: dict[str, Any] = kept, ours: list[dict[str, Any]] = ours,
                port: int | None = port) -> dict[str, Any]:
            found = next((r for r in ours if r.get("name") == name), None) or {"name": name, **kept}
            return dict(found, weight=share, **({"port": port} if port is not None else {}))

        new_stable, new_preview = ref(stable, stable_weight(weight, baseline)), ref(preview, weight)
        new_baseline = [ref(control, baseline)] if baseline is not None else []
        others = [r for r in refs if not _is_ours(r, names, namespace)]
        rule["backendRefs"] = [*others, new_stable, new_preview, *new_baseline]
        preview_template = preview_template or new_preview
        # Our mirror is the RequestMirror filter to the preview Service; others are kept.
        filters = [f for f in rule.get("filters") or []
                   if not (f.get("type") == MIRROR
                           and _is_ours((f.get("requestMirror") or {}).get("backendRef") or {}, (preview,), namespace))]
        if mirror > 0:
            target: dict[str, Any] = {"name": preview}
            if port is not None:
                target["port"] = port
            filters.append({"type": MIRROR, "requestMirror": {"backendRef": target, "percent": mirror}})
        if filters:
            rule["filters"] = filters
        else:
            rule.pop("filters", None)
    if preview_template is None:
        return out
    headed = [_header_rule(h, first_routed, preview_template) for h in routes.headers]
    return headed + out


def _route_name(release: Release) -> str:
    canary = release.spec.strategy.canary
    assert canary and canary.traffic_routing and canary.traffic_routing.gateway_api
    return canary.traffic_routing.gateway_api.http_route



def room(release: Release, route: dict[str, Any]) -> str | None:
    """Whether the plan's header routes fit as rules beside the route's own, under other names."""
    names, ours = header_route_names(release), written(route)
    own = [r for r in (route.get("spec") or {}).get("rules") or [] if r.get("name") not in ours]
    problem = clash(release, [str(r["name"]) for r in own if r.get("name")],
                    f"HTTPRoute {release.metadata.namespace}/{_route_name(release)}")
    if problem:
        return problem
    if len(own) + len(names) > MAX_RULES:
        return (f"spec.strategy.canary.steps[].setHeaderRoute: {len(names)} header routes and the "
                f"{len(own)} rules of HTTPRoute {release.metadata.namespace}/{_route_name(release)} exceed "
                f"the {MAX_RULES} rules an HTTPRoute may have")
    return None


class GatewayAPIRouter:
    supports: frozenset[StepKind] = frozenset({StepKind.HEADER_ROUTE, StepKind.MIRROR_ROUTE})
    weighs_baseline = True

    def check(self, kube: Kube, release: Release) -> str | None:
        name, namespace = _route_name(release), release.metadata.namespace
        try:
            route = kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except Exception as exc:
            if not_found(exc):
                return (f"spec.strategy.canary.trafficRouting.gatewayAPI.httpRoute: HTTPRoute {namespace}/{name} "
                        "not found (or the Gateway API CRDs are not installed)")
            raise
        return unsupported(release, self.supports, "trafficRouting.gatewayAPI") or room(release, route)

    def claim(self, kube: Kube, release: Release) -> None:
        return None  # it writes its own rules into the named route, and creates no object

    def set_weight(self, kube: Kube, release: Release, stable: str, preview: str, weight: int,
                   routes: Routes = NO_ROUTES, baseline: int | None = None) -> None:
        name = _route_name(release)
        namespace = release.metadata.namespace
        route = kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        rules = (route.get("spec") or {}).get("rules") or []
        service = release.spec.service
        default_port = service.ports[0].port if service else None
        ours, named = written(route), baseline_written(route)
        control = services.baseline_name(stable) if baseline is not None else None
        wanted = reweighted(rules, stable, preview, weight, default_port, routes, namespace=namespace,
                            header_names=ours, baseline=baseline,
                            baseline_named=named == services.baseline_name(stable))
        if wanted != rules or ours != {h.name for h in routes.headers} or named != control:
            # The rules and the names of those it wrote, in one write.
            kube.custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name,
                {"metadata": written_patch(routes, control), "spec": {"rules": wanted}}, field_manager=FIELD_MANAGER)
