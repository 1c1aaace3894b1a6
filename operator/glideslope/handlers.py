"""kopf registration only: one timer per Release is the stepper."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import kopf

from glideslope import engine
from glideslope.api import GROUP, PLURAL, VERSION, ReleaseStatus
from glideslope.kube.client import Kube
from glideslope.logs import bind_release
from glideslope.metrics import OperatorMetrics, ReleaseKey


def register(registry: kopf.OperatorRegistry, kube: Kube, *, interval: float, metrics: OperatorMetrics,
             prometheus_url: str | None = None, on_stop: Callable[[], None] | None = None) -> None:
    """The startup settings and the stepper, on `registry`.

    `prometheus_url` is the default Prometheus for analysis (a Release may name its own).
    """
    # The status each Release had at its previous tick, so metrics count a finished rollout once;
    # on first sight after a start, history already written is not counted again.
    last: dict[tuple[str, str], ReleaseStatus] = {}

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # A registry of our own has none of kopf's default login handlers.
        info: kopf.ConnectionInfo | None = kopf.login_via_client(**kwargs)
        return info

    @kopf.on.cleanup(registry=registry)
    def cleanup(**_: Any) -> None:
        # First thing on SIGTERM: a standby need not wait for the rest of the shutdown.
        if on_stop is not None:
            on_stop()

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = f"{GROUP}/finalizer"
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=GROUP, key="last-handled-configuration")
        # Our own Events say what happens; kopf's per-handler ones would only be noise.
        settings.posting.level = logging.WARNING
        settings.watching.server_timeout = 60

    @kopf.timer(GROUP, VERSION, PLURAL, registry=registry, id="stepper", interval=interval, backoff=interval,
                errors=kopf.ErrorsMode.TEMPORARY)
    def stepper(name: str, namespace: str | None, **_: Any) -> None:
        bind_release(namespace or "", name)
        release = engine.step(kube, namespace or "", name, prometheus_url=prometheus_url)
        if release is not None:
            metrics.observe(ReleaseKey(namespace or "", name, release.spec.strategy.type.value),
                            last.get((namespace or "", name), release.status), release.status)
            last[(namespace or "", name)] = release.status

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry, optional=True)
    def deleted(name: str, namespace: str | None, **_: Any) -> None:
        metrics.forget(namespace or "", name)
        last.pop((namespace or "", name), None)
