"""One outbound HTTP request with the bounds a tenant's endpoint cannot stretch.

- a total deadline (connection, headers and body together: asyncio cancels the request, so a
  server that trickles a byte every few seconds cannot hold it past the deadline, which a
  per-read socket timeout would allow);
- a cap on the response's bytes, read as they arrive (a 200 MB body is refused after the cap,
  never buffered);
- no redirects (following one would resend the body, and reach an address nobody checked);
- for webhooks and notifications, the egress policy on every resolved address, with the
  connection made to the address that was checked (`_CheckedResolver`).

Failures are `EgressRefused` with a fixed reason: nothing an endpoint says travels further
than its status code.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from glideslope.egress.policy import EgressPolicy

USER_AGENT = "glideslope"


class Refusal(StrEnum):
    """Why a request did not get an answer; each is also a label of `glideslope_egress_refused`."""

    DENIED = "denied"
    DEADLINE = "deadline"
    TOO_LARGE = "too-large"
    UNREACHABLE = "unreachable"
    TLS = "tls"
    INVALID = "invalid"


class EgressRefused(Exception):
    """A request that got no usable answer. `str()` is fixed text naming the endpoint by
    `scheme://host[:port]` only, safe for status, Events and logs."""

    def __init__(self, refusal: Refusal, message: str) -> None:
        super().__init__(message)
        self.refusal = refusal


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: Mapping[str, str]


class _Denied(OSError):
    """Every address a name resolves to is denied by the policy."""


class _CheckedResolver(AbstractResolver):
    """Resolves names as the system does, then keeps only the addresses the policy allows:
    aiohttp connects to what this returns, so the address checked is the address used."""

    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        allowed = [r for r in found if self._policy.address_allowed(ipaddress.ip_address(r["host"]))]
        if not allowed:
            raise _Denied(f"{host} resolves only to addresses the egress policy denies")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def session_for(policy: EgressPolicy | None, *, tls: ssl.SSLContext | None = None) -> aiohttp.ClientSession:
    """A session for `request`, on the running loop; with `policy`, every connection it makes
    is checked against it. The caller closes it."""
    connector = aiohttp.TCPConnector(resolver=_CheckedResolver(policy) if policy is not None else None,
                                     ssl=tls if tls is not None else True, limit=0)
    return aiohttp.ClientSession(connector=connector, headers={"User-Agent": USER_AGENT}, trust_env=False)


def where(url: str) -> str:
    """`scheme://host[:port]` of `url`: what may be shown of it (its path, query and user info
    may be a credential, as in a Slack webhook URL)."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        port = parts.port
    except ValueError:
        return "<invalid URL>"
    if not parts.scheme or not host:
        return "<invalid URL>"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


async def request(session: aiohttp.ClientSession, method: str, url: str, *, policy: EgressPolicy | None,
                  deadline: float, max_bytes: int, headers: Mapping[str, str] | None = None,
                  body: bytes | None = None, params: Mapping[str, Any] | None = None) -> Reply:
    """Send one request through `session` (from `session_for` with the same `policy`); raise
    EgressRefused when it is denied, cut off at `deadline` seconds or `max_bytes`, or fails."""
    shown = where(url)
    try:
        target = URL(url.strip())
    except (ValueError, TypeError) as exc:
        raise EgressRefused(Refusal.INVALID, f"invalid URL {shown}") from exc
    if target.scheme not in ("http", "https") or not target.raw_host:
        raise EgressRefused(Refusal.INVALID, f"invalid URL {shown}: give http:// or https:// and a host")
    if policy is not None:
        _check_literal(policy, target.raw_host, shown)
    try:
        async with asyncio.timeout(deadline):
            async with session.request(method, target, data=body, headers=dict(headers or {}), params=params,
                                       allow_redirects=False) as response:
                declared = response.content_length
                if declared is not None and declared > max_bytes:
                    raise EgressRefused(Refusal.TOO_LARGE, f"{shown} answered with more than {max_bytes} bytes")
                data = await response.content.read(max_bytes + 1)
                while len(data) <= max_bytes:
                    more = await response.content.read(max_bytes + 1 - len(data))
                    if not more:
                        break
                    data += more
                if len(data) > max_bytes:
                    raise EgressRefused(Refusal.TOO_LARGE, f"{shown} answered with more than {max_bytes} bytes")
                return Reply(response.status, data, {k: v for k, v in response.headers.items()})
    except EgressRefused:
        raise
    except TimeoutError as exc:
        raise EgressRefused(Refusal.DEADLINE, f"no answer from {shown} within {deadline:g}s") from exc
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, _Denied):
            raise EgressRefused(Refusal.DENIED, f"{shown} is denied by the operator's egress policy") from exc
        if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
            raise EgressRefused(Refusal.TLS, f"TLS error reaching {shown}") from exc
        error = exc.os_error
        reason = os.strerror(error.errno) if error.errno else type(error).__name__
        raise EgressRefused(Refusal.UNREACHABLE, f"cannot connect to {shown}: {reason}") from exc
    except aiohttp.InvalidURL as exc:
        raise EgressRefused(Refusal.INVALID, f"invalid URL {shown}") from exc
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        # The endpoint's own words (a malformed status line, a reset) are not repeated.
        raise EgressRefused(Refusal.UNREACHABLE, f"{type(exc).__name__} talking to {shown}") from exc


def refusal(policy: EgressPolicy, url: str) -> str | None:
    """Why a request to `url` would be refused without sending anything (an invalid URL, an IP
    address the policy denies), or None: a name is checked when it is resolved."""
    try:
        target = URL(url.strip())
        if target.scheme not in ("http", "https") or not target.raw_host:
            raise ValueError(url)
        _check_literal(policy, target.raw_host, where(url))
    except (ValueError, TypeError):
        return f"invalid URL {where(url)}: give http:// or https:// and a host"
    except EgressRefused as exc:
        return str(exc)
    return None


def _check_literal(policy: EgressPolicy, host: str, shown: str) -> None:
    """aiohttp connects to an IP address in the URL without resolving it: check it here."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return  # a name: `_CheckedResolver` checks what it resolves to
    if not policy.address_allowed(address):
        raise EgressRefused(Refusal.DENIED, f"{shown} is denied by the operator's egress policy")
