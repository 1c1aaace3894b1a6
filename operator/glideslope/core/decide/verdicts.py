"""The analysis part of a tick: record what was measured in `status.analysis` (the triggers)
and `status.judge` (the statistical judge's look), then obey their verdict together (the
severity table in core/analysis.py; the judge's in core/judge.py): a rollback starts here; any
other verdict is for the step or the validation window to read."""

from __future__ import annotations

from glideslope.api import AnalysisState, JudgeVerdict, Severity, TriggerStatus
from glideslope.core.analysis import Order, Stage, Verdict, tally, verdict
from glideslope.core.decide.rollback import roll_back
from glideslope.core.decide.tick import Tick
from glideslope.core.judge import combine, horizon_seconds, look, order
from glideslope.core.judge import stage as judge_stage
from glideslope.core.model import Reason
from glideslope.core.triggers import stage as analysis_stage


def judge(tick: Tick) -> Verdict | None:
    """The verdict the rest of the tick obeys; None when there is none, or it rolled back."""
    judged = _analyse(tick)
    judged_too = _judge(tick)
    if judged is None and judged_too is None:
        return None
    stage = judged[0] if judged is not None else judged_too[0] if judged_too is not None else "rollout"
    found = combine(judged[1] if judged else None, judged_too[1] if judged_too else None)
    if found is None:
        return None
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


def _judge(tick: Tick) -> tuple[Stage, Verdict] | None:
    """Record the judge's look, if one came back this tick, in `status.judge`; the judge's order
    for the current stage (None when it does not judge now)."""
    spec, status = tick.spec, tick.status
    judge = spec.analysis.judge
    current = judge_stage(spec, status, tick.candidate)
    if judge is None or current is None:
        return None
    stage, _ = current
    taken = tick.observation.judge
    previous = status.judge
    last = previous.last_look_time if previous is not None else None
    if taken is not None and status.started_at is not None and (last is None or taken.at > last):
        status.judge = look(judge, previous, taken, rollout_started=status.started_at,
                            horizon=horizon_seconds(spec, sum(s.seconds or 0.0 for s in tick.steps)))
        new = status.judge
        was = previous.verdict if previous is not None and previous.last_look_time is not None else None
        if new.verdict == JudgeVerdict.FAIL:
            if judge.severity in (Severity.CRITICAL, Severity.HIGH) and status.breach_at is None:
                status.breach_at = taken.at
            tick.announce(Reason.JUDGE_FAILED, f"judge: {new.message}", warning=True)
        elif new.verdict == JudgeVerdict.MARGINAL and was != new.verdict:
            # Inconclusive is not announced: every rollout starts with too few samples.
            tick.announce(Reason.JUDGE_MARGINAL, f"judge: {new.message}", warning=True)
    return stage, order(judge, status.judge, automatic=spec.rollback.automatic, stage=stage)
