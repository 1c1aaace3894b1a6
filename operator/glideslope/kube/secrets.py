"""The Secret of `spec.analysis.prometheus.secretRef`, read into `PrometheusAuth`.

The operator's ClusterRole grants no access to Secrets: a namespaced Role does (the chart
renders one per `secretNamespaces`). A Secret that cannot be read is reported, never raised
past the engine.
"""

from __future__ import annotations

import base64
import binascii

import kubernetes

from glideslope.kube.client import Kube
from glideslope.prom import PrometheusAuth

SECRET_UNREADABLE = "SecretUnreadable"


class SecretUnreadable(Exception):
    """The Secret is missing, forbidden to the operator, or does not hold usable credentials."""


def read(kube: Kube, namespace: str, name: str, where: str) -> dict[str, str]:
    """The Secret's keys and values as text; `where` names the field that refers to it, for
    the error (missing, forbidden, not text)."""
    try:
        secret = kube.core.read_namespaced_secret(name, namespace)
    except kubernetes.client.ApiException as exc:
        if exc.status == 404:
            raise SecretUnreadable(f"{where} not found") from exc
        if exc.status == 403:
            raise SecretUnreadable(f"{where}: the operator may not read it (grant get on secrets in "
                                   f"{namespace} with a Role, e.g. the chart's secretNamespaces)") from exc
        raise SecretUnreadable(f"{where}: cannot read it ({exc.status} {exc.reason})") from exc
    out: dict[str, str] = {}
    for key, value in (secret.data or {}).items():
        try:
            out[key] = base64.b64decode(value).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise SecretUnreadable(f"{where}: key {key!r} is not UTF-8 text") from exc
    for key, value in (secret.string_data or {}).items():
        out[key] = value
    return out


def value(kube: Kube, namespace: str, name: str, key: str, where: str) -> str:
    """One key of the Secret, as text."""
    values = read(kube, namespace, name, where)
    if key not in values:
        raise SecretUnreadable(f"{where} has no key {key!r}")
    return values[key]


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
