"""What a notification says: a `ReleaseEvent` and its two renderings. Pure: no I/O, no clock.

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

import math
from dataclasses import dataclass
from datetime import UTC, datetime
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


def render(event: ReleaseEvent, format: WebhookFormat) -> dict[str, Any]:
    """The body for a webhook of this `format`."""
    return slack_payload(event) if format == WebhookFormat.SLACK else json_payload(event)


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

    fields = [
        _field(title, value) for title, value in (
            ("Release", f"{event.namespace}/{event.release}"),
            ("Version", _versions(event)),
            ("Strategy", _str_or_none(event.strategy)),
            ("Phase", _str_or_none(event.phase)),
            ("Step", _step(event)),
            ("Weight", f"{event.weight}%" if event.weight is not None else None),
            ("Trigger", _trigger(event)),
        ) if value is not None
    ]
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
