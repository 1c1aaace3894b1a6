"""The revision: a stable short hash of the pod template."""

from __future__ import annotations

import hashlib
import json

from glideslope.api import PodTemplateSpec


def revision_of(template: PodTemplateSpec | None) -> str:
    """Ten hex digits of SHA-256 over the template's canonical JSON (keys sorted, no nulls), so
    the same template always gives the same revision, whatever the key order it was written in.

    None is a Release with `spec.workloadRef` whose Deployment was not read: the shell puts the
    Deployment's template into `spec.template` before anything asks for its revision."""
    if template is None:
        raise ValueError("spec.template is unset: spec.workloadRef was not resolved")
    canonical = json.dumps(template.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]
