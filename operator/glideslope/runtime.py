"""`Runtime`: what the operator keeps while it runs, built once at start-up.

It owns the caches of Releases and workloads, the scheduler that steps them, the egress layer
(every request to an endpoint a tenant names), the Prometheus providers and each Release's
memory, and forgets a Release in one place (`forget`). Nothing of it lives in module globals,
so a test builds a runtime of its own and two never share state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from glideslope.api import ReleaseStatus
from glideslope.core.model import SetTraffic
from glideslope.egress import Egress, EgressPolicy
from glideslope.kube import releases, templates, workloads
from glideslope.kube.client import Kube, fence
from glideslope.metrics import OperatorMetrics
from glideslope.notify.publish import Publisher
from glideslope.prom import PrometheusAuth, PrometheusProvider, WebProvider
from glideslope.scheduler import STEPPERS, Key, Scheduler

ANALYSIS_TIMEOUT = 3.0
"""Seconds a Prometheus query may take in all (connection, headers, body): a tenant's slow
Prometheus delays only its own Release's measurements, never a stepper."""


WEB_PROVIDERS = 1024
"""Web providers kept (one per distinct jsonPath and headers); past it they are made afresh:
each holds only a parsed JSONPath, and a tenant writing ever new ones must not grow memory."""


STOP_SECONDS = 10.0
"""How long a stop waits for the running ticks (a tick takes well under a second unless a call
hangs): bounded, so a hung call cannot hold a shutdown, whose caller then fences the client."""


ProviderKey = tuple[str, PrometheusAuth | None, bool]
"""(address, credentials, whether the address is the Release's own)."""


@dataclass
class ReleaseMemory:
    """One Release's memory in this process, forgotten with it (`Runtime.forget`). Only its
    own ticks touch it, and the scheduler never runs two ticks of one Release at once."""

    status_written: float = float("-inf")
    """When this process last wrote the status (monotonic seconds)."""
    unwritten: tuple[str, ReleaseStatus] | None = None
    """A status decided but not written yet (`engine._worth_writing`), and the resourceVersion
    it was decided on: used by the next tick only if the Release has not changed since."""
    announced: tuple[str, ...] | None = None
    """The announcements this process has recorded as Events (or found recorded)."""
    traffic: tuple[SetTraffic, int] | None = None
    """The Services and route state last written, and how many ticks since (`engine._traffic`)."""
    checked: tuple[str, int, list[str]] | None = None
    """(uid, generation, problems): what Prometheus said of the rendered queries of that generation."""
    provider: ProviderKey | None = None
    """The Prometheus the Release last used (`Runtime.provider`)."""
    last_status: ReleaseStatus | None = None
    """The status of its previous tick, so metrics count a finished rollout once."""
    seen: tuple[Any, ...] | None = None
    """What of it last woke a tick: its uid, generation and annotations."""
    verify_answered: float = float("-inf")
    """When this process last read a measurement of the Release's traffic share (monotonic seconds)."""
    claimed: tuple[str | None, int | None] | None = None
    """(uid, generation) whose Services and Deployment were found to be its own
    (`engine._claim`)."""


@dataclass
class _Provider:
    provider: PrometheusProvider
    users: set[Key] = field(default_factory=set)


class Runtime:
    def __init__(self, kube: Kube, tick: Callable[[str, str], float | None], *, metrics: OperatorMetrics,
                 policy: EgressPolicy, prometheus_url: str | None = None, interval: float = 5.0,
                 namespaces: list[str] | None = None, workers: int = STEPPERS) -> None:
        self.kube = kube
        self.metrics = metrics
        self.policy = policy
        self.prometheus_url = prometheus_url
        self.interval = interval
        self.egress = Egress(policy, observer=metrics.egress)
        self.publisher = Publisher(self.egress)
        self.scheduler = Scheduler(tick, workers=workers, retry=interval, observe=metrics.tick)
        metrics.watch_queue(self.scheduler)
        self.egress.set_wake(self.scheduler.wake)
        self.workloads = workloads.WorkloadCache(kube, namespaces, lambda ns, name: self.scheduler.wake((ns, name)))
        self.releases = releases.ReleaseCache()
        self.templates = templates.TemplateCache()
        self._web: dict[tuple[str, tuple[tuple[str, str], ...]], WebProvider] = {}
        self._memory: dict[Key, ReleaseMemory] = {}
        self._providers: dict[ProviderKey, _Provider] = {}
        self._lock = threading.Lock()

    def memory(self, key: Key) -> ReleaseMemory:
        with self._lock:
            return self._memory.setdefault(key, ReleaseMemory())

    def remembered(self, key: Key) -> ReleaseMemory | None:
        with self._lock:
            return self._memory.get(key)

    def provider(self, key: Key, address: str, auth: PrometheusAuth | None, *, own: bool) -> PrometheusProvider:
        """The provider for a Prometheus and credentials, shared by the Releases that use it;
        one that no Release uses any more is closed (`_release_provider`). `own`: the address
        is the Release's `spec.analysis.prometheus.address`, named in the errors of reaching it."""
        wanted = (address, auth, own)
        memory = self.memory(key)
        with self._lock:
            entry = self._providers.get(wanted)
            if entry is None:
                source = "spec.analysis.prometheus.address" if own else "--prometheus-url"
                entry = self._providers[wanted] = _Provider(
                    PrometheusProvider(address, auth, timeout=ANALYSIS_TIMEOUT, egress=self.egress, source=source))
            entry.users.add(key)
            previous, memory.provider = memory.provider, wanted
        if previous is not None and previous != wanted:
            self._release_provider(key, previous)
        return entry.provider

    def web_provider(self, json_path: str, headers: tuple[tuple[str, str], ...]) -> WebProvider:
        """The web metric provider for a JSONPath and headers (`prom.web`), through this
        runtime's egress layer."""
        wanted = (json_path, headers)
        with self._lock:
            provider = self._web.get(wanted)
            if provider is None:
                if len(self._web) >= WEB_PROVIDERS:
                    self._web.clear()
                provider = self._web[wanted] = WebProvider(json_path, dict(headers), egress=self.egress,
                                                           timeout=ANALYSIS_TIMEOUT)
            return provider

    def providers(self) -> int:
        with self._lock:
            return len(self._providers)

    def _release_provider(self, key: Key, which: ProviderKey) -> None:
        with self._lock:
            entry = self._providers.get(which)
            if entry is None:
                return
            entry.users.discard(key)
            if entry.users:
                return
            del self._providers[which]
        entry.provider.close()

    def forget(self, namespace: str, name: str, *, held: bool = False) -> None:
        """A deleted Release leaves nothing behind: its memory, its answers and requests, its
        share of a Prometheus provider, its tick and its metrics. `held`: it is still being
        deleted (the finalizer runs), so it stays held, never stepped."""
        key = (namespace, name)
        with self._lock:
            memory = self._memory.pop(key, None)
        if memory is not None and memory.provider is not None:
            self._release_provider(key, memory.provider)
        self.egress.forget(key)
        self.templates.used(key, ())
        if not held:
            self.scheduler.forget(key)
        self.metrics.forget(namespace, name)

    def start(self, sync_seconds: float) -> None:
        """Start the caches, wait up to `sync_seconds` for their first listing, then step."""
        self.workloads.start()
        workloads.install_cache(self.workloads)
        releases.install_cache(self.releases)
        waited = 0.0
        while not self.workloads.synced() and waited < sync_seconds:
            threading.Event().wait(0.1)
            waited += 0.1
        self.scheduler.start()

    def stop_steppers(self, wait: float = STOP_SECONDS) -> bool:
        """No tick starts any more; waits up to `wait` seconds for the running ones (True: none
        runs). On SIGTERM this comes before the lease is handed over."""
        return self.scheduler.stop(wait=wait)

    def fence(self, wait: float) -> bool:
        """The lease is lost: no tick starts, no request of the operator's client is sent any
        more (a running tick fails at its next call), and the running ticks are waited for up
        to `wait` seconds, so none still writes once another replica may lead."""
        self.scheduler.stop()
        fence(self.kube)
        return self.scheduler.stop(wait=wait)

    def stop(self, wait: float = STOP_SECONDS) -> None:
        self.scheduler.stop(wait=wait)
        self.workloads.stop()
        self.publisher.drain(5.0)
        self.egress.close()
