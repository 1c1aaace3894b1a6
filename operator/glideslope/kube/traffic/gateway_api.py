"""Gateway API: the weights of an HTTPRoute's backendRefs to the stable and preview Services.

Each rule that names the stable or preview Service gets both, weighted; other backendRefs are
left as written. The route is only written when a weight differs.
"""

from __future__ import annotations

import copy
from typing import Any

from glideslope.api import Release
from glideslope.kube.client import FIELD_MANAGER, Kube, not_found

GROUP, VERSION, PLURAL = "gateway.networking.k8s.io", "v1", "httproutes"


def reweighted(rules: list[dict[str, Any]], stable: str, preview: str, weight: int,
               default_port: int | None) -> list[dict[str, Any]]:
    """The rules with stable at 100 - weight and preview at weight, in every rule naming either."""
    out = copy.deepcopy(rules)
    for rule in out:
        refs: list[dict[str, Any]] = rule.get("backendRefs") or []
        ours = [r for r in refs if r.get("name") in (stable, preview) and r.get("kind", "Service") == "Service"
                and not r.get("group")]
        if not ours:
            continue
        port = next((r.get("port") for r in ours if r.get("port")), default_port)
        others = [r for r in refs if r not in ours]
        mine = [{"name": stable, "weight": 100 - weight}, {"name": preview, "weight": weight}]
        for ref in mine:
            if port is not None:
                ref["port"] = port
        rule["backendRefs"] = others + mine
    return out


def _route_name(release: Release) -> str:
    canary = release.spec.strategy.canary
    assert canary and canary.traffic_routing and canary.traffic_routing.gateway_api
    return canary.traffic_routing.gateway_api.http_route


class GatewayAPIRouter:
    def check(self, kube: Kube, release: Release) -> str | None:
        name, namespace = _route_name(release), release.metadata.namespace
        try:
            kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except Exception as exc:
            if not_found(exc):
                return (f"spec.strategy.canary.trafficRouting.gatewayAPI.httpRoute: HTTPRoute {namespace}/{name} "
                        "not found (or the Gateway API CRDs are not installed)")
            raise
        return None

    def set_weight(self, kube: Kube, release: Release, stable: str, preview: str, weight: int) -> None:
        name = _route_name(release)
        namespace = release.metadata.namespace
        route = kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        rules = (route.get("spec") or {}).get("rules") or []
        service = release.spec.service
        default_port = service.ports[0].port if service else None
        wanted = reweighted(rules, stable, preview, weight, default_port)
        if wanted != rules:
            kube.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name,
                                                       {"spec": {"rules": wanted}}, field_manager=FIELD_MANAGER)
