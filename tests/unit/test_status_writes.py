"""Which status changes a tick writes at once, and which wait (engine._worth_writing)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from glideslope import engine
from glideslope.api import AnalysisState, Phase, ReleaseStatus, TriggerStatus

pytestmark = pytest.mark.unit

T = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KEY = ("ns", "web")


def rolling(**changes: object) -> ReleaseStatus:
    trigger = TriggerStatus(name="errors", state=AnalysisState.PASSING, successes=3, last_value=0.0,
                            message="0 does not meet failureCondition", last_measured_time=T)
    base = ReleaseStatus(phase=Phase.PROGRESSING, current_step=2, replicas=4, ready_replicas=4, analysis=[trigger])
    return base.model_copy(update=changes)


@pytest.fixture(autouse=True)
def just_written() -> None:
    engine._status_written[KEY] = engine.time.monotonic()


def test_a_refreshed_measurement_or_pod_count_waits() -> None:
    old = rolling()
    measured = old.analysis[0].model_copy(update={"successes": 4, "last_value": 0.01, "last_measured_time": T,
                                                  "message": "0.01 does not meet failureCondition"})
    assert not engine._worth_writing(KEY, old, rolling(analysis=[measured], ready_replicas=3))
    engine._status_written[KEY] -= engine.REFRESH_EVERY
    assert engine._worth_writing(KEY, old, rolling(analysis=[measured]))


@pytest.mark.parametrize("change", [
    {"current_step": 3},
    {"phase": Phase.PAUSED},
    {"message": "step 2/7: pause 5s: until 12:00:05Z"},
])
def test_anything_else_is_written_at_once(change: dict[str, object]) -> None:
    assert engine._worth_writing(KEY, rolling(), rolling(**change))


def test_a_failed_measurement_is_written_at_once() -> None:
    old = rolling()
    failed = old.analysis[0].model_copy(update={"failures": 1, "state": AnalysisState.FAILING})
    assert engine._worth_writing(KEY, old, rolling(analysis=[failed]))


def test_a_settled_release_counts_wait_too_and_its_tick_comes_back_for_them() -> None:
    """After a rollout the previous revision's pods go one by one: each count is not a write."""
    old = rolling(phase=Phase.SUCCEEDED)
    assert not engine._worth_writing(KEY, old, rolling(phase=Phase.SUCCEEDED, ready_replicas=3))
    assert engine._worth_writing(KEY, rolling(), old)  # the phase changed
    engine._unwritten[KEY] = ("7", rolling(phase=Phase.SUCCEEDED, ready_replicas=3))
    try:
        due = engine.refresh_due(*KEY)
        assert due is not None and 0 < due <= engine.REFRESH_EVERY
    finally:
        engine._unwritten.pop(KEY)
    assert engine.refresh_due(*KEY) is None
