"""The lease renewer: every failure of a renewal is a failed renewal, the leader stops acting by
the renew deadline whatever the API server does, and the renewer never dies silently."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import kubernetes
import pytest
import urllib3

from glideslope.kube.client import TimedApiClient, call_of, default_timeout
from glideslope.kube.leader import LeaderElector, LeaseConfig

pytestmark = pytest.mark.unit

LEASE = 1.2
"""Seconds: renew deadline 0.9 s, renewals every 0.2 s."""


class FakeCoordination:
    """A CoordinationV1Api holding one Lease in memory; `fail` (when set) is what a read does."""

    def __init__(self) -> None:
        self.lease: Any = None
        self.fail: Any = None
        self.timeouts: list[Any] = []
        self.lock = threading.Lock()

    def read_namespaced_lease(self, name: str, namespace: str, **kwargs: Any) -> Any:
        self.timeouts.append(kwargs.get("_request_timeout"))
        if self.fail is not None:
            self.fail()
        with self.lock:
            if self.lease is None:
                raise kubernetes.client.ApiException(status=404)
            return SimpleNamespace(spec=SimpleNamespace(**vars(self.lease.spec)))

    def create_namespaced_lease(self, namespace: str, body: dict[str, Any], **kwargs: Any) -> None:
        with self.lock:
            spec = body["spec"]
            self.lease = SimpleNamespace(spec=SimpleNamespace(
                holder_identity=spec["holderIdentity"], renew_time=spec["renewTime"],
                acquire_time=spec["acquireTime"], lease_duration_seconds=spec["leaseDurationSeconds"],
                lease_transitions=spec["leaseTransitions"]))

    def replace_namespaced_lease(self, name: str, namespace: str, lease: Any, **kwargs: Any) -> None:
        self.timeouts.append(kwargs.get("_request_timeout"))
        with self.lock:
            self.lease = lease


def unreachable() -> None:
    raise urllib3.exceptions.MaxRetryError(None, "/apis/coordination.k8s.io/v1/leases",  # type: ignore[arg-type]
                                           OSError("Connection refused"))


def leading(api: FakeCoordination) -> tuple[LeaderElector, threading.Event, list[float]]:
    """An elector that leads and renews, and the event its `on_lost` sets (with when it fired)."""
    config = LeaseConfig("ns", "lease", "me", lease_seconds=LEASE, renew_seconds=0.2, retry_seconds=0.1)
    elector = LeaderElector(api, config)
    assert elector.acquire()
    lost = threading.Event()
    calls: list[float] = []

    def on_lost() -> None:
        calls.append(time.monotonic())
        lost.set()

    elector.keep(on_lost)
    return elector, lost, calls


def assert_lost_by_the_deadline(elector: LeaderElector, lost: threading.Event, calls: list[float],
                                cut: float) -> None:
    assert lost.wait(5), "on_lost never fired"
    # The last renewal happened at most one renew interval before the cut.
    assert calls[0] - cut <= elector.cfg.renew_deadline + 0.3, calls[0] - cut
    time.sleep(0.5)
    assert len(calls) == 1, "on_lost fired more than once"
    assert elector._renewer is not None and not elector._renewer.is_alive()


def test_an_unreachable_api_server_loses_the_lease_by_the_deadline() -> None:
    api = FakeCoordination()
    elector, lost, calls = leading(api)
    time.sleep(0.5)
    assert not lost.is_set()  # renewing fine
    api.fail = unreachable
    cut = time.monotonic()
    assert_lost_by_the_deadline(elector, lost, calls, cut)


def test_a_hung_renewal_loses_the_lease_by_the_deadline() -> None:
    api, hang = FakeCoordination(), threading.Event()
    elector, lost, calls = leading(api)
    api.fail = lambda: hang.wait(30)  # ignores its timeout: only the renewer's deadline ends it
    cut = time.monotonic()
    try:
        assert_lost_by_the_deadline(elector, lost, calls, cut)
    finally:
        hang.set()


def test_any_exception_is_a_failed_renewal_and_one_success_keeps_the_lease() -> None:
    api = FakeCoordination()
    elector, lost, calls = leading(api)
    failures = iter([RuntimeError("surprise"), ValueError("bad answer")])

    def flaky() -> None:
        error = next(failures, None)
        if error is not None:
            raise error

    api.fail = flaky
    time.sleep(1.5)  # two failures, then renewals again: well past one deadline
    assert not lost.is_set()
    api.fail = lambda: (_ for _ in ()).throw(RuntimeError("boom"))
    cut = time.monotonic()
    assert_lost_by_the_deadline(elector, lost, calls, cut)


def test_another_holder_loses_the_lease_at_once() -> None:
    api = FakeCoordination()
    elector, lost, _ = leading(api)
    with api.lock:
        api.lease.spec.holder_identity = "other"
        api.lease.spec.renew_time = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert lost.wait(2)
    elector.release()


def test_a_release_stops_the_renewer_without_on_lost() -> None:
    api = FakeCoordination()
    elector, lost, _ = leading(api)
    elector.release()
    assert api.lease.spec.holder_identity is None
    time.sleep(0.5)
    assert not lost.is_set()
    assert elector._renewer is not None and not elector._renewer.is_alive()


def test_acquire_survives_any_exception_and_lease_calls_have_timeouts() -> None:
    api = FakeCoordination()
    errors = iter([unreachable, lambda: (_ for _ in ()).throw(RuntimeError("surprise"))])
    api.fail = lambda: next(errors, lambda: None)()
    config = LeaseConfig("ns", "lease", "me", lease_seconds=15, renew_seconds=5, retry_seconds=0.05)
    elector = LeaderElector(api, config)
    assert elector.acquire()
    # Well below the renew interval: a hung call is retried before the deadline.
    assert api.timeouts and all(t is not None and t <= config.renew_seconds / 2 for t in api.timeouts), api.timeouts


def test_every_call_gets_a_timeout_and_a_watch_one_past_its_own() -> None:
    assert default_timeout("https://k/api/v1/namespaces/a/pods/b") == (5.0, 30.0)
    assert default_timeout("https://k/apis/apps/v1/deployments?watch=true&timeoutSeconds=300") == (5.0, 330.0)
    assert default_timeout("https://k/api/v1/pods?watch=True") == (5.0, None)


def test_the_operator_client_sends_nothing_once_fenced() -> None:
    client = TimedApiClient(kubernetes.client.Configuration())
    sent: list[Any] = []
    client.rest_client.request = lambda *a, **kw: sent.append(kw["_request_timeout"])  # type: ignore[method-assign]
    client.call_api("GET", "https://k/api/v1/pods")
    client.call_api("GET", "https://k/api/v1/pods", _request_timeout=1.0)
    assert sent == [(5.0, 30.0), 1.0]
    client.fence()
    with pytest.raises(ConnectionError):
        client.call_api("PATCH", "https://k/api/v1/pods")
    assert len(sent) == 2


@pytest.mark.parametrize(("method", "url", "expected"), [
    ("GET", "https://k/api/v1/namespaces/a/pods?labelSelector=x", ("list", "pods")),
    ("GET", "https://k/api/v1/pods?watch=true", ("watch", "pods")),
    ("GET", "https://k/api/v1/namespaces/a/services/web", ("get", "services")),
    ("PATCH", "https://k/apis/glideslope.dev/v1alpha1/namespaces/a/releases/web/status", ("patch", "releases/status")),
    ("POST", "https://k/apis/coordination.k8s.io/v1/namespaces/a/leases", ("post", "leases")),
    ("GET", "https://k/apis/apiextensions.k8s.io/v1/customresourcedefinitions/x", ("get", "customresourcedefinitions")),
])
def test_a_call_is_named_by_verb_and_resource(method: str, url: str, expected: tuple[str, str]) -> None:
    assert call_of(method, url) == expected


def test_every_failed_call_is_counted() -> None:
    client = TimedApiClient(kubernetes.client.Configuration())
    counted: list[tuple[str, str, str]] = []
    client.on_error = lambda *labels: counted.append(labels)

    def fail(*_: Any, **__: Any) -> None:
        raise kubernetes.client.ApiException(status=409)
    client.rest_client.request = fail  # type: ignore[method-assign]
    with pytest.raises(kubernetes.client.ApiException):
        client.call_api("PATCH", "https://k/apis/apps/v1/namespaces/a/deployments/web")
    client.fence()
    with pytest.raises(ConnectionError):
        client.call_api("GET", "https://k/api/v1/pods")
    assert counted == [("patch", "deployments", "409")]  # a fenced call is not sent, so not a failure
