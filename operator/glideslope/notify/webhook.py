"""Delivering JSON (or templated) bodies to webhooks (notifications and webhook gates): POST, retry what may
pass later, never raise.

A receiver that fails must never hold a rollout back, so `WebhookNotifier.send` turns every
delivery problem into a `DeliveryResult` that the engine can record as an Event. Every attempt
goes through the egress layer (`glideslope.egress`): the installer's egress policy, a total
deadline, a cap on the answer's bytes, no redirects. Nothing the receiver says is kept beyond
its status code, and webhook URLs are often credentials (a Slack incoming-webhook URL is one),
so only `scheme://host[:port]` ever reaches a log line or a result's `error`.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from glideslope.egress import Egress, EgressRefused, Kind, Refusal, where
from glideslope.logs import get_logger

log = get_logger("glideslope.notify")

DEFAULT_TIMEOUT = 10.0
"""Seconds one attempt may take, connection included."""

USER_AGENT = "glideslope-notifier"
JSON_CONTENT_TYPE = "application/json"
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"

# Statuses worth another attempt: server trouble, plus the two 4xx that mean "later", not "never".
_RETRY_4XX = frozenset({408, 429})
# A receiver's answer is read only for its status: more than this is refused.
_MAX_ANSWER = 64 * 1024
# Refusals another attempt cannot change.
_FINAL = frozenset({Refusal.DENIED, Refusal.INVALID, Refusal.TOO_LARGE})


@dataclass(frozen=True)
class DeliveryResult:
    """How a delivery went. `status` is the last HTTP status (None: no response at all);
    `error` says why it failed, with no secret part of the URL in it."""

    ok: bool
    attempts: int
    status: int | None
    error: str | None


class WebhookNotifier:
    """POSTs JSON bodies to webhooks with bounded retries.

    `attempts` counts the first try. Between attempts it waits `backoff * 2**(n-1)` seconds
    (n = failures so far), at most `max_backoff`, scaled by a jitter factor in [0.5, 1.5) so
    that many operators do not retry in step. A `Retry-After` header replaces that wait, but
    never beyond `retry_after_cap`. `sleep` and `rng` are injectable for tests.
    """

    def __init__(
        self,
        egress: Egress,
        *,
        kind: Kind = Kind.NOTIFICATION,
        attempts: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        retry_after_cap: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        if backoff < 0 or max_backoff < 0 or retry_after_cap < 0:
            raise ValueError("backoff, max_backoff and retry_after_cap must not be negative")
        self._egress = egress
        self._kind = kind
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.retry_after_cap = retry_after_cap
        self._sleep = sleep
        self._rng = rng

    async def send(self, url: str, payload: Mapping[str, Any], *, timeout: float = DEFAULT_TIMEOUT,
                   headers: Mapping[str, str] | None = None) -> DeliveryResult:
        """POST `payload` as JSON to `url`; 2xx is delivered. `timeout` bounds each attempt.

        Never raises for delivery problems (bad URL, unserialisable payload, network, HTTP
        status): they come back in the result. Only a non-positive `timeout`, a caller's bug,
        raises ValueError. Worst case it takes `attempts * timeout` plus the waits between.
        """
        try:
            # Strict JSON: a NaN would go out as a bare `NaN` token that most receivers refuse.
            body = json.dumps(payload, allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode()
        except (TypeError, ValueError) as exc:
            url = url.strip()
            return self._give_up(redact_url(url), DeliveryResult(False, 0, None, f"payload is not JSON: {exc}"))
        return await self.send_body(url, body, JSON_CONTENT_TYPE, timeout=timeout, headers=headers)

    async def send_body(self, url: str, body: bytes, content_type: str, *, timeout: float = DEFAULT_TIMEOUT,
                        headers: Mapping[str, str] | None = None) -> DeliveryResult:
        """POST `body` as it is (a notification's own template), with `content_type`; otherwise
        as `send`."""
        if not timeout > 0:  # aiohttp would read 0 as "no timeout"
            raise ValueError("timeout must be positive")
        # A URL read from a Secret often ends in the newline `echo` put there.
        url = url.strip()
        where = redact_url(url)
        if urlsplit(url).scheme not in ("http", "https") or where == "<invalid URL>":
            return self._give_up(where, DeliveryResult(False, 0, None, f"invalid webhook URL {where}"))
        sent = {"Content-Type": content_type, **(headers or {})}
        if asyncio.get_running_loop() is not self._egress.loop:
            # Attempts and the waits between run on the egress layer's loop.
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(
                self._deliver(url, where, body, timeout, sent), self._egress.loop))
        return await self._deliver(url, where, body, timeout, sent)

    async def _deliver(self, url: str, where: str, body: bytes, timeout: float,
                       headers: Mapping[str, str]) -> DeliveryResult:
        result = DeliveryResult(False, 0, None, "not attempted")
        for attempt in range(1, self.attempts + 1):
            result, retry, retry_after = await self._attempt(url, where, body, attempt, timeout, headers)
            if result.ok:
                log.info("delivered", what=self._what, to=where, status=result.status, attempt=attempt)
                return result
            if not retry or attempt == self.attempts:
                break
            delay = self._delay(attempt, retry_after)
            log.info("delivery failed; trying again", what=self._what, to=where, error=result.error,
                     attempt=attempt + 1, attempts=self.attempts, seconds=round(delay, 1))
            await self._sleep(delay)
        return self._give_up(where, result)

    async def _attempt(self, url: str, where: str, body: bytes, attempt: int, timeout: float,
                       headers: Mapping[str, str]) -> tuple[DeliveryResult, bool, float | None]:
        """One POST: its result, whether another attempt may help, and the server's Retry-After."""
        try:
            reply = await self._egress.fetch(
                self._kind, "POST", url, deadline=timeout, max_bytes=_MAX_ANSWER, body=body, headers=headers)
        except EgressRefused as exc:
            return DeliveryResult(False, attempt, None, _scrub(str(exc), url, where)), exc.refusal not in _FINAL, None
        except Exception as exc:  # the contract is "never raise": say what it was instead
            error = f"unexpected {type(exc).__name__} sending to {where}"
            return DeliveryResult(False, attempt, None, error), False, None
        status = reply.status
        if 200 <= status < 300:
            return DeliveryResult(True, attempt, status, None), False, None
        retry = status >= 500 or status in _RETRY_4XX
        retry_after = _retry_after(reply.headers.get("Retry-After"), datetime.now(UTC))
        return DeliveryResult(False, attempt, status, f"HTTP {status}"), retry, retry_after

    def _delay(self, failures: int, retry_after: float | None) -> float:
        """Seconds to wait after `failures` failed attempts."""
        if retry_after is not None:
            return min(retry_after, self.retry_after_cap)
        base = min(self.backoff * 2.0 ** (failures - 1), self.max_backoff)
        return base * (0.5 + self._rng())

    def _give_up(self, where: str, result: DeliveryResult) -> DeliveryResult:
        log.warning("not delivered", what=self._what, to=where, attempts=result.attempts, error=result.error)
        return result

    @property
    def _what(self) -> str:
        return "webhook gate request" if self._kind == Kind.WEBHOOK else "notification"


redact_url = where
"""`scheme://host[:port]` of a webhook URL: what may be logged of it (`egress.where`)."""


def _scrub(text: str, url: str, where: str) -> str:
    """`text` without the URL's secret parts: exception messages from aiohttp and yarl, and
    error bodies, may quote the URL they were given."""
    parts = urlsplit(url)
    text = text.replace(url, where)
    secrets = [parts.path + ("?" + parts.query if parts.query else ""), parts.path, parts.query]
    if "@" in parts.netloc:
        secrets.append(parts.netloc.rsplit("@", 1)[0])
    for secret in secrets:
        # "/" alone is no secret, and replacing it would mangle every message.
        if len(secret) > 1:
            text = text.replace(secret, "<redacted>")
    return text


def _retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # HTTP dates are GMT by definition
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)
