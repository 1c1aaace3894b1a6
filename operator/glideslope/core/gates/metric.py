"""The `metric` gate: a query and a CEL condition, judged as a trigger's measurement is.

It is measured every `spec.analysis.interval` while its stage waits. A met `failureCondition`
fails it at once; otherwise it passes once `successCondition` holds (or, without one, once
`failureCondition` does not), and fails when `timeoutSeconds` runs out first. No data, NaN
or an error is never a pass: the gate keeps waiting, and says why.
"""

from __future__ import annotations

import math
from datetime import datetime

from glideslope.api import GateState, MetricGate
from glideslope.core.analysis import Measurement
from glideslope.core.conditions import ConditionError, compile_condition
from glideslope.core.gates import Check


def check(gate: MetricGate, measurement: Measurement | None, started: datetime, now: datetime,
          previous: str | None = None) -> Check:
    """`measurement` is None when none was due this tick: the gate keeps its `previous` message
    unless its time is up."""
    waited = (now - started).total_seconds()
    pending = _judge(gate, measurement) if measurement is not None else Check(GateState.PENDING,
                                                                           previous or "waiting for a measurement")
    if pending.state == GateState.PENDING and waited >= gate.timeout_seconds:
        return Check(GateState.FAILED, f"timed out after {gate.timeout_seconds}s: {pending.message}", pending.value)
    return pending


def _judge(gate: MetricGate, measurement: Measurement) -> Check:
    if measurement.error is not None:
        return Check(GateState.PENDING, f"error: {measurement.error}")
    value = measurement.value
    if value is None or not math.isfinite(value):
        return Check(GateState.PENDING, "no data" if value is None else f"no data (result {value})")
    shown = f"{value:g}"
    try:
        if gate.failure_condition is not None and compile_condition(gate.failure_condition).holds(value):
            return Check(GateState.FAILED, f'{shown} meets failureCondition "{gate.failure_condition}"', value)
        if gate.success_condition is not None:
            if compile_condition(gate.success_condition).holds(value):
                return Check(GateState.PASSED, f'{shown} meets successCondition "{gate.success_condition}"', value)
            return Check(GateState.PENDING, f'{shown} does not meet successCondition "{gate.success_condition}" yet',
                         value)
    except ConditionError as exc:
        return Check(GateState.PENDING, f"error: condition: {exc}", value)
    return Check(GateState.PASSED, f'{shown} does not meet failureCondition "{gate.failure_condition}"', value)
