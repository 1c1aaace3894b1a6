"""What the CRD's schema and CEL rules cannot check, checked before the operator acts.

The API server rejects most bad manifests at apply time. What remains is found here, as
field errors that end in a `Degraded` condition with reason `InvalidSpec` and an Event,
before anything in the cluster changes: CEL conditions and notification templates that do
not compile, and time-zone names that do not exist. (PromQL that Prometheus refuses and
missing Services or Secrets need the cluster; their adapters report them the same way.)
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from glideslope.api import Condition, ConditionStatus, ConditionType, ReleaseSpec, ReleaseStatus
from glideslope.core.conditions import ConditionError, compile_condition
from glideslope.core.template import TemplateError, compile_template

INVALID_SPEC = "InvalidSpec"


@dataclass(frozen=True)
class FieldError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def validate_spec(spec: ReleaseSpec, known_timezones: Collection[str]) -> list[FieldError]:
    """Every error found, each naming its field; an empty list means the spec may be acted on.

    `known_timezones` is the IANA zone database as the shell found it (core reads no files).
    """
    errors: list[FieldError] = []
    for i, trigger in enumerate(spec.analysis.triggers):
        base = f"spec.analysis.triggers[{i}]"
        errors += _conditions(base, trigger.success_condition, trigger.failure_condition)
    for i, gate in enumerate(spec.gates):
        base = f"spec.gates[{i}]"
        if gate.metric is not None:
            errors += _conditions(f"{base}.metric", gate.metric.success_condition, gate.metric.failure_condition)
        if gate.window is not None and gate.window.timezone not in known_timezones:
            zone = gate.window.timezone
            errors.append(FieldError(f"{base}.window.timezone",
                                     f"unknown time zone {zone!r} (an IANA name such as Europe/Berlin)"))
    for i, notification in enumerate(spec.notifications):
        if notification.webhook.template is not None:
            try:
                compile_template(notification.webhook.template)
            except TemplateError as exc:
                errors.append(FieldError(f"spec.notifications[{i}].webhook.template",
                                         f"the template does not compile: {exc}"))
    return errors


def _conditions(base: str, success: str | None, failure: str | None) -> list[FieldError]:
    errors = []
    for name, source in (("successCondition", success), ("failureCondition", failure)):
        if source is None:
            continue
        try:
            compile_condition(source)
        except ConditionError as exc:
            errors.append(FieldError(f"{base}.{name}", str(exc)))
    return errors


def invalid_status(status: ReleaseStatus, problems: Sequence[str], generation: int, now: datetime, *,
                   reason: str = INVALID_SPEC) -> ReleaseStatus:
    """The status of a Release whose spec cannot be acted on: nothing in the cluster changes, the
    stable revision keeps serving, and the conditions say why in terms kstatus, Argo CD and
    `kubectl wait` understand (Ready False, Degraded True, reason InvalidSpec, or another
    `reason` such as SecretUnreadable)."""
    label = "invalid spec" if reason == INVALID_SPEC else "cannot act on the spec"
    message = (f"{label}: " + "; ".join(problems))[:1024]
    updated = status.model_copy(deep=True)
    wanted = {ConditionType.READY: ConditionStatus.FALSE, ConditionType.PROGRESSING: ConditionStatus.FALSE,
              ConditionType.DEGRADED: ConditionStatus.TRUE}
    kept = [c for c in updated.conditions if c.type not in wanted]
    for type_, value in wanted.items():
        old = updated.condition(type_)
        since = old.last_transition_time if old and old.status == value and old.last_transition_time else now
        kept.append(Condition(type=type_, status=value, reason=reason, message=message,
                              last_transition_time=since, observed_generation=generation))
    updated.conditions = kept
    updated.message = message
    updated.observed_generation = generation
    return updated
