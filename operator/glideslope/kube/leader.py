"""Leader election on a coordination.k8s.io Lease: of several operator replicas exactly one acts.

kopf's peering freezes every operator of equal priority, so two replicas would both stop;
a Lease elects one. The leader renews it; when it cannot renew within the lease's duration it
stops acting (the process exits and is restarted as a standby), and a standby takes the lease
once it has expired. A replica that shuts down cleanly hands the lease over at once.

As in client-go: a renew deadline shorter than the lease (`LeaseConfig.renew_deadline`), every
failure of a renewal attempt (an API error, an unreachable server, a hung call, any exception)
counts as a failed renewal, and every lease call has its own request timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import kubernetes

from glideslope.kube.client import Kube, TimedApiClient
from glideslope.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class LeaseConfig:
    namespace: str
    name: str
    identity: str
    lease_seconds: float = 15.0
    # Renew three times per lease: one lost renewal is not a lost lease.
    renew_seconds: float = 5.0
    retry_seconds: float = 2.0
    request_seconds: float | None = None
    """Timeout of one lease call (connect, and read); None: half the renew interval, at least
    half a second, so a renewal that hangs is retried before the deadline."""

    @property
    def renew_deadline(self) -> float:
        """Seconds after the last renewal at which the leader stops acting: a margin before the
        lease expires and a standby may take it, so two replicas never act at once."""
        return self.lease_seconds * 0.75

    @property
    def call_seconds(self) -> float:
        return self.request_seconds if self.request_seconds is not None else max(self.renew_seconds / 2, 0.5)


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
        self._renewed: float | None = None
        """When (monotonic) the attempt that last won or renewed the lease started."""

    # -- one attempt -------------------------------------------------------------------------
    def _timeout(self, budget: float | None = None) -> float:
        return max(min(self.cfg.call_seconds, budget if budget is not None else self.cfg.call_seconds), 0.1)

    def try_acquire(self, budget: float | None = None) -> bool:
        """One attempt to become or stay leader; True if we hold the lease now. `budget`: the
        seconds left before the renew deadline, which no call may outlast."""
        cfg, now = self.cfg, self.now()
        timeout = self._timeout(budget)
        try:
            lease = self.api.read_namespaced_lease(cfg.name, cfg.namespace, _request_timeout=timeout)
        except kubernetes.client.ApiException as exc:
            if exc.status != 404:
                raise
            return self._create(now, timeout)
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
            self.api.replace_namespaced_lease(cfg.name, cfg.namespace, lease, _request_timeout=timeout)
        except kubernetes.client.ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def _create(self, now: datetime, timeout: float) -> bool:
        body = {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": self.cfg.name, "namespace": self.cfg.namespace},
            "spec": {"holderIdentity": self.cfg.identity, "leaseDurationSeconds": int(self.cfg.lease_seconds),
                     "acquireTime": _micro(now), "renewTime": _micro(now), "leaseTransitions": 0},
        }
        try:
            self.api.create_namespaced_lease(self.cfg.namespace, body, _request_timeout=timeout)
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
            started = time.monotonic()
            try:
                if self.try_acquire():
                    self._renewed = started
                    log.info("leading: the lease is held", lease=f"{self.cfg.namespace}/{self.cfg.name}",
                             identity=self.cfg.identity)
                    return True
            except Exception as exc:  # any failure is one more wait: a standby never dies of it
                log.warning("leader election failed", error=_describe(exc))
            if not waiting_logged:
                log.info("standing by: the lease is held by another replica",
                         lease=f"{self.cfg.namespace}/{self.cfg.name}")
                waiting_logged = True
            (stop or self._stop).wait(self.cfg.retry_seconds)
        return False

    def _attempt(self, budget: float) -> bool | None:
        """One renewal within `budget` seconds: True renewed, False another replica holds the
        lease, None failed (any exception, or no answer in time). The call runs on a thread of
        its own, so a call that hangs past its timeout still cannot hold the renewer past the
        deadline."""
        outcome: list[bool] = []
        failure: list[Exception] = []

        def attempt() -> None:
            try:
                outcome.append(self.try_acquire(budget))
            except Exception as exc:
                failure.append(exc)

        thread = threading.Thread(target=attempt, name="lease-renewal", daemon=True)
        thread.start()
        thread.join(budget)
        if thread.is_alive():
            log.warning("leader election: renewal got no answer in time", seconds=round(budget, 1))
            return None
        if failure:
            log.warning("leader election: renewal failed", error=_describe(failure[0]))
            return None
        return outcome[0] if outcome else None

    def keep(self, on_lost: Callable[[], None]) -> None:
        """Renew in the background; call `on_lost` once if the lease cannot be kept: another
        replica holds it, or it was not renewed within the renew deadline."""
        cfg = self.cfg

        def renew() -> None:
            # Counted from the acquiring attempt: the operator's start-up in between is not free.
            deadline = (self._renewed if self._renewed is not None else time.monotonic()) + cfg.renew_deadline
            pause = cfg.renew_seconds
            while True:
                remaining = deadline - time.monotonic()
                if self._stop.wait(max(min(pause, remaining), 0.0)):
                    return
                started = time.monotonic()
                remaining = deadline - started
                if remaining <= 0:
                    log.error("leader election: lease not renewed within its deadline", seconds=cfg.renew_deadline)
                    break
                renewed = self._attempt(remaining)
                if self._stop.is_set():
                    return  # released meanwhile: nothing is lost
                if renewed:
                    # The lease's renewTime is taken before the call: count from then.
                    deadline, pause = started + cfg.renew_deadline, cfg.renew_seconds
                    continue
                if renewed is False:
                    log.error("leader election: another replica took the lease")
                    break
                pause = cfg.retry_seconds  # failed: retry sooner, up to the deadline
            try:
                on_lost()
            except Exception:
                log.exception("leader election: stopping after the lost lease failed")

        self._renewer = threading.Thread(target=renew, name="lease-renewer", daemon=True)
        self._renewer.start()

    def release(self) -> None:
        """Stop renewing and hand the lease over, so a standby takes it without waiting."""
        self._stop.set()
        timeout = self._timeout()
        try:
            lease = self.api.read_namespaced_lease(self.cfg.name, self.cfg.namespace, _request_timeout=timeout)
            if lease.spec.holder_identity == self.cfg.identity:
                lease.spec.holder_identity = None
                lease.spec.renew_time = None
                self.api.replace_namespaced_lease(self.cfg.name, self.cfg.namespace, lease, _request_timeout=timeout)
                log.info("released lease", lease=f"{self.cfg.namespace}/{self.cfg.name}")
        except Exception as exc:  # the lease then expires on its own
            log.warning("leader election: release failed", error=_describe(exc))


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def elector_for(kube: Kube, config: LeaseConfig) -> LeaderElector:
    """An elector on a client of its own: its calls never wait for a connection behind the
    steppers', and fencing the operator's client (a lost lease) leaves the release possible."""
    return LeaderElector(kubernetes.client.CoordinationV1Api(TimedApiClient(kube.api.configuration)), config)
