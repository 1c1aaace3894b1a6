"""The `metric` gate: a query and a CEL condition, judged as a trigger's measurement is.

It is measured every `spec.analysis.interval` while its stage waits. A met `failureCondition`
fails it at once; otherwise it passes once `successCondition` holds (or, without one, once
`failureCondition` does not), and fails when `timeoutSeconds` runs out first. No data, NaN
or an error is never a pass: the gate keeps waiting, and says why.
"""

from __future__ import annotations

from datetime import datetime

from glideslope.api import GateState, MetricGate
from glideslope.core.analysis import Judgement, Measurement, judge
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
    """`analysis.judge`, read as a gate reads it: it passes or fails for good, and waits on
    anything else (no data, an error, a successCondition not met yet)."""
    judgement, why = judge(measurement, gate.failure_condition, gate.success_condition)
    value = measurement.value if judgement in (Judgement.FAILS, Judgement.UNMET, Judgement.PASSES) else None
    if judgement == Judgement.FAILS:
        return Check(GateState.FAILED, why, value)
    if judgement == Judgement.PASSES:
        return Check(GateState.PASSED, why, value)
    return Check(GateState.PENDING, f"{why} yet" if judgement == Judgement.UNMET else why, value)
