"""The `window` gate: open on given days between start and end in a time zone, outside freezes.

Semantics: `days` names the day a window opens, so `Fri 22:00-06:00` runs from Friday 22:00
to Saturday 06:00; without start and end a listed day is open all day. A freeze closes the
gate whatever the days and hours say. A closed window waits; it never fails a release.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from glideslope.api import GateState, WindowGate
from glideslope.core.gates import Check

# How far ahead to look for the next opening: a week covers every days/hours pattern; freeze
# ends are added as starting points, so a long holiday freeze is looked past as well.
_HORIZON_DAYS = 8


@dataclass(frozen=True)
class WindowState:
    open: bool
    message: str
    next_change: datetime | None
    """When the gate next opens (if closed) or closes (if open); None if never."""


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _day_listed(gate: WindowGate, day: date) -> bool:
    return gate.days is None or any(d.number == day.weekday() for d in gate.days)


def _frozen(gate: WindowGate, at: datetime) -> bool:
    return any(f.start <= at < f.end for f in gate.freezes or [])


def is_open(gate: WindowGate, tz: tzinfo, at: datetime) -> bool:
    if _frozen(gate, at):
        return False
    local = at.astimezone(tz)
    if gate.start is None or gate.end is None:
        return _day_listed(gate, local.date())
    start, end, now = _minutes(gate.start), _minutes(gate.end), local.hour * 60 + local.minute
    if start < end:
        return start <= now < end and _day_listed(gate, local.date())
    # Crosses midnight: the evening part belongs to today, the morning part to yesterday.
    return (now >= start and _day_listed(gate, local.date())) or (
        now < end and _day_listed(gate, local.date() - timedelta(days=1)))


def _boundaries(gate: WindowGate, tz: tzinfo, around: datetime) -> set[datetime]:
    """Every instant near `around` at which the gate may open or close."""
    local_day = around.astimezone(tz).date()
    clocks = [time(0, 0)]
    if gate.start is not None and gate.end is not None:
        clocks = [time(*divmod(_minutes(gate.start), 60)), time(*divmod(_minutes(gate.end), 60))]
    out: set[datetime] = set()
    for offset in range(-1, _HORIZON_DAYS):
        day = local_day + timedelta(days=offset)
        out.update(datetime.combine(day, clock, tzinfo=tz) for clock in clocks)
    return out


def window_state(gate: WindowGate, tz: tzinfo, now: datetime) -> WindowState:
    """Whether the gate is open at `now`, and when that changes (`tz` is the gate's zone)."""
    candidates = _boundaries(gate, tz, now)
    for freeze in gate.freezes or []:
        candidates |= {freeze.start, freeze.end} | _boundaries(gate, tz, freeze.end)
    future = sorted(c for c in candidates if c > now)
    currently = is_open(gate, tz, now)
    change = next((c for c in future if is_open(gate, tz, c) != currently), None)
    zone = getattr(tz, "key", None) or str(tz)
    shown = change.astimezone(tz).strftime("%a %Y-%m-%d %H:%M") + f" {zone}" if change else None
    if currently:
        return WindowState(True, f"window open until {shown}" if shown else "window open", change)
    active = next((f for f in gate.freezes or [] if f.start <= now < f.end), None)
    why = f"frozen ({active.reason or 'freeze'}) until {active.end.isoformat()}" if active else "outside the window"
    return WindowState(False, f"{why}; opens at {shown}" if shown else f"{why}; no opening ahead", change)


def check(gate: WindowGate, tz: tzinfo, now: datetime) -> Check:
    """Passed while the window is open; otherwise Pending with when it opens. Never Failed."""
    state = window_state(gate, tz, now)
    return Check(GateState.PASSED if state.open else GateState.PENDING, state.message)
