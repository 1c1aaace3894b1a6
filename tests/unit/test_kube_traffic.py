"""The traffic routers' pure parts: what each writes on its route, what it keeps of what it did
not write, and which plans each refuses, naming the step."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import kubernetes
import pytest
from kubernetes.client import V1ObjectMeta, V1OwnerReference

from glideslope.api import Release, parse_release
from glideslope.core.model import HeaderCondition, HeaderRoute, MirrorRoute, Routes
from glideslope.kube.client import Kube
from glideslope.kube.ownership import NotOurs
from glideslope.kube.traffic import gateway_api, istio, nginx, replicas, router_for
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
