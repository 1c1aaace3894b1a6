"""The closing record of a Release's rollouts (`core.notes`), kept in one ConfigMap
`<release>-record` that the Release owns, so it goes when the Release goes.

Cost: one write (a server-side apply) per tick that announces something other than a start,
none otherwise.
Steps are not Events, so a step taken on a quiet tick waits in memory for the next write (a
rollout always ends with one); the record last written is remembered, so a write needs no
read. Writing a record never fails a tick: a problem is logged and the entries wait.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from glideslope.api import NotificationEvent, Release, ReleaseStatus
from glideslope.core import notes
from glideslope.core.model import RELEASE_LABEL, Announce
from glideslope.kube.client import APPLY, FIELD_MANAGER, UNREAD, Kube, drain, not_found
from glideslope.kube.workloads import owner_reference
from glideslope.logs import get_logger

log = get_logger(__name__)

KEY = "record.json"
"""The ConfigMap's data key holding the record."""
MANAGED_BY = "app.kubernetes.io/managed-by"
_WRITTEN_LATER = frozenset({NotificationEvent.STARTED.value})
"""Announcements folded into the record at once (what the rollout replaces is known only then)
but written with the next one: a rollout that has only started adds nothing a reader of the
record needs before its next Event (its end, at the latest), and one write fewer per rollout
keeps the operator under two API writes per step."""
_PENDING_LIMIT = 200
_CACHE_LIMIT = 4096

_lock = threading.Lock()
_marks: dict[tuple[str, str, str], notes.StepMark | None] = {}
"""(namespace, name, uid) -> the step last seen."""
_pending: dict[tuple[str, str, str], list[notes.Entry]] = {}
"""Entries not written yet (steps taken on quiet ticks, or a write that failed)."""
_written: dict[tuple[str, str, str], notes.Record] = {}
"""The record as last written (or folded, when its write waits for the next announcement)."""


def name_for(release: str) -> str:
    return f"{release}-record"


def write(kube: Kube, release: Release, status: ReleaseStatus, announcements: Sequence[Announce],
          now: datetime) -> None:
    """Fold this tick into the record: write it if the tick announced something. Never raises."""
    meta = release.metadata
    key = (meta.namespace or "", meta.name or "", meta.uid or "")
    try:
        with _lock:
            if len(_marks) >= _CACHE_LIMIT:
                # Deleted Releases leave their keys behind; forgetting costs at most a step entry.
                _marks.clear()
                _pending.clear()
            first_sight = key not in _marks
            mark, steps = notes.steps_taken(_marks.get(key), release.spec, status, now, first_sight=first_sight)
            _marks[key] = mark
            # An announcement (Started, Promoted) comes before the step it caused.
            pending = _pending.setdefault(key, [])
            pending += notes.announced(announcements, status, now) + steps
            del pending[:-_PENDING_LIMIT]
            if not announcements:
                return
            entries = list(pending)
            previous = _written.get(key)
        record = notes.fold(previous if previous is not None else _read_own(kube, release), release.spec, status,
                            entries, release=key[1], namespace=key[0])
        if not all(a.reason in _WRITTEN_LATER for a in announcements):
            _apply(kube, release, record)
        with _lock:
            if len(_written) >= _CACHE_LIMIT:
                _written.clear()
            _written[key] = record
            del _pending[key][:len(entries)]
    except Exception as exc:  # the record is for people; a rollout must never wait on it
        with _lock:
            _written.pop(key, None)  # read it again next time: someone may have changed it
        log.warning("release record not written (will retry with the next event)", namespace=key[0], release=key[1],
                    error=_why(exc))


def read(kube: Kube, namespace: str, name: str) -> notes.Record | None:
    """The record of Release `name`, None if it has none yet. API errors (403...) are raised."""
    try:
        body = kube.core.read_namespaced_config_map(name_for(name), namespace)
    except Exception as exc:
        if not_found(exc):
            return None
        raise
    return _parse((body.data or {}).get(KEY))


def _read_own(kube: Kube, release: Release) -> notes.Record:
    """The stored record, if it belongs to this Release (a recreated Release starts afresh)."""
    meta = release.metadata
    try:
        body = kube.core.read_namespaced_config_map(name_for(meta.name or ""), meta.namespace or "")
    except Exception as exc:
        if not_found(exc):
            return notes.Record()
        raise
    owners = body.metadata.owner_references or []
    if not any(o.uid == meta.uid for o in owners):
        if not any(o.kind == release.kind for o in owners):
            raise RuntimeError(f"ConfigMap {meta.namespace}/{name_for(meta.name or '')} exists and is not "
                               "this Release's record: not overwriting it")
        return notes.Record()
    return _parse((body.data or {}).get(KEY)) or notes.Record()


def _parse(text: str | None) -> notes.Record | None:
    if not text:
        return None
    try:
        return notes.Record.from_dict(json.loads(text))
    except (ValueError, ValidationError) as exc:
        log.warning("unreadable release record, starting a new one", error=str(exc))
        return None


def _apply(kube: Kube, release: Release, record: notes.Record) -> None:
    meta = release.metadata
    body: dict[str, Any] = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name_for(meta.name or ""), "namespace": meta.namespace,
                     "labels": {RELEASE_LABEL: meta.name, MANAGED_BY: "glideslope"},
                     "ownerReferences": [owner_reference(release)]},
        "data": {KEY: notes.serialise(record)},
    }
    drain(kube.core.patch_namespaced_config_map(name_for(meta.name or ""), meta.namespace, body,
                                                field_manager=FIELD_MANAGER, force=True, _content_type=APPLY,
                                                **UNREAD))


def _why(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    if status is not None:
        return f"{status} {getattr(exc, 'reason', '')}".strip()
    return f"{type(exc).__name__}: {exc}"
