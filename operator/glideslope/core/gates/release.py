"""The `release` gate: another Release (such as staging) must have succeeded; with
`sameVersion`, with this Release's `spec.version`. "Staging before production".

It waits rather than fails: staging may still be rolling out, or be retried after a
rollback; the message says what it waits for.
"""

from __future__ import annotations

from glideslope.api import GateState, Phase, ReleaseGate
from glideslope.core.gates import Check, ReleaseObservation


def check(gate: ReleaseGate, namespace: str, version: str, observed: ReleaseObservation | None,
          previous: str | None = None) -> Check:
    where = f"Release {gate.namespace or namespace}/{gate.name}"
    if observed is None:
        return Check(GateState.PENDING, previous or f"waiting for {where}")
    if observed.error is not None:
        return Check(GateState.PENDING, f"cannot read {where}: {observed.error}")
    if not observed.found:
        return Check(GateState.PENDING, f"waiting for {where}: it does not exist")
    succeeded = observed.phase == Phase.SUCCEEDED
    if gate.same_version:
        if succeeded and observed.stable_version == version:
            return Check(GateState.PASSED, f"{where} succeeded with {version}")
        stable = f"; its stable version is {observed.stable_version}" if observed.stable_version else ""
        return Check(GateState.PENDING, f"waiting for {where} to succeed with {version}: it is "
                     f"{observed.phase or 'new'} with {observed.version}{stable}")
    if succeeded:
        return Check(GateState.PASSED, f"{where} succeeded ({observed.stable_version})")
    return Check(GateState.PENDING, f"waiting for {where} to succeed: it is {observed.phase or 'new'}")
