"""The `approval` gate: a person passes it with `kubectl release approve NAME --gate GATE`.

An approval is recorded in `status.gates` (who, when) and belongs to the revision being rolled
out: a new revision starts with fresh gates, so it needs a new approval. Approving before
the gate's stage begins is allowed (a change board may approve early).
"""

from __future__ import annotations

from datetime import datetime

from glideslope.api import GateState, GateStatus
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
