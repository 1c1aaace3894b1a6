"""No router: traffic follows the ratio of Ready pods behind the stable Service, which the
engine already sets through replica counts; nothing to write, and no route beyond weights."""

from __future__ import annotations

from glideslope.api import Release
from glideslope.core.model import Routes, StepKind
from glideslope.kube.client import Kube
from glideslope.kube.traffic.routes import NO_ROUTES, unsupported


class ReplicasRouter:
    supports: frozenset[StepKind] = frozenset()
    weighs_baseline = True
    """The baseline's pods join the stable Service, each taking a candidate pod's share."""

    def set_weight(self, kube: Kube, release: Release, stable: str, preview: str, weight: int,
                   routes: Routes = NO_ROUTES, baseline: int | None = None) -> None:
        return None

    def check(self, kube: Kube, release: Release) -> str | None:
        return unsupported(release, self.supports, "the replica ratio (no spec.strategy.canary.trafficRouting)")

    def claim(self, kube: Kube, release: Release) -> None:
        return None  # it creates nothing
