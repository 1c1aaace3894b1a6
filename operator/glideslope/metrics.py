"""The operator's own metrics, derived from each Release's status after the operator writes it.

Gauges mirror the current status (phase, step, weight, gates, triggers). Counters and
histograms count what finished: a new `status.history` entry is one rollout, so DORA's
deployments, change failures and time to restore come from the same records people read
with `kubectl release history`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from glideslope.api import GateState, HistoryEntry, HistoryOutcome, Phase, ReleaseStatus

_DURATION_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400)
_ROLLBACK_BUCKETS = (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300)
_TICK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
# A rollout that ended in one of these was a change that failed in production (DORA).
_CHANGE_FAILURES = {HistoryOutcome.ROLLED_BACK, HistoryOutcome.FAILED}


WORKQUEUE = "releases"
"""The `name` of the stepper's queue, and the `controller` of its ticks, in the families that
controller dashboards graph (controller-runtime's names)."""
CONTROLLER = "release"


class Queue(Protocol):
    """What the scheduler tells about its queue."""

    def depth(self) -> int: ...
    def counts(self) -> dict[str, int]: ...


@dataclass(frozen=True)
class ReleaseKey:
    namespace: str
    name: str
    strategy: str


class OperatorMetrics:
    """All metric families, on one registry (the default one in the operator, a fresh one in tests)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = registry or CollectorRegistry(auto_describe=True)
        self.registry = reg
        rel = ["namespace", "release"]
        self.phase = Gauge("glideslope_release_phase", "1 for the Release's current phase, 0 for the others",
                           [*rel, "phase"], registry=reg)
        self.info = Gauge("glideslope_release_info", "The Release's candidate and stable versions",
                          [*rel, "strategy", "version", "revision", "stable_version", "stable_revision"],
                          registry=reg)
        self.step = Gauge("glideslope_release_step", "Current step of the rollout (1-based; 0 before the first)",
                          rel, registry=reg)
        self.steps = Gauge("glideslope_release_steps", "Steps in the rollout's plan", rel, registry=reg)
        self.weight = Gauge("glideslope_release_weight_percent", "Traffic on the candidate, percent",
                            rel, registry=reg)
        self.gate = Gauge("glideslope_gate_state", "1 for each gate's current state",
                          [*rel, "gate", "stage", "state"], registry=reg)
        self.trigger_value = Gauge("glideslope_trigger_last_value", "The trigger's last measured value",
                                   [*rel, "trigger", "severity"], registry=reg)
        self.trigger_measurements = Gauge(
            "glideslope_trigger_measurements", "Measurements of a trigger in the current rollout, by result",
            [*rel, "trigger", "result"], registry=reg)
        self.rollouts = Counter("glideslope_rollouts", "Finished rollouts by outcome (DORA: deployments)",
                                [*rel, "strategy", "outcome"], registry=reg)
        self.change_failures = Counter(
            "glideslope_change_failures", "Rollouts that were rolled back or failed (DORA: change failures)",
            [*rel, "strategy"], registry=reg)
        self.duration = Histogram("glideslope_rollout_duration_seconds", "Start to end of a rollout",
                                  ["strategy", "outcome"], buckets=_DURATION_BUCKETS, registry=reg)
        self.rollbacks = Counter("glideslope_rollbacks", "Rollbacks", [*rel, "strategy"], registry=reg)
        self.rollback_seconds = Histogram(
            "glideslope_rollback_seconds",
            "First failed measurement to the stable revision serving all traffic (DORA: time to restore)",
            ["strategy"], buckets=_ROLLBACK_BUCKETS, registry=reg)
        # The stepper's own health, as a workqueue's: a tick waiting long for a worker means the
        # operator is the bottleneck; ticks taking long, the API server or Prometheus.
        self.tick_wait = Histogram("glideslope_tick_wait_seconds",
                                   "How long a Release due for a tick waited for a free stepper",
                                   buckets=_TICK_BUCKETS, registry=reg)
        self.tick_duration = Histogram("glideslope_tick_seconds", "How long one tick of one Release took",
                                       buckets=_TICK_BUCKETS, registry=reg)
        # The same two, under the names controller dashboards graph (controller-runtime's).
        self.queue_duration = Histogram("workqueue_queue_duration_seconds",
                                        "How long an item stays in the workqueue before being requested",
                                        ["name"], buckets=_TICK_BUCKETS, registry=reg)
        self.work_duration = Histogram("workqueue_work_duration_seconds",
                                       "How long processing an item from the workqueue takes",
                                       ["name"], buckets=_TICK_BUCKETS, registry=reg)
        self.rest_requests = Counter("rest_client_requests", "Requests to the Kubernetes API, by code, method and host",
                                     ["code", "method", "host"], registry=reg)
        self.egress = EgressMetrics(reg)
        self.api_errors = Counter("glideslope_api_errors", "Failed calls to the Kubernetes API",
                                  ["verb", "resource", "code"], registry=reg)
        self._gates: dict[tuple[str, str], set[tuple[str, str, str]]] = {}
        self._triggers: dict[tuple[str, str], set[tuple[str, str]]] = {}
        self._info: dict[tuple[str, str], tuple[str, ...]] = {}

    def tick(self, waited: float, took: float) -> None:
        self.tick_wait.observe(waited)
        self.tick_duration.observe(took)
        self.queue_duration.labels(WORKQUEUE).observe(waited)
        self.work_duration.labels(WORKQUEUE).observe(took)

    def watch_queue(self, queue: Queue) -> None:
        """Serve the queue's depth and counts, read at each scrape."""
        self.registry.register(_QueueCollector(queue))

    def api_call(self, method: str, code: str, host: str) -> None:
        self.rest_requests.labels(code, method, host).inc()

    def observe(self, key: ReleaseKey, previous: ReleaseStatus | None, status: ReleaseStatus) -> None:
        """Update every family from a status the operator has just written."""
        rel = (key.namespace, key.name)
        if rel not in self._info:
            self._zero_counters(key)
        for phase in Phase:
            self.phase.labels(*rel, phase.value).set(1.0 if status.phase == phase else 0.0)
        info = (key.strategy, status.version or "", status.revision or "",
                status.stable_version or "", status.stable_revision or "")
        if self._info.get(rel) != info:
            if rel in self._info:
                self.info.remove(*rel, *self._info[rel])
            self.info.labels(*rel, *info).set(1)
            self._info[rel] = info
        self.step.labels(*rel).set(status.current_step or 0)
        self.steps.labels(*rel).set(status.total_steps or 0)
        self.weight.labels(*rel).set(status.weight or 0)

        gates = {(g.name, str(g.stage or ""), str(s)) for g in status.gates for s in GateState}
        for gone in self._gates.get(rel, set()) - gates:
            self.gate.remove(*rel, *gone)
        for g in status.gates:
            for s in GateState:
                self.gate.labels(*rel, g.name, str(g.stage or ""), s.value).set(1.0 if g.state == s else 0.0)
        self._gates[rel] = gates

        triggers: set[tuple[str, str]] = set()
        for t in status.analysis:
            severity = str(t.severity or "")
            triggers.add((t.name, severity))
            if t.last_value is not None:
                self.trigger_value.labels(*rel, t.name, severity).set(t.last_value)
            for result, count in (("success", t.successes), ("failure", t.failures),
                                  ("inconclusive", t.inconclusive), ("error", t.errors)):
                self.trigger_measurements.labels(*rel, t.name, result).set(count)
        for name, severity in self._triggers.get(rel, set()) - triggers:
            self.trigger_value.remove(*rel, name, severity)
            for result in ("success", "failure", "inconclusive", "error"):
                self.trigger_measurements.remove(*rel, name, result)
        self._triggers[rel] = triggers

        for entry in new_history(previous, status):
            self._finished(key, entry)

    def _zero_counters(self, key: ReleaseKey) -> None:
        # Counters exist at 0 from a Release's first sight, so `increase()` sees its first count.
        rel = (key.namespace, key.name)
        for outcome in HistoryOutcome:
            self.rollouts.labels(*rel, key.strategy, outcome.value)
        self.change_failures.labels(*rel, key.strategy)
        self.rollbacks.labels(*rel, key.strategy)

    def _finished(self, key: ReleaseKey, entry: HistoryEntry) -> None:
        rel = (key.namespace, key.name)
        outcome = entry.outcome.value
        self.rollouts.labels(*rel, key.strategy, outcome).inc()
        if entry.outcome in _CHANGE_FAILURES:
            self.change_failures.labels(*rel, key.strategy).inc()
        if entry.duration_seconds is not None:
            self.duration.labels(key.strategy, outcome).observe(entry.duration_seconds)
        if entry.rollback_seconds is not None:
            self.rollbacks.labels(*rel, key.strategy).inc()
            self.rollback_seconds.labels(key.strategy).observe(entry.rollback_seconds)

    def forget(self, namespace: str, name: str) -> None:
        """Drop a deleted Release's series, so they do not grow without bound."""
        rel = (namespace, name)
        for family in (self.phase, self.info, self.step, self.steps, self.weight, self.gate,
                       self.trigger_value, self.trigger_measurements, self.rollouts, self.change_failures,
                       self.rollbacks):
            for labels in list(_series_of(family, rel)):
                family.remove(*labels)
        self._gates.pop(rel, None)
        self._triggers.pop(rel, None)
        self._info.pop(rel, None)


class EgressMetrics:
    """The egress layer's work (`glideslope.egress.EgressObserver`): what is in flight and
    waiting per namespace, and what the bounds refused (deadlines hit, answers too large,
    addresses denied)."""

    def __init__(self, reg: CollectorRegistry) -> None:
        self.in_flight_requests = Gauge("glideslope_egress_in_flight", "Requests to tenants' endpoints in flight",
                                        ["namespace", "kind"], registry=reg)
        self.waiting_requests = Gauge("glideslope_egress_waiting",
                                      "Requests waiting for one of their namespace's slots", ["namespace", "kind"],
                                      registry=reg)
        self.refusals = Counter("glideslope_egress_refused",
                                "Requests cut short or refused: deadline, too-large, denied, unreachable, tls, invalid",
                                ["kind", "reason"], registry=reg)
        self.bytes = Counter("glideslope_egress_received_bytes", "Bytes of answers read from tenants' endpoints",
                             ["kind"], registry=reg)

    def in_flight(self, namespace: str, kind: str, delta: int) -> None:
        self.in_flight_requests.labels(namespace, kind).inc(delta)

    def waiting(self, namespace: str, kind: str, delta: int) -> None:
        self.waiting_requests.labels(namespace, kind).inc(delta)

    def refused(self, kind: str, refusal: str) -> None:
        self.refusals.labels(kind, refusal).inc()

    def received(self, kind: str, size: int) -> None:
        self.bytes.labels(kind).inc(size)


class _QueueCollector(Collector):
    def __init__(self, queue: Queue) -> None:
        self._queue = queue

    def collect(self) -> Iterator[Metric]:
        counts = self._queue.counts()
        depth = GaugeMetricFamily("workqueue_depth", "Current depth of the workqueue", labels=["name"])
        depth.add_metric([WORKQUEUE], self._queue.depth())
        yield depth
        for family, help_text, value in (
                ("workqueue_adds", "Adds handled by the workqueue", counts["adds"]),
                ("workqueue_retries", "Retries handled by the workqueue", counts["retries"])):
            counter = CounterMetricFamily(family, help_text, labels=["name"])
            counter.add_metric([WORKQUEUE], value)
            yield counter
        reconciles = CounterMetricFamily("controller_runtime_reconcile", "Reconciliations per controller and result",
                                         labels=["controller", "result"])
        reconciles.add_metric([CONTROLLER, "success"], counts["ticks"] - counts["errors"])
        reconciles.add_metric([CONTROLLER, "error"], counts["errors"])
        yield reconciles
        errors = CounterMetricFamily("controller_runtime_reconcile_errors", "Reconciliation errors per controller",
                                     labels=["controller"])
        errors.add_metric([CONTROLLER], counts["errors"])
        yield errors


def new_history(previous: ReleaseStatus | None, status: ReleaseStatus) -> list[HistoryEntry]:
    """History entries in `status` that `previous` did not have (history is append-only, bounded)."""
    before = previous.history if previous else []
    seen = {(h.revision, h.started_at, h.outcome) for h in before}
    return [h for h in status.history if (h.revision, h.started_at, h.outcome) not in seen]


def _series_of(family: Gauge | Counter, rel: tuple[str, str]) -> list[tuple[str, ...]]:
    # prometheus_client keeps children by label values; the first two are namespace and release.
    children: dict[tuple[str, ...], object] = getattr(family, "_metrics", {})
    return [labels for labels in children if labels[:2] == rel]
