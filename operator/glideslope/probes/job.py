"""The job gate's Job, named from the gate's start so a restart finds the same one."""

from __future__ import annotations

from glideslope.api import JobGate, Release
from glideslope.core.gates import JobObservation
from glideslope.core.gates.job import job_name
from glideslope.core.revision import revision_of
from glideslope.kube import jobs
from glideslope.kube.client import Kube


def observe(kube: Kube, subject: Release, gate_name: str, gate: JobGate) -> JobObservation | None:
    status = next((g for g in subject.status.gates if g.name == gate_name), None)
    if status is None or status.started_at is None:
        return None
    revision = revision_of(subject.spec.template)
    name = job_name(subject.metadata.name or "", gate_name, revision, status.started_at)
    return jobs.ensure(kube, subject, gate_name, gate, revision, name)
