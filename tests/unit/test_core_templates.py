"""Analysis templates resolved into a Release's triggers (`core.templates`), and their CRDs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from glideslope.api import parse_spec
from glideslope.api.crd import render_crd_yaml, render_template_crd, template_schema
from glideslope.api.spec import MAX_TRIGGERS
from glideslope.api.templates import AnalysisTemplateSpec
from glideslope.api.types import TemplateKind
from glideslope.core.analysis import QueryTemplateError, render_args, render_query
from glideslope.core.templates import Found, TemplateKey, keys, resolve
from glideslope.core.triggers import source, web_urls

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
CLUSTER = TemplateKind.CLUSTER_ANALYSIS_TEMPLATE
LOCAL = TemplateKind.ANALYSIS_TEMPLATE


def spec(templates: list[dict[str, Any]], triggers: list[dict[str, Any]] | None = None) -> Any:
    return parse_spec({
        "version": "1", "selector": {"matchLabels": {"app": "a"}},
        "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "a", "image": "a"}]}},
        "strategy": {"type": "Canary", "canary": {"steps": [{"setWeight": 50}]}},
        "analysis": {"templates": templates, "triggers": triggers or []},
    })


def template(args: list[dict[str, Any]], *triggers: dict[str, Any]) -> AnalysisTemplateSpec:
    return AnalysisTemplateSpec.model_validate({"args": args, "triggers": list(triggers)})


ERRORS = template(
    [{"name": "metric"}, {"name": "window", "value": "1m"}],
    {"name": "error-rate", "severity": "critical", "failureCondition": "result > 0.001",
     "query": 'sum(rate({{args.metric}}{revision="{{revision}}",code=~"5.."}[{{ args.window }}]))'})
WEB = template([{"name": "host", "value": "status.example"}],
               {"name": "queue", "successCondition": "result < 10",
                "provider": {"web": {"url": "https://{{args.host}}/q?rev={{revision}}", "jsonPath": "$.depth"}}})


def found(**by_name: Found) -> dict[TemplateKey, Found]:
    return {(CLUSTER, "", name): value for name, value in by_name.items()}


def test_args_are_substituted_and_the_variables_left_for_each_measurement() -> None:
    s = spec([{"name": "errors", "kind": "ClusterAnalysisTemplate", "args": {"metric": "http_requests_total"}}],
             [{"name": "own", "query": "up", "failureCondition": "result < 1"}])
    resolution = resolve(s, "shop", found(errors=ERRORS))
    assert resolution.problems == []
    own, added = resolution.spec.analysis.triggers
    assert own.name == "own"
    assert added.query == 'sum(rate(http_requests_total{revision="{{revision}}",code=~"5.."}[1m]))'
    assert added.severity == "critical" and added.failure_condition == "result > 0.001"
    assert render_query(source(added), {"revision": "abc"}) == \
        'sum(rate(http_requests_total{revision="abc",code=~"5.."}[1m]))'
    assert s.analysis.triggers == [own]  # the Release's own spec is not changed


def test_the_release_overrides_a_default_value() -> None:
    s = spec([{"name": "errors", "kind": "ClusterAnalysisTemplate", "args": {"metric": "m", "window": "10s"}}])
    (added,) = resolve(s, "shop", found(errors=ERRORS)).spec.analysis.triggers
    assert added.query is not None and "[10s]" in added.query


def test_a_missing_template_names_the_field_and_its_kind() -> None:
    s = spec([{"name": "errors", "kind": "ClusterAnalysisTemplate", "args": {"metric": "m"}},
              {"name": "mine"}])
    problems = resolve(s, "shop", {(CLUSTER, "", "errors"): ERRORS, (LOCAL, "shop", "mine"): None}).problems
    assert problems == ["spec.analysis.templates[1].name: AnalysisTemplate 'mine' not found in namespace shop"]


def test_missing_and_unknown_args_name_the_field() -> None:
    s = spec([{"name": "errors", "kind": "ClusterAnalysisTemplate", "args": {"metrik": "m"}}])
    problems = resolve(s, "shop", found(errors=ERRORS)).problems
    assert problems == [
        "spec.analysis.templates[0].args.metrik: not an arg of ClusterAnalysisTemplate 'errors' "
        "(it declares: metric, window)",
        "spec.analysis.templates[0].args.metric: required by ClusterAnalysisTemplate 'errors', "
        "which gives it no default value"]


def test_an_undeclared_arg_in_a_query_is_an_invalid_spec() -> None:
    bad = template([], {"name": "t", "query": "x{{args.nope}}", "failureCondition": "result > 1"})
    problems = resolve(spec([{"name": "bad", "kind": "ClusterAnalysisTemplate"}]), "shop", found(bad=bad)).problems
    assert problems == ["spec.analysis.templates[0]: ClusterAnalysisTemplate 'bad', spec.triggers[0]: "
                        "{{args.nope}}: the template declares no arg 'nope'"]


def test_a_trigger_name_used_twice_names_both() -> None:
    s = spec([{"name": "errors", "kind": "ClusterAnalysisTemplate", "args": {"metric": "m"}},
              {"name": "errors", "kind": "AnalysisTemplate", "args": {"metric": "m"}}],
             [{"name": "error-rate", "query": "up", "failureCondition": "result < 1"}])
    problems = resolve(s, "shop", {(CLUSTER, "", "errors"): ERRORS, (LOCAL, "shop", "errors"): ERRORS}).problems
    assert len(problems) == 2
    assert problems[0].startswith("spec.analysis.templates[0]: trigger 'error-rate' of ClusterAnalysisTemplate "
                                  "'errors' has the same name as spec.analysis.triggers[0]")
    assert "spec.analysis.templates[1]: trigger 'error-rate' of AnalysisTemplate 'errors' has the same name as " \
           "spec.analysis.triggers[0]" in problems[1]


def test_too_many_triggers_in_all() -> None:
    many = template([], *({"name": f"t{i}", "query": "up", "failureCondition": "result < 1"}
                          for i in range(MAX_TRIGGERS)))
    s = spec([{"name": "many", "kind": "ClusterAnalysisTemplate"}],
             [{"name": "own", "query": "up", "failureCondition": "result < 1"}])
    assert resolve(s, "shop", found(many=many)).problems == [
        f"spec.analysis.templates: {MAX_TRIGGERS + 1} triggers with the templates'; at most {MAX_TRIGGERS} in all"]


def test_a_template_that_does_not_parse_says_why() -> None:
    s = spec([{"name": "odd", "kind": "ClusterAnalysisTemplate"}])
    assert resolve(s, "shop", found(odd="spec.triggers: Field required")).problems == [
        "spec.analysis.templates[0].name: ClusterAnalysisTemplate 'odd' cannot be used: spec.triggers: Field required"]


def test_web_urls_take_args_and_variables() -> None:
    s = spec([{"name": "web", "kind": "ClusterAnalysisTemplate"}])
    resolved = resolve(s, "shop", found(web=WEB)).spec
    urls, problems = web_urls(resolved, {"revision": "abc"})
    assert (urls, problems) == ([("spec.analysis.triggers[0].provider.web.url",
                                  "https://status.example/q?rev=abc")], [])


def test_keys_are_per_namespace_for_analysis_templates_only() -> None:
    s = spec([{"name": "a"}, {"name": "b", "kind": "ClusterAnalysisTemplate"}, {"name": "a"}])
    assert keys(s, "shop") == [(LOCAL, "shop", "a"), (CLUSTER, "", "b")]


def test_arg_values_may_not_break_out_of_a_string() -> None:
    with pytest.raises(QueryTemplateError, match="quote"):
        render_args('x{a="{{args.v}}"}', {"v": 'x"} or vector(1) #'})
    assert render_args("{{args.v}} {{revision}}", {"v": "m"}) == "m {{revision}}"


# -- the CRDs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(TemplateKind))
def test_template_crds_are_checked_in_and_in_the_chart(kind: TemplateKind) -> None:
    name = f"glideslope.dev_{kind.value.lower()}s.yaml"
    assert (REPO / "crds" / name).read_text() == render_crd_yaml(kind), "crds/ is stale: run `make crds`"
    assert (REPO / "charts" / "glideslope" / "crds" / name).read_text() == render_crd_yaml(kind)
    assert name in (REPO / "crds" / "kustomization.yaml").read_text()
    crd = render_template_crd(kind)
    assert crd["spec"]["scope"] == ("Cluster" if kind == CLUSTER else "Namespaced")
    assert crd["spec"]["group"] == "glideslope.dev" and crd["spec"]["names"]["kind"] == kind.value


def _nodes(node: Any, path: str = "") -> Any:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    if "items" in node:
        yield from _nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _nodes(node["additionalProperties"], f"{path}.*")


@pytest.mark.parametrize("kind", list(TemplateKind))
def test_every_template_field_is_described_and_bounded(kind: TemplateKind) -> None:
    spec_schema = template_schema(kind)["properties"]["spec"]
    for path, node in _nodes(spec_schema, "spec"):
        assert node.get("description"), f"{path}: no description"
        if node.get("type") == "string" and "enum" not in node:
            assert "maxLength" in node, f"{path}: unbounded string"
        if node.get("type") == "array":
            assert "maxItems" in node, f"{path}: unbounded list"
        if node.get("type") == "object" and "additionalProperties" in node:
            assert "maxProperties" in node, f"{path}: unbounded map"


def test_the_chart_ships_the_seed_checks() -> None:
    docs = [d for d in yaml.safe_load_all((REPO / "deploy" / "analysis-templates.yaml").read_text()) if d]
    by_name = {d["metadata"]["name"]: AnalysisTemplateSpec.model_validate(d["spec"]) for d in docs}
    assert {d["kind"] for d in docs} == {"ClusterAnalysisTemplate"}
    errors, latency = by_name["error-rate"], by_name["latency-p95"]
    assert [t.failure_condition for t in errors.triggers] == ["result > 0.001"]  # under 0.1%
    assert [t.success_condition for t in latency.triggers] == ["result < 0.2"]  # p95 under 200 ms
    # The metric names are args, with the simulator's names as defaults.
    assert {a.name: a.value for a in errors.args}["requests"] == "http_requests_total"
    assert {a.name: a.value for a in latency.args}["duration"] == "http_request_duration_seconds"
    s = spec([{"name": "error-rate", "kind": "ClusterAnalysisTemplate", "args": {"window": "10s"}},
              {"name": "latency-p95", "kind": "ClusterAnalysisTemplate"}])
    resolution = resolve(s, "shop", found(**by_name))
    assert resolution.problems == []
    first = resolution.spec.analysis.triggers[0].query
    assert first is not None and "http_requests_total{" in first and "[10s]" in first
    # And the judge against a baseline, with the same metric names as args.
    judged = resolve(spec([{"name": "canary-vs-baseline", "kind": "ClusterAnalysisTemplate"}]), "shop",
                     found(**by_name))
    assert judged.problems == [] and judged.spec.analysis.judge is not None
    assert [m.name for m in judged.spec.analysis.judge.metrics] == ["errors", "latency-p95"]
    assert "http_requests_total{" in judged.spec.analysis.judge.metrics[0].query


# -- a rollout keeps the triggers it started with -------------------------------------------------


def test_a_rollout_keeps_the_triggers_it_started_with() -> None:
    from glideslope.api import ReleaseStatus
    from glideslope.core.templates import record, recorded, with_added

    s = spec([{"name": "errors", "kind": "ClusterAnalysisTemplate", "args": {"metric": "m"}}],
             [{"name": "own", "query": "up", "failureCondition": "result < 1"}])
    started = resolve(s, "shop", found(errors=ERRORS))
    status = ReleaseStatus(template_triggers=record(s, "rev1", started))
    kept = recorded(s, status, "rev1")
    assert kept is not None and [t.query for t in kept[0]] == [t.query for t in started.added] and kept[1] is None
    assert with_added(s, *kept).spec == started.spec
    # A new candidate, or other templates or args, resolve again.
    assert recorded(s, status, "rev2") is None
    other = spec([{"name": "errors", "kind": "ClusterAnalysisTemplate", "args": {"metric": "n"}}])
    assert recorded(other, status, "rev1") is None
    # The Release's own triggers stay its spec's: a new one clashing with a kept one is refused.
    clashing = spec(s.analysis.model_dump(by_alias=True)["templates"],
                    [{"name": "error-rate", "query": "up", "failureCondition": "result < 1"}])
    assert with_added(clashing, *kept).problems == [
        "spec.analysis.triggers[0]: trigger 'error-rate' has the same name as one of the triggers of "
        "spec.analysis.templates"]


def test_args_may_not_grow_a_query_past_its_bound() -> None:
    s = spec([{"name": "errors", "kind": "ClusterAnalysisTemplate", "args": {"metric": "m" * 1024}}])
    big = template([{"name": "metric"}], {"name": "t", "failureCondition": "result > 1",
                                          "query": "{{args.metric}}" * 9})
    assert resolve(s, "shop", found(errors=big)).problems == [
        "spec.analysis.templates[0]: ClusterAnalysisTemplate 'errors', spec.triggers[0]: query: 9216 characters "
        "with its args; at most 8192"]


# -- a template's judge ---------------------------------------------------------------------------

JUDGE = {"baseline": True, "metrics": [
    {"name": "errors", "direction": "increase",
     "query": 'sum(rate({{args.metric}}{revision="{{sideRevision}}",role="{{sideRole}}",code=~"5.."}[1m]))'}]}


def judged(**extra: Any) -> AnalysisTemplateSpec:
    return AnalysisTemplateSpec.model_validate({"args": [{"name": "metric"}], "judge": {**JUDGE, **extra}})


def test_a_templates_judge_judges_the_release_with_its_args_and_is_kept_by_the_rollout() -> None:
    from glideslope.api import ReleaseStatus
    from glideslope.core.templates import record, recorded, with_added

    s = spec([{"name": "judged", "kind": "ClusterAnalysisTemplate", "args": {"metric": "http_requests_total"}}])
    resolution = resolve(s, "shop", found(judged=judged()))
    assert resolution.problems == []
    judge = resolution.spec.analysis.judge
    assert judge is not None and judge.baseline
    assert judge.metrics[0].query.startswith('sum(rate(http_requests_total{revision="{{sideRevision}}"')
    # The rollout keeps it, even if the template changes or goes.
    status = ReleaseStatus(template_triggers=record(s, "rev1", resolution))
    kept = recorded(s, status, "rev1")
    assert kept is not None and with_added(s, *kept).spec == resolution.spec


def test_a_release_has_at_most_one_judge() -> None:
    own = spec([{"name": "judged", "kind": "ClusterAnalysisTemplate", "args": {"metric": "m"}}])
    own = own.model_copy(update={"analysis": own.analysis.model_copy(update={
        "judge": judged().judge})})
    assert resolve(own, "shop", found(judged=judged())).problems == [
        "spec.analysis.templates[0]: ClusterAnalysisTemplate 'judged' has a judge, and so does "
        "spec.analysis.judge; a Release has at most one"]
    two = spec([{"name": "a", "kind": "ClusterAnalysisTemplate", "args": {"metric": "m"}},
                {"name": "b", "kind": "ClusterAnalysisTemplate", "args": {"metric": "m"}}])
    problems = resolve(two, "shop", found(a=judged(), b=judged())).problems
    assert problems == ["spec.analysis.templates[1]: ClusterAnalysisTemplate 'b' has a judge, and so does "
                        "ClusterAnalysisTemplate 'a' (spec.analysis.templates[0]); a Release has at most one"]


def test_a_templates_judge_is_checked_like_its_triggers() -> None:
    from glideslope.core.templates import template_problems

    undeclared = AnalysisTemplateSpec.model_validate({"judge": JUDGE})
    assert template_problems(undeclared) == ["spec.judge: {{args.metric}}: the template declares no arg 'metric'"]
    bluegreen = spec([{"name": "judged", "kind": "ClusterAnalysisTemplate", "args": {"metric": "m"}}])
    bluegreen = bluegreen.model_copy(update={"strategy": parse_spec({
        "version": "1", "selector": {"matchLabels": {"app": "a"}},
        "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "a", "image": "a"}]}},
        "strategy": {"type": "BlueGreen"}}).strategy})
    assert resolve(bluegreen, "shop", found(judged=judged())).problems == [
        "spec.analysis.templates: a template's judge has baseline: true, which is only for "
        "spec.strategy.type Canary"]
