"""Traffic routers: one module per way of splitting traffic, behind `TrafficRouter`."""

from __future__ import annotations

from typing import Protocol

from glideslope.api import Release
from glideslope.core.model import Routes, StepKind
from glideslope.kube.client import Kube
from glideslope.kube.traffic.routes import NO_ROUTES


class TrafficRouter(Protocol):
    """Sends `weight` percent of a Release's traffic, and the requests `routes` name, to its
    preview (canary) Service, and `baseline` percent to the judge's baseline Service."""

    supports: frozenset[StepKind]
    """The steps of `routes.ROUTE_STEPS` it can carry out; a plan with another is refused up front."""
    weighs_baseline: bool
    """Whether it can give the judge's baseline Service a weight of its own (`judge.baseline`);
    if not, a Release asking for a baseline is refused up front."""

    def set_weight(self, kube: Kube, release: Release, stable: str, preview: str, weight: int,
                   routes: Routes = NO_ROUTES, baseline: int | None = None) -> None:
        """`baseline`: the baseline Service's (`services.baseline_name`) weight, taken from the
        stable Service's; None: no route names it."""
        ...

    def check(self, kube: Kube, release: Release) -> str | None:
        """What the router needs that is missing (the field, and why), or None."""
        ...

    def claim(self, kube: Kube, release: Release) -> None:
        """Raise `ownership.NotOurs` if an object the router creates for the Release exists and
        is someone else's (as the engine claims its Services and Deployments)."""
        ...


def router_for(release: Release) -> TrafficRouter:
    from glideslope.kube.traffic import gateway_api, istio, nginx, replicas

    canary = release.spec.strategy.canary
    routing = canary.traffic_routing if canary else None
    if routing and routing.gateway_api:
        return gateway_api.GatewayAPIRouter()
    if routing and routing.nginx:
        return nginx.NginxRouter()
    if routing and routing.istio:
        return istio.IstioRouter()
    return replicas.ReplicasRouter()
