"""The Services a Release owns, by name, and whether a router splits its traffic.

Pure, so that the decisions, the judge's query variables (`{{sideService}}`) and the kube
adapters that write the Services and routes all name them alike.
"""

from __future__ import annotations

from glideslope.api import ReleaseSpec

BASELINE_SERVICE_SUFFIX = "-baseline"


def names(spec: ReleaseSpec, release: str) -> tuple[str, str] | None:
    """(stable, preview) Service names; None when the Release owns no Service."""
    service = spec.service
    if service is None:
        return None
    stable = service.name or release
    return stable, service.preview_name or f"{stable}-preview"


def stable_name(spec: ReleaseSpec, release: str) -> str:
    """The stable Service's name: `spec.service.name`, else the Release's (routes name it so)."""
    found = names(spec, release)
    return found[0] if found else release


def baseline_name(stable: str) -> str:
    """The judge's baseline Service beside the stable Service `stable` (behind a router)."""
    return stable + BASELINE_SERVICE_SUFFIX


def routed(spec: ReleaseSpec) -> bool:
    """Whether a router splits the canary's traffic between Services; else the replica ratio
    does, behind the stable Service (`trafficRouting` with `verify` alone measures it)."""
    canary = spec.strategy.canary
    return bool(canary and canary.traffic_routing and canary.traffic_routing.router)


def side_services(spec: ReleaseSpec, release: str) -> tuple[str, str]:
    """The Service whose requests reach each side the judge compares, (candidate, baseline): the
    stable Service with the replica ratio; behind a router the preview Service for the
    candidate and the baseline Service for the baseline's pods (the stable Service when the
    judge compares with the stable revision's own pods)."""
    found = names(spec, release)
    stable = found[0] if found else release
    if found is None or not routed(spec):
        return stable, stable
    judge = spec.analysis.judge
    return found[1], baseline_name(stable) if judge is not None and judge.baseline else stable
