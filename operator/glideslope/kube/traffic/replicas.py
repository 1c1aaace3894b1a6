"""No router: traffic follows the ratio of Ready pods behind the stable Service, which the
engine already sets through replica counts; nothing to write."""

from __future__ import annotations

from glideslope.api import Release
from glideslope.kube.client import Kube


class ReplicasRouter:
    def set_weight(self, kube: Kube, release: Release, stable: str, preview: str, weight: int) -> None:
        return None

    def check(self, kube: Kube, release: Release) -> str | None:
        return None
