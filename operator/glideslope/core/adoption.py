"""A Release that adopts an existing Deployment (`spec.workloadRef`): what the Deployment and the
Services do while the Release takes over, and what the Release says after a rollback.

The shell reads the Deployment and puts its pod template into `spec.template` (so its revision,
and every decision about it, is the core's as for any Release); these are the few decisions
that concern the adopted Deployment itself.
"""

from __future__ import annotations

from glideslope.api import Phase, ReleaseSpec, ReleaseStatus, ScaleDown
from glideslope.core.model import Observation


def deployment_replicas(spec: ReleaseSpec, status: ReleaseStatus, observation: Observation,
                        found: int) -> int | None:
    """The replicas the adopted Deployment should have now (None: leave it alone), given
    `found`, the replicas it had when the Release adopted it, and the decided `status`.

    Until the Release's first rollout succeeds the adopted Deployment serves with it (the
    Services keep their selector, `holds_traffic`), so `progressively` takes from it only what
    the Release's Ready pods replace; once the Release serves, it is not needed any more."""
    ref = spec.workload_ref
    if ref is None or ref.scale_down == ScaleDown.NEVER:
        return None
    if status.stable_revision is not None:
        return 0
    if ref.scale_down == ScaleDown.ON_SUCCESS:
        return found
    ready = sum(state.ready for state in observation.revisions.values())
    return max(found - ready, 0)


def holds_traffic(spec: ReleaseSpec, status: ReleaseStatus) -> bool:
    """Whether the Services and the route are left as found: an adopting Release's first
    rollout has no Ready revision to point them at yet, and the adopted Deployment's pods (which
    carry the selector's labels, as the Release's do) serve meanwhile."""
    return spec.workload_ref is not None and status.stable_revision is None


def rolled_back_note(spec: ReleaseSpec, status: ReleaseStatus, candidate: str) -> str | None:
    """What a rolled-back adopting Release adds to its message: its Deployment's template is
    still the revision rolled back, and how to go on. None: nothing to add."""
    ref = spec.workload_ref
    if ref is None or status.phase != Phase.ROLLED_BACK or status.revision != candidate:
        return None
    return (f"Deployment {ref.name}'s template is the rolled-back revision {candidate}: change it (a new image, "
            f"or kubectl rollout undo deployment/{ref.name}) to roll out again, or retry")


def with_note(message: str | None, note: str | None) -> str | None:
    """`message` with `note` appended once."""
    if note is None or (message is not None and note in message):
        return message
    return f"{message}; {note}" if message else note
