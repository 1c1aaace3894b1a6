"""Whether an object the operator is about to write is a Release's own: it never overwrites what
belongs to someone else (another application's Service named like the Release, a Service
another Release uses as its preview).

An object is the Release's when it carries an ownerReference to the Release's uid, or when it
carries the `glideslope.dev/release: <name>` label and no controller at all (a Release of that
name was deleted and left it serving), or when its owner handed it over with the annotation
`glideslope.dev/adopt: "<release name>"`. Anything else is a conflict: the Release ends
`Degraded` with reason `Conflict`, naming the object, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from glideslope.api import Release
from glideslope.core.model import ADOPT_ANNOTATION, RELEASE_LABEL
from glideslope.kube.client import not_found

CONFLICT = "Conflict"
"""The reason of the `Degraded` condition when an object the Release would write is not its own."""


class NotOurs(Exception):
    """An object the Release would write belongs to someone else."""


def whose(release: Release, kind: str, meta: Any) -> str | None:
    """Why the object with metadata `meta` (a client model) is not the Release's; None if it is."""
    uid, name = release.metadata.uid, release.metadata.name or ""
    owners = meta.owner_references or []
    if any(o.uid == uid for o in owners):
        return None
    if (meta.annotations or {}).get(ADOPT_ANNOTATION) == name:
        return None
    controllers = [o for o in owners if o.controller]
    if (meta.labels or {}).get(RELEASE_LABEL) == name and not controllers:
        return None  # left serving by a deleted Release of this name
    held = (f"it is controlled by {controllers[0].kind} {controllers[0].name}" if controllers
            else f"it is not labelled {RELEASE_LABEL}={name}")
    return (f"{kind} {release.metadata.namespace}/{meta.name} exists and is not this Release's ({held}); "
            f"rename the Release or its Services, or annotate the {kind} {ADOPT_ANNOTATION}={name} to hand it over")


def claim(release: Release, kind: str, read: Callable[[str, str], Any], name: str) -> None:
    """Raise `NotOurs` if the object `name` exists and is not the Release's."""
    try:
        found = read(name, release.metadata.namespace or "")
    except Exception as exc:
        if not_found(exc):
            return
        raise
    why = whose(release, kind, found.metadata)
    if why is not None:
        raise NotOurs(why)
