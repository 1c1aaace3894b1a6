"""The Secrets a Release refers to: `headersFrom` and `urlFrom` of webhook gates, `headersFrom`
of web triggers, `urlFrom` of notification webhooks, `spec.analysis.prometheus.secretRef` (read
into `PrometheusAuth`).

The operator's ClusterRole grants no access to Secrets: a namespaced Role does (the chart
renders one per `secretNamespaces`). A Secret that cannot be read is reported, never raised
past the engine.

Secrets by consent: one operator serves many teams, and whoever may edit a Release need not
be allowed to read the Secrets of its namespace. So a Secret is used only when it carries the
label `glideslope.dev/release-secret: "true"` (its owner's consent to have it sent where a
Release says), and a ServiceAccount token is never sent at all. Every read below goes through
`_secret`, which enforces both. Messages name the Secret and its keys, never a value.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

import kubernetes

from glideslope.api import MAX_HEADER_VALUE_CHARS, HeadersFrom
from glideslope.core.model import RELEASE_SECRET_LABEL
from glideslope.kube.client import Kube
from glideslope.prom import PrometheusAuth

SECRET_UNREADABLE = "SecretUnreadable"
SERVICE_ACCOUNT_TOKEN = "kubernetes.io/service-account-token"
CONSENT = "true"
"""The value of `RELEASE_SECRET_LABEL` that lets Releases use a Secret."""


class SecretUnreadable(Exception):
    """The Secret is missing, forbidden to the operator, not consented to, or does not hold
    usable credentials."""


def read(kube: Kube, namespace: str, name: str, where: str,
         keys: Sequence[str] | None = None) -> dict[str, str]:
    """The Secret's keys and values as text, or only `keys` (each must be present); `where`
    names the field that refers to it, for the error (missing, forbidden, not labelled
    `glideslope.dev/release-secret: "true"`, a ServiceAccount token, not text)."""
    secret = _secret(kube, namespace, name, where)
    data: dict[str, Any] = dict(secret.data or {})
    text: dict[str, str] = dict(secret.string_data or {})  # only in objects never stored
    if keys is None:
        wanted = [*data, *(k for k in text if k not in data)]
    else:
        missing = [k for k in keys if k not in data and k not in text]
        if missing:
            raise SecretUnreadable(f"{where} has no key {missing[0]!r}" if len(missing) == 1
                                   else f"{where} has no keys {', '.join(map(repr, missing))}")
        wanted = list(dict.fromkeys(keys))
    out: dict[str, str] = {}
    for key in wanted:
        if key in text:
            out[key] = text[key]
            continue
        try:
            out[key] = base64.b64decode(data[key]).decode()
        except (binascii.Error, UnicodeDecodeError):
            # Not chained: a UnicodeDecodeError quotes a byte of the value.
            raise SecretUnreadable(f"{where}: key {key!r} is not UTF-8 text") from None
    return out


def value(kube: Kube, namespace: str, name: str, key: str, where: str) -> str:
    """One key of the Secret, as text."""
    return read(kube, namespace, name, where, keys=[key])[key]


def headers(kube: Kube, namespace: str, source: HeadersFrom, field: str) -> dict[str, str]:
    """The HTTP headers `source` names (`headersFrom` at `field`): each key's value, trimmed, one
    line of at most `MAX_HEADER_VALUE_CHARS`; anything else is refused here, naming the key (never
    quoting the value), rather than failing, or splitting a header, in the HTTP client."""
    where = f"{field}: Secret {namespace}/{source.name}"
    out = {k: v.strip() for k, v in read(kube, namespace, source.name, where, keys=source.keys).items()}
    for key, text in out.items():
        if len(text) > MAX_HEADER_VALUE_CHARS:
            raise SecretUnreadable(f"{where}: key {key!r} holds {len(text)} characters; a header value may "
                                   f"have at most {MAX_HEADER_VALUE_CHARS}")
        if any(c in text for c in "\r\n\0"):
            raise SecretUnreadable(f"{where}: key {key!r} holds a line break or NUL; a header value is one line")
    return out


def prometheus_auth(kube: Kube, namespace: str, name: str) -> PrometheusAuth:
    """`token`, or `username` and `password`, and optionally `ca.crt`, from the Secret."""
    where = f"spec.analysis.prometheus.secretRef: Secret {namespace}/{name}"
    data = read(kube, namespace, name, where)
    token = data.get("token", "").strip() or None
    username, password = data.get("username"), data.get("password")
    if token is None and username is None and "ca.crt" not in data:
        raise SecretUnreadable(f"{where} holds none of token, username/password, ca.crt")
    try:
        return PrometheusAuth(token=token, username=username, password=password, ca_cert=data.get("ca.crt"))
    except ValueError as exc:
        raise SecretUnreadable(f"{where}: {exc}") from exc


def _secret(kube: Kube, namespace: str, name: str, where: str) -> Any:
    """The Secret, if the operator may read it and its owner lets Releases use it."""
    try:
        secret = kube.core.read_namespaced_secret(name, namespace)
    except kubernetes.client.ApiException as exc:
        if exc.status == 404:
            raise SecretUnreadable(f"{where} not found") from exc
        if exc.status == 403:
            raise SecretUnreadable(f"{where}: the operator may not read it (grant get on secrets in "
                                   f"{namespace} with a Role, e.g. the chart's secretNamespaces)") from exc
        raise SecretUnreadable(f"{where}: cannot read it ({exc.status} {exc.reason})") from exc
    if secret.type == SERVICE_ACCOUNT_TOKEN:
        raise SecretUnreadable(f"{where} is of type {SERVICE_ACCOUNT_TOKEN}, which is never sent: "
                               f"put the credentials in a Secret of another type")
    labels = (secret.metadata.labels if secret.metadata is not None else None) or {}
    if labels.get(RELEASE_SECRET_LABEL) != CONSENT:
        raise SecretUnreadable(f"{where} is not labelled {RELEASE_SECRET_LABEL}=\"{CONSENT}\": its owner "
                               f"must consent to Releases using it (kubectl label secret {name} "
                               f"-n {namespace} {RELEASE_SECRET_LABEL}={CONSENT})")
    return secret
