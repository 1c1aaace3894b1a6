"""Notifications: what a Release's events say (`message`, pure) and their delivery to webhooks
(`webhook`). The engine builds a `ReleaseEvent`, keeps the notifications that `wants` it,
renders each with `render` and hands the body to `WebhookNotifier.send`, which never raises."""

from glideslope.notify.message import (
    SCHEMA_VERSION,
    ReleaseEvent,
    emoji,
    json_payload,
    render,
    slack_payload,
    summary,
    wants,
)
from glideslope.notify.webhook import DEFAULT_TIMEOUT, DeliveryResult, WebhookNotifier, redact_url

__all__ = [
    "DEFAULT_TIMEOUT",
    "SCHEMA_VERSION",
    "DeliveryResult",
    "ReleaseEvent",
    "WebhookNotifier",
    "emoji",
    "json_payload",
    "redact_url",
    "render",
    "slack_payload",
    "summary",
    "wants",
]
