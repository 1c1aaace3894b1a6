"""`MetricProvider` for Prometheus' HTTP API, through prometheus-api-client.

The client is synchronous (requests), so every call runs in a worker thread: kopf's event
loop never waits on Prometheus. Each worker thread keeps a session of its own (a requests
Session is not safe to share between threads): a session per query would open a connection
per query, and at a thousand Releases those handshakes cost Prometheus and the operator more
than the queries.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import math
import os
import re
import tempfile
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from glideslope.core.analysis import Measurement

DEFAULT_TIMEOUT = 10.0
"""Seconds a query may take, connection included."""

# Beyond the requests timeout (per socket operation), a bound on the whole call: a server
# that trickles bytes must not hold a measurement forever.
_GRACE = 1.0
_ONLINE_QUERY = "vector(1)"


@dataclass(frozen=True)
class PrometheusAuth:
    """Credentials for Prometheus, as read from the Secret of `spec.analysis.prometheus`:
    a bearer `token` or `username`/`password` (basic auth), and `ca_cert` (PEM) to trust."""

    token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_cert: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.token and (self.username or self.password):
            raise ValueError("Prometheus auth: give a bearer token or username/password, not both")
        if (self.username is None) != (self.password is None):
            raise ValueError("Prometheus auth: username and password go together")


@dataclass(frozen=True)
class _Answer:
    value: float | None = None
    error: str | None = None
    refused: str | None = None
    """Prometheus' own message when it rejected the query as malformed (400 bad_data)."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class PrometheusProvider:
    """Queries one Prometheus server; never raises for problems on Prometheus' side."""

    def __init__(self, url: str, auth: PrometheusAuth | None = None, *,
                 timeout: float = DEFAULT_TIMEOUT, clock: Callable[[], datetime] = _utcnow) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._auth = auth or PrometheusAuth()
        self._clock = clock
        self._ca_path: str | None = None
        if self._auth.ca_cert:
            # requests trusts a CA bundle only from a file.
            fd, self._ca_path = tempfile.mkstemp(prefix="glideslope-prometheus-ca-", suffix=".pem")
            with os.fdopen(fd, "w") as f:
                f.write(self._auth.ca_cert)
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        # Removes the CA file and closes the sessions on close(), on garbage collection, or at
        # exit, whichever is first.
        self._finalizer = weakref.finalize(self, _close, self._ca_path, self._sessions, self._sessions_lock)

    @property
    def ca_path(self) -> str | None:
        """The temporary file holding `auth.ca_cert`, while this provider is open."""
        return self._ca_path if self._finalizer.alive else None

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PrometheusProvider({self.url!r}, {self._auth!r}, timeout={self.timeout:g})"

    # -- MetricProvider --------------------------------------------------------------------

    async def query(self, query: str) -> Measurement:
        at = self._clock()
        answer = await self._ask(query)
        return Measurement(value=answer.value, error=answer.error, at=at)

    async def check(self, query: str) -> str | None:
        return (await self._ask(query)).refused

    async def is_online(self) -> bool:
        answer = await self._ask(_ONLINE_QUERY)
        return answer.error is None and answer.value == 1.0

    # -- the worker ------------------------------------------------------------------------

    async def _ask(self, query: str) -> _Answer:
        try:
            return await asyncio.wait_for(asyncio.to_thread(self._ask_blocking, query), self.timeout + _GRACE)
        except TimeoutError:
            return _Answer(error=f"no answer from Prometheus at {self.url} within {self.timeout:g}s")

    def _ask_blocking(self, query: str) -> _Answer:
        if self._auth.ca_cert and self.ca_path is None:
            return _Answer(error="the Prometheus provider is closed (its CA file is gone)")
        client = self._client()
        try:
            result = client.custom_query(query)
        except PrometheusApiClientException as exc:
            return _http_error(str(exc))
        except requests.Timeout:
            return _Answer(error=f"no answer from Prometheus at {self.url} within {self.timeout:g}s")
        except requests.exceptions.SSLError as exc:
            return _Answer(error=f"TLS error reaching Prometheus at {self.url}: {_reason(exc)}")
        except requests.ConnectionError as exc:
            return _Answer(error=f"cannot reach Prometheus at {self.url}: {_reason(exc)}")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # A 200 that is not Prometheus' JSON (a proxy's page, a wrong URL), or any other
            # requests error (they are OSErrors).
            return _Answer(error=f"unexpected answer from {self.url}: {_reason(exc)}")
        return _sample(result)

    def _client(self) -> PrometheusConnect:
        """This thread's client, on a session (and its kept-alive connection) of its own."""
        client: PrometheusConnect | None = getattr(self._local, "client", None)
        if client is None:
            session = requests.Session()
            session.verify = self._ca_path or True
            headers = {"Authorization": f"Bearer {self._auth.token}"} if self._auth.token else None
            basic = (self._auth.username, self._auth.password) if self._auth.username is not None else None
            # No retries: the next measurement is the retry, and a retried 5xx would outlast the timeout.
            client = PrometheusConnect(url=self.url, headers=headers, auth=basic, session=session,
                                       retry=Retry(total=0, read=False, raise_on_status=False), timeout=self.timeout)
            with self._sessions_lock:
                self._sessions.append(session)
            self._local.client = client
        return client


def _close(path: str | None, sessions: list[requests.Session], lock: threading.Lock) -> None:
    with lock:
        for session in sessions:
            session.close()
        sessions.clear()
    _remove(path)


def _remove(path: str | None) -> None:
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


_HTTP_ERROR = re.compile(r"^HTTP Status Code (\d+) \((.*)\)$", re.DOTALL)


def _http_error(text: str) -> _Answer:
    """A non-200 answer. The client reports it as `HTTP Status Code N (b'<body>')`; the body
    is Prometheus' JSON `{"status": "error", "errorType": ..., "error": ...}` when it is
    Prometheus that answered."""
    match = _HTTP_ERROR.match(text)
    if match is None:
        return _Answer(error=f"Prometheus error: {_shorten(text)}")
    code = int(match.group(1))
    text = ""
    body: Any = None
    with contextlib.suppress(ValueError, SyntaxError):
        raw = ast.literal_eval(match.group(2))
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        body = json.loads(text)
    kind = message = None
    if isinstance(body, dict):
        kind, message = body.get("errorType"), body.get("error")
    if message is None:
        message = {401: "unauthorized (check the token or password)",
                   403: "forbidden (check the credentials' permissions)"}.get(code, text.strip() or "empty body")
    if code == 400 and kind == "bad_data":
        return _Answer(error=f"Prometheus refused the query: {message}", refused=str(message))
    return _Answer(error=f"Prometheus answered {code}{f' ({kind})' if kind else ''}: {_shorten(str(message))}")


def _sample(result: Any) -> _Answer:
    """One number from the `data.result` of an instant query (the client drops `resultType`)."""
    if isinstance(result, list) and len(result) == 2 and isinstance(result[0], int | float) \
            and isinstance(result[1], str):
        raw = result[1]  # a scalar (or string) result: [time, "value"]
    elif isinstance(result, list) and all(isinstance(s, dict) for s in result):
        if any("value" not in s for s in result):
            return _Answer(error="query returned a range vector; give an instant vector (e.g. rate(x[1m]))")
        if not result:
            return _Answer()
        if len(result) > 1:
            return _Answer(error=f"query returned {len(result)} series; aggregate it (sum, max...)")
        try:
            raw = result[0]["value"][1]
        except (IndexError, KeyError, TypeError):
            return _Answer(error=f"unexpected query result: {_shorten(repr(result))}")
    else:
        return _Answer(error=f"unexpected query result: {_shorten(repr(result))}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return _Answer(error=f"query returned {_shorten(repr(raw))}, not a number")
    # NaN (0/0: no traffic) and infinities say there was nothing to measure.
    return _Answer(value=value if math.isfinite(value) else None)


_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")]+")


def _reason(exc: BaseException) -> str:
    """The useful part of a requests error, whose text nests urllib3's whole chain."""
    text = str(exc)
    match = _ERRNO.search(text)
    if match:
        return match.group(0).strip()
    for marker in ("certificate verify failed", "Read timed out", "Connection refused"):
        if marker in text:
            return marker
    return _shorten(text) or type(exc).__name__


def _shorten(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
