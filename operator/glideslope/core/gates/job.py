"""The `job` gate: a Job from the gate's template (smoke tests, a migration check) must succeed.

The Job is named from the Release, the gate and when the gate's stage began, so a restarted
operator finds the Job it created instead of starting a second one, and a retry (a new start)
runs a new Job. It passes when the Job succeeds, fails when the Job fails or has not
succeeded within `timeoutSeconds`.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from glideslope.api import GateState, JobGate
from glideslope.core.gates import Check, JobObservation

_NAME_LIMIT = 52
"""The Job controller labels pods with the Job's name (at most 63 characters) and adds a
suffix to pod names; 52 leaves room for it, as for a CronJob's Jobs."""


def job_name(release: str, gate: str, revision: str, started: datetime) -> str:
    """A DNS-1123 name, stable for one start of the gate."""
    digest = hashlib.sha256(f"{release}/{gate}/{revision}/{started.isoformat()}".encode()).hexdigest()[:8]
    stem = f"{release}-{gate}".lower()[: _NAME_LIMIT - 9].rstrip("-.")
    return f"{stem}-{digest}"


def logs_hint(observed: JobObservation) -> str:
    return f"logs: kubectl logs -n {observed.namespace} job/{observed.name}"


def check(gate: JobGate, observed: JobObservation | None, started: datetime, now: datetime) -> Check:
    waited = (now - started).total_seconds()
    if observed is None:
        if waited >= gate.timeout_seconds:
            return Check(GateState.FAILED, f"timed out after {gate.timeout_seconds}s: the Job was never created")
        return Check(GateState.PENDING, "creating the Job")
    if observed.succeeded:
        return Check(GateState.PASSED, f"Job {observed.name} succeeded; {logs_hint(observed)}")
    if observed.failed:
        why = f": {observed.reason}" if observed.reason else ""
        return Check(GateState.FAILED, f"Job {observed.name} failed{why}; {logs_hint(observed)}")
    if waited >= gate.timeout_seconds:
        return Check(GateState.FAILED, f"Job {observed.name} did not succeed within {gate.timeout_seconds}s; "
                     f"{logs_hint(observed)}")
    return Check(GateState.PENDING, f"Job {observed.name} running ({waited:.0f}s of {gate.timeout_seconds}s); "
                 f"{logs_hint(observed)}")
