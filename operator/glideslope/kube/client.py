"""The API clients, from $KUBECONFIG (or ~/.kube/config) or, inside a cluster, the pod's account."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import kubernetes


@dataclass(frozen=True)
class Kube:
    """The typed API groups the adapters use, sharing one connection pool."""

    api: Any
    core: Any
    apps: Any
    custom: Any


def connect() -> Kube:
    try:
        kubernetes.config.load_kube_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_incluster_config()
    configuration = kubernetes.client.Configuration.get_default_copy()
    # One kept-alive connection per thread that calls at once (the stepper's workers, the
    # watches, the notifiers): a smaller pool drops connections and pays a TLS handshake each.
    configuration.connection_pool_maxsize = POOL_SIZE
    api = kubernetes.client.ApiClient(configuration)
    return Kube(api, kubernetes.client.CoreV1Api(api), kubernetes.client.AppsV1Api(api),
                kubernetes.client.CustomObjectsApi(api))


POOL_SIZE = 32
FIELD_MANAGER = "glideslope"
APPLY = "application/apply-patch+yaml"


UNREAD = {"_preload_content": False}
"""For a write whose answer the operator does not use (pass with `**UNREAD`, then `drain` the
answer): the client would otherwise decode it into its models, which at a thousand Releases
cost more CPU than making the call."""


def drain(response: Any) -> None:
    """Read an answer asked for with `UNREAD` to its end, so its connection goes back to the pool
    (a non-2xx answer has raised already)."""
    read = getattr(response, "read", None)
    if callable(read):
        read()


def not_found(exc: Exception) -> bool:
    return isinstance(exc, kubernetes.client.ApiException) and exc.status == 404


def conflict(exc: Exception) -> bool:
    return isinstance(exc, kubernetes.client.ApiException) and exc.status == 409
