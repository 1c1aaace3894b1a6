"""The traffic routers' pure parts: what each writes on its route, what it keeps of what it did
not write, and which plans each refuses, naming the step; and the judge's baseline Service."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import kubernetes
import pytest
from kubernetes.client import V1ObjectMeta, V1OwnerReference

from glideslope.api import Release, parse_release
from glideslope.core.judge import ROLE_LABEL
from glideslope.core.model import RELEASE_LABEL, REVISION_LABEL, HeaderCondition, HeaderRoute, MirrorRoute, Routes
from glideslope.kube import services, workloads
from glideslope.kube.client import Kube
from glideslope.kube.ownership import NotOurs
from glideslope.kube.traffic import gateway_api, istio, nginx, replicas, router_for
from glideslope.kube.traffic import routes as routes_module
from glideslope.kube.traffic.routes import as_regex, unsupported

pytestmark = pytest.mark.unit

NS = "shop"
BETA = HeaderRoute("beta", (HeaderCondition("x-beta", "exact", "yes"),))
SHADOW = MirrorRoute("shadow", 20)


def make_release(routing: dict[str, Any] | None, steps: list[dict[str, Any]] | None = None) -> Release:
    canary: dict[str, Any] = {"steps": steps or [{"setWeight": 10}]}
    if routing is not None:
        canary["trafficRouting"] = routing
    return parse_release({
        "apiVersion": "glideslope.dev/v1alpha1", "kind": "Release",
        "metadata": {"name": "web", "namespace": NS, "uid": "u-1"},
        "spec": {"version": "1", "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "i"}]}},
                 "service": {"ports": [{"port": 80}]},
                 "strategy": {"type": "Canary", "canary": canary}}})


# Gateway API ---------------------------------------------------------------------------------


def test_gateway_keeps_rules_filters_and_namespaces_it_did_not_write() -> None:
    rules = [
        {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
         "filters": [{"type": "RequestHeaderModifier",
                      "requestHeaderModifier": {"add": [{"name": "a", "value": "b"}]}}],
         "backendRefs": [{"name": "web", "namespace": NS, "port": 8080,
                          "filters": [{"type": "ResponseHeaderModifier", "responseHeaderModifier": {}}]},
                         {"name": "web", "namespace": "other", "port": 80, "weight": 5},
                         {"name": "bucket", "group": "example.com", "kind": "Bucket"}]},
        {"backendRefs": [{"name": "static", "port": 80}]},
    ]
    out = gateway_api.reweighted(rules, "web", "web-preview", 30, 80, namespace=NS)
    assert out[1] == rules[1]  # a rule it does not route, untouched
    assert out[0]["matches"] == rules[0]["matches"] and out[0]["filters"] == rules[0]["filters"]
    refs = out[0]["backendRefs"]
    # Another namespace's Service of the same name, and other kinds, are not ours: kept as written.
    assert refs[:2] == rules[0]["backendRefs"][1:]
    stable, preview = refs[2:]
    assert stable == {**rules[0]["backendRefs"][0], "weight": 70}
    # The preview is the stable reference's copy: its namespace, port and filters.
    assert preview == {**rules[0]["backendRefs"][0], "name": "web-preview", "weight": 30}


def test_gateway_header_rule_and_mirror_come_and_go() -> None:
    rules = [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
              "backendRefs": [{"name": "web", "port": 80}]}]
    names = frozenset({"beta"})
    routed = gateway_api.reweighted(rules, "web", "web-preview", 0, 80, Routes((BETA,), (SHADOW,)),
                                    namespace=NS, header_names=names)
    assert routed[0] == {"name": "beta",
                         "matches": [{"path": {"type": "PathPrefix", "value": "/"},
                                      "headers": [{"type": "Exact", "name": "x-beta", "value": "yes"}]}],
                         "backendRefs": [{"name": "web-preview", "port": 80}]}
    assert routed[1]["filters"] == [{"type": "RequestMirror", "requestMirror": {
        "backendRef": {"name": "web-preview", "port": 80}, "percent": 20}}]
    # The same call again changes nothing; without the routes they are gone, the weights stay.
    assert gateway_api.reweighted(routed, "web", "web-preview", 0, 80, Routes((BETA,), (SHADOW,)),
                                  namespace=NS, header_names=names) == routed
    back = gateway_api.reweighted(routed, "web", "web-preview", 0, 80, namespace=NS, header_names=names)
    assert back == [{"matches": rules[0]["matches"],
                     "backendRefs": [{"name": "web", "port": 80, "weight": 100},
                                     {"name": "web-preview", "port": 80, "weight": 0}]}]


def test_gateway_prefix_becomes_an_anchored_regex() -> None:
    prefix = HeaderRoute("p", (HeaderCondition("x-user", "prefix", "beta.1"),))
    rules = [{"backendRefs": [{"name": "web"}]}]
    out = gateway_api.reweighted(rules, "web", "web-preview", 0, 80, Routes((prefix,)), namespace=NS)
    assert out[0]["matches"] == [{"headers": [{"type": "RegularExpression", "name": "x-user",
                                               "value": r"beta\.1.*"}]}]
    assert as_regex(HeaderCondition("h", "regex", "^a+$")) == "^a+$"


def test_gateway_header_routes_must_fit_in_the_route() -> None:
    header = {"setHeaderRoute": {"name": "beta", "match": [{"headerName": "x", "headerValue": {"exact": "1"}}]}}
    release = make_release({"gatewayAPI": {"httpRoute": "web"}}, [header])
    full = {"spec": {"rules": [{"backendRefs": [{"name": f"s{i}"}]} for i in range(15)]}}
    assert gateway_api.room(release, full) is None
    # The rule it wrote itself (its name in the annotation) is not counted twice...
    mine = {"metadata": {"annotations": {"glideslope.dev/header-routes": "beta"}},
            "spec": {"rules": [*full["spec"]["rules"], {"name": "beta"}]}}
    assert gateway_api.room(release, mine) is None
    # ...but a rule of that name its author wrote is never taken over.
    theirs = {"spec": {"rules": [*full["spec"]["rules"][:3], {"name": "beta"}]}}
    assert gateway_api.room(release, theirs) == (
        "spec.strategy.canary.steps[0].setHeaderRoute.name: HTTPRoute shop/web already has a rule named beta; "
        "choose another name")
    over = {"spec": {"rules": [*full["spec"]["rules"], {"backendRefs": [{"name": "web"}]}]}}
    assert gateway_api.room(release, over) == (
        "spec.strategy.canary.steps[].setHeaderRoute: 1 header routes and the 16 rules of HTTPRoute shop/web "
        "exceed the 16 rules an HTTPRoute may have")


# ingress-nginx ----------------------------------------------------------------------------------


def stable_ingress() -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": NS, "annotations": {"kubernetes.io/ingress.class": "nginx"}},
            "spec": {"tls": [{"hosts": ["web.example"]}],
                     "rules": [{"host": "web.example", "http": {"paths": [
                         {"path": "/", "pathType": "Prefix",
                          "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                         {"path": "/static", "pathType": "Prefix",
                          "backend": {"service": {"name": "static", "port": {"number": 80}}}}]}}]}}


def test_nginx_canary_copy_points_the_stable_paths_at_the_preview() -> None:
    release = make_release({"nginx": {"ingress": "web"}})
    body = nginx.canary_ingress(release, stable_ingress(), "web", "web-preview", 20, Routes())
    assert body is not None
    assert body["metadata"]["name"] == "web-canary"
    assert body["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert body["metadata"]["annotations"] == {"nginx.ingress.kubernetes.io/canary": "true",
                                               "nginx.ingress.kubernetes.io/canary-weight": "20",
                                               "kubernetes.io/ingress.class": "nginx"}
    # Only the path to the stable Service, now to the preview one.
    assert body["spec"] == {"rules": [{"host": "web.example", "http": {"paths": [
        {"path": "/", "pathType": "Prefix",
         "backend": {"service": {"name": "web-preview", "port": {"number": 80}}}}]}}]}


def test_nginx_header_annotations_and_removal() -> None:
    release = make_release({"nginx": {"ingress": "web"}})
    exact = nginx.canary_ingress(release, stable_ingress(), "web", "web-preview", 0, Routes((BETA,)))
    assert exact is not None
    notes = exact["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/canary-by-header"] == "x-beta"
    assert notes["nginx.ingress.kubernetes.io/canary-by-header-value"] == "yes"
    prefix = HeaderRoute("beta", (HeaderCondition("x-beta", "prefix", "y"),))
    pattern = nginx.canary_annotations(0, Routes((prefix,)))
    assert pattern["nginx.ingress.kubernetes.io/canary-by-header-pattern"] == "^y.*$"
    # No weight and no header route: no canary copy (the rollout ended or rolled back).
    assert nginx.canary_ingress(release, stable_ingress(), "web", "web-preview", 0, Routes()) is None


def test_nginx_refuses_what_it_cannot_route_naming_the_step() -> None:
    two_headers = make_release({"nginx": {"ingress": "web"}}, [{"setHeaderRoute": {"name": "a", "match": [
        {"headerName": "x-a", "headerValue": {"exact": "1"}}, {"headerName": "x-b", "headerValue": {"exact": "1"}}]}}])
    assert nginx.plan_problem(two_headers) == ("spec.strategy.canary.steps[0].setHeaderRoute.match: ingress-nginx "
                                               "routes a canary by one header only")
    two_names = make_release({"nginx": {"ingress": "web"}}, [
        {"setHeaderRoute": {"name": "a", "match": [{"headerName": "x-a", "headerValue": {"exact": "1"}}]}},
        {"setHeaderRoute": {"name": "b", "match": [{"headerName": "x-b", "headerValue": {"exact": "1"}}]}}])
    assert (nginx.plan_problem(two_names) or "").startswith("spec.strategy.canary.steps[1].setHeaderRoute.name")


class Ingresses:
    """The Ingresses of the namespace, as client models, read and deleted by name."""

    def __init__(self, **found: V1ObjectMeta) -> None:
        self.found = found
        self.deleted: list[str] = []

    def read(self, name: str, namespace: str) -> Any:
        if name not in self.found:
            raise kubernetes.client.ApiException(status=404, reason="Not Found")
        return SimpleNamespace(metadata=self.found[name])

    def kube(self) -> Kube:
        def get(group: str, version: str, namespace: str, plural: str, name: str) -> dict[str, Any]:
            assert name == "web"
            return stable_ingress()

        def delete(group: str, version: str, namespace: str, plural: str, name: str) -> None:
            self.deleted.append(name)

        return Kube(None, None, None, SimpleNamespace(get_namespaced_custom_object=get,
                                                       delete_namespaced_custom_object=delete))


OURS = V1OwnerReference(api_version="glideslope.dev/v1alpha1", kind="Release", name="web", uid="u-1",
                        controller=True)


@pytest.mark.parametrize(("meta", "why"), [
    (None, None),  # no copy yet
    (V1ObjectMeta(name="web-canary", owner_references=[OURS]), None),
    (V1ObjectMeta(name="web-canary", annotations={"glideslope.dev/adopt": "web"}), None),  # handed over
    (V1ObjectMeta(name="web-canary"), "it is not labelled glideslope.dev/release=web"),
    (V1ObjectMeta(name="web-canary", labels={"glideslope.dev/release": "web"}, owner_references=[
        V1OwnerReference(api_version="v1", kind="Release", name="api", uid="u-2", controller=True)]),
     "it is controlled by Release api"),
])
def test_nginx_claims_its_canary_copy_as_the_ownership_module_says(
        monkeypatch: pytest.MonkeyPatch, meta: V1ObjectMeta | None, why: str | None) -> None:
    ingresses = Ingresses(**({"web-canary": meta} if meta is not None else {}))
    monkeypatch.setattr(nginx, "_read_ingress", lambda kube: ingresses.read)
    release = make_release({"nginx": {"ingress": "web"}})
    router = nginx.NginxRouter()
    # The copy is no longer the router's check (InvalidSpec): the engine claims it (Conflict).
    assert router.check(ingresses.kube(), release) is None
    if why is None:
        router.claim(ingresses.kube(), release)
    else:
        with pytest.raises(NotOurs) as raised:
            router.claim(ingresses.kube(), release)
        assert str(raised.value).startswith(f"Ingress {NS}/web-canary exists and is not this Release's ({why})")
        assert "glideslope.dev/adopt=web" in str(raised.value)
    # With no weight left the copy goes, if it is the Release's: someone else's is never deleted.
    router.set_weight(ingresses.kube(), release, "web", "web-preview", 0)
    assert ingresses.deleted == (["web-canary"] if meta is not None and why is None else [])


# Istio ------------------------------------------------------------------------------------------


def test_istio_weights_mirror_and_header_route_and_back() -> None:
    http = [{"name": "admin", "match": [{"uri": {"prefix": "/admin"}}], "route": [{"destination": {"host": "admin"}}]},
            {"name": "primary", "match": [{"uri": {"prefix": "/"}}], "timeout": "5s",
             "route": [{"destination": {"host": f"web.{NS}.svc.cluster.local", "subset": "v1",
                                        "port": {"number": 80}}}]}]
    names = frozenset({"beta"})
    out = istio.rerouted(http, ["primary"], "web", "web-preview", NS, 25, Routes((BETA,), (SHADOW,)), names)
    assert out[0] == http[0]
    assert out[1] == {"name": "beta", "match": [{"uri": {"prefix": "/"}, "headers": {"x-beta": {"exact": "yes"}}}],
                      "route": [{"destination": {"host": f"web-preview.{NS}.svc.cluster.local",
                                                 "port": {"number": 80}}}]}
    primary = out[2]
    assert primary["timeout"] == "5s"
    assert primary["route"] == [
        {"destination": {"host": f"web.{NS}.svc.cluster.local", "subset": "v1", "port": {"number": 80}}, "weight": 75},
        {"destination": {"host": f"web-preview.{NS}.svc.cluster.local", "port": {"number": 80}}, "weight": 25}]
    assert primary["mirror"] == {"host": f"web-preview.{NS}.svc.cluster.local", "port": {"number": 80}}
    assert primary["mirrorPercentage"] == {"value": 20.0}
    assert istio.rerouted(out, ["primary"], "web", "web-preview", NS, 25, Routes((BETA,), (SHADOW,)), names) == out
    # The rollout over: the route as its author wrote it.
    assert istio.rerouted(out, ["primary"], "web", "web-preview", NS, 0, Routes(), names) == http


def test_istio_names_what_the_virtual_service_lacks() -> None:
    release = make_release({"istio": {"virtualService": "web", "routes": ["primary", "secondary"]}})
    vs = {"spec": {"http": [{"name": "primary", "route": [{"destination": {"host": "web"}}]},
                            {"name": "secondary", "route": [{"destination": {"host": "other"}}]}]}}
    assert istio.problem(release, vs, "web") == (
        "spec.strategy.canary.trafficRouting.istio.routes[1]: http route secondary of VirtualService shop/web has no "
        "destination to the stable Service web")
    assert "has no http route named primary" in (istio.problem(release, {"spec": {}}, "web") or "")
    header = {"setHeaderRoute": {"name": "primary", "match": [{"headerName": "x", "headerValue": {"exact": "1"}}]}}
    clashing = make_release({"istio": {"virtualService": "web", "routes": ["primary"]}}, [header])
    assert istio.problem(clashing, vs, "web") == (
        "spec.strategy.canary.steps[0].setHeaderRoute.name: VirtualService shop/web already has an http route named "
        "primary; choose another name")


# Which router, and which steps it carries out ----------------------------------------------------


def test_router_for_each_block_and_the_steps_each_supports() -> None:
    header = {"setHeaderRoute": {"name": "b", "match": [{"headerName": "x", "headerValue": {"exact": "1"}}]}}
    mirror = {"setMirrorRoute": {"name": "m", "percentage": 5}}
    cases = [({"gatewayAPI": {"httpRoute": "web"}}, gateway_api.GatewayAPIRouter, True, True),
             ({"istio": {"virtualService": "web", "routes": ["p"]}}, istio.IstioRouter, True, True),
             ({"nginx": {"ingress": "web"}}, nginx.NginxRouter, True, False),
             (None, replicas.ReplicasRouter, False, False)]
    for routing, kind, headers, mirrors in cases:
        release = make_release(routing, [{"setWeight": 5}, header, mirror])
        router = router_for(release)
        assert isinstance(router, kind)
        problem = unsupported(release, router.supports, "it")
        if headers and mirrors:
            assert problem is None
        elif headers:
            assert problem == "spec.strategy.canary.steps[2].setMirrorRoute: not supported by it"
        else:
            assert problem == "spec.strategy.canary.steps[1].setHeaderRoute: not supported by it"


# The judge's baseline: a third backend, and who refuses it ---------------------------------------


def with_baseline(release: Release, service: dict[str, Any] | None = None) -> Release:
    body = release.to_dict()
    body["spec"]["analysis"] = {"judge": {"baseline": True, "metrics": [{"name": "e", "query": "up"}]}}
    if service is not None:
        body["spec"]["service"] = service
    return parse_release(body)


def test_gateway_gives_the_baseline_a_third_backend_ref_and_takes_it_away() -> None:
    rules = [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
              "backendRefs": [{"name": "web", "port": 8080}, {"name": "static", "port": 80, "weight": 0}]}]
    out = gateway_api.reweighted(rules, "web", "web-preview", 20, 80, Routes((BETA,), (SHADOW,)), namespace=NS,
                                 baseline=20)
    header, routed = out
    # The candidate's 20, the baseline's 20 from the stable's share, the stable the rest; the
    # port as the stable reference has it; other backends kept as written.
    assert routed["backendRefs"] == [{"name": "static", "port": 80, "weight": 0},
                                     {"name": "web", "port": 8080, "weight": 60},
                                     {"name": "web-preview", "port": 8080, "weight": 20},
                                     {"name": "web-baseline", "port": 8080, "weight": 20}]
    # Header and mirror routes go to the candidate alone, never to the baseline.
    assert header["backendRefs"] == [{"name": "web-preview", "port": 8080}]
    assert routed["filters"] == [{"type": "RequestMirror", "requestMirror": {
        "backendRef": {"name": "web-preview", "port": 8080}, "percent": 20}}]
    again = gateway_api.reweighted(out, "web", "web-preview", 20, 80, Routes((BETA,), (SHADOW,)), namespace=NS,
                                   header_names=frozenset({"beta"}), baseline=20)
    assert again == out  # written once
    # The baseline gone (promotion, rollback, deletion): no backendRef names its Service (the
    # one it wrote, as the route's annotation says).
    done = gateway_api.reweighted(out, "web", "web-preview", 0, 80, namespace=NS, header_names=frozenset({"beta"}),
                                  baseline_named=True)
    assert done == [{**rules[0], "backendRefs": [{"name": "static", "port": 80, "weight": 0},
                                                 {"name": "web", "port": 8080, "weight": 100},
                                                 {"name": "web-preview", "port": 8080, "weight": 0}]}]
    # At 50% the stable Service keeps nothing, and still is named (at 0).
    half = gateway_api.reweighted(rules, "web", "web-preview", 50, 80, namespace=NS, baseline=50)
    assert [(r["name"], r["weight"]) for r in half[0]["backendRefs"][1:]] == [
        ("web", 0), ("web-preview", 50), ("web-baseline", 50)]


def test_istio_gives_the_baseline_a_third_destination_and_takes_it_away() -> None:
    http = [{"name": "other", "route": [{"destination": {"host": "other"}}]},
            {"name": "primary", "route": [{"destination": {"host": f"web.{NS}.svc.cluster.local", "subset": "v1"}}]}]
    out = istio.rerouted(http, ["primary"], "web", "web-preview", NS, 20, baseline=20)
    assert out[0] == http[0]
    assert out[1]["route"] == [
        {"destination": {"host": f"web.{NS}.svc.cluster.local", "subset": "v1"}, "weight": 60},
        {"destination": {"host": f"web-preview.{NS}.svc.cluster.local"}, "weight": 20},
        {"destination": {"host": f"web-baseline.{NS}.svc.cluster.local"}, "weight": 20}]
    assert istio.rerouted(out, ["primary"], "web", "web-preview", NS, 20, baseline=20) == out
    # Its pods not Ready yet, or leaving: named at 0 while its Service exists.
    waiting = istio.rerouted(http, ["primary"], "web", "web-preview", NS, 0, baseline=0)
    assert [d["weight"] for d in waiting[1]["route"]] == [100, 0, 0]
    # Gone: the route as its author wrote it.
    assert istio.rerouted(out, ["primary"], "web", "web-preview", NS, 0, baseline_named=True) == http


def test_nginx_refuses_the_baseline_naming_the_field_and_the_others_take_it() -> None:
    for routing, refused in (({"nginx": {"ingress": "web"}}, True), ({"gatewayAPI": {"httpRoute": "web"}}, False),
                             ({"istio": {"virtualService": "web", "routes": ["p"]}}, False), (None, False)):
        release = with_baseline(make_release(routing))
        router = router_for(release)
        problem = unsupported(release, router.supports, "it", weighs_baseline=router.weighs_baseline)
        if refused:
            assert (problem or "").startswith("spec.analysis.judge.baseline: not supported by it")
        else:
            assert problem is None
    # Without a baseline ingress-nginx has nothing to refuse.
    assert unsupported(make_release({"nginx": {"ingress": "web"}}), nginx.NginxRouter.supports, "it",
                       weighs_baseline=False) is None


def test_the_baseline_service_name_must_fit_and_not_be_the_previews() -> None:
    long = with_baseline(make_release({"gatewayAPI": {"httpRoute": "web"}}),
                         {"name": "s" * 55, "previewName": "p", "ports": [{"port": 80}]})
    assert (unsupported(long, gateway_api.GatewayAPIRouter.supports, "it") or "").startswith(
        f"spec.service.name: the judge's baseline Service {'s' * 55}-baseline would be longer than 63")
    clash = with_baseline(make_release({"gatewayAPI": {"httpRoute": "web"}}),
                          {"previewName": "web-baseline", "ports": [{"port": 80}]})
    assert (unsupported(clash, gateway_api.GatewayAPIRouter.supports, "it") or "").startswith(
        "spec.service.previewName: web-baseline is the judge's baseline Service's name")
    # The replica ratio has no baseline Service: nothing to fit.
    assert unsupported(with_baseline(make_release(None), {"name": "s" * 55, "previewName": "p", "ports": [
        {"port": 80}]}), frozenset(), "it") is None


def test_the_stable_service_never_selects_the_baseline_pods_and_its_own_service_only_them() -> None:
    release = make_release({"gatewayAPI": {"httpRoute": "web"}})
    stable = services.manifest(release, "web", "r1")["spec"]["selector"]
    control = services.baseline_manifest(release, "web", "r1")
    assert control["metadata"]["name"] == "web-baseline" and control["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    baseline_pod = {"app": "web", RELEASE_LABEL: "web", REVISION_LABEL: "r1-baseline", ROLE_LABEL: "baseline"}
    stable_pod = {"app": "web", RELEASE_LABEL: "web", REVISION_LABEL: "r1"}

    def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in selector.items())

    assert selects(stable, stable_pod) and not selects(stable, baseline_pod)
    assert selects(control["spec"]["selector"], baseline_pod) and not selects(control["spec"]["selector"], stable_pod)
    # The replica ratio's stable Service selects every revision: the baseline's pods join it.
    assert selects(services.manifest(release, "web", None)["spec"]["selector"], baseline_pod)
    # Both labellings of a baseline's pods (an older operator's kept the stable revision's) are keyed as one.
    assert workloads._revision_key(baseline_pod) == workloads._revision_key({**baseline_pod, REVISION_LABEL: "r1"}) \
        == "r1" + workloads.BASELINE
    assert workloads._revision_key(stable_pod) == "r1"


def test_a_backend_named_like_the_baseline_that_the_operator_did_not_write_is_kept() -> None:
    """Only a reference the operator wrote (recorded in `glideslope.dev/baseline-backend`) is
    removed when no baseline runs; the author's own Service of that name is kept."""
    rules = [{"backendRefs": [{"name": "web", "port": 80}, {"name": "web-baseline", "port": 80, "weight": 0}]}]
    assert gateway_api.reweighted(rules, "web", "web-preview", 0, 80, namespace=NS)[0]["backendRefs"] == [
        {"name": "web-baseline", "port": 80, "weight": 0}, {"name": "web", "port": 80, "weight": 100},
        {"name": "web-preview", "port": 80, "weight": 0}]
    assert [r["name"] for r in gateway_api.reweighted(rules, "web", "web-preview", 0, 80, namespace=NS,
                                                      baseline_named=True)[0]["backendRefs"]] == ["web", "web-preview"]
    http = [{"name": "p", "route": [{"destination": {"host": "web"}, "weight": 90},
                                    {"destination": {"host": "web-baseline"}, "weight": 10}]}]
    assert istio.rerouted(http, ["p"], "web", "web-preview", NS, 0) == [
        {"name": "p", "route": [{"destination": {"host": "web-baseline"}, "weight": 10},
                                {"destination": {"host": "web"}}]}]
    assert istio.rerouted(http, ["p"], "web", "web-preview", NS, 0, baseline_named=True)[0]["route"] == [
        {"destination": {"host": "web"}}]
    assert routes_module.written_patch(Routes(), "web-baseline") == {"annotations": {
        routes_module.WRITTEN_ANNOTATION: None, routes_module.BASELINE_ANNOTATION: "web-baseline"}}
    assert routes_module.baseline_written({"metadata": {"annotations": {
        routes_module.BASELINE_ANNOTATION: "web-baseline"}}}) == "web-baseline"


def test_an_older_operators_baseline_deployment_is_replaced() -> None:
    """An older operator's baseline Deployment selects the stable revision's own label, and a
    Deployment's selector is immutable (the API server answers 422): it is deleted, and the next
    tick creates it with the baseline's label."""
    calls: list[tuple[str, str]] = []
    kube = SimpleNamespace(apps=SimpleNamespace(
        delete_namespaced_deployment=lambda name, namespace: calls.append(("delete", name))))
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    release = make_release(None)

    def fail(body: str) -> None:
        """The API server refuses the apply (422), saying `body`."""
        def patch(name: str, namespace: str, manifest: dict[str, Any], **_: Any) -> None:
            calls.append(("patch", name))
            assert manifest["spec"]["selector"]["matchLabels"][REVISION_LABEL] == "r1-baseline"
            error = kubernetes.client.ApiException(status=422)
            error.body = body
            raise error
        kube.apps.patch_namespaced_deployment = patch

    fail('{"message": "spec.selector: Invalid value: ...: field is immutable"}')
    workloads.apply_baseline(kube, release, "r1", template, 2)  # type: ignore[arg-type]
    assert calls == [("patch", "web-r1-baseline"), ("delete", "web-r1-baseline")]
    # Any other refusal is not ours to paper over.
    fail('{"message": "spec.template.spec.containers[0].image: Required value"}')
    with pytest.raises(kubernetes.client.ApiException):
        workloads.apply_baseline(kube, release, "r1", template, 2)  # type: ignore[arg-type]
