"""`AnalysisTemplate` and `ClusterAnalysisTemplate`: analysis that a team (in its namespace) or
a platform team (for the whole cluster) defines once, and Releases use by name
(`spec.analysis.templates`), with args.

Both kinds hold the same spec. The CRDs are generated from these models as the Release's is
(`api.crd`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from glideslope.api.base import ApiModel, plain, rules
from glideslope.api.judge import JudgeSpec
from glideslope.api.release import GROUP, VERSION, ObjectMeta
from glideslope.api.spec import ARG_NAME_PATTERN, ARG_VALUE_MAX_LENGTH, MAX_TEMPLATE_ARGS, MAX_TRIGGERS, Trigger
from glideslope.api.types import TemplateKind


class TemplateArg(ApiModel):
    """A named value a template's queries use as `{{args.NAME}}`."""

    name: str = Field(min_length=1, max_length=63, pattern=ARG_NAME_PATTERN)
    """The arg's name: letters, digits, `_` and `-`, not beginning with a digit or `-`."""
    value: str | None = Field(default=None, max_length=ARG_VALUE_MAX_LENGTH)
    """The default value; absent: every Release using the template must give one
    (`spec.analysis.templates[].args`)."""


class AnalysisTemplateSpec(ApiModel):
    """Triggers (and a judge) with named args, added to the analysis of each Release that uses
    the template."""

    args: list[TemplateArg] = Field(default_factory=list, max_length=MAX_TEMPLATE_ARGS, json_schema_extra=rules(
        x_kubernetes_list_type="map", x_kubernetes_list_map_keys=["name"]))
    """The args the triggers' queries (and web URLs) use as `{{args.NAME}}`; a use of one not
    declared here makes the Releases using the template Degraded (InvalidSpec)."""
    # Not required: a template may come to hold only a judge.
    triggers: list[Trigger] = Field(default_factory=list, max_length=MAX_TRIGGERS, json_schema_extra=rules(
        x_kubernetes_list_type="map", x_kubernetes_list_map_keys=["name"]))
    """Rollback triggers, as in a Release's `spec.analysis.triggers`; each name must be unique
    among all the triggers of a Release that uses the template."""
    judge: JudgeSpec | None = None
    """A statistical judge, as a Release's `spec.analysis.judge`, its metrics' queries with
    `{{args.NAME}}` too; it judges the Releases that use the template and have no judge of
    their own (at most one judge per Release: its own or one template's)."""


PLURALS: Mapping[TemplateKind, str] = {
    TemplateKind.ANALYSIS_TEMPLATE: "analysistemplates",
    TemplateKind.CLUSTER_ANALYSIS_TEMPLATE: "clusteranalysistemplates",
}
"""The resource (plural) of each kind, in group `glideslope.dev`."""
SINGULARS: Mapping[TemplateKind, str] = {
    TemplateKind.ANALYSIS_TEMPLATE: "analysistemplate",
    TemplateKind.CLUSTER_ANALYSIS_TEMPLATE: "clusteranalysistemplate",
}
TEMPLATE_SHORT_NAMES: Mapping[TemplateKind, tuple[str, ...]] = {
    TemplateKind.ANALYSIS_TEMPLATE: ("at",),
    TemplateKind.CLUSTER_ANALYSIS_TEMPLATE: ("cat",),
}


class AnalysisTemplate(ApiModel):
    """An analysis template in one namespace, used by the Releases of that namespace."""

    api_version: str = f"{GROUP}/{VERSION}"
    kind: str = TemplateKind.ANALYSIS_TEMPLATE.value
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: AnalysisTemplateSpec


def parse_template(body: Mapping[str, Any]) -> AnalysisTemplate:
    """An AnalysisTemplate or ClusterAnalysisTemplate (the same spec) from an API body (raises
    pydantic.ValidationError)."""
    return AnalysisTemplate.model_validate(plain(body))
