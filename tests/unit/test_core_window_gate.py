"""The window gate: days, hours across midnight, time zones, freezes, and when it next opens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glideslope.api import WindowGate
from glideslope.core.gates.window import is_open, window_state

pytestmark = pytest.mark.unit

BERLIN = ZoneInfo("Europe/Berlin")


def gate(**fields: Any) -> WindowGate:
    return WindowGate.model_validate(fields)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


BUSINESS = gate(timezone="Europe/Berlin", days=["Mon", "Tue", "Wed", "Thu"], start="09:00", end="16:00")


@pytest.mark.parametrize(("now", "expected"), [
    ("2026-11-26T08:30:00", True),   # Thu 09:30 in Berlin (UTC+1)
    ("2026-11-26T07:59:00", False),  # Thu 08:59 Berlin
    ("2026-11-26T15:00:00", False),  # Thu 16:00 Berlin: end is exclusive
    ("2026-11-27T10:00:00", False),  # Friday is not listed
    ("2026-07-02T07:30:00", True),   # Thu 09:30 in Berlin summer time (UTC+2)
])
def test_business_hours(now: str, expected: bool) -> None:
    assert is_open(BUSINESS, BERLIN, utc(now)) is expected


def test_closed_window_says_when_it_opens() -> None:
    state = window_state(BUSINESS, BERLIN, utc("2026-11-27T10:00:00"))  # Friday
    assert not state.open
    assert state.next_change == datetime(2026, 11, 30, 9, 0, tzinfo=BERLIN)  # Monday 09:00
    assert "opens at Mon 2026-11-30 09:00 Europe/Berlin" in state.message


def test_open_window_says_when_it_closes() -> None:
    state = window_state(BUSINESS, BERLIN, utc("2026-11-26T08:30:00"))
    assert state.open
    assert state.next_change == datetime(2026, 11, 26, 16, 0, tzinfo=BERLIN)


def test_window_across_midnight_belongs_to_the_day_it_opens() -> None:
    night = gate(days=["Fri"], start="22:00", end="06:00")
    assert is_open(night, UTC, utc("2026-11-27T23:00:00"))      # Fri 23:00
    assert is_open(night, UTC, utc("2026-11-28T05:59:00"))      # Sat 05:59, Friday's window
    assert not is_open(night, UTC, utc("2026-11-28T22:30:00"))  # Sat 22:30: Saturday not listed
    assert not is_open(night, UTC, utc("2026-11-27T05:00:00"))  # Fri 05:00 is Thursday's window


def test_days_without_hours_are_open_all_day() -> None:
    weekend = gate(days=["Sat", "Sun"])
    assert is_open(weekend, UTC, utc("2026-11-28T00:00:00"))
    assert not is_open(weekend, UTC, utc("2026-11-27T23:59:00"))
    assert window_state(weekend, UTC, utc("2026-11-27T12:00:00")).next_change == utc("2026-11-28T00:00:00")


def test_a_freeze_closes_an_open_window_and_the_gate_looks_past_it() -> None:
    holiday = {"start": "2026-12-20T00:00:00Z", "end": "2027-01-05T00:00:00Z", "reason": "holiday freeze"}
    frozen = gate(freezes=[holiday])
    state = window_state(frozen, UTC, utc("2026-12-24T12:00:00"))
    assert not state.open
    assert state.next_change == utc("2027-01-05T00:00:00")
    assert "holiday freeze" in state.message
    hours_and_freeze = gate(days=["Mon"], start="09:00", end="10:00", freezes=frozen.freezes)
    # The freeze ends on a Tuesday: the next opening is the Monday after.
    assert window_state(hours_and_freeze, UTC, utc("2026-12-28T09:30:00")).next_change == utc("2027-01-11T09:00:00")


@settings(max_examples=200)
@given(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2028, 1, 1)))
def test_next_change_really_changes_and_nothing_changes_before_it(naive: datetime) -> None:
    now = naive.replace(tzinfo=UTC)
    state = window_state(BUSINESS, BERLIN, now)
    assert state.open == is_open(BUSINESS, BERLIN, now)
    assert state.next_change is not None
    assert is_open(BUSINESS, BERLIN, state.next_change) != state.open
    # Hours and days change on whole minutes: sample the minutes in between.
    probe = now
    while probe + timedelta(minutes=37) < state.next_change:
        probe += timedelta(minutes=37)
        assert is_open(BUSINESS, BERLIN, probe) == state.open
