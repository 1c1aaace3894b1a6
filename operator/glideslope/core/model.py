"""Plain data that crosses the core's border: what the shell observed, what it must do.

Actions are desired states (never increments), so applying one twice is applying it once,
and a restarted operator that re-applies the last decision changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum

from glideslope.api import Phase, ReleaseStatus
from glideslope.core.analysis import Measurement
from glideslope.core.gates import GateObservation
from glideslope.core.judge import Look

RELEASE_LABEL = "glideslope.dev/release"
REVISION_LABEL = "glideslope.dev/revision"
RELEASE_SECRET_LABEL = "glideslope.dev/release-secret"
"""A Secret that a Release may use (`headersFrom`, `urlFrom`, `secretRef`) must carry this
label with the value `"true"`: its owner's consent, so that editing a Release is not reading
Secrets."""

ADOPT_ANNOTATION = "glideslope.dev/adopt"
"""On a Service, Deployment or Job that exists before the Release that would write it: the name
of the Release its owner hands it over to. Without it the operator never writes an object that
is not the Release's own."""

PROMOTE = "glideslope.dev/promote"
ABORT = "glideslope.dev/abort"
RETRY = "glideslope.dev/retry"
UNDO = "glideslope.dev/undo"
APPROVE = "glideslope.dev/approve"
APPROVED_BY = "glideslope.dev/approved-by"
"""Who approved; read with APPROVE and consumed with it."""
PAUSE = "glideslope.dev/pause"
RESUME = "glideslope.dev/resume"
RESTART = "glideslope.dev/restart"
COMMANDS = (ABORT, UNDO, RETRY, APPROVE, PAUSE, RESUME, PROMOTE, RESTART)
"""Command annotations this engine consumes, in the order they are obeyed."""
COMMAND_EFFECTS: dict[str, str] = {
    ABORT: "Rolls back to the stable revision now, if a rollout is under way; the value is the reason, kept in"
           " `status.history` and the `Aborted` Event.",
    UNDO: "During a rollout, the same as abort. Otherwise goes back to a previous revision that succeeded and is"
          " still kept (the value names it; empty: the last one): it becomes stable again, and traffic moves"
          " once it is Ready.",
    RETRY: "After a rollback or a failure, rolls the current spec out again from step 1, with its gates checked"
           " again (approvals already given stand).",
    APPROVE: "Passes the approval gate the value names, for the current revision only, recorded in"
             " `status.gates[]` with who (`glideslope.dev/approved-by`) and when.",
    APPROVED_BY: "Who approves: the approver's user name as the API server knows it; set, read and removed with"
                 " `glideslope.dev/approve`.",
    PAUSE: "Holds the rollout under way where it is (phase `Paused`); the value is the reason, kept in"
           " `status.pausedBy`. `spec.paused` is the declarative twin.",
    RESUME: "Lifts a pause given with `glideslope.dev/pause` (not `spec.paused`, which only the spec lifts).",
    PROMOTE: "`step`: the current step ends now and the next one starts, without waiting for the triggers to pass"
             " (a trigger that rolls back still does); `full`: straight to full promotion. In the validation"
             " window, either ends the window (postDeploy gates still run).",
    RESTART: "Replaces the pods of every revision that has some (the stable one; during a rollout the candidate"
             " too) with new pods of the same revision, as `kubectl rollout restart` does: a new pod is Ready"
             " before an old one goes, so serving capacity never drops, and the rollout, its step and its"
             " traffic go on as they were. The value (`kubectl release restart` sets the time) is set on their"
             " pod template as `glideslope.dev/restartedAt`; the same value again restarts nothing.",
}
"""What each command annotation makes the operator do: the one statement of it, rendered into
docs/api.md (`core.decide.commands` implements it). A command that does not apply is consumed
all the same, with a `CommandIgnored` Event saying why."""


@dataclass(frozen=True)
class RevisionState:
    """One revision's Deployment as observed."""

    replicas: int
    """`spec.replicas` of its Deployment."""
    ready: int = 0
    """Pods that are Ready and not terminating."""
    pods: int = 0
    """Pods that still exist, terminating ones included."""


@dataclass(frozen=True)
class TrafficSample:
    """The request rates of the candidate and the stable revision, as measured at `at`
    (`trafficRouting.verify`); a rate is None when its query failed (`error` says why)."""

    candidate: float | None
    stable: float | None
    at: datetime
    error: str | None = None
    baseline: float = 0.0
    """The judge's baseline pods' rate (their own revision label): a share of the whole too."""


@dataclass(frozen=True)
class Observation:
    """What the shell saw of the cluster for one Release."""

    generation: int
    revisions: Mapping[str, RevisionState] = field(default_factory=dict)
    commands: Mapping[str, str] = field(default_factory=dict)
    """Command annotations present on the Release (`glideslope.dev/promote: step`, ...)."""
    measurements: Mapping[str, tuple[str, Measurement]] = field(default_factory=dict)
    """Trigger name -> (the resolved query, its measurement), for the triggers that were due
    this tick (`core.triggers.due_measurements`)."""
    gates: Mapping[str, GateObservation] = field(default_factory=dict)
    """Gate name -> what the shell found for the gates that were due (`checklist.due`)."""
    judge: Look | None = None
    """The judge's samples for the look that was due (`core.judge.ask`), once they came back."""
    baselines: Mapping[str, RevisionState] = field(default_factory=dict)
    """The judge's baseline Deployments (`<release>-<revision>-baseline`), by the revision they run."""
    zones: Mapping[str, tzinfo] = field(default_factory=dict)
    """The time zones the window gates name (the shell reads the zone database)."""
    traffic: TrafficSample | None = None
    """The candidate's and the stable revision's request rates, when a measurement came back
    this tick (`trafficRouting.verify`)."""
    name: str = ""
    """The Release's name and namespace, for messages and a release gate's default namespace."""
    namespace: str = ""

    def ready(self, revision: str | None) -> int:
        state = self.revisions.get(revision or "")
        return state.ready if state else 0

    def pods(self, revision: str | None) -> int:
        state = self.revisions.get(revision or "")
        return state.pods if state else 0

    def replicas(self, revision: str | None) -> int:
        state = self.revisions.get(revision or "")
        return state.replicas if state else 0


class StepKind(StrEnum):
    """What a step of a plan does."""

    SET_WEIGHT = "setWeight"
    PAUSE = "pause"
    ANALYSIS = "analysis"
    PROMOTE = "promote"
    PREVIEW = "preview"
    SWITCH = "switch"
    SCALE_DOWN_DELAY = "scaleDownDelay"
    BATCH = "batch"
    REPLACE = "replace"
    HEADER_ROUTE = "setHeaderRoute"
    MIRROR_ROUTE = "setMirrorRoute"


@dataclass(frozen=True)
class Step:
    """One unit of a strategy's plan."""

    kind: StepKind
    weight: int | None = None
    seconds: float | None = None
    """Pause, analysis and delay length; None on a pause means: until promoted."""
    replicas: int | None = None
    """Rolling: candidate pods once this batch is done."""
    route: HeaderRoute | MirrorRoute | None = None
    """Canary: the route a setHeaderRoute or setMirrorRoute step sets (or removes)."""

    def describe(self) -> str:
        if self.kind is StepKind.SET_WEIGHT:
            return f"setWeight {self.weight}"
        if self.route is not None:
            return f"{self.kind.value} {self.route.name}"
        if self.kind is StepKind.BATCH:
            return f"batch to {self.replicas} pods"
        if self.seconds is not None:
            return f"{self.kind.value} {self.seconds:g}s"
        return self.kind.value


def routes_at(steps: tuple[Step, ...], index: int) -> Routes:
    """The routes in force while step `index` runs: each setHeaderRoute or setMirrorRoute at or
    before it, the last of a name winning (an empty one removes it). Full promotion (and any
    step after it) has none: the candidate takes everything by weight."""
    if not 0 <= index < len(steps) or any(s.kind is StepKind.PROMOTE for s in steps[: index + 1]):
        return Routes()
    headers: dict[str, HeaderRoute] = {}
    mirrors: dict[str, MirrorRoute] = {}
    for step in steps[: index + 1]:
        if isinstance(step.route, HeaderRoute):
            headers.pop(step.route.name, None)
            if step.route.match:
                headers[step.route.name] = step.route
        elif isinstance(step.route, MirrorRoute):
            mirrors.pop(step.route.name, None)
            if step.route.percentage > 0:
                mirrors[step.route.name] = step.route
    return Routes(tuple(headers.values()), tuple(mirrors.values()))


@dataclass(frozen=True)
class View:
    """What a strategy needs to compute the target of one step."""

    stable: str
    candidate: str
    observed: Observation
    weight: int
    """The weight applied so far (status.weight)."""
    elapsed: float
    """Seconds since the current step started."""
    started: datetime | None = None
    """When the current step started."""

    def until(self, seconds: float) -> str:
        """When the current step ends if it lasts `seconds` (see `until`)."""
        return until(self.started, seconds) if self.started is not None else f"{seconds:g}s"


def until(started: datetime, seconds: float) -> str:
    """When something that started at `started` and lasts `seconds` ends, as text that stays
    the same from tick to tick: a countdown would change the status, an API write, every tick."""
    return f"until {(started + timedelta(seconds=seconds)).astimezone(UTC):%H:%M:%S}Z"


@dataclass(frozen=True)
class HeaderCondition:
    """A header a request must carry: `kind` is exact, prefix or regex."""

    name: str
    kind: str
    value: str


@dataclass(frozen=True)
class HeaderRoute:
    """Requests carrying every header of `match` go to the candidate; no match: removed."""

    name: str
    match: tuple[HeaderCondition, ...] = ()


@dataclass(frozen=True)
class MirrorRoute:
    """`percentage` percent of requests are copied to the candidate; 0: removed."""

    name: str
    percentage: int = 0


@dataclass(frozen=True)
class Routes:
    """The named routes to the candidate beside the weight, in the order last set."""

    headers: tuple[HeaderRoute, ...] = ()
    mirrors: tuple[MirrorRoute, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.headers or self.mirrors)


@dataclass(frozen=True, kw_only=True)
class Target:
    """The desired state while a step runs, and whether the step is done. Keyword arguments only:
    four of its fields are numbers or None, and `Target(3, 1, None, 0, ...)` says nothing."""

    stable_replicas: int
    candidate_replicas: int
    active: str | None
    """The revision the stable Service selects; None selects every revision of the Release."""
    weight: int
    """Percent of traffic on the candidate (applied to routers when the strategy routes)."""
    done: bool
    message: str
    phase: Phase = Phase.PROGRESSING
    routes: Routes = field(default_factory=Routes)
    """Header and mirror routes to the candidate (applied to routers when the strategy routes)."""


# Actions -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScaleRevision:
    """The revision's Deployment has exactly this many replicas (created if it is the candidate)."""

    revision: str
    replicas: int


@dataclass(frozen=True)
class SetTraffic:
    """Services and router: the stable Service selects `active` (None: every revision), the preview
    Service selects `preview`, and a router sends `weight` percent to the preview Service, and
    the requests `routes` name (header matches, mirrors) to it as well. `baseline`: the judge's
    baseline Service exists (selecting the baseline's pods of `active`) and the router sends it
    that percent; None: there is none, and no route names it."""

    active: str | None
    preview: str
    weight: int
    routes: Routes = field(default_factory=Routes)
    baseline: int | None = None


def stable_weight(weight: int, baseline: int | None) -> int:
    """The stable Service's percent on a route: what the candidate and the baseline leave."""
    return max(100 - weight - (baseline or 0), 0)


@dataclass(frozen=True)
class RestartRevision:
    """New pods for the revision's Deployment, one by one: its pod template gets `RESTARTED_AT`."""

    revision: str
    token: str
    """The value of `RESTARTED_AT`: the same token twice is one restart."""


RESTARTED_AT = "glideslope.dev/restartedAt"


@dataclass(frozen=True)
class ScaleBaseline:
    """The judge's baseline Deployment of `revision` has exactly this many replicas (created if
    missing); 0: it is deleted."""

    revision: str
    replicas: int


@dataclass(frozen=True)
class DeleteRevision:
    """The revision's Deployment is gone (beyond the revision history limit)."""

    revision: str


class Reason(StrEnum):
    """Every reason of an Event the core announces: the one spelling of each, for the Events,
    the notifications (`NotificationEvent` names those people subscribe to, a subset), the
    closing record and the CLI."""

    GATED = "Gated"
    GATE_WAITING = "GateWaiting"
    GATE_PASSED = "GatePassed"
    GATE_FAILED = "GateFailed"
    STARTED = "Started"
    PAUSED = "Paused"
    RESUMED = "Resumed"
    PROMOTED = "Promoted"
    VALIDATING = "Validating"
    SUCCEEDED = "Succeeded"
    TRIGGER_FAILED = "TriggerFailed"
    ANALYSIS_INCONCLUSIVE = "AnalysisInconclusive"
    JUDGE_FAILED = "JudgeFailed"
    JUDGE_MARGINAL = "JudgeMarginal"
    ROLLING_BACK = "RollingBack"
    ROLLED_BACK = "RolledBack"
    FAILED = "Failed"
    ABORTED = "Aborted"
    UNDO = "Undo"
    RETRIED = "Retried"
    RESTARTED = "Restarted"
    SUPERSEDED = "Superseded"
    COMMAND_IGNORED = "CommandIgnored"
    TRAFFIC_NOT_CONVERGED = "TrafficNotConverged"


@dataclass(frozen=True)
class Announce:
    """A Kubernetes Event on the Release."""

    reason: Reason
    message: str
    warning: bool = False
    trigger: str | None = None
    """The trigger the Event is about, when one is (a notification shows its value and query)."""


Action = ScaleRevision | SetTraffic | DeleteRevision | RestartRevision | ScaleBaseline | Announce


@dataclass(frozen=True)
class Decision:
    """The outcome of `decide`: actions in the order to apply them, and the new status."""

    actions: tuple[Action, ...]
    status: ReleaseStatus
    consumed: tuple[str, ...] = ()
    """Command annotations to remove."""
