"""Analysis templates: a Release's triggers with those of the templates it names
(`spec.analysis.templates`), their `{{args.NAME}}` substituted. Pure, like the rest of `core/`:
the shell reads the templates and hands them in.

Decisions recorded here:

- A Release's own triggers come first, then each template's, in the order the Release names
  the templates. A trigger name used twice (by the Release and a template, or by two
  templates) is an invalid spec naming both: silently dropping one would hide a check.
- An arg's value is the Release's (`templates[].args`), else the template's default. An arg
  without either, an arg the template does not declare, and a `{{args.NAME}}` the template does
  not declare are each an invalid spec naming the field.
- Args are substituted when resolving; the template variables (`{{revision}}`...) are left for
  each measurement (`core.triggers`), exactly as in the Release's own triggers.
- A template may hold a judge. A Release has at most one: its own, or one template's (two
  judges would be two verdicts on one comparison); a template's judge gets the args in its
  metrics' queries like the triggers.
- A rollout keeps the templates' triggers (and judge) it started with (`status.templateTriggers`, for its
  candidate revision and the `spec.analysis.templates` it was resolved from): a template's
  change shows in the next rollout, never in a running one, and a template deleted meanwhile
  does not stop it. The Release's own triggers are always its spec's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from glideslope.api import ReleaseSpec, ReleaseStatus, StrategyType, Trigger
from glideslope.api.judge import JudgeSpec
from glideslope.api.spec import JSON_PATH_MAX_LENGTH, MAX_TRIGGERS, TemplateRef
from glideslope.api.status import TemplateTriggers
from glideslope.api.templates import AnalysisTemplateSpec
from glideslope.api.types import QUERY_MAX_LENGTH, URL_MAX_LENGTH, TemplateKind
from glideslope.core.analysis import QueryTemplateError, render_args
from glideslope.core.conditions import ConditionError, compile_condition

TemplateKey = tuple[TemplateKind, str, str]
"""(kind, namespace, name) of a template; the namespace is empty for a ClusterAnalysisTemplate."""

Found = AnalysisTemplateSpec | str | None
"""What the shell found under a key: the template's spec, why it cannot be used (it does not
parse), or None: there is no such template."""


def key_of(ref: TemplateRef, namespace: str) -> TemplateKey:
    """Where the template a Release names lives."""
    return ref.kind, namespace if ref.kind == TemplateKind.ANALYSIS_TEMPLATE else "", ref.name


def keys(spec: ReleaseSpec, namespace: str) -> list[TemplateKey]:
    """The templates a Release's spec names, in order, each once."""
    return list(dict.fromkeys(key_of(ref, namespace) for ref in spec.analysis.templates))


@dataclass(frozen=True)
class Resolution:
    """The spec the operator acts on (the Release's own, with the templates' triggers added)
    and what is wrong with it (each problem naming its field); nothing is acted on while there
    are problems."""

    spec: ReleaseSpec
    problems: list[str]
    added: list[Trigger] = field(default_factory=list)
    """The templates' triggers, args substituted (in `spec` after the Release's own)."""
    judge: JudgeSpec | None = None
    """A template's judge, args substituted (`spec.analysis.judge`), if one gave it."""


def resolve(spec: ReleaseSpec, namespace: str, found: Mapping[TemplateKey, Found]) -> Resolution:
    """The Release's triggers with its templates' added, args substituted."""
    refs = spec.analysis.templates
    if not refs:
        return Resolution(spec, [])
    problems: list[str] = []
    owners: dict[str, str] = {t.name: f"spec.analysis.triggers[{i}]" for i, t in enumerate(spec.analysis.triggers)}
    added: list[Trigger] = []
    judge: JudgeSpec | None = None
    judged_by = "spec.analysis.judge" if spec.analysis.judge is not None else None
    for i, ref in enumerate(refs):
        path = f"spec.analysis.templates[{i}]"
        what = f"{ref.kind.value} {ref.name!r}"
        template = found.get(key_of(ref, namespace))
        if template is None:
            where = f" in namespace {namespace}" if ref.kind == TemplateKind.ANALYSIS_TEMPLATE else ""
            problems.append(f"{path}.name: {what} not found{where}")
            continue
        if isinstance(template, str):
            problems.append(f"{path}.name: {what} cannot be used: {template}")
            continue
        values, wrong = _args(ref, template, path, what)
        wrong += [f"{path}: {what}, {problem}" for problem in template_problems(template)]
        problems += wrong
        if wrong:
            continue
        for j, trigger in enumerate(template.triggers):
            owner = owners.get(trigger.name)
            if owner is not None:
                problems.append(f"{path}: trigger {trigger.name!r} of {what} has the same name as {owner}; "
                                "trigger names must be unique among the Release's and its templates'")
                continue
            owners[trigger.name] = f"trigger {trigger.name!r} of {what} ({path})"
            try:
                added.append(_with_args(trigger, values))
            except QueryTemplateError as exc:
                problems.append(f"{path}: {what}, spec.triggers[{j}]: {exc}")
        if template.judge is None:
            continue
        if judged_by is not None:
            problems.append(f"{path}: {what} has a judge, and so does {judged_by}; a Release has at most one")
            continue
        judged_by = f"{what} ({path})"
        try:
            judge = _judge_with_args(template.judge, values)
        except QueryTemplateError as exc:
            problems.append(f"{path}: {what}, spec.judge: {exc}")
    if problems:
        return Resolution(spec, problems)
    return with_added(spec, added, judge)


def with_added(spec: ReleaseSpec, added: Sequence[Trigger], judge: JudgeSpec | None = None) -> Resolution:
    """The spec with triggers resolved from its templates (now, or when the rollout started)
    after its own, and a template's judge; a name used twice, too many in all, or a baseline for
    another strategy than Canary is a problem."""
    own = {t.name: i for i, t in enumerate(spec.analysis.triggers)}
    problems = [f"spec.analysis.triggers[{own[t.name]}]: trigger {t.name!r} has the same name as one of the "
                "triggers of spec.analysis.templates" for t in added if t.name in own]
    total = len(spec.analysis.triggers) + len(added)
    if total > MAX_TRIGGERS:
        problems.append(f"spec.analysis.templates: {total} triggers with the templates'; at most "
                        f"{MAX_TRIGGERS} in all")
    if judge is not None and judge.baseline and spec.strategy.type != StrategyType.CANARY:
        # The CRD says so of a Release's own judge; a template's is met only here.
        problems.append("spec.analysis.templates: a template's judge has baseline: true, which is only for "
                        "spec.strategy.type Canary")
    if problems:
        return Resolution(spec, problems)
    update: dict[str, object] = {"triggers": [*spec.analysis.triggers, *added]}
    if judge is not None:
        update["judge"] = judge
    analysis = spec.analysis.model_copy(update=update)
    return Resolution(spec.model_copy(update={"analysis": analysis}), [], list(added), judge)


def digest(spec: ReleaseSpec) -> str:
    """What identifies the templates a spec names, with their args."""
    refs = json.dumps([ref.to_dict() for ref in spec.analysis.templates], sort_keys=True)
    return hashlib.sha256(refs.encode()).hexdigest()[:16]


def recorded(spec: ReleaseSpec, status: ReleaseStatus, candidate: str) -> tuple[list[Trigger], JudgeSpec | None] | None:
    """The templates' triggers and judge this rollout started with (`status.templateTriggers`),
    or None: none recorded for this candidate and these templates (or unreadable), resolve them now."""
    kept = status.template_triggers
    if kept is None or kept.revision != candidate or kept.digest != digest(spec):
        return None
    try:
        judge = JudgeSpec.model_validate(kept.judge) if kept.judge is not None else None
        return [Trigger.model_validate(t) for t in kept.triggers], judge
    except ValidationError:
        return None


def record(spec: ReleaseSpec, candidate: str, resolution: Resolution) -> TemplateTriggers:
    """What `status.templateTriggers` keeps of a resolution for the rollout of `candidate`."""
    return TemplateTriggers(revision=candidate, digest=digest(spec), triggers=[t.to_dict() for t in resolution.added],
                            judge=resolution.judge.to_dict() if resolution.judge is not None else None)


def template_problems(template: AnalysisTemplateSpec) -> list[str]:
    """What is wrong in a template whatever the Release using it (each naming the template's
    field): a `{{args.NAME}}` it does not declare, a condition that does not compile."""
    problems: list[str] = []
    # Every declared arg stands in with a harmless value: what is left unknown is undeclared.
    stand_in = {a.name: "x" for a in template.args}
    if template.judge is not None:
        try:
            _judge_with_args(template.judge, stand_in)
        except QueryTemplateError as exc:
            problems.append(f"spec.judge: {exc}")
    for j, trigger in enumerate(template.triggers):
        try:
            _with_args(trigger, stand_in)
        except QueryTemplateError as exc:
            problems.append(f"spec.triggers[{j}]: {exc}")
        for name, source in (("successCondition", trigger.success_condition),
                             ("failureCondition", trigger.failure_condition)):
            if source is None:
                continue
            try:
                compile_condition(source)
            except ConditionError as exc:
                problems.append(f"spec.triggers[{j}].{name}: {exc}")
    return problems


def _args(ref: TemplateRef, template: AnalysisTemplateSpec, path: str, what: str) -> tuple[dict[str, str], list[str]]:
    """Each declared arg's value, and the problems: unknown or missing args."""
    declared = {a.name: a.value for a in template.args}
    # A key is not bounded by the schema: it is shown cut short.
    problems = [f"{path}.args.{name[:63]}: not an arg of {what} (it declares: {', '.join(declared) or 'none'})"
                for name in ref.args if name not in declared]
    values = {name: value for name, value in declared.items() if value is not None} | {
        name: value for name, value in ref.args.items() if name in declared}
    problems += [f"{path}.args.{name}: required by {what}, which gives it no default value"
                 for name in declared if name not in values]
    return values, problems


def _with_args(trigger: Trigger, values: Mapping[str, str]) -> Trigger:
    """The trigger with `{{args.NAME}}` substituted in its query or web URL (and JSONPath),
    each still within its field's bound: args may not grow what the schema bounds (the
    rendered query is sent, and kept in the status)."""
    if trigger.query is not None:
        return trigger.model_copy(update={"query": _bounded("query", render_args(trigger.query, values),
                                                            QUERY_MAX_LENGTH)})
    if trigger.provider is not None and trigger.provider.web is not None:
        web = trigger.provider.web
        rendered = web.model_copy(update={
            "url": _bounded("provider.web.url", render_args(web.url, values), URL_MAX_LENGTH),
            "json_path": _bounded("provider.web.jsonPath", render_args(web.json_path, values),
                                  JSON_PATH_MAX_LENGTH)})
        return trigger.model_copy(update={"provider": trigger.provider.model_copy(update={"web": rendered})})
    return trigger


def _judge_with_args(judge: JudgeSpec, values: Mapping[str, str]) -> JudgeSpec:
    """The judge with `{{args.NAME}}` substituted in each metric's query, each within its bound."""
    metrics = [m.model_copy(update={"query": _bounded(f"metrics[{i}].query", render_args(m.query, values),
                                                      QUERY_MAX_LENGTH)})
               for i, m in enumerate(judge.metrics)]
    return judge.model_copy(update={"metrics": metrics})


def _bounded(field_name: str, rendered: str, limit: int) -> str:
    if len(rendered) > limit:
        raise QueryTemplateError(f"{field_name}: {len(rendered)} characters with its args; at most {limit}")
    return rendered
