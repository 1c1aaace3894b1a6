"""Enumerations and constrained scalar types shared by the spec and status models."""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, Field

from glideslope.api.base import cel, rules

# ---------------------------------------------------------------------------------------------
# Enumerations. Values are the wire strings; StrEnum members compare equal to them.


class StrategyType(StrEnum):
    """How the candidate replaces the stable revision."""

    BLUE_GREEN = "BlueGreen"
    CANARY = "Canary"
    ROLLING = "Rolling"
    BIG_BANG = "BigBang"


class ScaleDown(StrEnum):
    """What happens to a Deployment a Release adopts (`spec.workloadRef.scaleDown`)."""

    PROGRESSIVELY = "progressively"
    ON_SUCCESS = "onsuccess"
    NEVER = "never"


class GateStage(StrEnum):
    """When a gate is checked: `preDeploy` before anything changes, `prePromotion` before full
    promotion, `postDeploy` after it."""

    PRE_DEPLOY = "preDeploy"
    PRE_PROMOTION = "prePromotion"
    POST_DEPLOY = "postDeploy"


class GateState(StrEnum):
    """The state of a gate in the current rollout."""

    PENDING = "Pending"
    PASSED = "Passed"
    FAILED = "Failed"
    # Not run in this rollout: a first rollout has no prePromotion or postDeploy stage.
    SKIPPED = "Skipped"


class Severity(StrEnum):
    """What a failed trigger does: critical rolls back at the first failure, high after
    failureLimit failures, medium pauses and notifies, low records and notifies."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


SEVERITY_EFFECTS: dict[Severity, str] = {
    Severity.CRITICAL: "Rolls back at its first failed measurement, in the rollout and in the validation window.",
    Severity.HIGH: "Rolls back once `failureLimit` measurements have failed in the current rollout (a total, not a"
                   " streak); below that, a failure holds the rollout: its step, or the end of the validation"
                   " window, waits for a passing measurement.",
    Severity.MEDIUM: "Pauses the rollout for a person to promote or abort; in the validation window it only"
                     " notifies.",
    Severity.LOW: "Records and notifies only (the `TriggerFailed` Event every failed measurement gets); the"
                  " rollout goes on.",
}
"""What a failed trigger does, by severity: the one statement of it, rendered into docs/api.md
(`core.analysis.verdict` implements it). With `rollback.automatic: false` a rollback becomes a
pause. No data or an error is never a pass: it holds the rollout whatever the severity, and
`INCONCLUSIVE_LIMIT` of them pause it."""


class OnNoData(StrEnum):
    """What an empty result or NaN counts as; never a pass."""

    INCONCLUSIVE = "Inconclusive"
    FAIL = "Fail"


class WebhookFormat(StrEnum):
    """The body of a notification: plain JSON, or the message shape of a chat service or of
    PagerDuty's Events API v2 (which hears only RolledBack, Failed and Succeeded)."""

    SLACK = "slack"
    JSON = "json"
    TEAMS = "teams"
    DISCORD = "discord"
    GOOGLE_CHAT = "googlechat"
    PAGERDUTY = "pagerduty"


class TemplateKind(StrEnum):
    """Which kind of analysis template a Release names: one in its own namespace, or one of
    the cluster's, which a platform team shares with every namespace."""

    ANALYSIS_TEMPLATE = "AnalysisTemplate"
    CLUSTER_ANALYSIS_TEMPLATE = "ClusterAnalysisTemplate"


class Weekday(StrEnum):
    """A day of the week."""

    MON = "Mon"
    TUE = "Tue"
    WED = "Wed"
    THU = "Thu"
    FRI = "Fri"
    SAT = "Sat"
    SUN = "Sun"

    @property
    def number(self) -> int:
        """Monday is 0, as `datetime.weekday()` counts."""
        return list(Weekday).index(self)


class NotificationEvent(StrEnum):
    """An event of a Release that notifications may be sent for."""

    GATED = "Gated"
    STARTED = "Started"
    PAUSED = "Paused"
    PROMOTED = "Promoted"
    VALIDATING = "Validating"
    SUCCEEDED = "Succeeded"
    ROLLING_BACK = "RollingBack"
    ROLLED_BACK = "RolledBack"
    FAILED = "Failed"
    TRIGGER_FAILED = "TriggerFailed"


class Phase(StrEnum):
    """Where the Release is in its lifecycle."""

    PENDING = "Pending"
    GATED = "Gated"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    VALIDATING = "Validating"
    SUCCEEDED = "Succeeded"
    ROLLING_BACK = "RollingBack"
    ROLLED_BACK = "RolledBack"
    FAILED = "Failed"


# The groups of phases, named once (a phase is a str, so a plain string's membership works too).
FINAL_PHASES = frozenset({Phase.SUCCEEDED, Phase.ROLLED_BACK, Phase.FAILED})
"""The rollout has ended: nothing moves until the spec changes or a person gives a command."""
UNDER_WAY_PHASES = frozenset(Phase) - FINAL_PHASES
"""A rollout, or its rollback, is under way."""
ROLLING_OUT_PHASES = UNDER_WAY_PHASES - {Phase.ROLLING_BACK}
"""A rollout is under way, forward: what a new spec supersedes and an abort stops."""
STEPPING_PHASES = frozenset({Phase.PROGRESSING, Phase.PAUSED})
"""The rollout is taking its steps."""
GOING_BACK_PHASES = frozenset({Phase.ROLLING_BACK, Phase.ROLLED_BACK, Phase.FAILED})
"""The rollout failed, or is being undone."""


class AnalysisState(StrEnum):
    """The verdict of a trigger's latest measurement."""

    PENDING = "Pending"
    PASSING = "Passing"
    FAILING = "Failing"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"


class ConditionStatus(StrEnum):
    """The status of a condition."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class ConditionType(StrEnum):
    """The condition types the operator maintains (kstatus, Argo CD and `kubectl wait` read them)."""

    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"


class HistoryOutcome(StrEnum):
    """How a rollout ended."""

    SUCCEEDED = "Succeeded"
    ROLLED_BACK = "RolledBack"
    FAILED = "Failed"
    # A newer template replaced this rollout before it finished.
    SUPERSEDED = "Superseded"


class ServiceProtocol(StrEnum):
    """The IP protocol of a Service port."""

    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


class JobRestartPolicy(StrEnum):
    """The restart policy of a Job's pods: `Never` or `OnFailure` (Jobs refuse `Always`)."""

    NEVER = "Never"
    ON_FAILURE = "OnFailure"


# ---------------------------------------------------------------------------------------------
# Constrained strings. Patterns are plain ECMA/RE2 so the API server and pydantic agree.

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_1035_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
HTTP_URL_PATTERN = r"^https?://[^\s/?#]+[^\s]*$"
CLOCK_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
PERCENT_PATTERN = r"^(100|[1-9]?[0-9])%$"
# RFC 3339 with a zone: the API server's date-time format also accepts local times, which
# Python could not place in time.
TIMESTAMP_PATTERN = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
                     r"([Zz]|[+-][0-9]{2}:[0-9]{2})$")

Duration = Annotated[str, Field(max_length=32, pattern=DURATION_PATTERN)]
"""A Go-style duration such as `30s`, `1m30s`, `500ms`, `2h`."""

Name = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
"""A name inside a Release (gate, trigger, notification, port): a DNS-1123 label."""

ServiceName = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_1035_PATTERN)]
ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)]
NamespaceName = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
LabelValue = Annotated[str, Field(max_length=63, pattern=LABEL_VALUE_PATTERN)]
URL_MAX_LENGTH = 2048
HttpUrl = Annotated[str, Field(min_length=8, max_length=URL_MAX_LENGTH, pattern=HTTP_URL_PATTERN)]
# No min_length: "9:00" should be told the pattern, not a length.
ClockTime = Annotated[str, Field(max_length=5, pattern=CLOCK_PATTERN)]
# What the API server's CEL can refuse cheaply in a condition (the operator checks the rest,
# glideslope.core.conditions): calls whose cost has no bound, the comprehension macros and
# `matches`, however spaced or commented; and the backslash and carriage return on which
# cel-python's lexer takes exponential time. RE2 is linear: the estimated cost of a rule is
# (1024 + 1) * 0.1 * len(pattern) * 0.25, about 2,000 per condition.
_CEL_UNBOUNDED_CALL = r"(^|[^A-Za-z0-9_])(map|filter|all|exists|exists_one|matches)(\s|//[^\n]*\n)*\("
_CEL_UNSAFE_CHARACTER = r"[\\\r]"
_CONDITION_FIELDS = "spec.analysis.triggers[] and spec.gates[].metric: successCondition and failureCondition"
CelCondition = Annotated[str, Field(min_length=1, max_length=1024, json_schema_extra=rules(
    cel(f"!self.matches(r'{_CEL_UNBOUNDED_CALL}')",
        f"{_CONDITION_FIELDS} must not call map, filter, all, exists, exists_one or matches, whose cost has "
        "no bound: compare result with operators instead, e.g. result > 0.01 && result < 0.5"),
    cel(f"!self.matches(r'{_CEL_UNSAFE_CHARACTER}')",
        f"{_CONDITION_FIELDS} must not contain a backslash or a carriage return: a condition over result "
        "needs no escape sequences"),
))]
"""A CEL expression over `result` (a double), e.g. `result < 0.01`."""
QUERY_MAX_LENGTH = 8192
Query = Annotated[str, Field(min_length=1, max_length=QUERY_MAX_LENGTH)]
"""A PromQL query; `{{namespace}}`, `{{release}}`, `{{revision}}`... are substituted."""
Timestamp = Annotated[AwareDatetime, Field(json_schema_extra={"pattern": TIMESTAMP_PATTERN})]
"""An RFC 3339 time with a zone."""

IntOrPercent = Annotated[int, Field(ge=0)] | Annotated[str, Field(max_length=4, pattern=PERCENT_PATTERN)]
"""A count or a percentage such as `25%` (0% to 100%)."""


# ---------------------------------------------------------------------------------------------
# Helpers for the values above.

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: str) -> timedelta:
    """`1m30s` -> 90 seconds. Raises ValueError on anything `Duration` would reject."""
    if not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError(f"invalid duration {value!r}: expected e.g. 30s, 1m30s, 500ms, 2h")
    seconds = sum(float(num) * _UNIT_SECONDS[unit] for num, unit in _DURATION_PART.findall(value))
    return timedelta(seconds=seconds)


def scaled_value(value: int | str, total: int, *, round_up: bool) -> int:
    """Resolve a count-or-percentage against `total`, as Deployments do for maxSurge (round up)
    and maxUnavailable (round down)."""
    if isinstance(value, int):
        return value
    if not re.fullmatch(PERCENT_PATTERN, value):
        raise ValueError(f"invalid percentage {value!r}: expected e.g. 25%")
    scaled = int(value[:-1]) * total
    # Integer arithmetic: 33% of 300 must be 99, not 98.99999.
    return -(-scaled // 100) if round_up else scaled // 100
