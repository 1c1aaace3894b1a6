"""The stepper's queue: what is due, and what is held while its Release is deleted."""

from __future__ import annotations

import pytest

from glideslope.scheduler import Scheduler

pytestmark = pytest.mark.unit


def _never(namespace: str, name: str) -> float | None:
    raise AssertionError("no worker runs in these tests")


def test_wake_schedules_a_release_once() -> None:
    scheduler = Scheduler(_never, workers=1)
    scheduler.wake(("shop", "web"), delay=5)
    scheduler.wake(("shop", "web"))
    assert scheduler.pending() == 1


def test_a_held_release_stays_held_when_its_workloads_change() -> None:
    """While a Release is deleted its finalizer scales the serving revision up: the pods'
    changes wake it, and a tick then would scale it back to the rollout's share."""
    scheduler = Scheduler(_never, workers=1)
    key = ("shop", "web")
    scheduler.wake(key, delay=5)
    scheduler.hold(key)
    assert scheduler.pending() == 0
    scheduler.wake(key)
    assert scheduler.pending() == 0
    scheduler.unhold(key)  # a new Release of that name
    scheduler.wake(key)
    assert scheduler.pending() == 1
