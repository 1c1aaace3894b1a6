"""`Release.status`: what the operator observed and did.

The schema here is deliberately loose (enums and signs only): a status patch the API server
refused would lose what the operator knows, so bounds are for the operator to keep.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from glideslope.api.base import ApiModel, rules
from glideslope.api.judge import JudgeStatus
from glideslope.api.types import (
    AnalysisState,
    ConditionStatus,
    GateStage,
    GateState,
    HistoryOutcome,
    Phase,
    Severity,
    Timestamp,
)

HISTORY_LIMIT = 20
"""`status.history` keeps the most recent rollouts, at most this many."""
ANNOUNCEMENTS_LIMIT = 32
"""At most this many Events per transition are kept for redelivery."""


class GateStatus(ApiModel):
    """The state of one gate of `spec.gates`."""

    name: str
    """The gate's name in `spec.gates`."""
    stage: GateStage | None = None
    state: GateState = GateState.PENDING
    message: str | None = None
    """What the gate is waiting for, or why it passed or failed."""
    approved_by: str | None = None
    """Who approved an approval gate (the `glideslope.dev/approved-by` annotation)."""
    last_transition_time: Timestamp | None = None
    """When `state` last changed."""
    started_at: Timestamp | None = None
    """When its stage began checking it: timeouts count from here, and a Job gate's Job is
    named after it."""
    last_checked_time: Timestamp | None = None
    """When the check last ran (a query, a request, a look at a Job or Release)."""
    last_value: float | None = None
    """A metric gate's last measured value."""


class StepStart(ApiModel):
    """A step the current rollout took (see `ReleaseStatus.step_starts`)."""

    step: int = Field(ge=1)
    """The step's number in the plan, 1 first."""
    at: Timestamp
    """When it started."""


class Announcement(ApiModel):
    """An Event the tick that wrote this status announces (see `ReleaseStatus.announcements`)."""

    reason: str
    """The Event's reason (`Started`, `Promoted`, `RollingBack`...)."""
    message: str
    """The Event's message."""
    warning: bool = False
    """A Warning Event (else Normal)."""
    at: Timestamp
    """When the transition happened."""


class TriggerStatus(ApiModel):
    """The measurements of one trigger of `spec.analysis.triggers` in the current rollout."""

    name: str
    """The trigger's name in `spec.analysis.triggers`."""
    severity: Severity | None = None
    state: AnalysisState = AnalysisState.PENDING
    last_value: float | None = None
    """The last measured value; absent when there was none (no data, NaN or an error)."""
    query: str | None = None
    """The query as sent, template variables resolved."""
    successes: int = Field(default=0, ge=0)
    """Measurements in a row that met no failure condition, in the current stage."""
    failures: int = Field(default=0, ge=0)
    """Measurements that met `failureCondition`, in the current stage (what `failureLimit` counts)."""
    inconclusive: int = Field(default=0, ge=0)
    """Measurements with no data (see `onNoData`), in the current stage."""
    errors: int = Field(default=0, ge=0)
    """Queries that failed (Prometheus unreachable or refusing), in the current stage."""
    message: str | None = None
    """The last measurement, in words."""
    last_measured_time: Timestamp | None = None
    """When the last measurement was taken."""


class Condition(ApiModel):
    """A condition in Kubernetes form (metav1.Condition)."""

    type: str = Field(min_length=1, max_length=316)
    """`Ready`, `Progressing` or `Degraded` (what `kubectl wait`, Argo CD and Flux read)."""
    status: ConditionStatus
    reason: str | None = None
    """One CamelCase word: why the condition is as it is (`Progressing`, `InvalidSpec`, `Conflict`...)."""
    message: str | None = None
    """Why, for people."""
    last_transition_time: Timestamp | None = None
    """When `status` last changed."""
    observed_generation: int | None = Field(default=None, ge=0)
    """The `metadata.generation` this condition describes."""


class HistoryEntry(ApiModel):
    """The record of one finished rollout."""

    version: str | None = None
    """`spec.version` of the rollout."""
    revision: str | None = None
    """The rollout's revision (a hash of the pod template)."""
    outcome: HistoryOutcome
    started_at: Timestamp | None = None
    """When the rollout started."""
    finished_at: Timestamp | None = None
    """When it ended (succeeded, rolled back, failed or was superseded)."""
    duration_seconds: float | None = Field(default=None, ge=0)
    """From `startedAt` to `finishedAt`."""
    rollback_seconds: float | None = Field(default=None, ge=0)
    """How long the rollback took; absent when there was none."""
    step_starts: list[StepStart] = Field(default_factory=list)
    """Each step the current rollout has taken, in order, with when it began (a retry starts the
    list again; at most one entry per step of the plan, and two more). Steps are not Events, and
    the closing record writes them with the next Event: after an operator restart it takes
    those it had not written yet from here."""
    downtime_seconds: float | None = Field(default=None, ge=0)
    """BigBang: how long no pod was serving; absent for the other strategies."""
    reason: str | None = None
    """Why it ended so: the trigger that fired, the command given, the newer revision."""
    trigger: str | None = Field(default=None, max_length=63)
    """The rollback trigger that rolled it back, when one did: the closing Event and the
    notifications name it (its last measurement is in `status.analysis`)."""


class TemplateTriggers(ApiModel):
    """The triggers the Release's analysis templates gave the rollout of `revision`."""

    revision: str
    """The candidate revision they were resolved for."""
    digest: str
    """A digest of `spec.analysis.templates` (names, kinds, args) they were resolved from."""
    triggers: list[dict[str, Any]] = Field(default_factory=list)
    """The templates' triggers, args substituted, as the operator measures them."""
    judge: dict[str, Any] | None = None
    """A template's judge, args substituted, when the Release has none of its own."""


class ReleaseStatus(ApiModel):
    """The observed state of a Release."""

    observed_generation: int | None = Field(default=None, ge=0)
    """The `metadata.generation` the operator last acted on."""
    phase: Phase | None = None
    message: str | None = None
    """What is happening now, for people (`kubectl get releases` shows the phase; this says why)."""
    version: str | None = None
    """`spec.version` of the candidate."""
    revision: str | None = None
    """The candidate revision (a hash of the pod template)."""
    stable_revision: str | None = None
    """The revision that serves when no rollout is under way, and takes the traffic back on a rollback."""
    stable_version: str | None = None
    """`spec.version` of the stable revision."""
    current_step: int | None = Field(default=None, ge=0)
    """The step of the rollout under way, from 1."""
    total_steps: int | None = Field(default=None, ge=0)
    """The steps of the rollout's plan."""
    step_display: str | None = None
    """`currentStep/totalSteps`, e.g. `3/7`, for `kubectl get` (columns cannot compute)."""
    weight: int | None = Field(default=None, ge=0, le=100)
    """Percent of traffic (or replicas) on the candidate."""
    measured_weight: int | None = Field(default=None, ge=0, le=100)
    """The candidate's measured share of requests, in percent (`trafficRouting.verify`)."""
    weight_display: str | None = None
    """`weight (measuredWeight)`, e.g. `20 (19)`, for `kubectl get`."""
    weight_set_at: Timestamp | None = None
    """When the current weight was set, while its measured share has not matched it yet
    (`trafficRouting.verify`): the step does not end, and times out from this."""
    replicas: int | None = Field(default=None, ge=0)
    """Pods of the Release, all revisions (the scale subresource reads it)."""
    ready_replicas: int | None = Field(default=None, ge=0)
    """Ready pods of the Release, all revisions."""
    selector: str | None = None
    """`spec.selector` as a label-selector string (the scale subresource reads it)."""
    gates: list[GateStatus] = Field(default_factory=list, json_schema_extra=rules(
        x_kubernetes_list_type="map", x_kubernetes_list_map_keys=["name"]))
    """Each gate of `spec.gates` for the current revision: its state and why."""
    gates_display: str | None = None
    """Passed/total gates, e.g. `2/3`, for `kubectl get`."""
    gate_stage: GateStage | None = None
    """The stage whose gates are being checked now; absent when none is."""
    paused_by: str | None = None
    """Why a person paused the rollout (`kubectl release pause`, the `glideslope.dev/pause`
    annotation); cleared by `kubectl release resume`. `spec.paused` is the declarative twin."""
    analysis: list[TriggerStatus] = Field(default_factory=list, json_schema_extra=rules(
        x_kubernetes_list_type="map", x_kubernetes_list_map_keys=["name"]))
    """Each trigger of `spec.analysis.triggers`: its state, last value and counts in the current stage."""
    judge: JudgeStatus | None = None
    """`spec.analysis.judge` in the current rollout: its verdict, score and each metric's row."""
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra=rules(
        x_kubernetes_list_type="map", x_kubernetes_list_map_keys=["type"]))
    """`Ready`, `Progressing` and `Degraded`, as kstatus, Argo CD, Flux and `kubectl wait` read them."""
    started_at: Timestamp | None = None
    """When the current rollout started."""
    step_started_at: Timestamp | None = None
    """When the current step started: pauses, analysis and delays count from it, so a
    restarted operator resumes them where they were."""
    step_starts: list[StepStart] = Field(default_factory=list)
    """Each step the current rollout has taken, in order, with when it began (a retry starts the
    list again; at most one entry per step of the plan, and two more). Steps are not Events, and
    the closing record writes them with the next Event: after an operator restart it takes
    those it had not written yet from here."""
    downtime_seconds: float | None = Field(default=None, ge=0)
    """BigBang: how long the last rollout had no pod serving."""
    breach_at: Timestamp | None = None
    """When the clock of a rollback started: the first failed measurement of a `critical` or
    `high` trigger in the current rollout or validation window (set as it is taken), or the
    abort or undo. `history[].rollbackSeconds` runs from it to the stable revision serving all
    traffic."""
    promoted_step: int | None = Field(default=None, ge=0)
    """The step a person last promoted to: it ends without waiting for the triggers to pass
    (a trigger that rolls back still does)."""
    history: list[HistoryEntry] = Field(default_factory=list, max_length=HISTORY_LIMIT)
    """Finished rollouts, oldest first."""
    obeyed_commands: dict[str, str] = Field(default_factory=dict, max_length=16)
    """Command annotations this status obeyed, by name, with their values (at most 256
    characters): the operator removes them only once this status is stored, so a command is
    never lost to a write that fails. One still on the Release with the value recorded here
    (the operator stopped between the two writes) is removed without being obeyed twice; the
    record is cleared once the annotations are gone."""
    template_triggers: TemplateTriggers | None = None
    """The triggers the analysis templates (`spec.analysis.templates`) gave this rollout, as
    resolved when it started: a template's later change shows in the next rollout, never in a
    running one. A change of `spec.analysis.templates` resolves them again."""
    announcements: list[Announcement] = Field(default_factory=list, max_length=ANNOUNCEMENTS_LIMIT)
    """The Events of the last transition, written with it: the operator records them once this
    status is stored, under names derived from them, so one that died in between records them
    after its restart, and never twice."""

    def condition(self, type_: str) -> Condition | None:
        """The condition of this type, if any."""
        return next((c for c in self.conditions if c.type == type_), None)


def step_display(current_step: int | None, total_steps: int | None) -> str | None:
    """The `Step` column: `3/7`."""
    if current_step is None or not total_steps:
        return None
    return f"{current_step}/{total_steps}"


def weight_display(weight: int | None, measured: int | None) -> str | None:
    """The `Weight` column: `20`, or `20 (19)` with the measured share."""
    if weight is None:
        return None
    return str(weight) if measured is None else f"{weight} ({measured})"


def gates_display(gates: list[GateStatus]) -> str | None:
    """The `Gates` column: passed of total, `2/3`."""
    counted = [g for g in gates if g.state != GateState.SKIPPED]
    if not counted:
        return None
    return f"{sum(g.state == GateState.PASSED for g in counted)}/{len(counted)}"
