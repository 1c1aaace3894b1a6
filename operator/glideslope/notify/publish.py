"""`publish`: a tick's announcements to the Release's `spec.notifications`, off the reconcile path.

The engine calls `publish` after the Events are recorded; it only builds the messages and
queues them, so a slow or failing receiver never holds a rollout. Deliveries run in a few
worker threads, each with its own bounded queue; a Release's notification always goes to the
same worker, so each receiver hears a Release's events in order. A worker reads the webhook URL (from the Secret in
the Release's namespace when `urlFrom` is used), sends with `WebhookNotifier`'s retries and
backoff, and records a Warning Event `NotificationFailed` when a receiver keeps failing.
A full queue drops the newest message (with a log line): memory stays bounded.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import queue
import re
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from glideslope.api import (
    AnalysisState,
    HistoryOutcome,
    Notification,
    NotificationEvent,
    Release,
    ReleaseStatus,
)
from glideslope.core.model import RecordEvent
from glideslope.kube import events, secrets
from glideslope.kube.client import Kube
from glideslope.notify.message import ReleaseEvent, render, wants
from glideslope.notify.webhook import WebhookNotifier, redact_url

log = logging.getLogger("glideslope.notify")

NOTIFICATION_FAILED = "NotificationFailed"
EXIT_GRACE = 5.0
"""Seconds a stopping operator waits for queued notifications (the last Succeeded, say)."""

# Event reasons that are notification events under another name: a person's abort or undo
# starts a rollback, and a retry starts the rollout again.
_ALIASES = {"Aborted": NotificationEvent.ROLLING_BACK, "Undo": NotificationEvent.ROLLING_BACK,
            "Retried": NotificationEvent.STARTED}
_WITH_HISTORY_REASON = frozenset({NotificationEvent.ROLLING_BACK, NotificationEvent.ROLLED_BACK,
                                  NotificationEvent.FAILED})
_TRIGGER = re.compile(r"^trigger (\S+) \(")
# The notes go with the events that open and close a rollout, not with every step.
_WITH_NOTES = frozenset({NotificationEvent.STARTED, NotificationEvent.SUCCEEDED})


def notification_event(reason: str) -> NotificationEvent | None:
    """The notification event an Event reason stands for; None: not one people subscribe to."""
    try:
        return NotificationEvent(reason)
    except ValueError:
        return _ALIASES.get(reason)


def release_event(release: Release, status: ReleaseStatus, announced: RecordEvent, event: NotificationEvent,
                  at: datetime) -> ReleaseEvent:
    """What a notification says about one announcement, from the status it describes."""
    meta = release.metadata
    trigger = None
    named = _TRIGGER.match(announced.message)
    if named is not None:
        trigger = next((t for t in status.analysis if t.name == named.group(1)), None)
    elif event in (NotificationEvent.ROLLING_BACK, NotificationEvent.PAUSED):
        # A trigger's rollback or pause names the trigger in its message.
        trigger = next((t for t in status.analysis if t.state == AnalysisState.FAILING
                        and t.name in announced.message), None)
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
    """Worker threads delivering `Delivery`s; those of one notification of one Release stay in order."""

    def __init__(self, *, workers: int = 2, queue_size: int = 256, notifier: WebhookNotifier | None = None,
                 timeout: float = 10.0) -> None:
        self._queues: list[queue.Queue[Delivery | None]] = [queue.Queue(queue_size) for _ in range(workers)]
        self._notifier = notifier or WebhookNotifier()
        self._timeout = timeout
        self._threads: list[threading.Thread] = []
        self._start = threading.Lock()

    def submit(self, delivery: Delivery) -> bool:
        """Queue it; False (and a log line) when its worker's queue is full. Never blocks."""
        self._ensure_started()
        meta = delivery.release.metadata
        # A stable hash (not hash(), salted per process) so a receiver of a Release keeps its worker.
        key = f"{meta.namespace}/{meta.name}/{delivery.notification.name}"
        index = zlib.crc32(key.encode()) % len(self._queues)
        try:
            self._queues[index].put_nowait(delivery)
        except queue.Full:
            log.warning("%s/%s: notification queue full, %s not sent to %s", meta.namespace, meta.name,
                        delivery.event.event, delivery.notification.name)
            return False
        return True

    def drain(self, timeout: float) -> bool:
        """Wait until every queued delivery is done (tests, shutdown); False on timeout."""
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        try:
            while not deadline.is_set():
                if all(q.unfinished_tasks == 0 for q in self._queues):
                    return True
                deadline.wait(0.05)
            return False
        finally:
            timer.cancel()

    def _ensure_started(self) -> None:
        with self._start:
            if self._threads:
                return
            for i, q in enumerate(self._queues):
                thread = threading.Thread(target=self._work, args=(q,), name=f"notify-{i}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _work(self, q: queue.Queue[Delivery | None]) -> None:
        # One loop per worker for its whole life: WebhookNotifier opens a session per delivery.
        loop = asyncio.new_event_loop()
        try:
            while True:
                delivery = q.get()
                try:
                    if delivery is None:
                        return
                    loop.run_until_complete(self._one(delivery))
                except Exception:  # a worker must outlive any one delivery
                    log.exception("notification delivery failed")
                finally:
                    q.task_done()
        finally:
            loop.close()

    async def _one(self, delivery: Delivery) -> None:
        release, event, notification = delivery.release, delivery.event, delivery.notification
        where = f"notification {notification.name} ({event.event})"
        try:
            url = webhook_url(delivery.kube, release, notification)
        except WebhookUrlUnreadable as exc:
            _failed(delivery, f"{where} not sent: {exc}")
            return
        result = await self._notifier.send(url, render(event, notification.webhook.format), timeout=self._timeout)
        if not result.ok:
            _failed(delivery, f"{where} not delivered to {redact_url(url)} after {result.attempts} "
                              f"attempt(s): {result.error}")


class WebhookUrlUnreadable(Exception):
    """The Secret holding a webhook URL is missing, forbidden or lacks the key."""


def webhook_url(kube: Kube, release: Release, notification: Notification) -> str:
    """The URL of a notification's webhook, from the spec or the Secret it names."""
    webhook = notification.webhook
    if webhook.url is not None:
        return webhook.url
    assert webhook.url_from is not None  # the API server's CEL rule: exactly one of the two
    ref = webhook.url_from.secret_key_ref
    namespace = release.metadata.namespace or ""
    try:
        return secrets.value(kube, namespace, ref.name, ref.key, f"urlFrom: Secret {namespace}/{ref.name}")
    except secrets.SecretUnreadable as exc:
        raise WebhookUrlUnreadable(str(exc)) from exc


def _failed(delivery: Delivery, message: str) -> None:
    log.warning("%s/%s: %s", delivery.release.metadata.namespace, delivery.release.metadata.name, message)
    try:
        events.record(delivery.kube, delivery.release, NOTIFICATION_FAILED, message, warning=True)
    except Exception as exc:  # nothing more to tell anyone; the log line above says it
        log.warning("cannot record %s: %s", NOTIFICATION_FAILED, exc)


_default: Publisher | None = None
_default_lock = threading.Lock()


def default_publisher() -> Publisher:
    """The operator's one publisher, started on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Publisher()
            # Worker threads are daemons, so a stuck receiver cannot hold the exit past this.
            atexit.register(_default.drain, EXIT_GRACE)
        return _default


def publish(kube: Kube, release: Release, status: ReleaseStatus, announcements: Sequence[RecordEvent], *,
            now: datetime | None = None, publisher: Publisher | None = None) -> None:
    """Queue each announcement for the notifications that want it. Never raises, never blocks."""
    if not release.spec.notifications or not announcements:
        return
    try:
        at = now or datetime.now(UTC)
        target = publisher or default_publisher()
        for announced in announcements:
            event = notification_event(announced.reason)
            if event is None:
                continue
            chosen = [n for n in release.spec.notifications if wants(n, event)]
            if chosen:
                said = release_event(release, status, announced, event, at)
                for notification in chosen:
                    target.submit(Delivery(kube, release, said, notification))
    except Exception:  # notifications are for people; a rollout must never wait on them
        log.exception("%s/%s: notifications not queued", release.metadata.namespace, release.metadata.name)
