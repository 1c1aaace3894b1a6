"""`Release.spec`: the desired revision and how it must reach production.

Schema keywords (bounds, patterns, enums) live on the fields, CEL rules on the models; the
CRD is generated from these classes, so they are the one source of validation. CEL cannot
see fields without `maxLength`/`maxItems` cheaply, hence the bounds on everything a rule reads.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from glideslope.api.base import ApiModel, cel, rules
from glideslope.api.judge import JudgeSpec
from glideslope.api.types import (
    DNS_SUBDOMAIN_PATTERN,
    DURATION_PATTERN,
    CelCondition,
    ClockTime,
    Duration,
    GateStage,
    HttpUrl,
    IntOrPercent,
    JobRestartPolicy,
    LabelValue,
    Name,
    NamespaceName,
    NotificationEvent,
    ObjectName,
    OnNoData,
    Query,
    ScaleDown,
    ServiceName,
    ServiceProtocol,
    Severity,
    StrategyType,
    TemplateKind,
    Timestamp,
    WebhookFormat,
    Weekday,
)

MAX_STEPS = 64
MAX_GATES = 32
MAX_TRIGGERS = 32
MAX_NOTIFICATIONS = 16
MAX_FREEZES = 32
MAX_PORTS = 32
MAX_LABELS = 64
ARG_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"
"""An analysis template's arg name, as `{{args.NAME}}` writes it."""

# ---------------------------------------------------------------------------------------------
# Pod templates: only what validation needs is declared; the rest is kept as written.


class PodTemplateMetadata(ApiModel):
    """Labels and annotations of the pods; other metadata fields are kept as written."""

    model_config = ConfigDict(extra="allow")

    labels: dict[str, LabelValue] | None = Field(default=None, max_length=128)
    """Pod labels; they must include `spec.selector.matchLabels`."""
    annotations: dict[str, str] | None = None
    """Pod annotations."""


class Container(ApiModel):
    """A container (core/v1 Container); fields other than name and image are kept as written."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=63)
    """The container's name, unique within the pod."""
    image: str = Field(min_length=1)
    """The container image (the revision changes with it)."""


class PodSpec(ApiModel):
    """A core/v1 PodSpec; fields other than containers are kept as written."""

    model_config = ConfigDict(extra="allow")

    containers: list[Container] = Field(min_length=1)
    """The pod's containers, as core/v1 writes them; at least one."""


class PodTemplateSpec(ApiModel):
    """A core/v1 PodTemplateSpec."""

    metadata: PodTemplateMetadata = Field(default_factory=PodTemplateMetadata)
    spec: PodSpec


class JobPodSpec(PodSpec):
    """The PodSpec of a gate's Job."""

    restart_policy: JobRestartPolicy = JobRestartPolicy.NEVER


class JobPodTemplateSpec(ApiModel):
    """The pod template of a gate's Job."""

    metadata: PodTemplateMetadata | None = None
    spec: JobPodSpec


class LabelSelector(ApiModel):
    """Selects the Release's pods. Only `matchLabels` is supported."""

    match_labels: dict[str, LabelValue] = Field(min_length=1, max_length=MAX_LABELS)
    """Labels every pod of the Release carries; a subset of `spec.template.metadata.labels`."""


class WorkloadRef(ApiModel):
    """An existing Deployment the Release adopts: its pod template is the candidate."""

    api_version: Literal["apps/v1"]
    """`apps/v1`."""
    kind: Literal["Deployment"]
    """`Deployment`: the only kind a Release adopts (the API server refuses another)."""
    name: ObjectName = Field(json_schema_extra=rules(
        cel("self == oldSelf", "spec.workloadRef.name is immutable: delete the Release to give its Deployment "
            "back, then adopt another")))
    """The Deployment, in the Release's namespace. A change of its pod template starts a
    rollout; the operator writes only its `replicas` (and an annotation recording what it
    found there), never its template."""
    scale_down: ScaleDown = ScaleDown.PROGRESSIVELY
    """`progressively`: scale the Deployment down as the Release's first revision becomes Ready,
    so serving capacity never drops; `onsuccess`: scale it to 0 when the first rollout
    succeeds; `never`: leave it alone. Deleting the Release gives it back at the size found."""


# ---------------------------------------------------------------------------------------------
# Services


TargetPort = Annotated[int, Field(ge=1, le=65535)] | Annotated[
    str, Field(max_length=15, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]


class ServicePort(ApiModel):
    """A port of the Services the operator owns."""

    name: Name | None = None
    """Required when there is more than one port."""
    port: int = Field(ge=1, le=65535)
    """The port the Services expose."""
    target_port: TargetPort | None = None
    """A container port number or name; default: `port`."""
    protocol: ServiceProtocol = ServiceProtocol.TCP
    app_protocol: str | None = Field(default=None, max_length=256)
    """The port's application protocol (`appProtocol`, such as `http` or `kubernetes.io/h2c`)."""


class ServiceSpec(ApiModel):
    """Services the operator owns and points at the right revision."""

    model_config = ConfigDict(json_schema_extra=rules(
        cel("!has(self.name) || !has(self.previewName) || self.name != self.previewName",
            "spec.service.previewName must differ from spec.service.name", field_path=".previewName"),
        cel("!has(self.name) || has(self.previewName) || self.name.size() <= 55",
            "spec.service.previewName is required when spec.service.name is longer than 55 characters: "
            "the default <name>-preview would be longer than 63", field_path=".name", reason="FieldValueRequired"),
    ))

    name: ServiceName | None = None
    """The stable (active) Service; default: the Release's name."""
    preview_name: ServiceName | None = None
    """The preview (BlueGreen) or canary Service; default: `<name>-preview`."""
    ports: list[ServicePort] = Field(min_length=1, max_length=MAX_PORTS, json_schema_extra=rules(
        cel("self.size() <= 1 || self.all(p, has(p.name))",
            "spec.service.ports[].name is required when there is more than one port"),
        cel("self.all(p, !has(p.name) || self.exists_one(q, has(q.name) && q.name == p.name))",
            "spec.service.ports[].name must be unique", reason="FieldValueDuplicate"),
        x_kubernetes_list_type="map",
        x_kubernetes_list_map_keys=["port", "protocol"],
    ))
    """The ports of the stable and preview Services."""


# ---------------------------------------------------------------------------------------------
# Strategies


class PauseStep(ApiModel):
    """Hold the current weight."""

    duration: Duration | None = None
    """How long; absent: until `kubectl release promote`."""


class AnalysisStep(ApiModel):
    """Hold the current weight while the triggers of `spec.analysis` are evaluated."""

    duration: Duration
    """How long to analyse before the next step."""


MAX_HEADER_MATCHES = 8
MAX_HEADER_VALUE = 256
"""A header value, prefix or regex: regexes are compiled by the proxy on every route update, so
their length is bounded like every other string a tenant writes."""
MAX_ISTIO_ROUTES = 16
# An HTTP field name (an RFC 9110 token, without the characters no proxy accepts in a name).
HTTP_HEADER_NAME_PATTERN = r"^[A-Za-z0-9][-_A-Za-z0-9]*$"


class HeaderValueMatch(ApiModel):
    """How a header's value matches: exactly one of `exact`, `prefix`, `regex`."""

    model_config = ConfigDict(json_schema_extra=rules(
        cel("(has(self.exact) ? 1 : 0) + (has(self.prefix) ? 1 : 0) + (has(self.regex) ? 1 : 0) == 1",
            "spec.strategy.canary.steps[].setHeaderRoute.match[].headerValue must set exactly one of "
            "exact, prefix, regex"),
    ))

    exact: str | None = Field(default=None, max_length=MAX_HEADER_VALUE)
    """The value, exactly."""
    prefix: str | None = Field(default=None, min_length=1, max_length=MAX_HEADER_VALUE)
    """A prefix of the value."""
    regex: str | None = Field(default=None, min_length=1, max_length=MAX_HEADER_VALUE)
    """An RE2 regular expression the whole value matches."""


class HeaderMatch(ApiModel):
    """One header a request must carry."""

    header_name: str = Field(min_length=1, max_length=128, pattern=HTTP_HEADER_NAME_PATTERN)
    """The header's name (case-insensitive on the wire)."""
    header_value: HeaderValueMatch
    """How its value matches."""


class HeaderRouteStep(ApiModel):
    """Send requests matching every header of `match` to the candidate, whatever the weight."""

    name: Name
    """The route's name; a later step with the same name replaces it."""
    match: list[HeaderMatch] | None = Field(default=None, max_length=MAX_HEADER_MATCHES)
    """All must match; absent or empty: the route of that name is removed."""


class MirrorRouteStep(ApiModel):
    """Copy a share of requests to the candidate; its answers are thrown away."""

    name: Name
    """The route's name; a later step with the same name replaces it."""
    percentage: int | None = Field(default=None, ge=0, le=100)
    """Percent of requests mirrored; absent or 0: the route of that name is removed."""


_STEP_KEYS = ("setWeight", "pause", "analysis", "setHeaderRoute", "setMirrorRoute")


class CanaryStep(ApiModel):
    """One step of a canary plan: exactly one of `setWeight`, `pause`, `analysis`,
    `setHeaderRoute`, `setMirrorRoute`."""

    model_config = ConfigDict(json_schema_extra=rules(
        cel(" + ".join(f"(has(self.{k}) ? 1 : 0)" for k in _STEP_KEYS) + " == 1",
            "spec.strategy.canary.steps[]: a step must have exactly one of " + ", ".join(_STEP_KEYS)),
    ))

    set_weight: int | None = Field(default=None, ge=0, le=100)
    """Percent of traffic (or of replicas, without traffic routing) sent to the candidate."""
    pause: PauseStep | None = None
    analysis: AnalysisStep | None = None
    set_header_route: HeaderRouteStep | None = None
    """Requests carrying these headers go to the candidate (trafficRouting gatewayAPI, istio, nginx)."""
    set_mirror_route: MirrorRouteStep | None = None
    """A share of requests is mirrored to the candidate (trafficRouting gatewayAPI, istio)."""


class GatewayAPIRouting(ApiModel):
    """Weights on the backendRefs of a Gateway API HTTPRoute."""

    http_route: ObjectName
    """The HTTPRoute, in the Release's namespace, whose rules point at the stable Service."""


class NginxRouting(ApiModel):
    """ingress-nginx canary annotations on an operator-owned copy `<ingress>-canary` of an Ingress."""

    ingress: Annotated[str, Field(min_length=1, max_length=246, pattern=DNS_SUBDOMAIN_PATTERN)]
    """The stable Ingress, in the Release's namespace; never written. (At most 246 characters:
    the copy's name adds `-canary`.)"""


class IstioRouting(ApiModel):
    """Weights on named HTTP routes of an Istio VirtualService."""

    virtual_service: ObjectName
    """The VirtualService, in the Release's namespace."""
    routes: list[Name] = Field(min_length=1, max_length=MAX_ISTIO_ROUTES,
                               json_schema_extra=rules(x_kubernetes_list_type="set"))
    """The names of its `http` routes whose destinations are the stable Service; the preview
    Service is added beside it, weighted."""


_ROUTERS = ("gatewayAPI", "nginx", "istio")
_ROUTER_COUNT = "(" + " + ".join(f"(has(self.{k}) ? 1 : 0)" for k in _ROUTERS) + ")"

DEFAULT_VERIFY_QUERY = 'sum(rate(http_requests_total{namespace="{{namespace}}",revision="{{revision}}"}[10s]))'
"""One revision's request rate, for `http_requests_total` with a `revision` label."""


class TrafficVerify(ApiModel):
    """Measure the candidate's share of requests after each weight change, before going on."""

    query: Query = DEFAULT_VERIFY_QUERY
    """PromQL giving one revision's request rate; `{{revision}}` is rendered once for the
    candidate and once for the stable revision (the other template variables of triggers too).
    With the replica ratio, narrow it to the stable Service (`service="{{service}}"`) if other
    Services select the candidate."""
    tolerance: int = Field(default=5, ge=0, le=50)
    """Percentage points the measured share may differ from the weight."""
    timeout_seconds: int = Field(default=120, ge=1, le=3600)
    """Past this long after a weight change without the share matching it, the rollout rolls
    back (reason `TrafficNotConverged`)."""


class TrafficRouting(ApiModel):
    """How traffic is split: one router; or none with `verify` (the replica ratio, measured)."""

    model_config = ConfigDict(json_schema_extra=rules(
        cel(f"{_ROUTER_COUNT} == 1 || ({_ROUTER_COUNT} == 0 && has(self.verify))",
            "spec.strategy.canary.trafficRouting must set exactly one of " + ", ".join(_ROUTERS)
            + " (or none, with verify: the replica ratio, measured)"),
    ))

    gateway_api: GatewayAPIRouting | None = Field(default=None, alias="gatewayAPI")
    nginx: NginxRouting | None = None
    istio: IstioRouting | None = None
    verify: TrafficVerify | None = None
    """Measured convergence: a step that changed the weight ends, and pods that traffic left
    go, only once the candidate's measured share of requests is within `tolerance` of it."""

    @property
    def router(self) -> bool:
        """Whether a router (not the replica ratio) splits the traffic."""
        return bool(self.gateway_api or self.nginx or self.istio)


class CanaryStrategy(ApiModel):
    """Shift traffic to the candidate step by step."""

    model_config = ConfigDict(json_schema_extra=rules(
        cel("!self.steps.exists(s, has(s.setHeaderRoute) || has(s.setMirrorRoute)) || has(self.trafficRouting)",
            "spec.strategy.canary.steps[]: setHeaderRoute and setMirrorRoute need "
            "spec.strategy.canary.trafficRouting (the replica ratio cannot route by header or mirror)",
            field_path=".steps"),
        cel("!has(self.trafficRouting) || !has(self.trafficRouting.nginx)"
            " || !self.steps.exists(s, has(s.setMirrorRoute))",
            "spec.strategy.canary.steps[].setMirrorRoute: ingress-nginx cannot mirror to a canary; "
            "use trafficRouting gatewayAPI or istio", field_path=".steps"),
    ))

    steps: list[CanaryStep] = Field(min_length=1, max_length=MAX_STEPS)
    """The plan, in order: `setWeight` (a share of traffic or replicas on the candidate), `pause`
    (for a duration, or until promoted), `analysis` (the triggers must pass for a duration),
    `setHeaderRoute` and `setMirrorRoute` (routes to the candidate beside the weight, removed at
    full promotion or on a rollback)."""
    traffic_routing: TrafficRouting | None = None
    """Absent: traffic follows the ratio of ready replicas."""


class BlueGreenStrategy(ApiModel):
    """Run the candidate (green) beside the stable (blue), then switch the active Service."""

    auto_promotion_seconds: int | None = Field(default=None, ge=0)
    """Switch this long after green is ready; absent: wait for `kubectl release promote`."""
    preview_replicas: int | None = Field(default=None, ge=0, le=2**31 - 1)
    """Replicas of green before the switch; default: `spec.replicas`."""
    scale_down_delay_seconds: int = Field(default=30, ge=0)
    """Blue is kept this long after the switch, for an instant rollback."""


class RollingStrategy(ApiModel):
    """Replace the stable revision batch by batch."""

    model_config = ConfigDict(json_schema_extra=rules(
        cel("!(has(self.maxSurge) && has(self.maxUnavailable)"
            " && (type(self.maxSurge) == int ? self.maxSurge == 0 : self.maxSurge == '0%')"
            " && (type(self.maxUnavailable) == int"
            " ? self.maxUnavailable == 0 : self.maxUnavailable == '0%'))",
            "spec.strategy.rolling: maxSurge and maxUnavailable must not both be zero",
            field_path=".maxSurge"),
    ))

    max_surge: IntOrPercent = "25%"
    """Pods above `spec.replicas` during a batch: a count or a percentage."""
    max_unavailable: IntOrPercent = 0
    """Pods below `spec.replicas` during a batch: a count or a percentage."""
    pause_between_batches: Duration | None = None
    """Wait (and analyse) this long after each batch."""


class BigBangStrategy(ApiModel):
    """Scale the stable revision to zero, then the candidate up: downtime is expected."""


_BLOCKS = {"Canary": "canary", "BlueGreen": "blueGreen", "Rolling": "rolling", "BigBang": "bigBang"}


class Strategy(ApiModel):
    """How the candidate replaces the stable revision: `type` and the one matching block."""

    model_config = ConfigDict(json_schema_extra=rules(
        cel(" + ".join(f"(has(self.{b}) ? 1 : 0)" for b in _BLOCKS.values()) + " == 1",
            "spec.strategy must set exactly one of canary, blueGreen, rolling, bigBang"),
        cel(" : ".join(f"self.type == '{t}' ? has(self.{b})" for t, b in list(_BLOCKS.items())[:-1])
            + f" : has(self.{_BLOCKS['BigBang']})",
            "spec.strategy: the block named by spec.strategy.type (canary, blueGreen, rolling, bigBang)"
            " must be set",
            message_expression="'spec.strategy.' + " + "{" + ", ".join(
                f"'{t}': '{b}'" for t, b in _BLOCKS.items()) + "}[self.type]"
            + " + ' must be set when spec.strategy.type is ' + self.type",
            reason="FieldValueRequired"),
    ))

    type: StrategyType
    """The strategy; its block (`canary`, `blueGreen`, `rolling` or `bigBang`) must be set."""
    canary: CanaryStrategy | None = None
    blue_green: BlueGreenStrategy | None = None
    rolling: RollingStrategy | None = None
    big_bang: BigBangStrategy | None = None


# ---------------------------------------------------------------------------------------------
# Gates


class LocalObjectReference(ApiModel):
    """An object in the Release's namespace."""

    name: ObjectName
    """The object's name."""


MAX_APPROVERS = 32
# A Kubernetes user or group name as the API server authenticates it (such as
# `system:serviceaccount:<namespace>:<name>` or an OIDC claim): any text, bounded.
Principal = Annotated[str, Field(min_length=1, max_length=512)]


class Approvers(ApiModel):
    """Who may pass an approval gate: a user named in `users`, or a member of a group in `groups`.

    The API server enforces it, with the ValidatingAdmissionPolicy `glideslope-approvals` that
    the chart and `deploy/` install: a change that sets `glideslope.dev/approve` is refused
    unless the person making it is an approver. Without that policy only `users` can be
    checked, by the operator (against `glideslope.dev/approved-by`, and only when `groups` is
    empty)."""

    model_config = ConfigDict(json_schema_extra=rules(
        cel("has(self.users) || has(self.groups)",
            "spec.gates[].approval.approvers must set users or groups", reason="FieldValueRequired"),
    ))

    users: list[Principal] | None = Field(default=None, min_length=1, max_length=MAX_APPROVERS,
                                          json_schema_extra=rules(x_kubernetes_list_type="set"))
    """User names, exactly as the API server knows them (`kubectl auth whoami`)."""
    groups: list[Principal] | None = Field(default=None, min_length=1, max_length=MAX_APPROVERS,
                                           json_schema_extra=rules(x_kubernetes_list_type="set"))
    """Groups whose members may approve."""


class ApprovalGate(ApiModel):
    """Passed by `kubectl release approve NAME --gate GATE`: the `glideslope.dev/approve`
    annotation, with `glideslope.dev/approved-by` set to the approver's own user name (the API
    server refuses any other name when the chart's admission policy is installed)."""

    approvers: Approvers | None = None
    """Who may approve; absent: anyone allowed to annotate the Release."""


class Freeze(ApiModel):
    """A period in which the window is closed, whatever the days and hours say."""

    model_config = ConfigDict(json_schema_extra=rules(
        cel("timestamp(self.start) < timestamp(self.end)",
            "spec.gates[].window.freezes[]: start must be before end", field_path=".end"),
    ))

    start: Timestamp
    """RFC 3339, with a zone: `2026-12-20T00:00:00Z`."""
    end: Timestamp
    """RFC 3339, with a zone; after start."""
    reason: str | None = Field(default=None, max_length=256)
    """Why the freeze is on, shown while a gate waits for it to end."""


class WindowGate(ApiModel):
    """Open on the given days between start and end (local to `timezone`), outside freezes."""

    model_config = ConfigDict(json_schema_extra=rules(
        cel("has(self.start) == has(self.end)",
            "spec.gates[].window: start and end must be set together", field_path=".start"),
        cel("!has(self.start) || !has(self.end) || self.start != self.end",
            "spec.gates[].window: start and end must differ", field_path=".end"),
        cel("has(self.start) || has(self.days) || has(self.freezes)",
            "spec.gates[].window must set start and end, days, or freezes"),
    ))

    timezone: str = Field(default="UTC", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+\-/]+$")
    """An IANA time zone such as `Europe/Berlin`."""
    days: list[Weekday] | None = Field(default=None, min_length=1, max_length=7,
                                       json_schema_extra=rules(x_kubernetes_list_type="set"))
    """Open days; absent: every day."""
    start: ClockTime | None = None
    """`HH:MM`; a window may cross midnight (`22:00` to `06:00`)."""
    end: ClockTime | None = None
    """`HH:MM`, exclusive."""
    freezes: list[Freeze] | None = Field(default=None, max_length=MAX_FREEZES)
    """Periods inside the window when no rollout may start (a release freeze); each with a reason."""


class MetricGate(ApiModel):
    """A Prometheus query that must meet its condition. No data is never a pass."""

    model_config = ConfigDict(json_schema_extra=rules(
        cel("has(self.successCondition) || has(self.failureCondition)",
            "spec.gates[].metric must set successCondition or failureCondition",
            field_path=".successCondition", reason="FieldValueRequired"),
    ))

    query: Query
    """PromQL giving one number; the template variables of triggers are substituted."""
    success_condition: CelCondition | None = None
    """CEL over `result` (a double): the gate passes when it holds."""
    failure_condition: CelCondition | None = None
    """CEL over `result`: the gate fails when it holds."""
    timeout_seconds: int = Field(default=600, ge=1)
    """The gate fails if its condition has not been met by then; until then it is re-checked
    every `spec.analysis.interval`."""


class ReleaseGate(ApiModel):
    """Another Release (such as staging) must have succeeded."""

    name: ObjectName
    """The other Release's name."""
    namespace: NamespaceName | None = None
    """Default: this Release's namespace."""
    same_version: bool = False
    """The other Release must have succeeded with this Release's `spec.version`."""


class JobGate(ApiModel):
    """A Job (such as smoke tests) must complete."""

    template: JobPodTemplateSpec
    timeout_seconds: int = Field(default=600, ge=1)
    """The gate fails if the Job has not succeeded by then."""
    backoff_limit: int = Field(default=0, ge=0)
    """Retries of the Job's pod before the gate fails."""
    ttl_seconds_after_finished: int = Field(default=3600, ge=0)
    """The finished Job (and its pods' logs) is deleted this long after it ends."""


class SecretKeySelector(ApiModel):
    """A key of a Secret in the Release's namespace; the Secret must be labelled
    `glideslope.dev/release-secret: "true"` (its owner's consent to Releases using it)."""

    name: ObjectName
    """The Secret's name, in the Release's namespace."""
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")
    """The key within the Secret whose value is used."""


class ValueFrom(ApiModel):
    """Where to read a value from."""

    secret_key_ref: SecretKeySelector


_ONE_URL = "(has(self.url) ? 1 : 0) + (has(self.urlFrom) ? 1 : 0) == 1"

MAX_HEADERS = 16
# Both an HTTP field name (an RFC 9110 token) and a Secret key: letters, digits, `-`, `_`, `.`,
# beginning with a letter or digit.
HEADER_NAME_PATTERN = r"^[A-Za-z0-9][-._A-Za-z0-9]*$"


MAX_HEADER_VALUE_CHARS = 8192
"""The longest value a `headersFrom` key may hold (a JWT fits; HTTP servers commonly refuse a
header line over 8 KiB)."""


class HeadersFrom(ApiModel):
    """HTTP headers read from a Secret in the Release's namespace, each key named.

    The Secret must carry the label `glideslope.dev/release-secret: "true"`, and may not be of
    type `kubernetes.io/service-account-token`; otherwise nothing is sent (a webhook gate fails,
    a web trigger's Release is `Degraded`, reason `SecretUnreadable`)."""

    name: ObjectName
    """The Secret, in the Release's namespace."""
    keys: list[Annotated[str, Field(min_length=1, max_length=253, pattern=HEADER_NAME_PATTERN,
                                    description="A key of the Secret, sent as the header of that name.")]] = Field(
        min_length=1, max_length=MAX_HEADERS, json_schema_extra=rules(x_kubernetes_list_type="set"))
    """The keys of the Secret to send, each as the header of that name (such as `Authorization`)
    with the key's value, trimmed: one line of at most 8192 characters. A key missing from the
    Secret, or a value that is not such a line, sends nothing. Other keys are not sent."""


class WebhookGate(ApiModel):
    """An HTTP endpoint that must approve: the operator POSTs the Release as JSON; 2xx passes."""

    model_config = ConfigDict(json_schema_extra=rules(
        cel(_ONE_URL, "spec.gates[].webhook must set exactly one of url, urlFrom", field_path=".url"),
    ))

    url: HttpUrl | None = None
    """The endpoint, `http://` or `https://`, reached as the operator's egress policy allows
    (`--egress-allow`/`--egress-deny`; loopback and link-local addresses are denied by
    default). No redirect is followed, and only the answer's status code is kept."""
    url_from: ValueFrom | None = None
    """Read the URL from a Secret instead."""
    timeout_seconds: int = Field(default=10, ge=1, le=300)
    """Per attempt."""
    retries: int = Field(default=3, ge=0, le=10)
    """Further attempts, with backoff, after a connection error, a timeout or a 5xx answer."""
    headers_from: HeadersFrom | None = None
    """HTTP headers (such as `Authorization`) from the named keys of a Secret. The Secret must be
    labelled `glideslope.dev/release-secret: "true"` and not be of type
    `kubernetes.io/service-account-token`, or the gate fails and nothing is sent."""


GATE_KINDS = ("approval", "window", "metric", "release", "job", "webhook")


class Gate(ApiModel):
    """One item of the checklist: a name, a stage and exactly one kind of check."""

    model_config = ConfigDict(json_schema_extra=rules(
        cel(" + ".join(f"(has(self.{k}) ? 1 : 0)" for k in GATE_KINDS) + " == 1",
            "spec.gates[] must set exactly one of approval, window, metric, release, job, webhook"),
    ))

    name: Name
    """Unique among the gates; `kubectl release approve NAME --gate` names it."""
    stage: GateStage = GateStage.PRE_DEPLOY
    approval: ApprovalGate | None = None
    window: WindowGate | None = None
    metric: MetricGate | None = None
    release: ReleaseGate | None = None
    job: JobGate | None = None
    webhook: WebhookGate | None = None

    @property
    def kind(self) -> str:
        """Which check this gate is: `approval`, `window`, `metric`, `release`, `job` or `webhook`."""
        for kind in GATE_KINDS:
            if getattr(self, kind) is not None:
                return kind
        raise ValueError(f"gate {self.name} has no check")

# ---------------------------------------------------------------------------------------------
# Analysis, validation, rollback, notifications


class PrometheusSpec(ApiModel):
    """The Prometheus to query; default: the operator's `--prometheus-url`."""

    address: HttpUrl | None = None
    """Such as `http://prometheus.monitoring:9090`; it must start with one of the operator's
    `--prometheus-allow` prefixes (by default only its `--prometheus-url` is allowed)."""
    secret_ref: LocalObjectReference | None = None
    """A Secret with `token` (bearer) or `username`/`password` (basic auth), and `ca.crt`,
    labelled `glideslope.dev/release-secret: "true"`; never a ServiceAccount token Secret."""


MAX_WEB_HEADERS = 16
JSON_PATH_MAX_LENGTH = 256


class WebHeader(ApiModel):
    """One HTTP header sent with a web metric's GET. Plain text in the spec: put no secret here."""

    name: str = Field(min_length=1, max_length=253, pattern=HEADER_NAME_PATTERN)
    """The header's name, such as `Accept`."""
    value: str = Field(max_length=1024, pattern=r"^[^\r\n]*$")
    """The header's value, on one line."""


class WebMetric(ApiModel):
    """A number read from an HTTP endpoint answering JSON: a GET, then a JSONPath to the number."""

    url: HttpUrl
    """The endpoint, `http://` or `https://`, reached as the operator's egress policy allows
    (`--egress-allow`/`--egress-deny`; loopback and link-local addresses are denied by default).
    The query's template variables are substituted, as in `query`. No redirect is followed; the
    answer may be at most 256 KiB and must come within 3 seconds."""
    json_path: str = Field(min_length=1, max_length=JSON_PATH_MAX_LENGTH)
    """A JSONPath into the answer (such as `$.data.errorRate`) that selects exactly one number
    (or a string holding one); nothing selected, or null, is no data."""
    headers: list[WebHeader] = Field(default_factory=list, max_length=MAX_WEB_HEADERS,
                                     json_schema_extra=rules(x_kubernetes_list_type="map",
                                                             x_kubernetes_list_map_keys=["name"]))
    """HTTP headers to send, in plain text."""
    headers_from: HeadersFrom | None = None
    """HTTP headers (such as `Authorization: Bearer ...`) from the named keys of a Secret in the
    Release's namespace, also for a trigger of an AnalysisTemplate or ClusterAnalysisTemplate
    (never the template's namespace). The Secret must be labelled
    `glideslope.dev/release-secret: "true"` and not be of type
    `kubernetes.io/service-account-token`; it is read for each measurement, so a rotated token is
    used at the next one. A header it gives replaces one of `headers` of the same name (in any
    case). A Secret or key that cannot be used makes the Release `Degraded` (reason
    `SecretUnreadable`, naming the field) and the trigger is not measured until it can."""


class MetricProviderSpec(ApiModel):
    """Where a trigger's number comes from, instead of the Prometheus `query`."""

    model_config = ConfigDict(json_schema_extra=rules(
        cel("has(self.web)", "spec.analysis.triggers[].provider must set web", field_path=".web",
            reason="FieldValueRequired"),
    ))

    web: WebMetric | None = None
    """A GET answering JSON, and a JSONPath to the number."""


class Trigger(ApiModel):
    """A rollback trigger: a query, a condition and a severity."""

    model_config = ConfigDict(json_schema_extra=rules(
        cel("has(self.successCondition) || has(self.failureCondition)",
            "spec.analysis.triggers[] must set successCondition or failureCondition",
            field_path=".failureCondition", reason="FieldValueRequired"),
        cel("has(self.query) != has(self.provider)",
            "spec.analysis.triggers[] must set exactly one of query, provider", field_path=".query"),
    ))

    name: Name
    """Unique among the triggers."""
    severity: Severity = Severity.HIGH
    query: Query | None = None
    """PromQL giving one number; `{{namespace}}`, `{{release}}`, `{{service}}`, `{{version}}`,
    `{{revision}}` (the candidate), `{{stableRevision}}` and `{{stableVersion}}` are substituted
    (and, in an analysis template, `{{args.NAME}}`). Exactly one of `query` and `provider`."""
    provider: MetricProviderSpec | None = None
    """Another metric provider than Prometheus (`web`), instead of `query`."""
    success_condition: CelCondition | None = None
    """CEL over `result` (a double); a measurement fails when it does not hold."""
    failure_condition: CelCondition | None = None
    """CEL over `result`; a measurement fails when it holds."""
    failure_limit: int = Field(default=3, ge=1, le=1000)
    """Failures before a `high` trigger rolls back."""
    on_no_data: OnNoData = OnNoData.INCONCLUSIVE


MAX_TEMPLATE_REFS = 8
MAX_TEMPLATE_ARGS = 32
ARG_VALUE_MAX_LENGTH = 1024


class TemplateRef(ApiModel):
    """An analysis template used by this Release, and the values of its args."""

    name: ObjectName
    """The template's name."""
    kind: TemplateKind = TemplateKind.ANALYSIS_TEMPLATE
    """`AnalysisTemplate` (in the Release's namespace) or `ClusterAnalysisTemplate`."""
    # Key names are checked against the template's args (an unknown one is InvalidSpec): a
    # structural schema cannot bound a map's keys.
    args: dict[str, Annotated[str, Field(max_length=ARG_VALUE_MAX_LENGTH)]] = Field(
        default_factory=dict, max_length=MAX_TEMPLATE_ARGS)
    """Values of the template's args, by name; they override the template's own values. Every
    arg the template declares must have a value, here or in the template, and every name here
    must be one the template declares."""


class AnalysisSpec(ApiModel):
    """Rollback triggers, evaluated while a rollout runs and during the validation window."""

    model_config = ConfigDict(json_schema_extra=rules(
        # A malformed interval is reported by its pattern; do not also fail converting it.
        cel(f"!has(self.interval) || !self.interval.matches(r'{DURATION_PATTERN}')"
            " || duration(self.interval) >= duration('1s')",
            "spec.analysis.interval must be at least 1s", field_path=".interval"),
    ))

    interval: Duration = "30s"
    """How often each trigger is measured; at least 1s."""
    initial_delay: Duration = "0s"
    """Wait this long after a step before the first measurement."""
    prometheus: PrometheusSpec | None = None
    templates: list[TemplateRef] = Field(default_factory=list, max_length=MAX_TEMPLATE_REFS)
    """Analysis templates whose triggers are added to `triggers`, their `{{args.NAME}}`
    substituted; a trigger's name must be unique among all of them."""
    triggers: list[Trigger] = Field(default_factory=list, max_length=MAX_TRIGGERS, json_schema_extra=rules(
        x_kubernetes_list_type="map", x_kubernetes_list_map_keys=["name"]))
    """Rollback triggers: Prometheus queries judged by CEL conditions, each with a severity that
    says what a failure does (critical: roll back at once; high: after `failureLimit`; medium:
    pause for a person; low: record). Measured during the rollout and the validation window."""
    judge: JudgeSpec | None = None
    """The statistical judge: the candidate against a baseline, metric by metric (Mann-Whitney U),
    at every look of the rollout and the validation window, with alpha spending over the looks."""


class ValidationSpec(ApiModel):
    """The time after full promotion during which triggers still roll back."""

    window_seconds: int = Field(default=0, ge=0)
    """The previous revision is kept, scaled down, until the window ends."""


class RollbackSpec(ApiModel):
    """What a failing trigger does to a rollout."""

    automatic: bool = True
    """false: pause (freeze) instead of rolling back."""


NOTIFICATION_TEMPLATE_MAX_LENGTH = 8192
"""Characters of `spec.notifications[].webhook.template`."""
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
"""Where a `pagerduty` notification goes when it names no URL."""

_PAGERDUTY = "has(self.format) && self.format == 'pagerduty'"


class NotificationWebhook(ApiModel):
    """Where notifications are POSTed, and in which shape."""

    model_config = ConfigDict(json_schema_extra=rules(
        cel(f"({_PAGERDUTY}) ? (has(self.url) ? 1 : 0) + (has(self.urlFrom) ? 1 : 0) <= 1 : ({_ONE_URL})",
            "spec.notifications[].webhook must set exactly one of url, urlFrom (format pagerduty: at most one)",
            field_path=".url"),
        cel(f"!({_PAGERDUTY}) || has(self.routingKeyFrom)",
            "spec.notifications[].webhook.routingKeyFrom is required when format is pagerduty",
            field_path=".routingKeyFrom", reason="FieldValueRequired"),
        cel(f"({_PAGERDUTY}) || !has(self.routingKeyFrom)",
            "spec.notifications[].webhook.routingKeyFrom is only for format pagerduty",
            field_path=".routingKeyFrom"),
        cel(f"!({_PAGERDUTY}) || !has(self.template)",
            "spec.notifications[].webhook.template cannot be used with format pagerduty (the body carries"
            " the routing key and the trigger/resolve lifecycle)",
            field_path=".template"),
    ))

    url: HttpUrl | None = None
    """The endpoint, `http://` or `https://`, reached as the operator's egress policy allows
    (`--egress-allow`/`--egress-deny`; loopback and link-local addresses are denied by
    default). No redirect is followed, and only the answer's status code is kept. With format
    `pagerduty`, absent means PagerDuty's `https://events.pagerduty.com/v2/enqueue`."""
    url_from: ValueFrom | None = None
    """Read the URL from a Secret (a Slack webhook URL is a credential)."""
    format: WebhookFormat = WebhookFormat.JSON
    """The body: `json` (the schema in the README), `slack`, `teams` (an Adaptive Card),
    `discord` (an embed), `googlechat` (text and a card) or `pagerduty` (Events API v2: RolledBack
    and Failed trigger an incident whose severity follows the trigger's, critical, high, medium,
    low as critical, error, warning, info, error when no trigger is involved; Succeeded resolves
    it; one incident per Release and revision; every other event is not sent to PagerDuty)."""
    routing_key_from: ValueFrom | None = None
    """The PagerDuty integration's routing key, read from a Secret; required with format
    `pagerduty`, and only allowed with it."""
    template: str | None = Field(default=None, min_length=1, max_length=NOTIFICATION_TEMPLATE_MAX_LENGTH)
    """A Jinja2 template of the body, replacing the format's (not with `pagerduty`). It sees the
    event's fields: `event`, `release`, `namespace`, `version`, `revision`, `at` (RFC 3339),
    `stable_version`, `stable_revision`, `phase`, `strategy`, `step`, `total_steps`, `weight`,
    `message`, `reason`, `trigger_name`, `trigger_severity`, `trigger_value`, `trigger_query`,
    `release_notes`, `summary`. Output that parses as JSON is sent as `application/json`, other
    output as `text/plain`. It runs in a sandbox, bounded: no attribute starting with `_`,
    `range` and widths up to 10000, 50000 steps (loop iterations, calls, filters), values up to
    65536 characters, output up to 32768; a template over a bound fails that one notification
    (a `NotificationFailed` Event says why), one that does not compile makes the Release
    `Degraded` (`InvalidSpec`)."""


class Notification(ApiModel):
    """A channel that hears about the Release's events."""

    name: Name
    """Unique among the notifications."""
    webhook: NotificationWebhook
    events: list[NotificationEvent] | None = Field(
        default=None, min_length=1, max_length=len(NotificationEvent),
        json_schema_extra=rules(x_kubernetes_list_type="set"))
    """Which events to send; absent: all."""


# ---------------------------------------------------------------------------------------------
# The spec


class ReleaseSpec(ApiModel):
    """The desired revision of an application and how it must reach production."""

    model_config = ConfigDict(json_schema_extra=rules(
        cel("has(self.template) != has(self.workloadRef)",
            "spec.template: exactly one of spec.template and spec.workloadRef must be set", field_path=".template"),
        cel("!has(self.template) || self.selector.matchLabels.all(k, has(self.template.metadata)"
            " && has(self.template.metadata.labels) && k in self.template.metadata.labels"
            " && self.template.metadata.labels[k] == self.selector.matchLabels[k])",
            "spec.selector.matchLabels must be a subset of spec.template.metadata.labels",
            field_path=".selector.matchLabels"),
        cel("self.strategy.type != 'BlueGreen' || has(self.service)",
            "spec.service is required when spec.strategy.type is BlueGreen: the operator switches"
            " the active Service", field_path=".service", reason="FieldValueRequired"),
        cel("!has(self.strategy.canary) || !has(self.strategy.canary.trafficRouting) || has(self.service)",
            "spec.service is required when spec.strategy.canary.trafficRouting is set",
            field_path=".service", reason="FieldValueRequired"),
        cel("!has(self.analysis) || !has(self.analysis.judge) || !has(self.analysis.judge.baseline)"
            " || !self.analysis.judge.baseline || self.strategy.type == 'Canary'",
            "spec.analysis.judge.baseline is only for spec.strategy.type Canary (other strategies are judged"
            " against the stable revision's own pods)", field_path=".analysis.judge.baseline"),
        cel("!has(self.analysis) || !has(self.analysis.judge) || !has(self.analysis.judge.baseline)"
            " || !self.analysis.judge.baseline || !has(self.strategy.canary)"
            " || !has(self.strategy.canary.trafficRouting) || !has(self.strategy.canary.trafficRouting.nginx)",
            "spec.analysis.judge.baseline is not supported by trafficRouting.nginx: ingress-nginx has one canary"
            " per host and path, no third backend for the baseline", field_path=".analysis.judge.baseline"),
    ))

    version: str = Field(min_length=1, max_length=128)
    """A human label of this revision, shown in status, columns and notes."""
    replicas: int = Field(default=1, ge=0, le=2**31 - 1)
    """Desired pods; the scale subresource serves it, so an HPA may target a Release."""
    selector: LabelSelector = Field(json_schema_extra=rules(
        cel("self == oldSelf", "spec.selector is immutable")))
    """Immutable once set."""
    template: PodTemplateSpec | None = None
    """The pods; a change starts a new rollout. Exactly one of `template` and `workloadRef`."""
    workload_ref: WorkloadRef | None = None
    """Adopt an existing Deployment instead of `template`: its pod template is the candidate."""
    service: ServiceSpec | None = None
    """Services the operator owns; absent: none."""
    paused: bool = False
    """A declarative pause (for GitOps): no step is taken while true."""
    strategy: Strategy
    gates: list[Gate] = Field(default_factory=list, max_length=MAX_GATES, json_schema_extra=rules(
        x_kubernetes_list_type="map", x_kubernetes_list_map_keys=["name"]))
    """The pre-deployment checklist and its later stages."""
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    rollback: RollbackSpec = Field(default_factory=RollbackSpec, json_schema_extra={"default": {}})
    notifications: list[Notification] = Field(
        default_factory=list, max_length=MAX_NOTIFICATIONS,
        json_schema_extra=rules(x_kubernetes_list_type="map", x_kubernetes_list_map_keys=["name"]))
    """Who is told what happens (JSON webhooks, Slack, Teams, Discord, Google Chat, PagerDuty),
    and which events each receiver wants."""
    release_notes: str | None = Field(default=None, max_length=32768)
    """Markdown, shown by `kubectl release notes` and sent with notifications."""
