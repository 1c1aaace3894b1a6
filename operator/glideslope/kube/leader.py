"""Leader election on a coordination.k8s.io Lease: of several operator replicas exactly one acts.

kopf's peering freezes every operator of equal priority, so two replicas would both stop;
a Lease elects one. The leader renews it; when it cannot renew within the lease's duration it
stops acting (the process exits and is restarted as a standby), and a standby takes the lease
once it has expired. A replica that shuts down cleanly hands the lease over at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import kubernetes

from glideslope.kube.client import Kube

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseConfig:
    namespace: str
    name: str
    identity: str
    lease_seconds: float = 15.0
    # Renew three times per lease: one lost renewal is not a lost lease.
    renew_seconds: float = 5.0
    retry_seconds: float = 2.0


def _now() -> datetime:
    return datetime.now(UTC)


def _parse(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _micro(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Acquire, renew and release one Lease; `coordination` is a CoordinationV1Api."""

    def __init__(self, coordination: Any, config: LeaseConfig, now: Callable[[], datetime] = _now) -> None:
        self.api = coordination
        self.cfg = config
        self.now = now
        self._renewer: threading.Thread | None = None
        self._stop = threading.Event()

    # -- one attempt -------------------------------------------------------------------------
    def try_acquire(self) -> bool:
        """One attempt to become or stay leader; True if we hold the lease now."""
        cfg, now = self.cfg, self.now()
        try:
            lease = self.api.read_namespaced_lease(cfg.name, cfg.namespace)
        except kubernetes.client.ApiException as exc:
            if exc.status != 404:
                raise
            return self._create(now)
        spec = lease.spec
        holder = spec.holder_identity or ""
        renewed = _parse(spec.renew_time) or _parse(spec.acquire_time)
        duration = timedelta(seconds=spec.lease_duration_seconds or cfg.lease_seconds)
        expired = renewed is None or renewed + duration < now
        if holder and holder != cfg.identity and not expired:
            return False
        if holder != cfg.identity:
            spec.acquire_time = _micro(now)
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
            spec.holder_identity = cfg.identity
        spec.renew_time = _micro(now)
        spec.lease_duration_seconds = int(cfg.lease_seconds)
        try:
            # A replace carries the resourceVersion we read: of two racing replicas one wins.
            self.api.replace_namespaced_lease(cfg.name, cfg.namespace, lease)
        except kubernetes.client.ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def _create(self, now: datetime) -> bool:
        body = {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": self.cfg.name, "namespace": self.cfg.namespace},
            "spec": {"holderIdentity": self.cfg.identity, "leaseDurationSeconds": int(self.cfg.lease_seconds),
                     "acquireTime": _micro(now), "renewTime": _micro(now), "leaseTransitions": 0},
        }
        try:
            self.api.create_namespaced_lease(self.cfg.namespace, body)
        except kubernetes.client.ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    # -- the loop ----------------------------------------------------------------------------
    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Block until we lead (True) or `stop` is set (False)."""
        waiting_logged = False
        while not (stop and stop.is_set()):
            try:
                if self.try_acquire():
                    log.info("leading: lease %s/%s held by %s", self.cfg.namespace, self.cfg.name, self.cfg.identity)
                    return True
            except (kubernetes.client.ApiException, OSError) as exc:
                log.warning("leader election: %s", exc)
            if not waiting_logged:
                log.info("standing by: lease %s/%s is held by another replica", self.cfg.namespace, self.cfg.name)
                waiting_logged = True
            (stop or self._stop).wait(self.cfg.retry_seconds)
        return False

    def keep(self, on_lost: Callable[[], None]) -> None:
        """Renew in the background; call `on_lost` once if the lease cannot be kept."""

        # Stop acting a margin before the lease could expire, so two replicas never act at once.
        keep_for = self.cfg.lease_seconds * 0.75

        def renew() -> None:
            deadline = time.monotonic() + keep_for
            while not self._stop.wait(self.cfg.renew_seconds):
                try:
                    if self.try_acquire():
                        deadline = time.monotonic() + keep_for
                        continue
                    log.error("leader election: another replica took the lease")
                except (kubernetes.client.ApiException, OSError) as exc:
                    log.warning("leader election: renewal failed: %s", exc)
                    if time.monotonic() < deadline:
                        continue
                    log.error("leader election: lease not renewed within %.0fs", keep_for)
                on_lost()
                return

        self._renewer = threading.Thread(target=renew, name="lease-renewer", daemon=True)
        self._renewer.start()

    def release(self) -> None:
        """Stop renewing and hand the lease over, so a standby takes it without waiting."""
        self._stop.set()
        try:
            lease = self.api.read_namespaced_lease(self.cfg.name, self.cfg.namespace)
            if lease.spec.holder_identity == self.cfg.identity:
                lease.spec.holder_identity = None
                lease.spec.renew_time = None
                self.api.replace_namespaced_lease(self.cfg.name, self.cfg.namespace, lease)
                log.info("released lease %s/%s", self.cfg.namespace, self.cfg.name)
        except (kubernetes.client.ApiException, OSError) as exc:
            log.warning("leader election: release failed: %s", exc)


def elector_for(kube: Kube, config: LeaseConfig) -> LeaderElector:
    return LeaderElector(kubernetes.client.CoordinationV1Api(kube.api), config)
