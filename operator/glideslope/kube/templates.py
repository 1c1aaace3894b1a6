"""Analysis templates as the operator reads them: `AnalysisTemplate` in a Release's namespace,
`ClusterAnalysisTemplate` of the cluster.

`TemplateCache` holds the bodies kopf's watch of both kinds delivers (`handlers.py`), and
which Releases used each template, so that a template's change wakes them. A template not in
the cache (the watch has not listed it yet, or it does not exist) is read from the API server:
a Release never finds a template missing only because the cache is still filling.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from glideslope.api import GROUP, VERSION, field_problems
from glideslope.api.templates import PLURALS, AnalysisTemplateSpec, parse_template
from glideslope.api.types import TemplateKind
from glideslope.core.templates import Found, TemplateKey
from glideslope.kube.client import Kube, not_found

ReleaseKey = tuple[str, str]


class TemplateCache:
    """The latest spec of each analysis template the watch has delivered, and their users."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._found: dict[TemplateKey, Found] = {}
        self._users: dict[TemplateKey, set[ReleaseKey]] = {}

    def seen(self, kind: TemplateKind, body: Mapping[str, Any]) -> set[ReleaseKey]:
        """A template's body from the watch; returns the Releases that use it."""
        key = _key(kind, body)
        found = _parse(body)
        with self._lock:
            self._found[key] = found
            return set(self._users.get(key, ()))

    def gone(self, kind: TemplateKind, body: Mapping[str, Any]) -> set[ReleaseKey]:
        """A template deleted; returns the Releases that use it."""
        key = _key(kind, body)
        with self._lock:
            self._found.pop(key, None)
            return set(self._users.get(key, ()))

    def get(self, key: TemplateKey) -> tuple[bool, Found]:
        with self._lock:
            if key in self._found:
                return True, self._found[key]
        return False, None

    def used(self, release: ReleaseKey, keys: Iterable[TemplateKey]) -> None:
        """The templates `release` uses now (none: it uses none any more, or it is gone)."""
        wanted = set(keys)
        with self._lock:
            for key in [k for k, users in self._users.items() if release in users and k not in wanted]:
                self._users[key].discard(release)
                if not self._users[key]:
                    del self._users[key]
            for key in wanted:
                self._users.setdefault(key, set()).add(release)

    def users(self) -> int:
        with self._lock:
            return sum(len(u) for u in self._users.values())


def read(kube: Kube, cache: TemplateCache | None, keys: Iterable[TemplateKey]) -> dict[TemplateKey, Found]:
    """The templates under `keys`: from the cache, else from the API server (None: missing)."""
    out: dict[TemplateKey, Found] = {}
    for key in keys:
        if cache is not None:
            held, found = cache.get(key)
            if held:
                out[key] = found
                continue
        out[key] = _get(kube, key)
    return out


def _get(kube: Kube, key: TemplateKey) -> Found:
    kind, namespace, name = key
    try:
        if kind == TemplateKind.ANALYSIS_TEMPLATE:
            body = kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind], name)
        else:
            body = kube.custom.get_cluster_custom_object(GROUP, VERSION, PLURALS[kind], name)
    except Exception as exc:
        if not_found(exc):
            return None
        raise
    return _parse(body)


def _key(kind: TemplateKind, body: Mapping[str, Any]) -> TemplateKey:
    meta = body.get("metadata") or {}
    namespace = str(meta.get("namespace") or "") if kind == TemplateKind.ANALYSIS_TEMPLATE else ""
    return kind, namespace, str(meta.get("name") or "")


def _parse(body: Mapping[str, Any]) -> AnalysisTemplateSpec | str:
    """The template's spec, or why the operator cannot use it (a schema older than this
    operator's could let through what the models refuse)."""
    try:
        return parse_template(body).spec
    except ValidationError as exc:
        return "; ".join(field_problems(exc))[:1024]
