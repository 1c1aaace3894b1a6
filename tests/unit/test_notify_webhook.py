"""Webhook delivery against a real aiohttp server on 127.0.0.1: retries, timeouts, redaction."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, Self, TypeVar

import pytest
from aiohttp import web

from glideslope.api import NotificationEvent, Phase, StrategyType
from glideslope.egress import Egress, EgressPolicy
from glideslope.notify import DeliveryResult, ReleaseEvent, WebhookNotifier, redact_url, slack_payload

pytestmark = pytest.mark.unit

T = TypeVar("T")
PAYLOAD: dict[str, Any] = {"schemaVersion": 1, "event": "Succeeded", "text": "\u2705 ok", "n": [1, 2.5, None]}
SECRET = "s3cr3tT0ken"
SECRET_PATH = f"/services/T0/B0/{SECRET}?token=hunter2"


# The receivers listen on 127.0.0.1, which the default egress policy denies.
EGRESS = Egress(EgressPolicy.from_flags(prometheus_url=None, egress_allow=["127.0.0.0/8"]))


@pytest.fixture(autouse=True, scope="module")
def _close_egress() -> Iterator[None]:
    yield
    EGRESS.close()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """No pytest-asyncio here: each test drives its own event loop."""
    return asyncio.run(coro)


@dataclass
class Reply:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Received:
    method: str
    path_qs: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A webhook receiver answering with `replies` in turn (the last one repeats)."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies) or [Reply()]
        self.received: list[Received] = []
        self._released = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.received.append(Received(request.method, request.path_qs, dict(request.headers), await request.read()))
        reply = self.replies[min(len(self.received), len(self.replies)) - 1]
        if reply.delay:
            # Wait on an event rather than sleep, so that shutting down never waits for it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._released.wait(), reply.delay)
        body = reply.body.replace("{path}", request.path_qs)
        return web.Response(status=reply.status, text=body, headers=reply.headers)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # No access log: it is the receiver's (it would show the secret path), not ours.
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._released.set()
        assert self._runner is not None
        await self._runner.cleanup()


class Sleeps:
    """An injected sleep that records the delays instead of waiting them."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def notifier(sleeps: Sleeps, **kwargs: Any) -> WebhookNotifier:
    # rng 0.5 makes the jitter factor exactly 1: the delays are the plain exponential series.
    return WebhookNotifier(EGRESS, sleep=sleeps, rng=lambda: 0.5, **kwargs)


def exchange(
    *replies: Reply, path: str = "/hook", timeout: float = 2.0, payload: dict[str, Any] | None = None,
    **kwargs: Any,
) -> tuple[DeliveryResult, Receiver, Sleeps]:
    """Send one payload to a fresh receiver answering `replies`."""
    sleeps = Sleeps()

    async def scenario() -> tuple[DeliveryResult, Receiver]:
        async with Receiver(*replies) as receiver:
            result = await notifier(sleeps, **kwargs).send(
                receiver.url(path), PAYLOAD if payload is None else payload, timeout=timeout)
            return result, receiver

    result, receiver = run(scenario())
    return result, receiver, sleeps


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (just released by the kernel)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# ---------------------------------------------------------------------------------------------
# Delivery and retries


def test_200_is_delivered_once() -> None:
    result, receiver, sleeps = exchange(Reply(200))
    assert result == DeliveryResult(ok=True, attempts=1, status=200, error=None)
    assert len(receiver.received) == 1
    assert sleeps.delays == []


def test_any_2xx_is_delivered() -> None:
    result, _, _ = exchange(Reply(204, body=""))
    assert result == DeliveryResult(ok=True, attempts=1, status=204, error=None)


def test_payload_is_received_intact() -> None:
    event = ReleaseEvent(release="checkout", namespace="shop", event=NotificationEvent.ROLLED_BACK,
                         version="2.5.0", at=datetime(2026, 11, 26, 6, 50, tzinfo=UTC), phase=Phase.ROLLED_BACK,
                         strategy=StrategyType.CANARY, message="error-rate 0.012 > 0.001 <!here> & more")
    payload = slack_payload(event)
    result, receiver, _ = exchange(Reply(200), payload=payload)
    assert result.ok
    (request,) = receiver.received
    assert request.method == "POST"
    assert request.path_qs == "/hook"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("glideslope")
    assert json.loads(request.body.decode("utf-8")) == payload


def test_500_then_200_is_retried() -> None:
    result, receiver, sleeps = exchange(Reply(500, "boom"), Reply(200))
    assert result == DeliveryResult(ok=True, attempts=2, status=200, error=None)
    assert len(receiver.received) == 2
    assert sleeps.delays == [0.5]


def test_backoff_doubles_and_gives_up_after_the_last_attempt() -> None:
    result, receiver, sleeps = exchange(Reply(503, "  over\n loaded "), attempts=4)
    assert result == DeliveryResult(ok=False, attempts=4, status=503, error="HTTP 503")  # the body is never repeated
    assert len(receiver.received) == 4
    assert sleeps.delays == [0.5, 1.0, 2.0]


def test_backoff_is_capped_and_jittered() -> None:
    sleeps = Sleeps()
    factors = iter([0.0, 0.999, 0.25, 0.75])
    notifier = WebhookNotifier(EGRESS, attempts=5, backoff=1.0, max_backoff=3.0, sleep=sleeps,
                               rng=lambda: next(factors))

    async def scenario() -> DeliveryResult:
        async with Receiver(Reply(500)) as receiver:
            return await notifier.send(receiver.url(), PAYLOAD, timeout=2.0)

    assert not run(scenario()).ok
    assert sleeps.delays == pytest.approx([0.5, 2.0 * 1.499, 3.0 * 0.75, 3.0 * 1.25])


@pytest.mark.parametrize("status", [408, 429, 502])
def test_retried_statuses(status: int) -> None:
    result, receiver, _ = exchange(Reply(status), Reply(200))
    assert result.ok and result.attempts == 2
    assert len(receiver.received) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_other_4xx_are_not_retried(status: int) -> None:
    result, receiver, sleeps = exchange(Reply(status, "no_service"), Reply(200))
    assert result == DeliveryResult(ok=False, attempts=1, status=status, error=f"HTTP {status}")
    assert len(receiver.received) == 1
    assert sleeps.delays == []


def test_redirect_is_not_followed() -> None:
    result, receiver, _ = exchange(Reply(302, "", headers={"Location": "/elsewhere"}))
    assert not result.ok and result.status == 302 and result.attempts == 1
    assert [r.path_qs for r in receiver.received] == ["/hook"]


def test_timeout_counts_as_a_failed_attempt() -> None:
    result, receiver, sleeps = exchange(Reply(200, delay=5.0), timeout=0.2, attempts=2)
    assert not result.ok
    assert result.attempts == 2 and result.status is None
    assert result.error == f"no answer from http://127.0.0.1:{receiver.port} within 0.2s"
    assert len(receiver.received) == 2
    assert sleeps.delays == [0.5]


def test_connection_refused() -> None:
    port = closed_port()
    sleeps = Sleeps()
    result = run(notifier(sleeps).send(f"http://127.0.0.1:{port}/hook", PAYLOAD, timeout=2.0))
    assert not result.ok
    assert result.attempts == 3 and result.status is None
    assert result.error is not None and result.error.startswith(f"cannot connect to http://127.0.0.1:{port}")
    assert sleeps.delays == [0.5, 1.0]


# ---------------------------------------------------------------------------------------------
# Retry-After


def test_retry_after_seconds_is_honoured() -> None:
    result, _, sleeps = exchange(Reply(429, headers={"Retry-After": "7"}), Reply(200))
    assert result.ok and result.attempts == 2
    assert sleeps.delays == [7.0]


def test_retry_after_is_capped() -> None:
    result, _, sleeps = exchange(Reply(503, headers={"Retry-After": "3600"}), Reply(200), retry_after_cap=30.0)
    assert result.ok
    assert sleeps.delays == [30.0]


def test_retry_after_http_date_is_honoured() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    result, _, sleeps = exchange(Reply(503, headers={"Retry-After": when}), Reply(200))
    assert result.ok
    (delay,) = sleeps.delays
    assert 15.0 < delay <= 20.0


@pytest.mark.parametrize("value", ["soon", "-5", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_unreadable_or_past_retry_after(value: str) -> None:
    _, _, sleeps = exchange(Reply(503, headers={"Retry-After": value}), Reply(200))
    # Junk falls back to the backoff; a time in the past means "now".
    assert sleeps.delays == ([0.0] if value != "soon" else [0.5])


def test_retry_after_does_not_make_a_404_retryable() -> None:
    result, receiver, sleeps = exchange(Reply(404, headers={"Retry-After": "1"}), Reply(200))
    assert not result.ok and len(receiver.received) == 1 and sleeps.delays == []


# ---------------------------------------------------------------------------------------------
# Never raise, never leak


@pytest.mark.parametrize("url", ["", "not a url", "ftp://example.com/x", "http://", "http://host:99999/x"])
def test_invalid_url_is_a_result_not_an_exception(url: str) -> None:
    sleeps = Sleeps()
    result = run(notifier(sleeps).send(url, PAYLOAD, timeout=1.0))
    assert not result.ok and result.attempts == 0 and result.status is None
    assert result.error is not None and result.error.startswith("invalid webhook URL")


def test_url_from_a_secret_may_end_in_a_newline() -> None:
    sleeps = Sleeps()

    async def scenario() -> DeliveryResult:
        async with Receiver(Reply(200)) as receiver:
            return await notifier(sleeps).send(receiver.url() + "\n", PAYLOAD, timeout=2.0)

    assert run(scenario()).ok


def test_payload_that_is_not_json() -> None:
    result, receiver, _ = exchange(Reply(200), payload={"value": float("nan")})
    assert result.attempts == 0 and not result.ok
    assert result.error is not None and result.error.startswith("payload is not JSON")
    assert receiver.received == []


def test_bad_arguments_are_caller_bugs() -> None:
    with pytest.raises(ValueError, match="attempts"):
        WebhookNotifier(EGRESS, attempts=0)
    with pytest.raises(ValueError, match="timeout"):
        run(WebhookNotifier(EGRESS).send("http://127.0.0.1:1/", PAYLOAD, timeout=0))


def test_secret_parts_of_the_url_are_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    results: list[DeliveryResult] = []
    sleeps = Sleeps()

    async def send(url: str) -> DeliveryResult:
        return await notifier(sleeps).send(url, PAYLOAD, timeout=0.3)

    async def scenario() -> None:
        # A receiver that echoes the secret path in its error body, then one that succeeds.
        async with Receiver(Reply(500, "no hook at {path}"), Reply(400, "bad {path}")) as receiver:
            results.append(await send(receiver.url(SECRET_PATH)))
        async with Receiver(Reply(200)) as receiver:
            results.append(await send(receiver.url(SECRET_PATH)))
        async with Receiver(Reply(200, delay=5.0)) as receiver:
            results.append(await send(receiver.url(SECRET_PATH)))
        results.append(await send(f"http://user:hunter2@127.0.0.1:{closed_port()}{SECRET_PATH}"))

    run(scenario())
    assert [r.ok for r in results] == [False, True, False, False]
    assert results[0].error == "HTTP 400"  # what the receiver said is never repeated
    logged = caplog.text
    assert "http://127.0.0.1:" in logged  # it does say where
    for secret in (SECRET, "hunter2", "/services/"):
        assert secret not in logged
        assert all(secret not in (r.error or "") for r in results)


@pytest.mark.parametrize(("url", "safe"), [
    ("https://hooks.slack.com/services/T0/B0/xyz", "https://hooks.slack.com"),
    ("https://user:pw@example.com:8443/a?token=t#f", "https://example.com:8443"),
    ("http://[::1]:8080/hook", "http://[::1]:8080"),
    (" https://example.com/x\n", "https://example.com"),
    ("no scheme", "<invalid URL>"),
    ("http://example.com:notaport/", "<invalid URL>"),
])
def test_redact_url(url: str, safe: str) -> None:
    assert redact_url(url) == safe
