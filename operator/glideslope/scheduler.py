"""When each Release is stepped: on a change, at its next deadline, or after a resync period.

kopf's per-object timers step every Release every `interval` seconds: at 1,000 Releases that is
500 ticks a second, each a GET and two LISTs, whether anything is due or not, and a 5 s pause
still ends up to one interval late. Here a Release is stepped

- at once when it changes (spec, a command annotation) or its workloads do (a pod became
  Ready, a Deployment was scaled: the watch-fed cache of `kube.workloads` says so);
- at its next deadline, read from its status and plan: the end of a timed step, the end of
  the hand-over after a step starts, the next measurement of a trigger, the end of the
  validation window;
- otherwise after a resync period: short while a rollout is under way (gates are polled then),
  long once it has settled;

by a fixed pool of worker threads, never two ticks of one Release at a time.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from datetime import datetime

from glideslope.api import FINAL_PHASES, Phase, Release, ReleaseStatus
from glideslope.core.decide import wake_at
from glideslope.core.revision import revision_of
from glideslope.logs import get_logger

log = get_logger(__name__)

Key = tuple[str, str]
"""(namespace, name) of a Release."""

SETTLED_RESYNC = 60.0
"""Seconds between ticks of a Release with nothing under way: it re-asserts what it owns."""
ROLLING_RESYNC = 5.0
"""At most this long between ticks of a rollout under way when nothing wakes it (gates, and
whatever has no deadline of its own, are polled at this pace or `interval`, whichever is longer)."""
STEPPERS = 16
"""Threads stepping Releases: a tick mostly waits on the API server and Prometheus (at 1,000
Releases 8 threads left the operator's CPU two-thirds idle while ticks queued)."""
LATE = 0.02
"""Ticks are set this much after a deadline, so that the core sees the deadline passed."""


def next_tick(release: Release, now: datetime, interval: float, previous: ReleaseStatus | None = None) -> float:
    """Seconds until `release` must be stepped again, if nothing wakes it first; `previous` is
    its status before this tick. When the core next has something to do is its to say
    (`core.decide.wake_at`); how often what has no deadline is polled is this module's.
    (A request in flight on the egress layer wakes the Release when it answers.)"""
    status = release.status
    if previous is not None and (previous.revision, previous.phase, previous.current_step) != (
            status.revision, status.phase, status.current_step):
        # The core moves one step per tick, and a new step often has nothing to wait for.
        return LATE
    if status.phase in (None, Phase.PENDING, Phase.GATED):
        # Gates are checked on every tick, and the first rollout waits on pods: poll.
        return interval
    if status.phase in FINAL_PHASES and status.revision == revision_of(release.spec.template):
        resync = SETTLED_RESYNC
    else:
        # Gates (a Job, a webhook, a metric, another Release) are only seen by polling them.
        polled = status.gate_stage is not None or bool(release.spec.gates)
        resync = interval if polled else max(interval, ROLLING_RESYNC)
    deadline = wake_at(release.spec, status, now)
    if deadline is None:
        return resync
    return max(min((deadline - now).total_seconds() + LATE, resync), LATE)


class Scheduler:
    """Runs `step(namespace, name)` per Release on `workers` threads; `step` returns the seconds
    until the Release's next tick, or None when the Release is gone."""

    def __init__(self, step: Callable[[str, str], float | None], *, workers: int = STEPPERS, retry: float = 2.0,
                 observe: Callable[[float, float], None] | None = None) -> None:
        self._step = step
        self._retry = retry
        self._observe = observe
        """Called after each tick with how long it waited for a worker once due, and how long it took."""
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Key]] = []
        self._due: dict[Key, float] = {}
        self._running: set[Key] = set()
        self._after: dict[Key, float] = {}
        """Keys woken while running: when they are due once the running tick ends."""
        self._held: set[Key] = set()
        """Releases being deleted: never stepped again."""
        self._order = itertools.count()
        self._started: dict[Key, float] = {}
        """When each running tick started (monotonic)."""
        self._finished = time.monotonic()
        """When the last tick ended (or the scheduler was made)."""
        self._stopped = False
        self._counts = {"adds": 0, "retries": 0, "ticks": 0, "errors": 0}
        """Since the start, as a controller's workqueue counts: Releases queued (not already
        due sooner), ticks that raised and were queued again, ticks run, ticks that raised."""
        self._threads = [threading.Thread(target=self._work, name=f"stepper-{i}", daemon=True)
                         for i in range(workers)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, wait: float = 0.0) -> bool:
        """Take no tick any more; then wait up to `wait` seconds for the running ones to end.
        True when none runs: before the lease is handed over, or the process exits after losing
        it, no tick of this replica may still be writing while another replica steps."""
        deadline = time.monotonic() + wait
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            while self._running and (left := deadline - time.monotonic()) > 0:
                self._cond.wait(left)
            if self._running and wait > 0:
                log.warning("stopped with ticks still running",
                            running=[f"{ns}/{name}" for ns, name in sorted(self._running)])
            return not self._running

    def wake(self, key: Key, delay: float = 0.0) -> None:
        """Step the Release within `delay` seconds (sooner if it is already due sooner); a held
        Release stays held: its pods and Deployments keep changing while it is deleted (the
        finalizer scales the serving revision up), and a tick then would undo that."""
        with self._cond:
            self._schedule(key, time.monotonic() + delay)

    def hold(self, key: Key, timeout: float = 30.0) -> None:
        """Never step the Release again (until `unhold`); returns once no tick of it runs."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._held.add(key)
            self._due.pop(key, None)
            self._after.pop(key, None)
            while key in self._running and time.monotonic() < deadline:
                self._cond.wait(0.1)

    def unhold(self, key: Key) -> None:
        """A Release of that name exists again (a new one, or the delete was never completed)."""
        with self._cond:
            self._held.discard(key)

    def forget(self, key: Key) -> None:
        with self._cond:
            self._held.discard(key)
            self._due.pop(key, None)
            self._after.pop(key, None)

    def stalled(self, limit: float) -> str | None:
        """Why the steppers look stuck, or None: a Release has been due for more than `limit`
        seconds while no tick ended for that long, or one tick has run that long."""
        now = time.monotonic()
        with self._cond:
            if self._stopped:
                return None
            longest = max((now - t for t in self._started.values()), default=0.0)
            if longest > limit:
                return f"a tick has run for {longest:.0f}s"
            overdue = max((now - at for at in self._due.values()), default=0.0)
            if overdue > limit and now - self._finished > limit:
                return f"a Release has waited {overdue:.0f}s for a stepper and no tick ended for {limit:.0f}s"
        return None

    def pending(self) -> int:
        with self._cond:
            return len(self._due) + len(self._running)

    def depth(self) -> int:
        """Releases due now and not yet taken by a stepper: a workqueue's depth."""
        now = time.monotonic()
        with self._cond:
            return sum(1 for at in self._due.values() if at <= now)

    def counts(self) -> dict[str, int]:
        with self._cond:
            return dict(self._counts)

    def _schedule(self, key: Key, at: float) -> None:
        if key in self._held:
            return
        if key in self._running:
            self._after[key] = min(at, self._after.get(key, at))
            return
        current = self._due.get(key)
        if current is not None and current <= at:
            return
        self._due[key] = at
        self._counts["adds"] += 1
        heapq.heappush(self._heap, (at, next(self._order), key))
        self._cond.notify()

    def _take(self) -> tuple[Key, float] | None:
        """The next Release due, and how long past due it is."""
        with self._cond:
            while not self._stopped:
                while self._heap:
                    at, _, key = self._heap[0]
                    if self._due.get(key) != at:
                        heapq.heappop(self._heap)  # superseded by an earlier wake, or held
                        continue
                    break
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                at, _, key = heapq.heappop(self._heap)
                del self._due[key]
                self._running.add(key)
                self._started[key] = time.monotonic()
                return key, max(time.monotonic() - at, 0.0)
            return None

    def _work(self) -> None:
        while (taken := self._take()) is not None:
            key, waited = taken
            started = time.monotonic()
            failed = False
            try:
                delay = self._step(*key)
            except Exception:
                log.exception("stepping failed; retrying", namespace=key[0], release=key[1], seconds=self._retry)
                delay, failed = self._retry, True
            if self._observe is not None:
                self._observe(waited, time.monotonic() - started)
            with self._cond:
                self._counts["ticks"] += 1
                if failed:
                    self._counts["errors"] += 1
                    self._counts["retries"] += 1
                self._running.discard(key)
                self._started.pop(key, None)
                self._finished = time.monotonic()
                after = self._after.pop(key, None)
                self._cond.notify_all()
                at = time.monotonic() + delay if delay is not None else None
                if after is not None:
                    at = after if at is None else min(at, after)
                if at is not None:
                    self._schedule(key, at)
