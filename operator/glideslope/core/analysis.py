"""Rollback triggers: query templates, recording measurements, and what the engine must do.

Pure: no I/O and no clock (`now` is passed in). The shell measures with a `MetricProvider`
(`glideslope.prom`), then calls, per trigger that is `due`:

    status = tally(trigger, previous, measurement, query)

and, after recording, `verdict(triggers, statuses, automatic=..., stage=...)`.

Semantics chosen here (what a failed trigger does, by severity, is `SEVERITY_EFFECTS` in
api/types.py, rendered into docs/api.md; `_call` implements it):

- A measurement fails when `failureCondition` holds or `successCondition` does not. An error
  (Prometheus unreachable, a refused query, several series, a condition that cannot be
  evaluated), an empty result, NaN or an infinity is never a pass.
- Counts are totals over the trigger's status, that is over the current rollout, as Argo
  Rollouts counts within an analysis run: `failures` reaching `failureLimit` rolls a `high`
  trigger back, and `inconclusive + errors` reaching `INCONCLUSIVE_LIMIT` makes the trigger
  `Inconclusive`. Totals are what `status.analysis[]` shows, so a person can read from the
  status alone why a Release paused or rolled back; and since failures only grow, a
  flapping trigger cannot hold a rollout forever. (Consecutive counting would need a streak
  field in `TriggerStatus`; see `INCONCLUSIVE_LIMIT`.)
- Below the limit, a measurement without a result leaves the trigger `Pending` (no data)
  or `Error`: not an alarm yet, but not a pass either, so the rollout holds (`promotable`
  is false) until a later measurement passes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from glideslope.api import AnalysisState, OnNoData, Severity, Trigger, TriggerStatus
from glideslope.core.conditions import ConditionError, compile_condition

# ---------------------------------------------------------------------------------------------
# Query templates

TEMPLATE_VARIABLE_MEANINGS: Mapping[str, str] = {
    "namespace": "The Release's namespace.",
    "release": "The Release's name.",
    "service": "The stable Service's name (`spec.service.name`; default: the Release's name).",
    "version": "`spec.version`: the candidate's version.",
    "revision": "The candidate revision, as its pods' `glideslope.dev/revision` label carries it.",
    "stableRevision": "The stable revision (the label value of its pods); empty on a first rollout.",
    "stableVersion": "`spec.version` of the stable revision; empty on a first rollout.",
}
"""What each template variable stands for (`core.triggers.variables` gives the values);
rendered into docs/api.md."""
TEMPLATE_VARIABLES = frozenset(TEMPLATE_VARIABLE_MEANINGS)
"""The names `{{...}}` may use in a trigger's or metric gate's query."""

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
# A value is pasted into PromQL as is; these characters could end a string literal or the
# line, and so change the query's meaning (a version string is free text).
_UNSAFE_VALUE = re.compile(r"[\"'`\\\n\r]")


class QueryTemplateError(ValueError):
    """A query names an unknown variable, lacks a value for one, or is malformed."""


def render_query(template: str, variables: Mapping[str, str], *, known: frozenset[str] = TEMPLATE_VARIABLES) -> str:
    """Substitute `{{namespace}}`, `{{revision}}`... (spaces inside the braces allowed); `known`
    is the names the query may use (a judge's metrics know more).

    Raises QueryTemplateError naming the variable that is unknown, has no value, or whose
    value holds a quote, a backslash or a line break.
    """

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        if name not in known:
            listed = ", ".join("{{" + v + "}}" for v in sorted(known))
            raise QueryTemplateError(f"unknown template variable {{{{{name}}}}}; known: {listed}")
        value = variables.get(name)
        if value is None:
            raise QueryTemplateError(f"no value for template variable {{{{{name}}}}}")
        if _UNSAFE_VALUE.search(value):
            raise QueryTemplateError(
                f"the value of {{{{{name}}}}} ({value!r}) holds a quote, backslash or line break")
        return value

    rendered = _PLACEHOLDER.sub(substitute, template)
    # Checked on the template: a value may not smuggle braces in, but the user's text may
    # hold an unclosed `{{`, which PromQL would reject with a far less helpful message.
    leftover = _PLACEHOLDER.sub("", template)
    if "{{" in leftover or "}}" in leftover:
        raise QueryTemplateError("unbalanced '{{' or '}}' in query template")
    return rendered


ARGS_PREFIX = "args."
"""`{{args.NAME}}`: an analysis template's arg, substituted when the template is resolved
(`core.templates`), before the variables above are."""


def render_args(template: str, args: Mapping[str, str]) -> str:
    """Substitute an analysis template's `{{args.NAME}}`, leaving every other `{{...}}` for
    `render_query`. Raises QueryTemplateError naming an arg without a value, or whose value
    holds a quote, a backslash or a line break (the same rule as the variables')."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        if not name.startswith(ARGS_PREFIX):
            return match.group(0)
        arg = name[len(ARGS_PREFIX):]
        value = args.get(arg)
        if value is None:
            raise QueryTemplateError(f"{{{{{name}}}}}: the template declares no arg {arg!r}")
        if _UNSAFE_VALUE.search(value):
            raise QueryTemplateError(f"the value of {{{{{name}}}}} ({value!r}) holds a quote, backslash or line break")
        return value

    return _PLACEHOLDER.sub(substitute, template)


# ---------------------------------------------------------------------------------------------
# Measurements


@dataclass(frozen=True)
class Measurement:
    """One evaluation of a query: a number, no data (`value` None), or an error."""

    value: float | None
    error: str | None
    at: datetime


INCONCLUSIVE_LIMIT = 3
"""Measurements with no data or an error, in total, after which a trigger is Inconclusive
(the rollout pauses). Total rather than consecutive because `TriggerStatus` has no field for
a streak, and a streak kept in memory would reset whenever the operator restarts; a
`consecutiveErrors` status field would make it consecutive."""


class _Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NO_DATA = "no data"
    ERROR = "error"


def _format(value: float) -> str:
    return f"{value:g}"


class Judgement(StrEnum):
    """What a measurement says against a failureCondition and a successCondition."""

    ERROR = "error"
    NO_DATA = "no data"
    FAILS = "meets failureCondition"
    UNMET = "does not meet successCondition"
    PASSES = "passes"


def judge(measurement: Measurement, failure_condition: str | None,
          success_condition: str | None) -> tuple[Judgement, str]:
    """The one judge of a measurement, for triggers and metric gates alike (each reads the
    judgement its own way: an unmet successCondition fails a trigger, a gate waits on), with a
    short phrase saying why."""
    if measurement.error is not None:
        return Judgement.ERROR, f"error: {measurement.error}"
    value = measurement.value
    if value is None or not math.isfinite(value):
        return Judgement.NO_DATA, "no data" if value is None else f"no data (result {value})"
    if failure_condition is None and success_condition is None:
        return Judgement.ERROR, "error: neither successCondition nor failureCondition"
    shown = _format(value)
    try:
        if failure_condition is not None and compile_condition(failure_condition).holds(value):
            return Judgement.FAILS, f'{shown} meets failureCondition "{failure_condition}"'
        if success_condition is not None and not compile_condition(success_condition).holds(value):
            return Judgement.UNMET, f'{shown} does not meet successCondition "{success_condition}"'
    except ConditionError as exc:
        return Judgement.ERROR, f"error: condition: {exc}"
    if success_condition is not None:
        return Judgement.PASSES, f'{shown} meets successCondition "{success_condition}"'
    return Judgement.PASSES, f'{shown} does not meet failureCondition "{failure_condition}"'


def _judge(trigger: Trigger, measurement: Measurement) -> tuple[_Outcome, str]:
    """The outcome of one measurement for a trigger: an unmet successCondition fails it, and
    no data fails it only with `onNoData: Fail`."""
    judgement, why = judge(measurement, trigger.failure_condition, trigger.success_condition)
    if judgement == Judgement.NO_DATA:
        if trigger.on_no_data == OnNoData.FAIL:
            return _Outcome.FAIL, f"{why}; onNoData is Fail"
        return _Outcome.NO_DATA, why
    if judgement == Judgement.ERROR:
        return _Outcome.ERROR, why
    return (_Outcome.PASS if judgement == Judgement.PASSES else _Outcome.FAIL), why


def tally(trigger: Trigger, previous: TriggerStatus | None, measurement: Measurement,
           query: str) -> TriggerStatus:
    """The trigger's status after `measurement` of the resolved `query`.

    `previous` is the trigger's status so far in this rollout (None for the first
    measurement; a status of another name is ignored).
    """
    base = previous if previous is not None and previous.name == trigger.name else None
    successes = base.successes if base else 0
    failures = base.failures if base else 0
    inconclusive = base.inconclusive if base else 0
    errors = base.errors if base else 0

    outcome, why = _judge(trigger, measurement)
    if outcome == _Outcome.PASS:
        successes += 1
        state = AnalysisState.PASSING
    elif outcome == _Outcome.FAIL:
        failures += 1
        state = AnalysisState.FAILING
        if trigger.severity == Severity.HIGH:
            why = f"{why} ({failures} of failureLimit {trigger.failure_limit})"
    else:
        if outcome == _Outcome.NO_DATA:
            inconclusive += 1
        else:
            errors += 1
        unanswered = inconclusive + errors
        if unanswered >= INCONCLUSIVE_LIMIT:
            state = AnalysisState.INCONCLUSIVE
            why = f"{why} ({unanswered} measurements without a result, limit {INCONCLUSIVE_LIMIT})"
        else:
            state = AnalysisState.PENDING if outcome == _Outcome.NO_DATA else AnalysisState.ERROR
            why = f"{why} ({unanswered} of {INCONCLUSIVE_LIMIT} before Inconclusive)"

    value = measurement.value
    # Only a number that was judged is shown; no data with onNoData Fail has none.
    judged = outcome in (_Outcome.PASS, _Outcome.FAIL) and value is not None and math.isfinite(value)
    last_value = value if judged else None
    return TriggerStatus(
        name=trigger.name,
        severity=trigger.severity,
        state=state,
        last_value=last_value,
        query=query,
        successes=successes,
        failures=failures,
        inconclusive=inconclusive,
        errors=errors,
        message=why,
        last_measured_time=measurement.at,
    )


# ---------------------------------------------------------------------------------------------
# Verdict


class Order(StrEnum):
    """The triggers' order to the engine, in rising weight (a kube action is `core.model.Action`)."""

    CONTINUE = "Continue"
    NOTIFY = "Notify"
    PAUSE = "Pause"
    ROLLBACK = "Rollback"


_WEIGHT = {Order.CONTINUE: 0, Order.NOTIFY: 1, Order.PAUSE: 2, Order.ROLLBACK: 3}
_SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.HIGH: 1, Severity.MEDIUM: 2, Severity.LOW: 3}

Stage = Literal["rollout", "validation"]


@dataclass(frozen=True)
class Verdict:
    """The engine's orders from the triggers, and the one trigger responsible for them.

    `promotable` is false while any trigger has not passed (no measurement yet, no data, an
    error, Inconclusive) or failed in a way that stops the rollout: the engine must not end
    an analysis step, promote fully or end validation as Succeeded unless it is true.
    NOTIFY is level-triggered (it holds while the trigger's last measurement failed): send
    one notification per (`trigger`, `measured_at`).
    """

    action: Order
    promotable: bool
    trigger: str | None = None
    severity: Severity | None = None
    value: float | None = None
    query: str | None = None
    measured_at: datetime | None = None
    message: str = "all triggers pass"


@dataclass(frozen=True)
class _Call:
    action: Order
    promotable: bool
    trigger: Trigger
    status: TriggerStatus | None
    why: str
    # The action before `rollback.automatic: false` turned a rollback into a pause: ranking by
    # it names the same responsible trigger whichever the setting.
    intended: Order | None = None

    @property
    def rank(self) -> int:
        return _WEIGHT[self.intended or self.action]


def _call(trigger: Trigger, status: TriggerStatus | None, automatic: bool, stage: Stage) -> _Call:
    """One trigger's verdict, by its severity (the module's docstring)."""
    if status is None or status.state == AnalysisState.PENDING:
        why = status.message if status is not None and status.message else "not measured yet"
        return _Call(Order.CONTINUE, False, trigger, status, f"waiting: {why}")
    if status.state == AnalysisState.ERROR:
        return _Call(Order.CONTINUE, False, trigger, status, f"waiting: {status.message}")
    if status.state == AnalysisState.INCONCLUSIVE:
        return _Call(Order.PAUSE, False, trigger, status, f"inconclusive: {status.message}")
    if status.state == AnalysisState.PASSING:
        return _Call(Order.CONTINUE, True, trigger, status, str(status.message or "passes"))

    why = str(status.message or "failed")
    severity = trigger.severity
    if severity == Severity.CRITICAL or (severity == Severity.HIGH and status.failures >= trigger.failure_limit):
        if automatic:
            return _Call(Order.ROLLBACK, False, trigger, status, why)
        return _Call(Order.PAUSE, False, trigger, status, f"{why}; rollback.automatic is false",
                     intended=Order.ROLLBACK)
    if severity == Severity.HIGH:
        # Below failureLimit: keep measuring, but a failed measurement is no reason to advance.
        return _Call(Order.CONTINUE, False, trigger, status, why)
    if severity == Severity.MEDIUM and stage == "rollout":
        return _Call(Order.PAUSE, False, trigger, status, f"{why}; a person promotes or aborts")
    return _Call(Order.NOTIFY, True, trigger, status, why)


def verdict(triggers: Sequence[Trigger], statuses: Iterable[TriggerStatus], *, automatic: bool,
            stage: Stage) -> Verdict:
    """What the engine must do now, given every trigger's status.

    The heaviest action wins (ROLLBACK > PAUSE > NOTIFY > CONTINUE); among equals the most
    severe trigger, then the first in `spec.analysis.triggers`. With `automatic` false a
    rollback becomes a pause, still ranked as a rollback, so the same trigger is named.
    Statuses of triggers no longer in the spec are ignored.
    """
    by_name = {s.name: s for s in statuses}
    calls = [_call(t, by_name.get(t.name), automatic, stage) for t in triggers]
    if not calls:
        return Verdict(Order.CONTINUE, True, message="no triggers")
    promotable = all(c.promotable for c in calls)
    # Responsible: the heaviest action; for CONTINUE, a trigger that holds promotion.
    worst = min(enumerate(calls), key=lambda ic: (
        -ic[1].rank, ic[1].promotable, _SEVERITY_RANK[ic[1].trigger.severity], ic[0]))[1]
    if worst.action == Order.CONTINUE and promotable:
        return Verdict(Order.CONTINUE, True, message="all triggers pass")
    status = worst.status
    query = status.query if status is not None else None
    message = f"trigger {worst.trigger.name} ({worst.trigger.severity}): {worst.why}"
    if query:
        message += f"; query: {' '.join(query.split())}"
    return Verdict(
        action=worst.action,
        promotable=promotable,
        trigger=worst.trigger.name,
        severity=worst.trigger.severity,
        value=status.last_value if status is not None else None,
        query=query,
        measured_at=status.last_measured_time if status is not None else None,
        message=message,
    )


# ---------------------------------------------------------------------------------------------
# Scheduling


def next_due(status: TriggerStatus | None, interval: timedelta, initial_delay: timedelta,
             started_at: datetime) -> datetime:
    """When the trigger should next be measured: `initial_delay` after `started_at` (the start
    of the step or validation window), then on a fixed grid of `interval` from there: the first
    grid point after the last measurement, but never less than half an interval after it. A
    grid, because `interval` after the last measurement adds each query's own latency to every
    interval (at 1 s, about 2% fewer measurements, and a phase that wanders); a measurement late
    by more than an interval skips the points it missed rather than catching up in a burst."""
    return next_due_after(status.last_measured_time if status is not None else None, interval, initial_delay,
                          started_at)


def next_due_after(last: datetime | None, interval: timedelta, initial_delay: timedelta,
                   started_at: datetime) -> datetime:
    """`next_due` from the time of the last measurement (or look) itself."""
    first = started_at + initial_delay
    if last is None or last < first:
        return first
    if interval <= timedelta(0):
        return last
    return max(first + ((last - first) // interval + 1) * interval, last + interval / 2)


def due(status: TriggerStatus | None, interval: timedelta, initial_delay: timedelta,
        started_at: datetime, now: datetime) -> bool:
    """Whether the trigger should be measured at `now`."""
    return now >= next_due(status, interval, initial_delay, started_at)
