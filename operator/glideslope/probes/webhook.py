"""The webhook gate's request: POST what is about to happen, with retries and backoff, through
the egress layer.

The stepper only asks (`ask`): the request runs on the egress layer, in one of the namespace's
webhook slots, and the answer is read on a later tick, as a Job gate's Job is. So a receiver
that never answers holds nothing but its own request, until its deadline.

The body names the Release, its namespace, version and revision, the stable revision, and
the gate and stage. Headers (a token) come from the keys `headersFrom` names, of a Secret that
consents to it; the URL from `url` or such a Secret.
"""

from __future__ import annotations

import asyncio
from typing import Any

from glideslope.api import Release, WebhookGate
from glideslope.core.gates import WebhookAnswer
from glideslope.core.revision import revision_of
from glideslope.egress import Egress, Kind, Pending
from glideslope.kube import secrets
from glideslope.kube.client import Kube
from glideslope.notify.webhook import WebhookNotifier


def ask(egress: Egress, kube: Kube, subject: Release, gate_name: str, gate: WebhookGate) -> WebhookAnswer | None:
    """The webhook's answer once it has come (None until then): asked once per start of the
    gate's stage."""
    namespace = subject.metadata.namespace or ""
    status = next((g for g in subject.status.gates if g.name == gate_name), None)
    index = next((i for i, g in enumerate(subject.spec.gates) if g.name == gate_name), 0)
    field = f"spec.gates[{index}].webhook"
    revision = revision_of(subject.spec.template)
    started = status.started_at.isoformat() if status is not None and status.started_at is not None else ""
    payload: dict[str, Any] = {
        "release": subject.metadata.name, "namespace": namespace, "version": subject.spec.version,
        "revision": revision, "stableRevision": subject.status.stable_revision,
        "stableVersion": subject.status.stable_version, "gate": gate_name,
        "stage": status.stage.value if status is not None and status.stage is not None else None,
    }

    key = (namespace, subject.metadata.name or "")
    tag = ("webhook", gate_name, revision, started)
    endpoint: tuple[str, dict[str, str]] | None = None
    if tag not in egress.in_flight(key):
        # What fails without a request fails now, not after a wait for one of the namespace's
        # slots: a Secret that cannot be used, an address the policy denies.
        try:
            endpoint = _endpoint(kube, namespace, field, gate)
        except secrets.SecretUnreadable as exc:
            return WebhookAnswer(None, str(exc))
        denied = egress.refusal(endpoint[0])
        if denied is not None:
            return WebhookAnswer(None, f"{field}: {denied}")

    async def request() -> WebhookAnswer:
        try:
            # Read here only if the request started without the stepper's read (a race with
            # `forget`); a Kubernetes API call, off the layer's loop.
            url, headers = endpoint if endpoint is not None else await asyncio.to_thread(
                _endpoint, kube, namespace, field, gate)
        except secrets.SecretUnreadable as exc:
            return WebhookAnswer(None, str(exc))
        notifier = WebhookNotifier(egress, kind=Kind.WEBHOOK, attempts=gate.retries + 1)
        result = await notifier.send(url, payload, timeout=float(gate.timeout_seconds), headers=headers)
        return WebhookAnswer(result.status, None if result.ok or result.error is None else f"{field}: {result.error}")

    answer = egress.ask(key, tag, Kind.WEBHOOK, request, fallback=lambda why: WebhookAnswer(None, f"{field}: {why}"))
    return None if isinstance(answer, Pending) else answer


def _endpoint(kube: Kube, namespace: str, field: str, gate: WebhookGate) -> tuple[str, dict[str, str]]:
    """The URL and the headers to send, read from the Secrets the gate names."""
    if gate.url is not None:
        url = str(gate.url)
    else:
        assert gate.url_from is not None  # the API server's CEL rule: exactly one of url, urlFrom
        ref = gate.url_from.secret_key_ref
        url = secrets.value(kube, namespace, ref.name, ref.key, f"{field}.urlFrom: Secret {namespace}/{ref.name}")
    headers = secrets.headers(kube, namespace, gate.headers_from, f"{field}.headersFrom") \
        if gate.headers_from is not None else {}
    return url, headers
