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


def test_each_tick_reports_its_wait_and_its_length() -> None:
    import threading
    import time

    seen: list[tuple[float, float]] = []
    done = threading.Event()

    def step(namespace: str, name: str) -> float | None:
        time.sleep(0.05)
        return None

    def observe(waited: float, took: float) -> None:
        seen.append((waited, took))
        done.set()

    scheduler = Scheduler(step, workers=1, observe=observe)
    scheduler.wake(("shop", "web"))
    scheduler.start()
    try:
        assert done.wait(5)
    finally:
        scheduler.stop()
    (waited, took), = seen
    assert 0 <= waited < 1 and 0.05 <= took < 1


def test_stuck_steppers_are_reported_and_a_busy_queue_is_not() -> None:
    import threading
    import time

    release = threading.Event()

    def stuck(namespace: str, name: str) -> float | None:
        release.wait(10)
        return None

    scheduler = Scheduler(stuck, workers=1)
    scheduler.start()
    try:
        assert scheduler.stalled(0.2) is None
        scheduler.wake(("shop", "web"))
        scheduler.wake(("shop", "api"))
        time.sleep(0.4)
        reason = scheduler.stalled(0.2)
        assert reason is not None and "a tick has run" in reason
    finally:
        release.set()
        scheduler.stop()
    assert scheduler.stalled(0.2) is None, "a stopped scheduler is not stuck"


def test_stop_waits_for_the_running_tick_and_takes_no_new_one() -> None:
    """Before the lease is handed over (or the process exits after losing it) no tick of this
    replica may still be writing."""
    import threading
    import time

    running, finish = threading.Event(), threading.Event()
    ticks: list[tuple[str, str]] = []

    def step(namespace: str, name: str) -> float | None:
        ticks.append((namespace, name))
        running.set()
        finish.wait(5)
        return 0.0  # due again at once: a stopped scheduler must not take it

    scheduler = Scheduler(step, workers=2)
    scheduler.wake(("shop", "web"))
    scheduler.start()
    assert running.wait(5)
    threading.Timer(0.3, finish.set).start()
    started = time.monotonic()
    assert scheduler.stop(wait=5)
    assert 0.2 <= time.monotonic() - started < 4
    scheduler.wake(("shop", "api"))
    time.sleep(0.2)
    assert ticks == [("shop", "web")]


def test_stop_gives_up_on_a_stuck_tick_after_its_wait() -> None:
    import threading
    import time

    running, finish = threading.Event(), threading.Event()

    def stuck(namespace: str, name: str) -> float | None:
        running.set()
        finish.wait(10)
        return None

    scheduler = Scheduler(stuck, workers=1)
    scheduler.wake(("shop", "web"))
    scheduler.start()
    try:
        assert running.wait(5)
        started = time.monotonic()
        assert not scheduler.stop(wait=0.3)
        assert 0.25 <= time.monotonic() - started < 2
    finally:
        finish.set()


def test_a_trigger_is_ticked_when_the_core_will_find_it_due() -> None:
    """In the validation window, the first measurement is due its initial delay after the
    window starts, though the last one (taken in the rollout before) is long past: the next
    tick comes then, not at the next poll."""
    from datetime import UTC, datetime, timedelta

    from glideslope.api import Phase, Release, ReleaseStatus, TriggerStatus
    from glideslope.core.revision import revision_of
    from glideslope.scheduler import LATE, next_tick
    from tests.unit.fakes import CANARY, make_spec

    spec = make_spec(CANARY).to_dict()
    spec["analysis"] = {"interval": "1s", "initialDelay": "4s",
                        "triggers": [{"name": "errors", "severity": "critical", "query": "vector(0)",
                                      "failureCondition": "result > 0.1"}]}
    spec["validation"] = {"windowSeconds": 60}
    t0 = datetime(2026, 11, 28, 12, tzinfo=UTC)
    release = Release.model_validate({"metadata": {"name": "web", "namespace": "shop"}, "spec": spec})
    status = ReleaseStatus(phase=Phase.VALIDATING, revision=revision_of(release.spec.template),
                           stable_revision="0ld", step_started_at=t0, started_at=t0 - timedelta(minutes=1),
                           analysis=[TriggerStatus(name="errors", last_measured_time=t0 - timedelta(seconds=30))])
    release = release.model_copy(update={"status": status})
    # The handover (2 s) is over; the first measurement is due 4 s into the window.
    assert next_tick(release, t0 + timedelta(seconds=2.5), 10.0) == pytest.approx(1.5 + LATE)


def test_the_queue_is_served_under_the_names_controller_dashboards_graph() -> None:
    import threading

    from prometheus_client import CollectorRegistry, generate_latest

    from glideslope.metrics import OperatorMetrics

    calls: list[str] = []
    done = threading.Event()

    def step(namespace: str, name: str) -> float | None:
        calls.append(name)
        if len(calls) == 1:
            raise RuntimeError("the API server went away")
        done.set()
        return None

    metrics = OperatorMetrics(CollectorRegistry())
    scheduler = Scheduler(step, workers=1, retry=0.01, observe=metrics.tick)
    metrics.watch_queue(scheduler)
    metrics.api_call("PATCH", "200", "127.0.0.1:6443")
    scheduler.wake(("shop", "web"))
    scheduler.start()
    try:
        assert done.wait(5)
    finally:
        scheduler.stop(wait=2)
    text = generate_latest(metrics.registry).decode()
    for line in ('workqueue_depth{name="releases"} 0.0', 'workqueue_retries_total{name="releases"} 1.0',
                 'controller_runtime_reconcile_total{controller="release",result="error"} 1.0',
                 'controller_runtime_reconcile_total{controller="release",result="success"} 1.0',
                 'controller_runtime_reconcile_errors_total{controller="release"} 1.0',
                 'rest_client_requests_total{code="200",host="127.0.0.1:6443",method="PATCH"} 1.0',
                 'workqueue_work_duration_seconds_count{name="releases"} 2.0'):
        assert line in text, line
    assert 'workqueue_adds_total{name="releases"} 2.0' in text  # the wake, and the retry
