"""Traffic routers: one module per way of splitting traffic, behind `TrafficRouter`."""

from __future__ import annotations

from typing import Protocol

from glideslope.api import Release
from glideslope.kube.client import Kube


class TrafficRouter(Protocol):
    """Sends `weight` percent of a Release's traffic to its preview (canary) Service."""

    def set_weight(self, kube: Kube, release: Release, stable: str, preview: str, weight: int) -> None:
        ...

    def check(self, kube: Kube, release: Release) -> str | None:
        """What the router needs that is missing (the field, and why), or None."""
        ...


def router_for(release: Release) -> TrafficRouter:
    from glideslope.kube.traffic import gateway_api, replicas

    canary = release.spec.strategy.canary
    if canary and canary.traffic_routing and canary.traffic_routing.gateway_api:
        return gateway_api.GatewayAPIRouter()
    return replicas.ReplicasRouter()
