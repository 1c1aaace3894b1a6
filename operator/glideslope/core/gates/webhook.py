"""The `webhook` gate: an endpoint asked once per stage (with retries) whether to go on.

A 2xx answer passes. Anything else once the retries are spent (a 4xx, a 5xx, no answer)
fails: the endpoint said no, or could not be asked, and a release does not go ahead
unchecked.
"""

from __future__ import annotations

from glideslope.api import GateState
from glideslope.core.gates import Check, WebhookAnswer


def check(answer: WebhookAnswer | None, previous: str | None = None) -> Check:
    if answer is None:
        return Check(GateState.PENDING, previous or "asking the webhook")
    if answer.status is not None and 200 <= answer.status < 300:
        return Check(GateState.PASSED, f"the webhook answered {answer.status}")
    if answer.status is not None:
        return Check(GateState.FAILED, f"the webhook said no: HTTP {answer.status}")
    return Check(GateState.FAILED, f"the webhook could not be asked: {answer.error or 'no answer'}")
