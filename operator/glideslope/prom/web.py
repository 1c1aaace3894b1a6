"""`MetricProvider` for any HTTP endpoint answering JSON: a GET, then a JSONPath to the number.

The trigger's `provider.web.url` (its template variables rendered) is what this provider is
asked to `query`; the JSONPath and headers are the provider's own, so one provider serves each
distinct (jsonPath, headers). Headers from a Secret (`headersFrom`) are read by the engine, in
the Release's namespace, and come here like the plain ones: this module never reads a Secret.
The request goes through the egress layer like a webhook's: the installer's egress policy on
every resolved address, a total deadline, a cap on the answer's bytes, no redirects. Parsing the
answer and applying the JSONPath run in a worker thread of the layer, never on its loop.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from jsonpath_ng import JSONPath
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext.parser import parse as parse_json_path

from glideslope.api import Trigger
from glideslope.core.analysis import Measurement
from glideslope.egress import Egress, EgressRefused, Kind, where

DEFAULT_TIMEOUT = 3.0
"""Seconds a GET may take in all: connection, headers and body."""
MAX_RESPONSE_BYTES = 256 << 10
"""The answer holds one number somewhere: 256 KiB leaves room for a verbose API, and bounds
what a tenant's endpoint can make the operator parse."""
MAX_MATCHES_SHOWN = 3
# The layer's deadline ends the request; this much later the measurement stops waiting for it.
_GRACE = 1.0


class JsonPathError(ValueError):
    """A JSONPath that does not parse."""


def compile_json_path(expression: str) -> JSONPath:
    """The parsed JSONPath (jsonpath-ng's extended syntax, with filters); raises JsonPathError."""
    try:
        return parse_json_path(expression)
    except (JsonPathLexerError, JsonPathParserError, Exception) as exc:  # the parser raises bare Exceptions too
        raise JsonPathError(f"invalid JSONPath {expression!r}: {' '.join(str(exc).split())[:200]}") from exc


def json_path_problems(triggers: Sequence[Trigger], field: str) -> list[str]:
    """The web triggers' JSONPaths that do not parse, each named as `field[i]...` (the lint of a
    template and the operator's check of a Release say it alike)."""
    problems = []
    for i, trigger in enumerate(triggers):
        if trigger.provider is not None and trigger.provider.web is not None:
            try:
                compile_json_path(trigger.provider.web.json_path)
            except JsonPathError as exc:
                problems.append(f"{field}[{i}].provider.web.jsonPath: {exc}")
    return problems


def _utcnow() -> datetime:
    return datetime.now(UTC)


class WebProvider:
    """GETs a URL and reads one number from its JSON with `json_path`; never raises for problems
    on the endpoint's side (they come back as a measurement's error)."""

    def __init__(self, json_path: str, headers: Mapping[str, str] | None = None, *, egress: Egress,
                 timeout: float = DEFAULT_TIMEOUT, max_bytes: int = MAX_RESPONSE_BYTES,
                 clock: Callable[[], datetime] = _utcnow) -> None:
        self.json_path = json_path
        self._compiled: JSONPath | None = None
        self._invalid: str | None = None
        try:
            self._compiled = compile_json_path(json_path)
        except JsonPathError as exc:
            self._invalid = str(exc)
        self._headers = {"Accept": "application/json", **(headers or {})}
        self._egress = egress
        self.timeout = timeout
        self._max_bytes = max_bytes
        self._clock = clock

    def __repr__(self) -> str:
        return f"WebProvider({self.json_path!r}, timeout={self.timeout:g})"

    # -- MetricProvider --------------------------------------------------------------------

    async def query(self, query: str) -> Measurement:
        """`query` is the URL to GET."""
        at = self._clock()
        if self._invalid is not None:
            return Measurement(None, self._invalid, at)
        future = asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._get(query), self._egress.loop))
        try:
            value, error = await asyncio.wait_for(future, self.timeout + _GRACE)
        except TimeoutError:
            return Measurement(None, f"no answer within {self.timeout:g}s", at)
        return Measurement(value, error, at)

    async def check(self, query: str) -> str | None:
        """The URL refused before any request (malformed, or an address the egress policy
        denies), or a JSONPath that does not parse; None otherwise."""
        return self._invalid or self._egress.refusal(query)

    async def is_online(self) -> bool:
        # There is no one endpoint to ask: each trigger names its own URL, checked by `check`
        # and answered, or not, by each measurement.
        return self._invalid is None

    # -- on the layer's loop -----------------------------------------------------------------

    async def _get(self, url: str) -> tuple[float | None, str | None]:
        try:
            reply = await self._egress.fetch(Kind.WEB, "GET", url, deadline=self.timeout, max_bytes=self._max_bytes,
                                             headers=self._headers)
        except EgressRefused as exc:
            return None, str(exc)
        if not 200 <= reply.status < 300:
            return None, f"{where(url)} answered HTTP {reply.status}"
        # JSON parsing and the JSONPath run in a thread: a large answer must not hold the loop.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self._read, reply.body)

    def _read(self, body: bytes) -> tuple[float | None, str | None]:
        assert self._compiled is not None
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            return None, "the answer is not JSON"
        return number_at(self._compiled, document, self.json_path)


def number_at(path: JSONPath, document: Any, shown: str) -> tuple[float | None, str | None]:
    """The one number `path` selects in `document`: (value, None); (None, None) when it selects
    nothing, null or a non-finite number (no data, never a pass); (None, why) otherwise."""
    try:
        matches = [m.value for m in path.find(document)]
    except (RecursionError, TypeError, ValueError, KeyError, AttributeError) as exc:
        return None, f"JSONPath {shown} failed on the answer: {type(exc).__name__}"
    if not matches or (len(matches) == 1 and matches[0] is None):
        return None, None
    if len(matches) > 1:
        found = ", ".join(_shown(m) for m in matches[:MAX_MATCHES_SHOWN])
        more = ", ..." if len(matches) > MAX_MATCHES_SHOWN else ""
        return None, f"JSONPath {shown} selects {len(matches)} values ({found}{more}); select exactly one"
    value = matches[0]
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None, f"JSONPath {shown} selects {_shown(value)}, not a number"
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None, f"JSONPath {shown} selects {_shown(value)}, not a number"
    return (number if math.isfinite(number) else None), None


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:39] + "…"
