"""`MetricProvider` for Prometheus' HTTP API, through prometheus-api-client.

The client is synchronous (requests), so every call runs in a worker thread of the egress
layer (`glideslope.egress`), never on a stepper. Its session is `EgressSession`: a
`requests.Session` whose requests go through the egress layer's bounded HTTP (a total
deadline, a cap on response bytes, no redirects), so a Prometheus that trickles its answer or
sends 200 MB holds a thread only until the deadline and costs at most the cap in memory.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import math
import os
import re
import ssl
import tempfile
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import aiohttp
import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from requests.structures import CaseInsensitiveDict
from urllib3.util.retry import Retry

from glideslope.core.analysis import Measurement
from glideslope.core.judge import Side
from glideslope.egress import Egress, EgressPolicy, EgressRefused, Kind, Refusal

DEFAULT_TIMEOUT = 10.0
"""Seconds a query may take, connection, headers and body included."""
MAX_RESPONSE_BYTES = 1 << 20
"""An instant query's answer is one number: a megabyte is far more than any sane answer."""

# The layer's deadline ends the request; this much later a measurement stops waiting for a
# thread of the layer's pool, if all were busy.
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
    """Queries one Prometheus server; never raises for problems on Prometheus' side.

    `egress` is the operator's egress layer; without one the provider runs a layer of its
    own (tests, the CLI). `source` names where the address came from (such as
    `spec.analysis.prometheus.address`) in the errors of reaching it."""

    def __init__(self, url: str, auth: PrometheusAuth | None = None, *,
                 timeout: float = DEFAULT_TIMEOUT, clock: Callable[[], datetime] = _utcnow,
                 egress: Egress | None = None, max_bytes: int = MAX_RESPONSE_BYTES, source: str | None = None) -> None:
        self.url = url.rstrip("/")
        self._source = source
        """Where the address came from (a field path), named in errors reaching it."""
        self.timeout = timeout
        self._auth = auth or PrometheusAuth()
        self._clock = clock
        self._own_egress = egress is None
        self._egress = egress or Egress(EgressPolicy())
        self._ca_path: str | None = None
        tls = None
        if self._auth.ca_cert:
            # Kept as a file too: `ca_path` is how people and tests find what is trusted.
            fd, self._ca_path = tempfile.mkstemp(prefix="glideslope-prometheus-ca-", suffix=".pem")
            with os.fdopen(fd, "w") as f:
                f.write(self._auth.ca_cert)
            tls = ssl.create_default_context(cadata=self._auth.ca_cert)
        self._tls = tls
        session = EgressSession(self._egress, deadline=timeout, max_bytes=max_bytes, tls=tls)
        headers = {"Authorization": f"Bearer {self._auth.token}"} if self._auth.token else None
        basic = (self._auth.username, self._auth.password) if self._auth.username is not None else None
        # No retries: the next measurement is the retry, and a retried 5xx would outlast the deadline.
        self._client = PrometheusConnect(url=self.url, headers=headers, auth=basic, session=session,
                                         retry=Retry(total=0, read=False, raise_on_status=False), timeout=timeout)
        # Removes the CA file and the layer's sessions for it on close(), on garbage collection,
        # or at exit, whichever is first.
        self._finalizer = weakref.finalize(self, _close, self._ca_path, self._egress if self._own_egress else None,
                                           tls, None if self._own_egress else self._egress)

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

    async def query_range(self, query: str, start: datetime, end: datetime, step: float) -> Side:
        """Every value of every series `query` gives over [start, end] at `step` seconds (the
        judge's samples); an error is a `Side` with `error` set, never an exception."""
        if not self._finalizer.alive:
            return Side(query, error="the Prometheus provider is closed")
        loop = self._egress.loop

        async def in_thread() -> Side:
            return await asyncio.get_running_loop().run_in_executor(
                None, self._range_blocking, query, start, end, step)

        future = asyncio.wrap_future(asyncio.run_coroutine_threadsafe(in_thread(), loop))
        try:
            return await asyncio.wait_for(future, self.timeout + _GRACE)
        except TimeoutError:
            return Side(query, error=f"no answer from Prometheus at {self.url} within {self.timeout:g}s")

    def _range_blocking(self, query: str, start: datetime, end: datetime, step: float) -> Side:
        try:
            result = self._client.custom_query_range(query, start_time=start, end_time=end, step=f"{step:g}s")
        except PrometheusApiClientException as exc:
            return Side(query, error=_http_error(str(exc)).error)
        except EgressRefused as exc:
            return Side(query, error=f"{self._source + ': ' if self._source else ''}Prometheus: {exc}")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return Side(query, error=f"unexpected answer from {self.url}: {type(exc).__name__}")
        return _series(query, result)

    async def is_online(self) -> bool:
        answer = await self._ask(_ONLINE_QUERY)
        return answer.error is None and answer.value == 1.0

    # -- the worker ------------------------------------------------------------------------

    async def _ask(self, query: str) -> _Answer:
        if not self._finalizer.alive:
            return _Answer(error="the Prometheus provider is closed")
        # The layer's thread pool runs the (blocking) client; the layer's deadline ends its
        # request, and this one, a little later, the wait for a thread.
        loop = self._egress.loop
        future = asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._in_thread(query), loop))
        try:
            return await asyncio.wait_for(future, self.timeout + _GRACE)
        except TimeoutError:
            return _Answer(error=f"no answer from Prometheus at {self.url} within {self.timeout:g}s")

    async def _in_thread(self, query: str) -> _Answer:
        return await asyncio.get_running_loop().run_in_executor(None, self._ask_blocking, query)

    def _ask_blocking(self, query: str) -> _Answer:
        try:
            result = self._client.custom_query(query)
        except PrometheusApiClientException as exc:
            return _http_error(str(exc))
        except EgressRefused as exc:
            lead = "cannot reach Prometheus" if exc.refusal in (Refusal.UNREACHABLE, Refusal.TLS) else "Prometheus"
            return _Answer(error=f"{self._source + ': ' if self._source else ''}{lead}: {exc}")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # A 200 that is not Prometheus' JSON (a proxy's page, a wrong URL).
            return _Answer(error=f"unexpected answer from {self.url}: {type(exc).__name__}")
        return _sample(result)


class EgressSession(requests.Session):
    """A `requests.Session` for prometheus-api-client whose requests go through the egress
    layer (`Egress.fetch`): a total deadline, a cap on response bytes, no redirects. Its
    adapters are never used. Call it from a thread other than the layer's loop."""

    def __init__(self, egress: Egress, *, deadline: float, max_bytes: int, tls: ssl.SSLContext | None) -> None:
        super().__init__()
        self._egress = egress
        self._deadline = deadline
        self._max_bytes = max_bytes
        self._tls = tls

    def request(self, method: str | bytes, url: str | bytes, params: Any = None, data: Any = None,
                headers: Any = None, cookies: Any = None, files: Any = None, auth: Any = None, timeout: Any = None,
                allow_redirects: bool = True, proxies: Any = None, hooks: Any = None, stream: Any = None,
                verify: Any = None, cert: Any = None, json: Any = None) -> requests.Response:
        sent = {str(k): str(v) for k, v in (headers or {}).items()}
        if isinstance(auth, tuple) and len(auth) == 2:
            sent["Authorization"] = aiohttp.encode_basic_auth(str(auth[0]), str(auth[1]))
        body = data.encode() if isinstance(data, str) else data if isinstance(data, bytes) else None
        reply = self._egress.call(self._egress.fetch(
            Kind.PROMETHEUS, str(method), str(url), deadline=self._deadline, max_bytes=self._max_bytes,
            headers=sent, body=body, params=params, tls=self._tls))
        response = requests.Response()
        response.status_code = reply.status
        response._content = reply.body
        response.headers = CaseInsensitiveDict(reply.headers)
        response.url = str(url)
        response.encoding = "utf-8"
        return response


def _close(path: str | None, own: Egress | None, tls: ssl.SSLContext | None, shared: Egress | None) -> None:
    if own is not None:
        own.close()
    elif shared is not None and tls is not None:
        shared.forget_tls(tls)
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
        return _Answer(error="Prometheus answered an error")
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
                   403: "forbidden (check the credentials' permissions)"}.get(code, "not Prometheus' error JSON")
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


def _series(query: str, result: Any) -> Side:
    """The samples of a range query's matrix: (time, value) of every series, NaN and
    infinities (a rate over no requests) left out."""
    if not isinstance(result, list) or not all(isinstance(s, dict) and isinstance(s.get("values"), list)
                                               for s in result):
        return Side(query, error=f"query did not return a range of series: {_shorten(repr(result))}")
    samples: list[tuple[float, float]] = []
    try:
        for series in result:
            for at, raw in series["values"]:
                value = float(raw)
                if math.isfinite(value):
                    samples.append((float(at), value))
    except (TypeError, ValueError) as exc:
        return Side(query, error=f"unexpected range result: {type(exc).__name__}")
    return Side(query, tuple(samples))


def _shorten(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
