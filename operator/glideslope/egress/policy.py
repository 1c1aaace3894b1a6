"""The egress policy: which addresses a tenant's Release may make the operator reach.

Set by whoever installs the operator (`--prometheus-allow`, `--egress-allow`, `--egress-deny`),
never by a Release. Two rules:

- A Release's own Prometheus (`spec.analysis.prometheus.address`) must start with one of the
  allowed prefixes; by default only the operator's `--prometheus-url` is allowed. It is checked
  before any request, so a refused address is never asked anything.
- Webhook gates and notifications may reach any address except those denied. Loopback,
  link-local (the cloud metadata address among them) and `0.0.0.0/8` are denied by default.
  The most specific network that holds an address decides (a deny of 10.0.0.0/8 with an
  allow of 10.96.0.10/32 lets that one address through); on a tie the allow wins, so
  `--egress-allow 127.0.0.0/8` lifts the default deny of loopback. The check runs
  on the resolved address, and the connection goes to the address that was checked (see
  `egress.http`), so a DNS name that resolves differently a moment later gains nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_DENY: tuple[str, ...] = (
    "127.0.0.0/8", "::1/128",          # loopback: the operator's own pod (its metrics, health)
    "169.254.0.0/16", "fe80::/10",     # link-local: the cloud metadata address among them
    "0.0.0.0/8", "::/128",             # "this host" and the unspecified address
)


def _networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs)


@dataclass(frozen=True)
class EgressPolicy:
    prometheus_allow: tuple[str, ...] = ()
    """URL prefixes a Release's `spec.analysis.prometheus.address` may start with."""
    deny: tuple[Network, ...] = field(default_factory=lambda: _networks(DEFAULT_DENY))
    allow: tuple[Network, ...] = ()

    @classmethod
    def from_flags(cls, *, prometheus_url: str | None, prometheus_allow: Sequence[str] = (),
                   egress_allow: Sequence[str] = (), egress_deny: Sequence[str] = ()) -> EgressPolicy:
        """The policy the operator's flags describe; raises ValueError naming a bad CIDR."""
        prefixes = tuple(p for p in (*prometheus_allow, prometheus_url) if p)
        try:
            deny = _networks((*DEFAULT_DENY, *egress_deny))
            allow = _networks(egress_allow)
        except ValueError as exc:
            raise ValueError(f"--egress-allow/--egress-deny: {exc}") from exc
        return cls(prometheus_allow=prefixes, deny=deny, allow=allow)

    def address_allowed(self, address: Address) -> bool:
        """Whether webhooks and notifications may connect to `address`."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
        best_deny = max((n.prefixlen for n in self.deny if address in n), default=-1)
        best_allow = max((n.prefixlen for n in self.allow if address in n), default=-1)
        return best_deny < 0 or best_allow >= best_deny

    def prometheus_allowed(self, address: str) -> bool:
        """Whether a Release may query the Prometheus at `address`: it is one of the allowed
        prefixes, or below one at a boundary. A prefix ending in `/` or `:` allows what
        follows (`http://prom:` any port of that host); any other prefix allows itself and its
        paths (`http://prom:9090` allows `http://prom:9090/tenant-a`, never
        `http://prom:9090.evil.example`). An address with user info is never allowed."""
        wanted = _normal(address)
        if wanted is None:
            return False
        raw = address.strip()
        for prefix in self.prometheus_allow:
            if prefix.endswith(("/", ":")) and raw.startswith(prefix):
                return True
            allowed = _normal(prefix)
            if allowed is not None and (wanted == allowed or wanted.startswith(allowed + "/")):
                return True
        return False


def _normal(url: str) -> str | None:
    """`url` with its scheme and host in lower case and no trailing slash; None if it has no host."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if not host or parts.scheme.lower() not in ("http", "https") or parts.username or parts.password:
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{parts.scheme.lower()}://{netloc}{parts.path}".rstrip("/")
