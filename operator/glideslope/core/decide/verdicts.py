"""The triggers' part of a tick: record what was measured in `status.analysis`, then obey the
triggers' verdict (the severity table in core/analysis.py): a rollback starts here; any other
verdict is for the step or the validation window to read."""

from __future__ import annotations

from glideslope.api import AnalysisState, Severity, TriggerStatus
from glideslope.core.analysis import Order, Stage, Verdict, tally, verdict
from glideslope.core.decide.rollback import roll_back
from glideslope.core.decide.tick import Tick
from glideslope.core.model import Reason
from glideslope.core.triggers import stage as analysis_stage


def judge(tick: Tick) -> Verdict | None:
    """The verdict the rest of the tick obeys; None when there is none, or it rolled back."""
    judged = _analyse(tick)
    if judged is None:
        return None
    stage, found = judged
    if found.action != Order.ROLLBACK:
        return found
    status = tick.status
    roll_back(tick, status.revision, found.message, keep_traffic=stage == "validation", breach=True,
              trigger=found.trigger)
    tick.announce(Reason.ROLLING_BACK, f"rolling back {status.version} ({status.revision}): {found.message}",
                  warning=True, trigger=found.trigger)
    return None


def _analyse(tick: Tick) -> tuple[Stage, Verdict] | None:
    """Record this tick's measurements in `status.analysis`; the triggers' verdict for the
    current stage (None when the Release is not being analysed or has no triggers)."""
    spec, status = tick.spec, tick.status
    current = analysis_stage(status, tick.candidate)
    triggers = spec.analysis.triggers
    if current is None or not triggers:
        return None
    stage, _ = current
    by_name: dict[str, TriggerStatus] = {s.name: s for s in status.analysis}
    for trigger in triggers:
        measured = tick.observation.measurements.get(trigger.name)
        if measured is None:
            continue
        query, measurement = measured
        previous = by_name.get(trigger.name)
        new = tally(trigger, previous, measurement, query)
        by_name[trigger.name] = new
        text = f"trigger {trigger.name} ({trigger.severity}): {new.message}; query: {' '.join(query.split())}"
        if new.state == AnalysisState.FAILING:
            if trigger.severity in (Severity.CRITICAL, Severity.HIGH) and status.breach_at is None:
                status.breach_at = measurement.at
            tick.announce(Reason.TRIGGER_FAILED, text, warning=True, trigger=trigger.name)
        elif new.state == AnalysisState.INCONCLUSIVE and (previous is None or previous.state != new.state):
            tick.announce(Reason.ANALYSIS_INCONCLUSIVE, text, warning=True, trigger=trigger.name)
    status.analysis = [by_name[t.name] for t in triggers if t.name in by_name]
    return stage, verdict(triggers, status.analysis, automatic=spec.rollback.automatic, stage=stage)
