"""`publish`: a tick's announcements to the Release's `spec.notifications`, off the reconcile path.

The engine calls `publish` after the Events are recorded; it only builds the messages and
posts them to the egress layer (`glideslope.egress.Egress.post`), so a slow or failing receiver
never holds a rollout. Deliveries run on the layer's event loop, each in a notification slot
of its Release's namespace: a team's black-hole receivers (each holding a delivery for its
retries and their timeouts) use up only that namespace's slots and its bound on waiting work,
never another team's, so they cannot drop or delay someone else's `RolledBack`. Deliveries
with the same order key (namespace, Release, notification) run one after another, so each
receiver hears a Release's events in order.

A delivery reads the webhook URL (from the Secret in the Release's namespace when `urlFrom`
is used) and PagerDuty's routing key (`routingKeyFrom`), renders the body (the format's, or
the notification's own template, in a thread and bounded by `core.template`), sends with
`WebhookNotifier`'s retries and backoff, and records a Warning Event `NotificationFailed` when
a receiver keeps failing or a template is refused. The Secret read and the Event are
Kubernetes API calls, which block: they run in a thread (`asyncio.to_thread`), never on the
loop. What the layer refuses (too much waiting in a namespace) it logs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from glideslope.api import (
    HistoryOutcome,
    Notification,
    NotificationEvent,
    Release,
    ReleaseStatus,
    ValueFrom,
    WebhookFormat,
)
from glideslope.api.spec import PAGERDUTY_EVENTS_URL
from glideslope.core.model import Announce, Reason
from glideslope.core.template import TemplateError, compile_template, render_template
from glideslope.egress import Egress, Kind
from glideslope.kube import events, secrets
from glideslope.kube.client import Kube
from glideslope.logs import get_logger
from glideslope.notify.message import PAGERDUTY_EVENTS, ReleaseEvent, render, template_variables, wants
from glideslope.notify.webhook import JSON_CONTENT_TYPE, TEXT_CONTENT_TYPE, WebhookNotifier, redact_url

log = get_logger("glideslope.notify")

NOTIFICATION_FAILED = "NotificationFailed"
EXIT_GRACE = 5.0
"""Seconds a stopping operator waits for queued notifications (the last Succeeded, say)."""

# Event reasons that are notification events under another name: a person's abort or undo
# starts a rollback, and a retry starts the rollout again.
_ALIASES = {Reason.ABORTED: NotificationEvent.ROLLING_BACK, Reason.UNDO: NotificationEvent.ROLLING_BACK,
            Reason.RETRIED: NotificationEvent.STARTED}
_WITH_HISTORY_REASON = frozenset({NotificationEvent.ROLLING_BACK, NotificationEvent.ROLLED_BACK,
                                  NotificationEvent.FAILED})
# The notes go with the events that open and close a rollout, not with every step.
_WITH_NOTES = frozenset({NotificationEvent.STARTED, NotificationEvent.SUCCEEDED})


def notification_event(reason: str) -> NotificationEvent | None:
    """The notification event an Event reason stands for; None: not one people subscribe to."""
    try:
        return NotificationEvent(reason)
    except ValueError:
        pass
    try:
        return _ALIASES.get(Reason(reason))
    except ValueError:
        return None


def release_event(release: Release, status: ReleaseStatus, announced: Announce, event: NotificationEvent,
                  at: datetime) -> ReleaseEvent:
    """What a notification says about one announcement, from the status it describes."""
    meta = release.metadata
    # The Event that ends a rollback names the trigger that started it (`history[].trigger`):
    # PagerDuty's severity follows that one, not whichever happens to be failing now.
    trigger = next((t for t in status.analysis if t.name == announced.trigger), None) if announced.trigger else None
    reason = None
    last = status.history[-1] if status.history else None
    if event in _WITH_HISTORY_REASON and last is not None and last.outcome in (
            HistoryOutcome.ROLLED_BACK, HistoryOutcome.FAILED):
        reason = last.reason
    elif event in (NotificationEvent.GATED, NotificationEvent.PAUSED):
        reason = announced.message
    return ReleaseEvent(
        release=meta.name or "", namespace=meta.namespace or "", event=event,
        version=status.version or release.spec.version, at=at, revision=status.revision,
        stable_version=status.stable_version, stable_revision=status.stable_revision, phase=status.phase,
        message=announced.message, strategy=release.spec.strategy.type, step=status.current_step,
        total_steps=status.total_steps, weight=status.weight,
        trigger_name=trigger.name if trigger else None, trigger_severity=trigger.severity if trigger else None,
        trigger_value=trigger.last_value if trigger else None, trigger_query=trigger.query if trigger else None,
        reason=reason, release_notes=release.spec.release_notes if event in _WITH_NOTES else None)


@dataclass(frozen=True)
class Delivery:
    """One announcement of one Release, for one of its notifications."""

    kube: Kube
    release: Release
    event: ReleaseEvent
    notification: Notification


class Publisher:
    """Posts `Delivery`s to the egress layer; those of one notification of one Release stay in order."""

    def __init__(self, egress: Egress, *, notifier: WebhookNotifier | None = None, timeout: float = 10.0) -> None:
        self._egress = egress
        self._notifier = notifier or WebhookNotifier(egress, kind=Kind.NOTIFICATION)
        self._timeout = timeout

    def submit(self, delivery: Delivery) -> bool:
        """Post it; False (and a log line) only when it could not be queued. Never blocks, never raises."""
        meta = delivery.release.metadata
        namespace = meta.namespace or ""
        try:
            self._egress.post(namespace, (namespace, meta.name or "", delivery.notification.name),
                              lambda: self._one(delivery))
        except Exception as exc:  # the layer's loop is gone (the operator is stopping)
            log.warning("notification not sent", namespace=namespace, release=meta.name, about=delivery.event.event,
                        notification=delivery.notification.name, error=str(exc))
            return False
        return True

    def drain(self, timeout: float) -> bool:
        """Wait until every posted delivery is done (tests, shutdown); False on timeout."""
        try:
            return self._egress.drain(timeout)
        except Exception:  # a loop that no longer answers: nothing more to wait for
            log.debug("notifications not drained", exc_info=True)
            return False

    async def _one(self, delivery: Delivery) -> None:
        """One delivery, on the egress loop: the API calls go to a thread, the POST stays here."""
        release, event, notification = delivery.release, delivery.event, delivery.notification
        where = f"notification {notification.name} ({event.event})"
        webhook = notification.webhook
        if webhook.format == WebhookFormat.PAGERDUTY and event.event not in PAGERDUTY_EVENTS:
            return  # PagerDuty hears only the events that open and close an incident
        try:
            url = await asyncio.to_thread(webhook_url, delivery.kube, release, notification)
            routing_key = (await asyncio.to_thread(routing_key_of, delivery.kube, release, notification)
                           if webhook.format == WebhookFormat.PAGERDUTY else None)
        except WebhookUrlUnreadable as exc:
            await asyncio.to_thread(_failed, delivery, f"{where} not sent: {exc}")
            return
        if webhook.template is not None:
            try:
                body, content_type = await _templated(webhook.template, event)
            except TemplateError as exc:
                field = f"spec.notifications[{_index(release, notification)}].webhook.template"
                await asyncio.to_thread(_failed, delivery, f"{where} not sent: {field}: {exc}")
                return
            result = await self._notifier.send_body(url, body, content_type, timeout=self._timeout)
        else:
            payload = render(event, webhook.format, routing_key=routing_key)
            if payload is None:
                return
            result = await self._notifier.send(url, payload, timeout=self._timeout)
        if not result.ok:
            await asyncio.to_thread(_failed, delivery, f"{where} not delivered to {redact_url(url)} after "
                                                       f"{result.attempts} attempt(s): {result.error}")


RENDER_TIMEOUT = 10.0
"""Seconds a template may take; its work budget (`core.template`) ends it long before."""


async def _templated(template: str, event: ReleaseEvent) -> tuple[bytes, str]:
    """The body a notification's template makes, and its content type: JSON when the output
    parses as JSON, text otherwise. In a thread: a template near its budget takes milliseconds
    of CPU, which the egress loop must not wait for."""
    compiled = compile_template(template)
    try:
        text = await asyncio.wait_for(asyncio.to_thread(render_template, compiled, template_variables(event)),
                                      RENDER_TIMEOUT)
    except TimeoutError:
        raise TemplateError(f"not rendered within {RENDER_TIMEOUT:g}s") from None
    try:
        json.loads(text)
    except ValueError:
        return text.encode(), TEXT_CONTENT_TYPE
    return text.encode(), JSON_CONTENT_TYPE


class WebhookUrlUnreadable(Exception):
    """The Secret holding a webhook URL (or a routing key) is missing, forbidden or lacks the key."""


def webhook_url(kube: Kube, release: Release, notification: Notification) -> str:
    """The URL of a notification's webhook, from the spec or the Secret it names."""
    webhook = notification.webhook
    if webhook.url is not None:
        return webhook.url
    if webhook.url_from is None:
        if webhook.format == WebhookFormat.PAGERDUTY:  # the API server's CEL rule: only it may name neither
            return PAGERDUTY_EVENTS_URL
        raise WebhookUrlUnreadable(f"spec.notifications[{_index(release, notification)}].webhook names no url")
    return _secret_value(kube, release, notification, "urlFrom", webhook.url_from)


def routing_key_of(kube: Kube, release: Release, notification: Notification) -> str:
    """The PagerDuty routing key of a notification, from the Secret it names."""
    ref = notification.webhook.routing_key_from
    if ref is None:  # the API server's CEL rule requires it with pagerduty
        raise WebhookUrlUnreadable(f"spec.notifications[{_index(release, notification)}].webhook.routingKeyFrom "
                                   "is required with format pagerduty")
    return _secret_value(kube, release, notification, "routingKeyFrom", ref)


def _secret_value(kube: Kube, release: Release, notification: Notification, field: str, source: ValueFrom) -> str:
    ref = source.secret_key_ref
    namespace = release.metadata.namespace or ""
    where = f"spec.notifications[{_index(release, notification)}].webhook.{field}: Secret {namespace}/{ref.name}"
    try:
        return secrets.value(kube, namespace, ref.name, ref.key, where)
    except secrets.SecretUnreadable as exc:
        raise WebhookUrlUnreadable(str(exc)) from exc


def _index(release: Release, notification: Notification) -> int:
    return next((i for i, n in enumerate(release.spec.notifications) if n.name == notification.name), 0)


def _failed(delivery: Delivery, message: str) -> None:
    log.warning("notification failed", namespace=delivery.release.metadata.namespace,
                release=delivery.release.metadata.name, message=message)
    try:
        events.emit(delivery.kube, delivery.release, NOTIFICATION_FAILED, message, warning=True)
    except Exception as exc:  # nothing more to tell anyone; the log line above says it
        log.warning("cannot record the failed notification", reason=NOTIFICATION_FAILED, error=str(exc))


def publish(kube: Kube, release: Release, status: ReleaseStatus, announcements: Sequence[Announce], *,
            now: datetime | None = None, publisher: Publisher) -> None:
    """Post each announcement to `publisher` for the notifications that want it. Never raises,
    never blocks."""
    if not release.spec.notifications or not announcements:
        return
    try:
        at = now or datetime.now(UTC)
        for announced in announcements:
            event = notification_event(announced.reason)
            if event is None:
                continue
            chosen = [n for n in release.spec.notifications if wants(n, event)]
            if chosen:
                said = release_event(release, status, announced, event, at)
                for notification in chosen:
                    publisher.submit(Delivery(kube, release, said, notification))
    except Exception:  # notifications are for people; a rollout must never wait on them
        log.exception("notifications not queued", namespace=release.metadata.namespace, release=release.metadata.name)
