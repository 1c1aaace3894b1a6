"""Notifications: what a Release's events say (`message`, pure) and their delivery to webhooks
(`webhook`). The engine builds a `ReleaseEvent`, keeps the notifications that `wants` it,
renders each with `render` (or the notification's own template, `core.template`) and hands the
body to `WebhookNotifier.send`, which never raises."""

from glideslope.notify.message import (
    SCHEMA_VERSION,
    ReleaseEvent,
    discord_payload,
    emoji,
    google_chat_payload,
    json_payload,
    pagerduty_payload,
    render,
    slack_payload,
    summary,
    teams_payload,
    template_variables,
    wants,
)
from glideslope.notify.webhook import DEFAULT_TIMEOUT, DeliveryResult, WebhookNotifier, redact_url

__all__ = [
    "DEFAULT_TIMEOUT",
    "SCHEMA_VERSION",
    "DeliveryResult",
    "ReleaseEvent",
    "WebhookNotifier",
    "discord_payload",
    "emoji",
    "google_chat_payload",
    "json_payload",
    "pagerduty_payload",
    "redact_url",
    "render",
    "slack_payload",
    "summary",
    "teams_payload",
    "template_variables",
    "wants",
]
