"""The statistical judge (`spec.analysis.judge`): is the candidate worse than its baseline?

Pure: the shell brings each metric's samples for the candidate ("canary") and the baseline,
from range queries over the comparison window (`window`); this module tests them, scores the
look and says what the rollout must do. scipy is a computation like any other here.

Decisions recorded here:

- **The test.** Per metric, a one-sided Mann-Whitney U test of the canary's samples against
  the baseline's, in the direction that is bad (`either`: both directions, each at half the
  level). A metric is High or Low only when the test rejects at this look's level and the
  canary's mean is beyond the baseline's by more than `tolerance` that way (the tolerance is on
  the means, not a shift of the samples: error rates are mostly 0, and shifting them would
  turn ties into losses); else Pass. The extra condition only removes rejections, so it keeps
  the false-abort bound below. Fewer than `minSamples` on a side, or a query that failed, is
  NoData: never a pass, never a fail.
- **The score** (as Kayenta): the percent of the metrics with data that pass. Below
  `marginalScore` the look fails; a missing metric then makes it Inconclusive (a pass needs
  every metric); below `passScore` it is Marginal; else Pass.
- **Repeated looks** (sequential testing): the judge looks at every analysis interval, on
  data that grows, and may stop (fail) at any look. `alpha` is spent over the rollout with a
  Lan-DeMets spending function of the information time t = (now - rollout start) / horizon:
  Pocock's alpha*ln(1 + (e-1)t), or O'Brien-Fleming's 2 - 2*Phi(z_(alpha/2) / sqrt(t)). Each
  look tests at the alpha spent since the last look that tested, split evenly among the
  metrics tested (Bonferroni). The union bound over looks and metrics keeps the chance that
  any look of a rollout fails a candidate no worse than its baseline at or below `alpha`
  (conservatively: the looks' correlation, which exact group-sequential boundaries would use,
  is ignored). Past the horizon nothing is left to spend: those looks only show.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from scipy import stats

from glideslope.api import (
    MAX_CHART_POINTS,
    MAX_SAMPLES,
    Classification,
    Direction,
    JudgeMetric,
    JudgeMetricStatus,
    JudgeSpec,
    JudgeStatus,
    JudgeVerdict,
    Phase,
    ReleaseSpec,
    ReleaseStatus,
    Severity,
    Spending,
    StrategyType,
    parse_duration,
)
from glideslope.core.analysis import TEMPLATE_VARIABLES, Order, Stage, Verdict, next_due_after, render_query
from glideslope.core.services import routed, side_services
from glideslope.core.triggers import stage as analysis_stage

SIDES = ("canary", "baseline")
BASELINE_ROLE = "baseline"
"""The `glideslope.dev/role` label of the baseline's pods."""
ROLE_LABEL = "glideslope.dev/role"
BASELINE_SUFFIX = "-baseline"
JUDGE_VARIABLE_MEANINGS: Mapping[str, str] = {
    "side": "`canary` or `baseline`: which side this rendering of a judge metric's query is for.",
    "sideRevision": "The `glideslope.dev/revision` label of the side's pods: the candidate for `canary`; for"
                    " `baseline`, `<stable revision>-baseline` (the baseline's pods) or, when `judge.baseline` is"
                    " false, the stable revision.",
    "sideRole": "The side's `glideslope.dev/role` pod label: empty for `canary`, `baseline` for the baseline's"
                " pods (empty when `judge.baseline` is false: the stable revision's own pods).",
    "sideService": "The Service whose requests reach the side: the stable Service with the replica ratio;"
                   " behind a router the preview Service for `canary`, and for `baseline` the baseline"
                   " Service (`<service>-baseline`; the stable Service when `judge.baseline` is false).",
}
"""The variables a judge metric's query may use besides the triggers' (docs/api.md)."""
JUDGE_VARIABLES = TEMPLATE_VARIABLES | frozenset(JUDGE_VARIABLE_MEANINGS)
MIN_HORIZON_SECONDS = 60.0


# ---------------------------------------------------------------------------------------------
# What the shell brings


@dataclass(frozen=True)
class Side:
    """One side of one metric over the window: every sample as (unix time, value), every
    series together; or why there are none."""

    query: str
    samples: tuple[tuple[float, float], ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class Look:
    """The samples of one look, taken for the look due at `at`, per metric: (canary, baseline)."""

    at: datetime
    sides: Mapping[str, tuple[Side, Side]]


@dataclass(frozen=True)
class Ask:
    """The range queries of the look due at `at`: per metric, (canary query, baseline query),
    or why they could not be rendered (then the look's metric is NoData)."""

    at: datetime
    start: datetime
    end: datetime
    step_seconds: float
    queries: Mapping[str, tuple[str, str]]
    errors: Mapping[str, str]


# ---------------------------------------------------------------------------------------------
# When, and over which window


def stage(spec: ReleaseSpec, status: ReleaseStatus, candidate: str) -> tuple[Stage, datetime] | None:
    """The judge's stage and its start, or None: not judged now. As the triggers' stage, except
    that the validation window is judged only against a baseline that gets traffic there (a
    canary with `baseline` and no router: the stable revision is gone by then)."""
    judge = spec.analysis.judge
    current = analysis_stage(status, candidate) if judge is not None else None
    if current is None or judge is None:
        return None
    if current[0] == "validation" and not (baseline_runs(spec) and not routed(spec)):
        return None
    return current


def baseline_revision(stable: str) -> str:
    """The `glideslope.dev/revision` label of the baseline's pods: the stable revision's, marked,
    so that the stable Service (which selects the stable revision's label) never selects them,
    without a change to the stable revision's own pods."""
    return stable + BASELINE_SUFFIX


def baseline_weight(weight: int, ready: int, replicas: int) -> int:
    """The baseline's percent of a router's traffic when the candidate has `weight`: the same
    share, taken from the stable revision's (so never more than the `100 - weight` it has), and
    no more than its `ready` pods carry at the rate `replicas` pods carry the whole (as a
    candidate's weight waits for its pods). The stable revision keeps the rest."""
    if replicas <= 0 or weight <= 0:
        return 0
    return max(min(weight, 100 - weight, 100 * ready // replicas), 0)


def baseline_runs(spec: ReleaseSpec) -> bool:
    """Whether the spec asks for baseline pods (a canary only)."""
    judge = spec.analysis.judge
    return judge is not None and judge.baseline and spec.strategy.type == StrategyType.CANARY


def next_look(spec: ReleaseSpec, status: ReleaseStatus, candidate: str) -> datetime | None:
    """When the judge looks next (None: it does not)."""
    current = stage(spec, status, candidate)
    if current is None:
        return None
    last = status.judge.last_look_time if status.judge is not None else None
    return next_due_after(last, parse_duration(spec.analysis.interval), parse_duration(spec.analysis.initial_delay),
                          current[1])


def ask(spec: ReleaseSpec, status: ReleaseStatus, candidate: str, values: Mapping[str, str],
        now: datetime) -> Ask | None:
    """The range queries to send now for the look that is due (None: none is). The window runs
    from the stage's start plus `initialDelay` to the look's due time (not `now`, so that the
    same look asks the same thing however late its tick), at most `MAX_SAMPLES` steps back."""
    judge = spec.analysis.judge
    current = stage(spec, status, candidate)
    due = next_look(spec, status, candidate)
    if judge is None or current is None or due is None or now < due:
        return None
    step = parse_duration(judge.step)
    start = max(current[1] + parse_duration(spec.analysis.initial_delay), due - step * MAX_SAMPLES)
    queries: dict[str, tuple[str, str]] = {}
    errors: dict[str, str] = {}
    for i, metric in enumerate(judge.metrics):
        try:
            queries[metric.name] = (render(metric.query, values, "canary", spec),
                                    render(metric.query, values, "baseline", spec))
        except ValueError as exc:
            errors[metric.name] = f"spec.analysis.judge.metrics[{i}].query: {exc}"
    return Ask(at=due, start=start, end=due, step_seconds=step.total_seconds(), queries=queries, errors=errors)


def render(template: str, values: Mapping[str, str], side: str, spec: ReleaseSpec) -> str:
    """A judge metric's query for one side (`JUDGE_VARIABLE_MEANINGS`)."""
    canary = side == "canary"
    baseline = spec.analysis.judge is not None and spec.analysis.judge.baseline
    service = side_services(spec, values.get("release", ""))[0 if canary else 1]
    stable = values.get("stableRevision", "")
    revision = values.get("revision", "") if canary else baseline_revision(stable) if baseline and stable else stable
    role = "" if canary or not baseline else BASELINE_ROLE
    return render_query(template, {**values, "side": side, "sideRevision": revision, "sideRole": role,
                                     "sideService": service},
                        known=JUDGE_VARIABLES)


def queries(spec: ReleaseSpec, values: Mapping[str, str]) -> tuple[list[tuple[str, str]], list[str]]:
    """Every judge query as it would be sent, with its field path (checked against Prometheus
    before a rollout starts); and the problems found rendering them."""
    judge = spec.analysis.judge
    out: list[tuple[str, str]] = []
    problems: list[str] = []
    for i, metric in enumerate(judge.metrics if judge is not None else []):
        path = f"spec.analysis.judge.metrics[{i}].query"
        try:
            out += [(path, render(metric.query, values, side, spec)) for side in SIDES]
        except ValueError as exc:
            problems.append(f"{path}: {exc}")
    return out, problems


# ---------------------------------------------------------------------------------------------
# Alpha spending


def spent(spending: Spending, alpha: float, t: float) -> float:
    """The alpha spent by information time `t` (0..1): Lan-DeMets' approximations of Pocock's
    and O'Brien-Fleming's boundaries. 0 at t=0, `alpha` at t=1, rising."""
    t = min(max(t, 0.0), 1.0)
    if t <= 0.0:
        return 0.0
    if spending == Spending.POCOCK:
        return alpha * math.log(1.0 + (math.e - 1.0) * t)
    z = float(stats.norm.ppf(1.0 - alpha / 2.0))
    return float(min(alpha, 2.0 - 2.0 * stats.norm.cdf(z / math.sqrt(t))))


def horizon_seconds(spec: ReleaseSpec, timed: float) -> float:
    """`judge.horizon`, or `timed` (the seconds of the plan's timed steps: pauses, analysis) plus
    the validation window, at least `MIN_HORIZON_SECONDS`."""
    judge = spec.analysis.judge
    if judge is not None and judge.horizon is not None:
        return parse_duration(judge.horizon).total_seconds()
    return max(timed + spec.validation.window_seconds, MIN_HORIZON_SECONDS)


# ---------------------------------------------------------------------------------------------
# One metric


def compare(metric: JudgeMetric, canary: Sequence[float], baseline: Sequence[float], level: float,
            min_samples: int) -> tuple[Classification, float | None, str]:
    """The classification of one metric, its p-value (of the worse direction), and why. `level`
    is the significance this look tests at (0: nothing left to spend; the test cannot reject)."""
    if len(canary) < min_samples or len(baseline) < min_samples:
        return (Classification.NO_DATA, None,
                f"{len(canary)} canary and {len(baseline)} baseline samples; minSamples is {min_samples}")
    tolerance = metric.tolerance
    # How far the canary's mean is above the baseline's: the tolerance is on it, not on the test,
    # as shifting discrete samples (error rates, mostly 0) by it would turn ties into losses.
    gap = statistics.fmean(canary) - statistics.fmean(baseline)
    p_high = _p(canary, baseline, "greater") if metric.direction != Direction.DECREASE else 1.0
    p_low = _p(canary, baseline, "less") if metric.direction != Direction.INCREASE else 1.0
    per_side = level / 2.0 if metric.direction == Direction.EITHER else level
    worse = min(p_high, p_low)
    shown = min(1.0, 2.0 * worse) if metric.direction == Direction.EITHER else worse
    if p_high < per_side and gap > tolerance:
        return Classification.HIGH, shown, (f"canary higher than baseline (p={shown:.3g} < {level:.3g}), mean"
                                            f" {gap:+.4g} beyond tolerance {tolerance:g}")
    if p_low < per_side and -gap > tolerance:
        return Classification.LOW, shown, (f"canary lower than baseline (p={shown:.3g} < {level:.3g}), mean"
                                           f" {gap:+.4g} beyond tolerance {tolerance:g}")
    if min(p_high, p_low) < per_side:
        return Classification.PASS, shown, f"a significant shift (p={shown:.3g}) within tolerance (mean {gap:+.4g})"
    return Classification.PASS, shown, f"no significant {metric.direction} (p={shown:.3g}, level {level:.3g})"


def _p(canary: Sequence[float], baseline: Sequence[float], alternative: str) -> float:
    """One-sided Mann-Whitney U p-value of canary against baseline (asymptotic, with the tie
    correction: error rates tie at zero a lot). All samples equal: no evidence, 1."""
    if len(set(canary) | set(baseline)) <= 1:
        return 1.0
    p = float(stats.mannwhitneyu(canary, baseline, alternative=alternative, method="asymptotic").pvalue)
    return p if math.isfinite(p) else 1.0


def chart(samples: Sequence[tuple[float, float]], points: int = MAX_CHART_POINTS) -> list[float]:
    """The side's values for the chart: averaged per time across series, then into at most
    `points` equal runs of time."""
    by_time: dict[float, list[float]] = {}
    for t, v in samples:
        by_time.setdefault(t, []).append(v)
    ordered = [statistics.fmean(by_time[t]) for t in sorted(by_time)]
    if len(ordered) <= points:
        return [round(v, 6) for v in ordered]
    size = len(ordered) / points
    return [round(statistics.fmean(ordered[int(i * size): int((i + 1) * size)]), 6) for i in range(points)]


def _values(side: Side) -> list[float]:
    """The most recent `MAX_SAMPLES` finite values (a look is bounded whatever the query returns)."""
    finite = sorted((s for s in side.samples if math.isfinite(s[1])), key=lambda s: s[0])
    return [v for _, v in finite[-MAX_SAMPLES:]]


# ---------------------------------------------------------------------------------------------
# A look


def score(rows: Sequence[JudgeMetricStatus], pass_score: int, marginal_score: int) -> tuple[int | None, JudgeVerdict]:
    """The look's score and verdict (the module's docstring)."""
    tested = [r for r in rows if r.classification != Classification.NO_DATA]
    if not tested:
        return None, JudgeVerdict.INCONCLUSIVE
    value = round(100 * sum(r.classification == Classification.PASS for r in tested) / len(tested))
    if value < marginal_score:
        return value, JudgeVerdict.FAIL
    if len(tested) < len(rows):
        return value, JudgeVerdict.INCONCLUSIVE
    if value < pass_score:
        return value, JudgeVerdict.MARGINAL
    return value, JudgeVerdict.PASS


def look(judge: JudgeSpec, previous: JudgeStatus | None, taken: Look, *, rollout_started: datetime,
         horizon: float) -> JudgeStatus:
    """The judge's status after the look `taken`: each metric tested at this look's share of
    alpha, the score, the verdict."""
    before = previous or JudgeStatus()
    t = (taken.at - rollout_started).total_seconds() / horizon if horizon > 0 else 1.0
    available = max(0.0, spent(judge.spending, judge.alpha, t) - before.alpha_spent)
    samples: dict[str, tuple[list[float], list[float]]] = {}
    for metric in judge.metrics:
        canary, baseline = taken.sides.get(metric.name, (Side(""), Side("")))
        failed = canary.error or baseline.error
        samples[metric.name] = ([], []) if failed else (_values(canary), _values(baseline))
    testable = [m for m in judge.metrics if min(len(x) for x in samples[m.name]) >= judge.min_samples]
    level = available / len(testable) if testable else 0.0
    rows: list[JudgeMetricStatus] = []
    for metric in judge.metrics:
        canary, baseline = taken.sides.get(metric.name, (Side(""), Side("")))
        c, b = samples[metric.name]
        error = canary.error or baseline.error
        if error:
            classification, p, why = Classification.NO_DATA, None, f"error: {error}"
        else:
            classification, p, why = compare(metric, c, b, level, judge.min_samples)
        rows.append(JudgeMetricStatus(
            name=metric.name, classification=classification, p_value=None if p is None else round(p, 6),
            canary_median=statistics.median(c) if c else None, baseline_median=statistics.median(b) if b else None,
            canary_samples=len(c), baseline_samples=len(b), canary_values=chart(canary.samples),
            baseline_values=chart(baseline.samples), message=why))
    value, verdict = score(rows, judge.pass_score, judge.marginal_score)
    tested = bool(testable)
    worst = [r.name for r in rows if r.classification in (Classification.HIGH, Classification.LOW)]
    missing = [r.name for r in rows if r.classification == Classification.NO_DATA]
    message = f"{verdict}" + (f", score {value}" if value is not None else "")
    if worst:
        message += f"; worse: {', '.join(worst)}"
    if missing:
        message += f"; no data: {', '.join(missing)}"
    return JudgeStatus(
        verdict=verdict, score=value, metrics=rows,
        looks=before.looks + (1 if tested else 0),
        failures=before.failures + (1 if verdict == JudgeVerdict.FAIL else 0),
        # Only a look that tested spends: alpha not used by a look without data stays for later.
        alpha_spent=round(before.alpha_spent + available, 12) if tested else before.alpha_spent,
        threshold=level if tested else None, message=message, last_look_time=taken.at)


# ---------------------------------------------------------------------------------------------
# What the verdict does


def order(judge: JudgeSpec, status: JudgeStatus | None, *, automatic: bool, stage: Stage) -> Verdict:
    """What the judge's last look orders, by the severity table (as a trigger's failure does);
    Marginal pauses for a person; Inconclusive, or no look yet, holds (never a pass)."""
    if status is None or status.last_look_time is None:
        return Verdict(Order.CONTINUE, False, message="judge: not looked yet")
    why = f"judge: {status.message}"
    if status.verdict == JudgeVerdict.PASS:
        return Verdict(Order.CONTINUE, True, message=why)
    if status.verdict == JudgeVerdict.INCONCLUSIVE:
        return Verdict(Order.CONTINUE, False, message=f"waiting: {why}")
    if status.verdict == JudgeVerdict.MARGINAL:
        return Verdict(Order.PAUSE, False, message=f"{why}; a person promotes or aborts")
    severity = judge.severity
    if severity == Severity.CRITICAL or (severity == Severity.HIGH and status.failures >= judge.failure_limit):
        if automatic:
            return Verdict(Order.ROLLBACK, False, severity=severity, message=why)
        return Verdict(Order.PAUSE, False, severity=severity, message=f"{why}; rollback.automatic is false")
    if severity == Severity.HIGH:
        return Verdict(Order.CONTINUE, False, severity=severity,
                       message=f"{why} ({status.failures} of failureLimit {judge.failure_limit})")
    if severity == Severity.MEDIUM and stage == "rollout":
        return Verdict(Order.PAUSE, False, severity=severity, message=f"{why}; a person promotes or aborts")
    return Verdict(Order.NOTIFY, True, severity=severity, message=why)


_WEIGHT = {Order.CONTINUE: 0, Order.NOTIFY: 1, Order.PAUSE: 2, Order.ROLLBACK: 3}


def combine(triggers: Verdict | None, judged: Verdict | None) -> Verdict | None:
    """The triggers' verdict and the judge's as one: the heavier order (the triggers' on a tie),
    promotable only if both are."""
    if triggers is None or judged is None:
        return triggers or judged
    heavier = judged if _WEIGHT[judged.action] > _WEIGHT[triggers.action] else triggers
    promotable = triggers.promotable and judged.promotable
    if heavier is triggers and not triggers.promotable:
        return triggers
    if heavier is triggers and not promotable:
        # The triggers pass; the judge holds: say so.
        return Verdict(triggers.action, False, message=judged.message)
    return Verdict(heavier.action, promotable, trigger=heavier.trigger, severity=heavier.severity, value=heavier.value,
                   query=heavier.query, measured_at=heavier.measured_at, message=heavier.message)


# ---------------------------------------------------------------------------------------------
# The baseline's pods


def baseline_replicas(spec: ReleaseSpec, status: ReleaseStatus, candidate: str, candidate_replicas: int) -> int:
    """The baseline's desired pods: as many as the candidate has during a canary's steps, at
    most as many as its largest weight below 100 needs (full promotion does not double the
    application); kept in a validation window it is judged in; else none."""
    if not baseline_runs(spec) or status.stable_revision in (None, candidate) or status.revision != candidate:
        return 0
    canary = spec.strategy.canary
    weights = [s.set_weight for s in canary.steps if s.set_weight is not None and s.set_weight < 100] if canary else []
    cap = max([math.ceil(spec.replicas * w / 100) for w in weights] + [1])
    if status.phase in (Phase.PENDING, Phase.PROGRESSING, Phase.PAUSED):
        return min(candidate_replicas, cap)
    if status.phase == Phase.VALIDATING and stage(spec, status, candidate) is not None:
        return cap
    return 0
