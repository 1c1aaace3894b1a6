"""The revision: a stable short hash of the pod template."""

from __future__ import annotations

import hashlib
import json

from glideslope.api import PodTemplateSpec


def revision_of(template: PodTemplateSpec) -> str:
    """Ten hex digits of SHA-256 over the template's canonical JSON (keys sorted, no nulls), so
    the same template always gives the same revision, whatever the key order it was written in."""
    canonical = json.dumps(template.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]
