"""The statistical judge: `spec.analysis.judge` and `status.judge`.

Self-contained (it imports only the API's base and types), so that whatever else holds a judge
(an analysis template) can embed `JudgeSpec` as it is.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import ConfigDict, Field

from glideslope.api.base import ApiModel, cel, rules
from glideslope.api.types import DURATION_PATTERN, Duration, Name, Query, Severity, Timestamp

MAX_JUDGE_METRICS = 16
"""Metrics of one judge: each is two range queries per look."""
MAX_CHART_POINTS = 24
"""Values of each side kept in `status.judge.metrics[].canaryValues` for the chart."""
MAX_SAMPLES = 2000
"""Samples of one side of one metric that a look uses (the most recent); a range query giving
more is cut to these."""


class Direction(StrEnum):
    """Which way a metric going is bad for the candidate."""

    INCREASE = "increase"
    DECREASE = "decrease"
    EITHER = "either"


class Spending(StrEnum):
    """The alpha-spending function that bounds the false-abort rate over repeated looks."""

    POCOCK = "pocock"
    OBRIEN_FLEMING = "obrienFleming"


class Classification(StrEnum):
    """One metric's result at a look."""

    PASS = "Pass"
    HIGH = "High"
    LOW = "Low"
    NO_DATA = "NoData"


class JudgeVerdict(StrEnum):
    """The judge's overall result at a look."""

    PASS = "Pass"
    MARGINAL = "Marginal"
    FAIL = "Fail"
    INCONCLUSIVE = "Inconclusive"


class JudgeMetric(ApiModel):
    """One metric compared between the candidate's pods and the baseline's."""

    name: Name
    """Unique among the judge's metrics."""
    query: Query
    """PromQL, rendered once for each side and asked as a range query over the comparison window;
    every value of every series it returns is a sample. Besides the triggers' variables it may use
    `{{side}}` (`canary` or `baseline`), `{{sideRevision}}` (the side's `glideslope.dev/revision`
    pod label: the candidate; `<stable revision>-baseline` for the baseline's pods, or the stable
    revision when `baseline` is false) and `{{sideRole}}` (the side's `glideslope.dev/role` pod
    label: empty for the candidate, `baseline` for the baseline's pods, empty for the stable
    revision's pods when `baseline` is false) and `{{sideService}}` (the Service whose requests
    reach the side: the stable one with the replica ratio; behind a router the preview Service
    for the candidate, `<service>-baseline` for the baseline). `service="{{sideService}}",
    revision="{{sideRevision}}",role="{{sideRole}}"` selects one side's client requests."""
    direction: Direction = Direction.INCREASE
    """Which way is bad: `increase` (errors, latency), `decrease` (throughput), `either`."""
    tolerance: float = Field(default=0.0, ge=0, le=1e12)
    """The difference, in the metric's unit, that is not a regression: the candidate is High only
    if the test finds it significantly above the baseline and its mean is more than `tolerance`
    above the baseline's (Low: below)."""


class JudgeSpec(ApiModel):
    """Compare the candidate with a baseline, metric by metric, with a Mann-Whitney U test."""

    model_config = ConfigDict(json_schema_extra=rules(
        cel("self.marginalScore <= self.passScore", "spec.analysis.judge.marginalScore must not exceed passScore",
            field_path=".marginalScore"),
        cel(f"!has(self.horizon) || !self.horizon.matches(r'{DURATION_PATTERN}')"
            " || duration(self.horizon) >= duration('10s')",
            "spec.analysis.judge.horizon must be at least 10s", field_path=".horizon"),
        cel(f"!has(self.step) || !self.step.matches(r'{DURATION_PATTERN}') || (duration(self.step) >= duration('1s')"
            " && duration(self.step) <= duration('10m'))",
            "spec.analysis.judge.step must be between 1s and 10m", field_path=".step"),
    ))

    baseline: bool = False
    """Run fresh pods of the stable revision (`<release>-<stable revision>-baseline`, pod labels
    `glideslope.dev/role: baseline` and `glideslope.dev/revision: <stable revision>-baseline`)
    beside the candidate, as many as it has, started with it, so that like is compared with like.
    Behind a router (gatewayAPI, istio; not nginx) they have a Service `<stable Service>-baseline`
    and the candidate's share of traffic, taken from the stable revision's. Canary only; removed
    when the rollout ends. false: the candidate is compared with the stable revision's own pods."""
    metrics: list[JudgeMetric] = Field(min_length=1, max_length=MAX_JUDGE_METRICS, json_schema_extra=rules(
        x_kubernetes_list_type="map", x_kubernetes_list_map_keys=["name"]))
    """What is compared."""
    min_samples: int = Field(default=30, ge=3, le=MAX_SAMPLES)
    """Samples each side of a metric needs; fewer is NoData, and the verdict Inconclusive."""
    pass_score: int = Field(default=90, ge=0, le=100)
    """A score (percent of metrics that pass) at or above this passes."""
    marginal_score: int = Field(default=75, ge=0, le=100)
    """Below `passScore` and at or above this is Marginal (a pause); below it, Fail."""
    severity: Severity = Severity.CRITICAL
    """What a Fail does, as a trigger's severity does (critical: roll back at once)."""
    failure_limit: int = Field(default=3, ge=1, le=1000)
    """Failed looks before a `high` judge rolls back."""
    alpha: float = Field(default=0.05, ge=0.0001, le=0.5)
    """The false-abort rate over a whole rollout, all looks and metrics together."""
    spending: Spending = Spending.POCOCK
    """How `alpha` is spent over the looks (Lan-DeMets): `pocock` spends early (stops early on a
    clear regression), `obrienFleming` keeps most for the end."""
    horizon: Duration | None = None
    """The time over which `alpha` is spent, from the start of the rollout; absent: the
    rollout's timed steps (pauses and analysis) plus the validation window, at least 1m. Looks
    after it have no alpha left: they cannot fail, only show."""
    step: Duration = "10s"
    """The range queries' resolution: one sample per side, series and step."""


class JudgeMetricStatus(ApiModel):
    """One metric at the judge's last look."""

    name: str
    """The metric's name in `spec.analysis.judge.metrics`."""
    classification: Classification = Classification.NO_DATA
    """Pass, High (the candidate significantly above the baseline plus `tolerance`), Low (below),
    or NoData (fewer than `minSamples` on a side, or a query that failed)."""
    p_value: float | None = None
    """The one-sided Mann-Whitney U p-value of the worse direction (`either`: doubled)."""
    canary_median: float | None = None
    """The median of the candidate's samples."""
    baseline_median: float | None = None
    """The median of the baseline's samples."""
    canary_samples: int = Field(default=0, ge=0)
    """How many samples the candidate's query gave over the window."""
    baseline_samples: int = Field(default=0, ge=0)
    """How many samples the baseline's query gave over the window."""
    canary_values: list[float] = Field(default_factory=list, max_length=MAX_CHART_POINTS)
    """The candidate's values over the window, averaged into at most 24 points (the chart)."""
    baseline_values: list[float] = Field(default_factory=list, max_length=MAX_CHART_POINTS)
    """The baseline's, likewise."""
    message: str | None = None
    """The test's result, in words."""


class JudgeStatus(ApiModel):
    """The statistical judge in the current rollout."""

    verdict: JudgeVerdict = JudgeVerdict.INCONCLUSIVE
    """Pass, Marginal (a pause for a person), Fail (acts by `severity`) or Inconclusive (too few
    samples: the rollout holds, never passes or fails on it)."""
    score: int | None = Field(default=None, ge=0, le=100)
    """Percent of the metrics with data that pass; absent before a look with data."""
    metrics: list[JudgeMetricStatus] = Field(default_factory=list, max_length=MAX_JUDGE_METRICS)
    """Each metric at the last look."""
    looks: int = Field(default=0, ge=0)
    """Looks taken with data in this rollout."""
    failures: int = Field(default=0, ge=0)
    """Looks that failed in this rollout (what `failureLimit` counts)."""
    alpha_spent: float = Field(default=0.0, ge=0)
    """The part of `alpha` the looks so far have used."""
    threshold: float | None = None
    """The significance level the last look tested each metric at."""
    message: str | None = None
    """The last look, in words."""
    last_look_time: Timestamp | None = None
    """When the last look was due (its window ends there)."""
