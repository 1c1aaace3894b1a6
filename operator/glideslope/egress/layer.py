"""`Egress`: the operator's one asynchronous layer for requests to endpoints tenants control.

Prometheus queries, webhook gates and notifications all run here, on one event loop in a
thread of its own, never on a stepper:

- A stepper `ask`s: the first ask starts the request and returns `PENDING`; the answer is
  kept for the Release, which is woken (`wake`) to read it on a later tick. A Job gate works
  the same way with its Job. So a black-hole endpoint holds no stepper, only its own request.
- Notifications are `post`ed: fire and forget, in order per receiver.
- Each namespace has its own concurrency limit per kind of request (`per_namespace`), and a
  bound on what may wait for it (`MAX_WAITING`): one namespace's slow endpoints delay only
  its own Releases, and a team's broken Slack URL not even its own rollbacks.
- Every request has a total deadline and a cap on response bytes (`egress.http`).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, TypeVar

import aiohttp

from glideslope.egress import http
from glideslope.egress.http import EgressRefused, Reply
from glideslope.egress.policy import EgressPolicy
from glideslope.logs import get_logger

log = get_logger(__name__)

T = TypeVar("T")
Key = tuple[str, str]
"""(namespace, name) of a Release."""

PER_NAMESPACE = 4
"""Requests of one kind one namespace may have in flight at once."""
MAX_WAITING = 256
"""Requests of one kind of one namespace that may wait for a slot; more are refused at once."""
ANSWERS_KEPT = 64
"""Answers kept per Release for its next ticks; older ones go (a Release asks for few at a time)."""
ANSWER_TTL = 600.0
"""Seconds an answer nobody asked for again is kept (its query or gate changed meanwhile)."""
QUERY_THREADS = 32
"""Threads for the Prometheus client, which blocks, and the few Kubernetes reads of webhook
gates and notifications; each waits at most a request's deadline."""


class Kind(StrEnum):
    PROMETHEUS = "prometheus"
    WEBHOOK = "webhook"
    NOTIFICATION = "notification"
    WEB = "web"
    """A web metric provider's GET (`prom.web`)."""


class Pending:
    """The answer is not there yet: the Release is woken when it is."""

    def __repr__(self) -> str:
        return "PENDING"


PENDING = Pending()


class EgressObserver(Protocol):
    """What the layer reports to the operator's metrics."""

    def in_flight(self, namespace: str, kind: str, delta: int) -> None: ...

    def waiting(self, namespace: str, kind: str, delta: int) -> None: ...

    def refused(self, kind: str, refusal: str) -> None: ...

    def received(self, kind: str, size: int) -> None: ...


@dataclass
class _Answer:
    value: Any
    at: float


class Egress:
    def __init__(self, policy: EgressPolicy, *, per_namespace: int = PER_NAMESPACE,
                 wake: Callable[[Key], None] | None = None, observer: EgressObserver | None = None) -> None:
        self.policy = policy
        self.per_namespace = per_namespace
        self._wake = wake
        self._observer = observer
        self._lock = threading.Lock()
        self._in_flight: dict[Key, set[Hashable]] = {}
        self._answers: dict[Key, dict[Hashable, _Answer]] = {}
        # Owned by the loop's thread only:
        self._slots: dict[tuple[str, Kind], asyncio.Semaphore] = {}
        self._users: dict[tuple[str, Kind], int] = {}
        self._order: dict[Hashable, asyncio.Lock] = {}
        self._order_users: dict[Hashable, int] = {}
        self._sessions: dict[tuple[bool, ssl.SSLContext | None], aiohttp.ClientSession] = {}
        self._posted: set[asyncio.Future[None]] = set()
        self._posts: dict[str, int] = {}
        """Posts of each namespace not done yet, those waiting for their receiver's turn included."""
        self._loop = asyncio.new_event_loop()
        self._loop.set_default_executor(ThreadPoolExecutor(max_workers=QUERY_THREADS, thread_name_prefix="query"))
        self._thread = threading.Thread(target=self._loop.run_forever, name="glideslope-egress", daemon=True)
        self._thread.start()

    def set_wake(self, wake: Callable[[Key], None]) -> None:
        """Who steps a Release whose answer arrived (the scheduler, built after this layer)."""
        self._wake = wake

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    # -- for steppers: ask now, read the answer on a later tick -------------------------------

    def ask(self, key: Key, tag: Hashable, kind: Kind, make: Callable[[], Awaitable[T]], *,
            fallback: Callable[[str], T]) -> T | Pending:
        """The answer to request `tag` of Release `key` if it has come (it is handed out once),
        else PENDING, starting the request if it is not in flight. `make` builds the request's
        coroutine, which should not raise; if it does, or its namespace has too much waiting,
        the answer is `fallback(reason)`."""
        now = time.monotonic()
        with self._lock:
            answers = self._answers.get(key)
            if answers is not None:
                answer = answers.pop(tag, None)
                for old in [t for t, a in answers.items() if now - a.at > ANSWER_TTL]:
                    del answers[old]
                if not answers:
                    del self._answers[key]
                if answer is not None:
                    return answer.value  # type: ignore[no-any-return]
            flying = self._in_flight.setdefault(key, set())
            if tag in flying:
                return PENDING
            flying.add(tag)
        asyncio.run_coroutine_threadsafe(self._job(key, tag, kind, make, fallback), self._loop)
        return PENDING

    def refusal(self, url: str) -> str | None:
        """Why a webhook or notification to `url` is refused before any request (`http.refusal`)."""
        return http.refusal(self.policy, url)

    def in_flight(self, key: Key) -> frozenset[Hashable]:
        """The tags of the Release's requests in flight (their answers will wake it)."""
        with self._lock:
            return frozenset(self._in_flight.get(key, ()))

    def forget(self, key: Key) -> None:
        """A deleted Release's answers go; requests in flight end by their deadline, unread."""
        with self._lock:
            self._answers.pop(key, None)
            self._in_flight.pop(key, None)

    async def _job(self, key: Key, tag: Hashable, kind: Kind, make: Callable[[], Awaitable[T]],
                   fallback: Callable[[str], T]) -> None:
        try:
            value = await self._limited(key[0], kind, make)
        except _Full as exc:
            value = fallback(str(exc))
        except Exception as exc:  # the request's own code failed: the Release still gets an answer
            log.exception("request failed", namespace=key[0], release=key[1], kind=kind.value)
            value = fallback(f"{kind.value} request failed ({type(exc).__name__})")
        with self._lock:
            flying = self._in_flight.get(key)
            if flying is None or tag not in flying:
                return  # forgotten meanwhile
            flying.discard(tag)
            if not flying:
                del self._in_flight[key]
            answers = self._answers.setdefault(key, {})
            answers[tag] = _Answer(value, time.monotonic())
            while len(answers) > ANSWERS_KEPT:
                del answers[next(iter(answers))]
        if self._wake is not None:
            self._wake(key)

    async def _limited(self, namespace: str, kind: Kind, make: Callable[[], Awaitable[T]]) -> T:
        """Run `make()` in one of the namespace's slots for `kind`."""
        slot = (namespace, kind)
        if self._users.get(slot, 0) >= self.per_namespace + MAX_WAITING:
            raise _Full(f"too many {kind.value} requests waiting in namespace {namespace}")
        semaphore = self._slots.get(slot)
        if semaphore is None:
            semaphore = self._slots[slot] = asyncio.Semaphore(self.per_namespace)
        self._users[slot] = self._users.get(slot, 0) + 1
        self._report("waiting", namespace, kind, 1)
        try:
            async with semaphore:
                self._report("waiting", namespace, kind, -1)
                self._report("in_flight", namespace, kind, 1)
                try:
                    return await make()
                finally:
                    self._report("in_flight", namespace, kind, -1)
        finally:
            self._users[slot] -= 1
            if self._users[slot] == 0:
                # Nobody waits or runs: an idle namespace costs nothing.
                del self._users[slot]
                del self._slots[slot]

    def _report(self, what: str, namespace: str, kind: Kind, delta: int) -> None:
        if self._observer is not None:
            getattr(self._observer, what)(namespace, kind.value, delta)

    # -- for notifications: fire and forget, in order per receiver -----------------------------

    def post(self, namespace: str, order: Hashable, make: Callable[[], Awaitable[None]]) -> None:
        """Run `make()` in a notification slot of `namespace`, after every earlier post of the
        same `order` key. Never blocks; never raises."""
        asyncio.run_coroutine_threadsafe(self._posting(namespace, order, make), self._loop)

    async def _posting(self, namespace: str, order: Hashable, make: Callable[[], Awaitable[None]]) -> None:
        if self._posts.get(namespace, 0) >= self.per_namespace + MAX_WAITING:
            log.warning("notification not sent: too many notifications waiting in its namespace", namespace=namespace)
            return
        self._posts[namespace] = self._posts.get(namespace, 0) + 1
        task = asyncio.current_task()
        if task is not None:
            self._posted.add(task)
        lock = self._order.get(order)
        if lock is None:
            lock = self._order[order] = asyncio.Lock()
        self._order_users[order] = self._order_users.get(order, 0) + 1
        try:
            async with lock:
                await self._limited(namespace, Kind.NOTIFICATION, make)
        except _Full as exc:
            log.warning("notification not sent", error=str(exc))
        except Exception:
            log.exception("notification delivery failed")
        finally:
            self._posts[namespace] -= 1
            if self._posts[namespace] == 0:
                del self._posts[namespace]
            self._order_users[order] -= 1
            if self._order_users[order] == 0:
                del self._order_users[order]
                del self._order[order]
            if task is not None:
                self._posted.discard(task)

    def drain(self, timeout: float) -> bool:
        """Wait until every posted notification is done (tests, shutdown); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            idle = self._idle()
            try:
                if self.call(idle, timeout=max(deadline - time.monotonic(), 0.1)):
                    return True
            except TimeoutError:
                idle.close()
                return False
            time.sleep(0.05)
        return False

    async def _idle(self) -> bool:
        return not self._posted and not self._posts

    # -- HTTP ----------------------------------------------------------------------------------

    async def fetch(self, kind: Kind, method: str, url: str, *, deadline: float, max_bytes: int,
                    headers: Mapping[str, str] | None = None, body: bytes | None = None,
                    params: Mapping[str, Any] | None = None, tls: ssl.SSLContext | None = None) -> Reply:
        """One bounded request on this layer's loop (`egress.http.request`); webhooks and
        notifications are checked against the egress policy, Prometheus by its address before."""
        checked = kind != Kind.PROMETHEUS
        session = self._sessions.get((checked, tls))
        if session is None or session.closed:
            session = self._sessions[(checked, tls)] = http.session_for(self.policy if checked else None, tls=tls)
        try:
            reply = await http.request(session, method, url, policy=self.policy if checked else None,
                                       deadline=deadline, max_bytes=max_bytes, headers=headers, body=body,
                                       params=params)
        except EgressRefused as exc:
            if self._observer is not None:
                self._observer.refused(kind.value, exc.refusal.value)
            raise
        if self._observer is not None:
            self._observer.received(kind.value, len(reply.body))
        return reply

    def forget_tls(self, tls: ssl.SSLContext) -> None:
        """Close the sessions of a TLS context nobody uses any more (an evicted provider's)."""
        async def close() -> None:
            for checked in (False, True):
                session = self._sessions.pop((checked, tls), None)
                if session is not None:
                    await session.close()
        asyncio.run_coroutine_threadsafe(close(), self._loop)

    # -- blocking helpers: never from a stepper's tick, never from this loop -------------------

    def call(self, coroutine: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
        """Run `coroutine` on this layer's loop and wait for it (start-up, tests, the Prometheus
        client's thread)."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            coroutine.close()
            raise RuntimeError("Egress.call from its own loop would deadlock")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def close(self) -> None:
        async def close_all() -> None:
            for session in list(self._sessions.values()):
                await session.close()
            self._sessions.clear()
        if self._loop.is_running():
            try:
                self.call(close_all(), timeout=5)
            except Exception:  # closing is best effort at exit
                log.debug("egress sessions not closed", exc_info=True)
            self._loop.call_soon_threadsafe(self._loop.stop)


class _Full(Exception):
    """Too many requests of one kind wait in one namespace."""
