"""The API clients, from $KUBECONFIG (or ~/.kube/config) or, inside a cluster, the pod's account."""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Callable
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
    api = TimedApiClient(configuration)
    return Kube(api, kubernetes.client.CoreV1Api(api), kubernetes.client.AppsV1Api(api),
                kubernetes.client.CustomObjectsApi(api))


POOL_SIZE = 32
CONNECT_SECONDS = 5.0
"""Seconds to open a connection to the API server before a call fails."""
READ_SECONDS = 30.0
"""Seconds an answer may stall: without it a call to an API server that stopped answering never
returns, and the thread that made it (a stepper, the lease renewer) hangs with it."""
WATCH_SLACK = 30.0
"""A watch's read deadline past its own `timeoutSeconds`: the server ends it first."""


class Fenced(ConnectionError):
    """Raised instead of sending a request once the client is fenced (`TimedApiClient.fence`)."""


class TimedApiClient(kubernetes.client.ApiClient):
    """An ApiClient whose every call has a (connect, read) timeout unless its caller gave one,
    and that refuses every request once fenced: a replica that lost its lease writes nothing more."""

    def __init__(self, configuration: Any = None) -> None:
        super().__init__(configuration)
        self._fenced = threading.Event()
        self.on_error: Callable[[str, str, str], None] | None = None
        """Told (verb, resource, code) of every call that fails: `glideslope_api_errors_total`."""
        self.on_call: Callable[[str, str, str], None] | None = None
        """Told (method, code, host) of every call: `rest_client_requests_total`."""

    def fence(self) -> None:
        self._fenced.set()

    @property
    def fenced(self) -> bool:
        return self._fenced.is_set()

    def call_api(self, method: str, url: str, header_params: Any = None, body: Any = None,
                 post_params: Any = None, _request_timeout: Any = None) -> Any:
        if self._fenced.is_set():
            raise Fenced(f"the API client is fenced: {method} {url.split('?')[0]} not sent")
        if _request_timeout is None:
            _request_timeout = default_timeout(url)
        try:
            answer = super().call_api(method, url, header_params, body, post_params, _request_timeout=_request_timeout)
        except Exception as exc:
            status = str(exc.status) if isinstance(exc, kubernetes.client.ApiException) else None
            if self.on_error is not None:
                self.on_error(*call_of(method, url), status or type(exc).__name__)
            if self.on_call is not None:
                self.on_call(method, status or "<error>", urllib.parse.urlsplit(url).netloc)
            raise
        if self.on_call is not None:
            self.on_call(method, str(getattr(answer, "status", 200)), urllib.parse.urlsplit(url).netloc)
        return answer


def call_of(method: str, url: str) -> tuple[str, str]:
    """(verb, resource) of an API call: `list`/`pods`, `patch`/`releases/status`..."""
    parts = urllib.parse.urlsplit(url)
    path = [p for p in parts.path.split("/") if p]
    # /api/v1/... or /apis/GROUP/VERSION/...; then namespaces/NS/ when namespaced.
    rest = path[2:] if path[:1] == ["api"] else path[3:]
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]
    resource = rest[0] if rest else "unknown"
    if len(rest) >= 3:
        resource += "/" + rest[2]
    verb = method.lower()
    if verb == "get" and len(rest) < 2:
        verb = "watch" if _watching(urllib.parse.parse_qs(parts.query)) else "list"
    return verb, resource


def _watching(query: dict[str, list[str]]) -> bool:
    return query.get("watch", [""])[0].lower() == "true"


def default_timeout(url: str) -> tuple[float, float | None]:
    """(connect, read) seconds for a call to `url` whose caller set none. A watch is quiet for
    as long as nothing changes: its read may last its `timeoutSeconds` (and no longer)."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    if not _watching(query):
        return CONNECT_SECONDS, READ_SECONDS
    try:
        return CONNECT_SECONDS, float(query["timeoutSeconds"][0]) + WATCH_SLACK
    except (KeyError, ValueError):
        return CONNECT_SECONDS, None


def fence(kube: Kube) -> None:
    """No request of `kube`'s clients is sent any more (the ones in flight end by their timeout)."""
    fencer = getattr(kube.api, "fence", None)
    if callable(fencer):
        fencer()


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


def invalid(exc: Exception) -> bool:
    """422: the API server refused the request's content (or a JSON patch's test failed)."""
    return isinstance(exc, kubernetes.client.ApiException) and exc.status == 422


def too_large(exc: Exception) -> bool:
    """The object written would exceed what the API server or etcd stores (413, or etcd's
    "request is too large", which the API server answers with a 500)."""
    if not isinstance(exc, kubernetes.client.ApiException):
        return False
    return exc.status == 413 or (exc.status == 500 and "too large" in str(exc.body or ""))
