"""The `approval` gate: a person passes it with `kubectl release approve NAME --gate GATE`.

An approval is recorded in `status.gates` (who, when) and belongs to the revision being rolled
out: a new revision starts with fresh gates, so it needs a new approval. Approving before
the gate's stage begins is allowed (a change board may approve early).

Who may approve is the API server's to enforce: the chart's admission policy admits
`glideslope.dev/approve` only with `glideslope.dev/approved-by` set to the writer's own user
name, and only from one of the gate's `approvers` (by name or group). The operator checks again
what it can without the policy (`refusal`): the name, against `approvers.users`, when the gate
names no groups (a user's groups are known only to the API server).
"""

from __future__ import annotations

from datetime import datetime

from glideslope.api import Gate, GateState, GateStatus
from glideslope.core.gates import Check


def check(current: GateStatus, release: str) -> Check:
    if current.state == GateState.PASSED:
        return Check(GateState.PASSED, current.message or "approved")
    return Check(GateState.PENDING,
                 f"waiting for approval: kubectl release approve {release} --gate {current.name}")


def approve(current: GateStatus, who: str | None, now: datetime) -> GateStatus:
    """The gate's status once approved by `who`."""
    by = who or "unknown"
    return current.model_copy(update={"state": GateState.PASSED, "approved_by": by,
                                      "message": f"approved by {by}", "last_transition_time": now})


def refusal(gate: Gate, who: str | None) -> str | None:
    """Why an approval of `gate` signed by `who` (`glideslope.dev/approved-by`) is ignored, or
    None to obey it. Defense in depth only: with groups, the admission policy alone decides."""
    approvers = gate.approval.approvers if gate.approval is not None else None
    if approvers is None or approvers.groups or not approvers.users:
        return None
    if who is not None and who in approvers.users:
        return None
    signer = repr(who) if who else "an approval with no glideslope.dev/approved-by"
    return (f"approve: gate {gate.name}: {signer} is not among its approvers "
            f"({', '.join(approvers.users)})")
