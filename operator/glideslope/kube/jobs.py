"""A job gate's Job: created once per start of the gate, observed until it ends.

The Job carries the Release's and revision's labels and an owner reference to the Release
(deleting the Release deletes it); `ttlSecondsAfterFinished` removes it once its logs have
been read, and `activeDeadlineSeconds` stops it at the gate's timeout.
"""

from __future__ import annotations

from typing import Any

import kubernetes

from glideslope.api import JobGate, Release
from glideslope.core.gates import JobObservation
from glideslope.core.model import RELEASE_LABEL, REVISION_LABEL
from glideslope.kube import ownership
from glideslope.kube.client import FIELD_MANAGER, Kube
from glideslope.kube.workloads import owner_reference

GATE_LABEL = "glideslope.dev/gate"


def manifest(release: Release, gate_name: str, gate: JobGate, revision: str, name: str) -> dict[str, Any]:
    labels = {RELEASE_LABEL: release.metadata.name or "", REVISION_LABEL: revision, GATE_LABEL: gate_name}
    template = gate.template.to_dict()
    template.setdefault("metadata", {})
    # The pods get the gate's label only: with the release and revision labels they would be
    # counted among the revision's serving pods.
    template["metadata"]["labels"] = {**(template["metadata"].get("labels") or {}), GATE_LABEL: gate_name}
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": release.metadata.namespace, "labels": labels,
                     # Not a controller reference: the Release controls Deployments, and a
                     # Job here is evidence, not a part of the application.
                     "ownerReferences": [{**owner_reference(release), "controller": False}]},
        "spec": {
            "template": template,
            "backoffLimit": gate.backoff_limit,
            "activeDeadlineSeconds": gate.timeout_seconds,
            "ttlSecondsAfterFinished": gate.ttl_seconds_after_finished,
        },
    }


def ensure(kube: Kube, release: Release, gate_name: str, gate: JobGate, revision: str,
           name: str) -> JobObservation:
    """The Job named `name`, created from the gate's template if it does not exist yet."""
    namespace = release.metadata.namespace or ""
    batch = kubernetes.client.BatchV1Api(kube.api)
    try:
        job = batch.read_namespaced_job(name, namespace)
    except kubernetes.client.ApiException as exc:
        if exc.status != 404:
            raise
        body: Any = manifest(release, gate_name, gate, revision, name)  # the client takes plain dicts too
        try:
            job = batch.create_namespaced_job(namespace, body, field_manager=FIELD_MANAGER)
        except kubernetes.client.ApiException as created:
            if created.status != 409:
                raise
            job = batch.read_namespaced_job(name, namespace)
    why = ownership.whose(release, "Job", job.metadata)
    if why is not None:
        # Someone else's Job of that name: its outcome says nothing of this revision.
        return JobObservation(name=name, namespace=namespace, failed=True, reason=why)
    return observe(job, namespace)


def observe(job: Any, namespace: str) -> JobObservation:
    conditions = (job.status.conditions if job.status else None) or []
    done = {c.type: c for c in conditions if c.status == "True"}
    failed = done.get("Failed")
    reason = None
    if failed is not None:
        reason = " ".join(x for x in (failed.reason, failed.message) if x) or None
    return JobObservation(name=job.metadata.name, namespace=namespace, succeeded="Complete" in done,
                          failed=failed is not None, reason=reason)
