"""What a notification says: a `ReleaseEvent` and its renderings, one per `WebhookFormat`.
Pure: no I/O, no clock.

The JSON body (`json_payload`, schema version 1) is a contract with receivers. Every key is
always present; a value that does not apply is `null`:

```json
{
  "schemaVersion": 1,
  "kind": "ReleaseEvent",
  "event": "Promoted",                      // a NotificationEvent
  "at": "2026-11-26T06:50:00Z",             // RFC 3339, UTC
  "release": {"name": "checkout", "namespace": "shop"},
  "version": "2.5.0",                       // spec.version of the candidate
  "revision": "7f9c2d1a4b",                 // the candidate's revision
  "stable": {"version": "2.4.1", "revision": "5e11a0c9d2"},   // null: no stable revision
  "phase": "Progressing",
  "strategy": "Canary",
  "step": {"current": 3, "total": 5},       // null when the strategy has no steps yet
  "weight": 50,                             // percent on the candidate
  "message": "step 3/5: setWeight 50",
  "reason": null,                           // why: abort reason, failed trigger, gate...
  "trigger": {"name": "error-rate", "severity": "critical",
              "value": 0.0123, "query": "sum(rate(...))"},    // null unless a trigger is involved
  "summary": "shop/checkout 2.5.0 promoted to 50% (step 3/5)",
  "releaseNotes": "### What's new\n- Faster search"   // spec.releaseNotes (Markdown); null but
                                                      // on Started and Succeeded
}
```

`trigger.value` is `null` when there was no finite value (no data, NaN, an error): JSON has no
NaN, and a receiver must not mistake "no data" for zero. Later versions only add keys; a
change that removes or retypes one increments `schemaVersion`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from glideslope.api import Notification, NotificationEvent, Phase, Severity, StrategyType, WebhookFormat

SCHEMA_VERSION = 1
"""The version of the `json_payload` shape."""


@dataclass(frozen=True, kw_only=True)
class ReleaseEvent:
    """Something that happened to a Release, with what a person needs to judge it."""

    release: str
    namespace: str
    event: NotificationEvent
    version: str
    """`spec.version` of the candidate."""
    at: datetime
    """When it happened; must carry a time zone."""
    revision: str | None = None
    """The candidate revision."""
    stable_version: str | None = None
    stable_revision: str | None = None
    phase: Phase | None = None
    message: str | None = None
    strategy: StrategyType | None = None
    step: int | None = None
    total_steps: int | None = None
    weight: int | None = None
    trigger_name: str | None = None
    trigger_severity: Severity | None = None
    trigger_value: float | None = None
    trigger_query: str | None = None
    """The query as sent, template variables resolved."""
    reason: str | None = None
    """Why, in a few words: an abort reason, the failed trigger, the gate waited on."""
    release_notes: str | None = None
    """`spec.releaseNotes` (Markdown), for the events that open and close a rollout."""

    def __post_init__(self) -> None:
        # A naive time would be rendered as if it were UTC, silently wrong by the zone offset.
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ValueError("ReleaseEvent.at must be timezone-aware")


def wants(notification: Notification, event: NotificationEvent) -> bool:
    """Whether `notification` subscribes to `event`; no `events` list means all of them."""
    return notification.events is None or event in notification.events


def render(event: ReleaseEvent, format: WebhookFormat, *, routing_key: str | None = None) -> dict[str, Any] | None:
    """The body for a webhook of this `format`; None: this format does not send this event
    (PagerDuty hears only the events that open and close an incident). `routing_key`: PagerDuty's."""
    if format == WebhookFormat.PAGERDUTY:
        if routing_key is None:
            raise ValueError("a pagerduty body needs its routing key")
        return pagerduty_payload(event, routing_key)
    return _RENDERERS.get(format, json_payload)(event)


def template_variables(event: ReleaseEvent) -> dict[str, Any]:
    """What a notification's template sees: every field of the event, as JSON would show it
    (enums as their names, `at` in RFC 3339, a non-finite value as None), and `summary`."""
    variables: dict[str, Any] = {}
    for field in fields(event):
        value = getattr(event, field.name)
        if isinstance(value, datetime):
            value = _rfc3339(value)
        elif isinstance(value, float):
            value = _finite(value)
        elif isinstance(value, Enum):
            value = str(value)
        variables[field.name] = value
    variables["summary"] = summary(event)
    return variables


def json_payload(event: ReleaseEvent) -> dict[str, Any]:
    """The plain JSON body, schema version `SCHEMA_VERSION` (shape in the module docstring)."""
    has_stable = event.stable_version is not None or event.stable_revision is not None
    has_step = event.step is not None or event.total_steps is not None
    has_trigger = event.trigger_name is not None or event.trigger_query is not None
    return {
        "schemaVersion": SCHEMA_VERSION,
        "kind": "ReleaseEvent",
        "event": str(event.event),
        "at": _rfc3339(event.at),
        "release": {"name": event.release, "namespace": event.namespace},
        "version": event.version,
        "revision": event.revision,
        "stable": {"version": event.stable_version, "revision": event.stable_revision} if has_stable else None,
        "phase": _str_or_none(event.phase),
        "strategy": _str_or_none(event.strategy),
        "step": {"current": event.step, "total": event.total_steps} if has_step else None,
        "weight": event.weight,
        "message": event.message,
        "reason": event.reason,
        "trigger": {
            "name": event.trigger_name,
            "severity": _str_or_none(event.trigger_severity),
            "value": _finite(event.trigger_value),
            "query": event.trigger_query,
        } if has_trigger else None,
        "summary": summary(event),
        "releaseNotes": event.release_notes,
    }


# ---------------------------------------------------------------------------------------------
# Slack

# Emoji rather than attachment colours: colour bars need Slack's legacy `attachments`, while
# an emoji in the header reads the same in the message, the mobile push and the sidebar.
_STYLE: dict[NotificationEvent, tuple[str, str]] = {
    NotificationEvent.GATED: ("\u23f8\ufe0f", "Waiting on gates"),
    NotificationEvent.STARTED: ("\u25b6\ufe0f", "Rollout started"),
    NotificationEvent.PAUSED: ("\u23f8\ufe0f", "Paused"),
    NotificationEvent.PROMOTED: ("\u25b6\ufe0f", "Promoted"),
    NotificationEvent.VALIDATING: ("\U0001f50e", "Validating"),
    NotificationEvent.SUCCEEDED: ("\u2705", "Succeeded"),
    NotificationEvent.ROLLING_BACK: ("\u23ea", "Rolling back"),
    NotificationEvent.ROLLED_BACK: ("\u274c", "Rolled back"),
    NotificationEvent.FAILED: ("\u274c", "Failed"),
    NotificationEvent.TRIGGER_FAILED: ("\u26a0\ufe0f", "Trigger failed"),
}

# Slack refuses a whole message when one block exceeds its limits, so text is cut to fit.
_HEADER_MAX = 150
_MESSAGE_MAX = 1200  # message + reason + query stay under the section's 3000
_REASON_MAX = 500
_QUERY_MAX = 1200
_FIELD_MAX = 2000
_TEXT_MAX = 3000
_NOTES_MAX = 2900  # a section of its own; its heading and the ellipsis fit in the rest


def emoji(event: NotificationEvent) -> str:
    """The emoji that marks this kind of event."""
    return _STYLE[event][0]


def slack_payload(event: ReleaseEvent) -> dict[str, Any]:
    """A Slack incoming-webhook message: `text` for notifications and old clients, `blocks` to show."""
    mark, label = _STYLE[event.event]
    header = f"{mark} {event.release} {event.version}: {label}"

    # Each part has its own budget, so the section stays under Slack's limit without cutting
    # the code block open.
    # Slack refuses a section whose text is blank.
    body = _fit((event.message or "").strip() or summary(event), _MESSAGE_MAX)
    if event.reason and event.reason.strip() and event.reason != event.message:
        body += f"\n*Reason:* {_fit(event.reason, _REASON_MAX)}"
    if event.trigger_query:
        # ``` inside the query would end the code block early.
        query = event.trigger_query.replace("```", "'''")
        body += f"\n```{_fit(query, _QUERY_MAX)}```"

    fields = [_field(title, value) for title, value in _facts(event)]
    section: dict[str, Any] = {"type": "section", "text": _mrkdwn(body)}
    if fields:
        section["fields"] = fields[:10]  # Slack's limit per section

    context = [f"glideslope \u00b7 {_slack_date(event.at)}"]
    if event.revision:
        context.append(f"revision `{_fit(event.revision, 80)}`")
    if event.stable_revision:
        context.append(f"stable `{_fit(event.stable_revision, 80)}`")

    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(header, _HEADER_MAX), "emoji": True}},
        section,
    ]
    if event.release_notes and event.release_notes.strip():
        blocks.append({"type": "section", "text": _mrkdwn("*Release notes*\n"
                                                          + _fit(event.release_notes.strip(), _NOTES_MAX))})
    blocks.append({"type": "context", "elements": [_mrkdwn(" \u00b7 ".join(context))]})
    return {"text": _fit(f"{mark} {summary(event)}", _TEXT_MAX), "blocks": blocks}


def summary(event: ReleaseEvent) -> str:
    """One line a person can read in a notification list: what happened to which release."""
    who = f"{event.namespace}/{event.release} {event.version}"
    kind = event.event
    if kind == NotificationEvent.GATED:
        text = f"{who} is waiting on gates"
    elif kind == NotificationEvent.STARTED:
        text = f"{who} rollout started" + (f" ({event.strategy})" if event.strategy else "")
        if event.stable_version:
            text += f", replacing {event.stable_version}"
    elif kind == NotificationEvent.PAUSED:
        text = f"{who} paused" + (f" at step {_step(event)}" if _step(event) else "")
    elif kind == NotificationEvent.PROMOTED:
        text = f"{who} promoted" + (f" to {event.weight}%" if event.weight is not None else "")
        text += f" (step {_step(event)})" if _step(event) else ""
    elif kind == NotificationEvent.VALIDATING:
        text = f"{who} fully promoted, validating"
    elif kind == NotificationEvent.SUCCEEDED:
        text = f"{who} succeeded"
    elif kind == NotificationEvent.ROLLING_BACK:
        text = f"{who} rolling back" + (f" to {event.stable_version}" if event.stable_version else "")
    elif kind == NotificationEvent.ROLLED_BACK:
        text = f"{who} rolled back" + (f" to {event.stable_version}" if event.stable_version else "")
    elif kind == NotificationEvent.FAILED:
        text = f"{who} failed"
    else:
        text = f"{who}: trigger {event.trigger_name or '?'} failed"
        value = _finite(event.trigger_value)
        text += f" ({_number(value)})" if value is not None else ""
    if event.reason and kind in _WITH_REASON:
        text += f": {event.reason}"
    return text


# The summary names the cause only where it is the news; elsewhere the message carries it.
_WITH_REASON = frozenset({
    NotificationEvent.GATED, NotificationEvent.PAUSED, NotificationEvent.ROLLING_BACK,
    NotificationEvent.ROLLED_BACK, NotificationEvent.FAILED,
})


# ---------------------------------------------------------------------------------------------
# Microsoft Teams: an Adaptive Card in a message, the body both Teams incoming webhooks and
# Power Automate's "post to a channel when a webhook request is received" accept.

_TEAMS_COLOUR = {
    NotificationEvent.SUCCEEDED: "Good", NotificationEvent.ROLLED_BACK: "Attention",
    NotificationEvent.FAILED: "Attention", NotificationEvent.ROLLING_BACK: "Warning",
    NotificationEvent.TRIGGER_FAILED: "Warning",
}
# Teams refuses a message over about 28 KB; each part has a budget well under it.
_TEAMS_TEXT_MAX = 2000
_TEAMS_NOTES_MAX = 8000


def teams_payload(event: ReleaseEvent) -> dict[str, Any]:
    """A Teams message carrying one Adaptive Card (schema 1.4): a title, the message, facts."""
    mark, label = _STYLE[event.event]
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": _cut(f"{mark} {event.release} {event.version}: {label}", _HEADER_MAX),
         "size": "Medium", "weight": "Bolder", "wrap": True,
         "color": _TEAMS_COLOUR.get(event.event, "Default")},
        {"type": "TextBlock", "text": _cut((event.message or "").strip() or summary(event), _TEAMS_TEXT_MAX),
         "wrap": True},
    ]
    if event.reason and event.reason.strip() and event.reason != event.message:
        body.append({"type": "TextBlock", "text": _cut(f"Reason: {event.reason}", _TEAMS_TEXT_MAX), "wrap": True})
    facts = [{"title": title, "value": _cut(value, 500)} for title, value in _facts(event)]
    if facts:
        body.append({"type": "FactSet", "facts": facts})
    if event.trigger_query:
        body.append({"type": "TextBlock", "text": _cut(event.trigger_query, _TEAMS_TEXT_MAX),
                     "fontType": "Monospace", "wrap": True})
    if event.release_notes and event.release_notes.strip():
        body.append({"type": "TextBlock", "text": "Release notes", "weight": "Bolder", "separator": True})
        body.append({"type": "TextBlock", "text": _cut(event.release_notes.strip(), _TEAMS_NOTES_MAX), "wrap": True})
    body.append({"type": "TextBlock", "text": _cut(" \u00b7 ".join(_footer(event)), 500), "isSubtle": True,
                 "size": "Small", "wrap": True})
    card = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
            "version": "1.4", "body": body, "msteams": {"width": "Full"}}
    return {"type": "message", "summary": _cut(f"{mark} {summary(event)}", 250),
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
                             "content": card}]}


# ---------------------------------------------------------------------------------------------
# Discord: an execute-webhook body with one embed.

_DISCORD_COLOUR = {
    NotificationEvent.SUCCEEDED: 0x2EB67D, NotificationEvent.ROLLED_BACK: 0xE01E5A,
    NotificationEvent.FAILED: 0xE01E5A, NotificationEvent.ROLLING_BACK: 0xECB22E,
    NotificationEvent.TRIGGER_FAILED: 0xECB22E,
}
_DISCORD_NEUTRAL = 0x36C5F0
# Discord's limits: content 2000, title 256, description 4096, field name 256 and value 1024,
# footer 2048, and 6000 characters over all of an embed's text; the budgets below sum under it.
_DISCORD_DESCRIPTION_MAX = 3000
_DISCORD_FIELD_MAX = 250


def discord_payload(event: ReleaseEvent) -> dict[str, Any]:
    """A Discord webhook message: `content` for the notification, an embed to show."""
    mark, label = _STYLE[event.event]
    description = _cut((event.message or "").strip() or summary(event), 1200)
    if event.reason and event.reason.strip() and event.reason != event.message:
        description += f"\n**Reason:** {_cut(event.reason, 500)}"
    if event.trigger_query:
        description += f"\n```{_cut(event.trigger_query.replace('```', chr(39) * 3), 600)}```"
    if event.release_notes and event.release_notes.strip():
        description += f"\n\n**Release notes**\n{event.release_notes.strip()}"
    embed: dict[str, Any] = {
        "title": _cut(f"{mark} {event.release} {event.version}: {label}", 256),
        "description": _cut(description, _DISCORD_DESCRIPTION_MAX),
        "color": _DISCORD_COLOUR.get(event.event, _DISCORD_NEUTRAL),
        "timestamp": _rfc3339(event.at),
        "fields": [{"name": title, "value": _cut(value, _DISCORD_FIELD_MAX), "inline": True}
                   for title, value in _facts(event)],
        "footer": {"text": _cut(" \u00b7 ".join(_footer(event)), 300)},
    }
    # No mention in a tenant's text (`@everyone`, a role) may ping anyone.
    return {"username": "Glideslope", "content": _cut(f"{mark} {summary(event)}", 2000),
            "allowed_mentions": {"parse": []}, "embeds": [embed]}


# ---------------------------------------------------------------------------------------------
# Google Chat: a space's incoming webhook, `text` and a `cardsV2` card.

# Chat's cards read a subset of HTML: a tenant's text is escaped so that it shows as written.
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def google_chat_payload(event: ReleaseEvent) -> dict[str, Any]:
    """A Google Chat message: `text` (what notifications show) and one card."""
    mark, label = _STYLE[event.event]
    widgets: list[dict[str, Any]] = [
        {"textParagraph": {"text": _html((event.message or "").strip() or summary(event), 1200)}},
    ]
    if event.reason and event.reason.strip() and event.reason != event.message:
        widgets.append({"decoratedText": {"topLabel": "Reason", "text": _html(event.reason, 500), "wrapText": True}})
    widgets += [{"decoratedText": {"topLabel": title, "text": _html(value, 500), "wrapText": True}}
                for title, value in _facts(event)]
    if event.trigger_query:
        widgets.append({"decoratedText": {"topLabel": "Query", "text": _html(event.trigger_query, 1200),
                                          "wrapText": True}})
    sections: list[dict[str, Any]] = [{"widgets": widgets}]
    if event.release_notes and event.release_notes.strip():
        sections.append({"header": "Release notes", "collapsible": True,
                         "widgets": [{"textParagraph": {"text": _html(event.release_notes.strip(), 8000)}}]})
    card = {"header": {"title": _cut(f"{mark} {event.release} {event.version}: {label}", 200),
                       "subtitle": _cut(" \u00b7 ".join(_footer(event)), 200)},
            "sections": sections}
    # `<users/all>` in a message's text notifies the whole space: `<` never reaches it as such.
    text = _cut(f"{mark} {summary(event)}", 4000).replace("<", "\u2039")
    return {"text": text, "cardsV2": [{"cardId": f"glideslope-{event.event}", "card": card}]}


def _html(text: str, limit: int) -> str:
    return "".join(_HTML.get(ch, ch) for ch in _cut(text, limit))


# ---------------------------------------------------------------------------------------------
# PagerDuty Events API v2: an incident per Release and revision, opened by a rollback or a
# failure and resolved when that revision succeeds.

_PAGERDUTY_SEVERITY = {Severity.CRITICAL: "critical", Severity.HIGH: "error", Severity.MEDIUM: "warning",
                       Severity.LOW: "info"}
PAGERDUTY_DEFAULT_SEVERITY = "error"
"""When no trigger is responsible (a failed gate, an abort)."""
PAGERDUTY_TRIGGERS = frozenset({NotificationEvent.ROLLED_BACK, NotificationEvent.FAILED})
PAGERDUTY_RESOLVES = frozenset({NotificationEvent.SUCCEEDED})
PAGERDUTY_EVENTS = PAGERDUTY_TRIGGERS | PAGERDUTY_RESOLVES
"""What PagerDuty hears; other events are not sent to it."""


def pagerduty_dedup_key(event: ReleaseEvent) -> str:
    """One incident per Release and revision: a retry that fails again updates it, and the
    revision's success resolves it. At most 255 characters, as PagerDuty requires."""
    key = f"glideslope/{event.namespace}/{event.release}/{event.revision or event.version}"
    if len(key) <= 255:
        return key
    return f"glideslope/{hashlib.sha256(key.encode()).hexdigest()}"


def pagerduty_payload(event: ReleaseEvent, routing_key: str) -> dict[str, Any] | None:
    """An Events API v2 event: `trigger` on RolledBack and Failed, `resolve` on Succeeded; None
    for every other event, which PagerDuty does not hear."""
    key = routing_key.strip()  # a key read from a Secret often ends in `echo`'s newline
    if event.event in PAGERDUTY_RESOLVES:
        return {"routing_key": key, "event_action": "resolve", "dedup_key": pagerduty_dedup_key(event)}
    if event.event not in PAGERDUTY_TRIGGERS:
        return None
    severity = (_PAGERDUTY_SEVERITY[event.trigger_severity] if event.trigger_severity is not None
                else PAGERDUTY_DEFAULT_SEVERITY)
    details = json_payload(event)
    del details["summary"]  # it is the payload's summary already
    return {
        "routing_key": key,
        "event_action": "trigger",
        "dedup_key": pagerduty_dedup_key(event),
        "client": "Glideslope",
        "payload": {
            "summary": _cut(summary(event), 1024),
            "source": f"{event.namespace}/{event.release}",
            "severity": severity,
            "timestamp": _rfc3339(event.at),
            "component": event.release,
            "group": event.namespace,
            "class": str(event.event),
            "custom_details": details,
        },
    }


_RENDERERS: dict[WebhookFormat, Callable[[ReleaseEvent], dict[str, Any]]] = {
    WebhookFormat.JSON: json_payload,
    WebhookFormat.SLACK: slack_payload,
    WebhookFormat.TEAMS: teams_payload,
    WebhookFormat.DISCORD: discord_payload,
    WebhookFormat.GOOGLE_CHAT: google_chat_payload,
}


def _facts(event: ReleaseEvent) -> list[tuple[str, str]]:
    """The name/value pairs a card shows, in plain text."""
    return [(title, value) for title, value in (
        ("Release", f"{event.namespace}/{event.release}"),
        ("Version", _versions(event)),
        ("Strategy", _str_or_none(event.strategy)),
        ("Phase", _str_or_none(event.phase)),
        ("Step", _step(event)),
        ("Weight", f"{event.weight}%" if event.weight is not None else None),
        ("Trigger", _trigger(event)),
    ) if value is not None]


def _footer(event: ReleaseEvent) -> list[str]:
    parts = [f"glideslope \u00b7 {event.at.astimezone(UTC).strftime('%Y-%m-%d %H:%M UTC')}"]
    if event.revision:
        parts.append(f"revision {_cut(event.revision, 80)}")
    if event.stable_revision:
        parts.append(f"stable {_cut(event.stable_revision, 80)}")
    return parts


# ---------------------------------------------------------------------------------------------
# Helpers


def _str_or_none(value: object | None) -> str | None:
    return None if value is None else str(value)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _number(value: float) -> str:
    return f"{value:.6g}"


def _rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _step(event: ReleaseEvent) -> str | None:
    if event.step is None or not event.total_steps:
        return None
    return f"{event.step}/{event.total_steps}"


def _versions(event: ReleaseEvent) -> str:
    if event.stable_version and event.stable_version != event.version:
        return f"{event.stable_version} \u2192 {event.version}"
    return event.version


def _trigger(event: ReleaseEvent) -> str | None:
    if not event.trigger_name:
        return None
    text = event.trigger_name
    if event.trigger_severity is not None:
        text += f" ({event.trigger_severity})"
    value = _finite(event.trigger_value)
    if value is not None:
        text += f" = {_number(value)}"
    elif event.trigger_value is not None:
        text += " = no value"
    return text


def _field(title: str, value: str) -> dict[str, Any]:
    return _mrkdwn(f"*{title}*\n{_fit(value, _FIELD_MAX - len(title) - 3)}")


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


# Slack's three control characters; unescaped, a message could carry <!channel> pings or links.
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def _escape(text: str) -> str:
    return "".join(_ESCAPES.get(ch, ch) for ch in text)


def _fit(text: str, limit: int) -> str:
    """`text` escaped for mrkdwn and at most `limit` characters long, cut with an ellipsis.
    Cut while escaping: cutting after would split an entity, before would not bound the length."""
    escaped = _escape(text)
    if len(escaped) <= limit:
        return escaped
    out: list[str] = []
    used = 1  # the ellipsis
    for ch in text:
        piece = _ESCAPES.get(ch, ch)
        if used + len(piece) > limit:
            break
        out.append(piece)
        used += len(piece)
    return "".join(out) + "\u2026"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _slack_date(at: datetime) -> str:
    # Slack shows <!date^...> in each reader's own time zone; the part after | is the fallback.
    utc = at.astimezone(UTC)
    fallback = utc.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(utc.timestamp())}^{{date_short_pretty}} at {{time}}|{fallback}>"
