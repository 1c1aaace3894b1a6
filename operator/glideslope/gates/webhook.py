"""The webhook gate's request: POST what is about to happen, with retries and backoff.

The body names the Release, its namespace, version and revision, the stable revision, and
the gate and stage. Headers (a token) come from `headersFrom`, the URL from `url` or a Secret.
"""

from __future__ import annotations

import asyncio
from typing import Any

from glideslope.api import Release, WebhookGate
from glideslope.core.gates import WebhookAnswer
from glideslope.core.revision import revision_of
from glideslope.kube import secrets
from glideslope.kube.client import Kube
from glideslope.notify.webhook import WebhookNotifier


def ask(kube: Kube, subject: Release, gate_name: str, gate: WebhookGate) -> WebhookAnswer:
    namespace = subject.metadata.namespace or ""
    status = next((g for g in subject.status.gates if g.name == gate_name), None)
    try:
        url = str(gate.url) if gate.url is not None else _url_from(kube, namespace, gate_name, gate)
        headers = secrets.read(kube, namespace, gate.headers_from.name,
                               f"gate {gate_name}: headersFrom: Secret {namespace}/{gate.headers_from.name}"
                               ) if gate.headers_from is not None else {}
    except secrets.SecretUnreadable as exc:
        return WebhookAnswer(None, str(exc))
    payload: dict[str, Any] = {
        "release": subject.metadata.name, "namespace": namespace, "version": subject.spec.version,
        "revision": revision_of(subject.spec.template), "stableRevision": subject.status.stable_revision,
        "stableVersion": subject.status.stable_version, "gate": gate_name,
        "stage": status.stage.value if status is not None and status.stage is not None else None,
    }
    notifier = WebhookNotifier(attempts=gate.retries + 1)
    # A stepper thread (`scheduler`) asks, and no event loop runs in it.
    result = asyncio.run(notifier.send(url, payload, timeout=float(gate.timeout_seconds),
                                       headers={k: v.strip() for k, v in headers.items()}))
    return WebhookAnswer(result.status, None if result.ok else result.error)


def _url_from(kube: Kube, namespace: str, gate_name: str, gate: WebhookGate) -> str:
    assert gate.url_from is not None  # the API server's CEL rule: exactly one of url, urlFrom
    ref = gate.url_from.secret_key_ref
    where = f"gate {gate_name}: urlFrom: Secret {namespace}/{ref.name}"
    return secrets.value(kube, namespace, ref.name, ref.key, where)
