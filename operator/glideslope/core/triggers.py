"""When and what the engine measures: the analysis stage of a Release, its template
variables, and the triggers due now. Pure, like the rest of `core/`.

Decisions recorded here:

- Analysis runs in two stages: `rollout`, from the start of a rollout (or a retry) until full
  promotion, in every strategy and step; and `validation`, through
  `spec.validation.windowSeconds` after full promotion. `initialDelay` counts from the start
  of each stage, `interval` from a trigger's last measurement.
- A first rollout (no stable revision yet) is not analysed: there is nothing to roll back to,
  and `{{stableRevision}}`/`{{stableVersion}}` have no value. The queries are still checked
  against Prometheus before it starts, with those two variables rendered empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from glideslope.api import Phase, ReleaseSpec, ReleaseStatus, Trigger, TriggerStatus, parse_duration
from glideslope.core.analysis import QueryTemplateError, Stage, due, render_query

# Not Gated: nothing of the candidate runs before its preDeploy gates pass.
ANALYSED_ROLLOUT = frozenset({Phase.PENDING, Phase.PROGRESSING, Phase.PAUSED})


def stage(status: ReleaseStatus, candidate: str) -> tuple[Stage, datetime] | None:
    """The analysis stage the Release is in and when it started, or None: not analysed."""
    if status.revision != candidate or status.stable_revision in (None, candidate):
        return None
    if status.phase in ANALYSED_ROLLOUT and status.started_at is not None:
        return "rollout", status.started_at
    if status.phase == Phase.VALIDATING and status.step_started_at is not None:
        return "validation", status.step_started_at
    return None


def variables(spec: ReleaseSpec, status: ReleaseStatus, candidate: str, *, namespace: str, release: str,
              service: str) -> dict[str, str]:
    """The values of the template variables (`TEMPLATE_VARIABLES` in core/analysis.py)."""
    return {
        "namespace": namespace, "release": release, "service": service, "version": spec.version,
        "revision": candidate, "stableRevision": status.stable_revision or "",
        "stableVersion": status.stable_version or "",
    }


@dataclass(frozen=True)
class Due:
    """A trigger to measure now: its resolved query, or why it could not be resolved (then
    it counts as an error measurement, never a pass)."""

    trigger: Trigger
    query: str
    error: str | None = None


def due_measurements(spec: ReleaseSpec, status: ReleaseStatus, candidate: str, values: Mapping[str, str],
                     now: datetime) -> list[Due]:
    """The triggers to measure at `now` (none outside an analysis stage)."""
    current = stage(status, candidate)
    if current is None or not spec.analysis.triggers:
        return []
    _, started = current
    interval = parse_duration(spec.analysis.interval)
    delay = parse_duration(spec.analysis.initial_delay)
    by_name: dict[str, TriggerStatus] = {s.name: s for s in status.analysis}
    out: list[Due] = []
    for trigger in spec.analysis.triggers:
        if not due(by_name.get(trigger.name), interval, delay, started, now):
            continue
        template = source(trigger)
        try:
            out.append(Due(trigger, render_query(template, values)))
        except QueryTemplateError as exc:
            out.append(Due(trigger, template, str(exc)))
    return out


def source(trigger: Trigger) -> str:
    """What a measurement of the trigger renders and sends: its PromQL `query`, or the URL of
    its web provider."""
    if trigger.provider is not None and trigger.provider.web is not None:
        return trigger.provider.web.url
    return trigger.query or ""


def web_urls(spec: ReleaseSpec, values: Mapping[str, str]) -> tuple[list[tuple[str, str]], list[str]]:
    """The web triggers' URLs as they would be sent, with their field paths, to check against
    the egress policy before a rollout starts; and the problems found rendering them."""
    urls: list[tuple[str, str]] = []
    problems: list[str] = []
    for i, trigger in enumerate(spec.analysis.triggers):
        if trigger.provider is None or trigger.provider.web is None:
            continue
        path = f"spec.analysis.triggers[{i}].provider.web.url"
        try:
            urls.append((path, render_query(source(trigger), values)))
        except QueryTemplateError as exc:
            problems.append(f"{path}: {exc}")
    return urls, problems


def rendered_queries(spec: ReleaseSpec, values: Mapping[str, str]) -> tuple[list[tuple[str, str]], list[str]]:
    """Every Prometheus query (of the triggers, the metric gates and `trafficRouting.verify`, this
    one for the candidate) as it would be sent, with its field path, to check against Prometheus
    before a rollout starts; and the problems found rendering them."""
    queries: list[tuple[str, str]] = []
    problems: list[str] = []
    sources = [(f"spec.analysis.triggers[{i}].query", t.query) for i, t in enumerate(spec.analysis.triggers)
               if t.query is not None]
    sources += [(f"spec.gates[{i}].metric.query", g.metric.query) for i, g in enumerate(spec.gates)
                if g.metric is not None]
    canary = spec.strategy.canary
    if canary and canary.traffic_routing and canary.traffic_routing.verify:
        sources.append(("spec.strategy.canary.trafficRouting.verify.query", canary.traffic_routing.verify.query))
    for path, template in sources:
        try:
            queries.append((path, render_query(template, values)))
        except QueryTemplateError as exc:
            problems.append(f"{path}: {exc}")
    return queries, problems


def gate_queries(spec: ReleaseSpec, values: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The metric gates' queries as they are sent, by gate name; and the problems found
    rendering them (each naming its field)."""
    queries: dict[str, str] = {}
    problems: list[str] = []
    for i, gate in enumerate(spec.gates):
        if gate.metric is None:
            continue
        try:
            queries[gate.name] = render_query(gate.metric.query, values)
        except QueryTemplateError as exc:
            problems.append(f"spec.gates[{i}].metric.query: {exc}")
    return queries, problems
