"""The release gate's look at another Release (any namespace the operator may read)."""

from __future__ import annotations

import kubernetes

from glideslope.api import Release, ReleaseGate, parse_status
from glideslope.core.gates import ReleaseObservation
from glideslope.kube import releases
from glideslope.kube.client import Kube


def observe(kube: Kube, subject: Release, gate: ReleaseGate) -> ReleaseObservation:
    namespace = gate.namespace or subject.metadata.namespace or ""
    try:
        body = releases.get(kube, namespace, gate.name)
    except kubernetes.client.ApiException as exc:
        why = "the operator may not read it" if exc.status == 403 else f"{exc.status} {exc.reason}"
        return ReleaseObservation(found=False, error=why)
    if body is None:
        return ReleaseObservation(found=False)
    status = parse_status(body.get("status"))
    return ReleaseObservation(found=True, phase=status.phase.value if status.phase else None,
                              version=(body.get("spec") or {}).get("version"), stable_version=status.stable_version)
