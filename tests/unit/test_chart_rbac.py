"""The chart's RBAC: exactly the verbs the operator calls, and with `watchNamespaces` nothing
namespaced granted outside the watched namespaces. (tests/e2e/test_rbac.py measures the same
on an API server, with the operator running on it.)"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from glideslope.sandbox.build import ensure_helm

pytestmark = pytest.mark.unit

CHART = Path(__file__).resolve().parents[2] / "charts" / "glideslope"
RELEASE_NAMESPACE = "glideslope-system"
WATCHED = ("shop", "staging")
CLUSTER_SCOPED = {("apiextensions.k8s.io", "customresourcedefinitions"), ("", "namespaces"),
                  ("glideslope.dev", "clusteranalysistemplates")}

Grant = tuple[str, str, str]
"""(API group, resource, verb)"""

# Every verb with the code that calls it; what no code calls is not granted.
NAMESPACED: set[Grant] = {
    *(("glideslope.dev", "releases", v) for v in ("list", "watch")),  # kopf's watch
    ("glideslope.dev", "releases", "patch"),  # kopf's finalizer; releases.remove_annotations
    ("glideslope.dev", "releases", "get"),  # releases.get
    ("glideslope.dev", "releases/status", "patch"),  # releases.patch_status
    *(("glideslope.dev", "analysistemplates", v) for v in ("list", "watch")),  # kopf's watch (TemplateCache)
    ("glideslope.dev", "analysistemplates", "get"),  # templates.read, before the watch has it
    *(("apps", "deployments", v) for v in ("list", "watch")),  # workloads.observe, WorkloadCache
    *(("apps", "deployments", v) for v in ("create", "patch")),  # workloads.apply_candidate (apply), scale
    ("apps", "deployments", "delete"),  # workloads.delete
    ("apps", "deployments", "get"),  # read before a write: is it the Release's own
    *(("", "services", v) for v in ("create", "patch")),  # services.apply; workloads.orphan_serving
    *(("", "services", v) for v in ("get", "list")),  # workloads.selected_revision, orphan_serving
    ("", "services", "delete"),  # services.delete_baseline: the judge's baseline Service
    *(("", "pods", v) for v in ("list", "watch")),  # workloads.observe, WorkloadCache
    *(("gateway.networking.k8s.io", "httproutes", v) for v in ("get", "patch")),  # traffic/gateway_api
    *(("networking.k8s.io", "ingresses", v) for v in ("get", "create", "patch", "delete")),  # traffic/nginx
    *(("networking.istio.io", "virtualservices", v) for v in ("get", "patch")),  # traffic/istio
    *(("batch", "jobs", v) for v in ("get", "create")),  # jobs.ensure
    *(("", "configmaps", v) for v in ("get", "create", "patch")),  # records: read, apply
    ("", "events", "create"),  # events._create; kopf's posting
}
CLUSTER: set[Grant] = {
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),  # kopf's resource observer
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    *(("glideslope.dev", "clusteranalysistemplates", v) for v in ("list", "watch")),  # kopf's watch
    ("glideslope.dev", "clusteranalysistemplates", "get"),  # templates.read, before the watch has it
}
NAMESPACES: set[Grant] = {("", "namespaces", "list"), ("", "namespaces", "watch")}
"""kopf run with --namespace (so are the e2e tests' operators, on the cluster-wide RBAC)."""
LEASES: set[Grant] = {("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")}  # kube/leader.py
SECRETS: set[Grant] = {("", "secrets", "get")}  # kube/secrets.py


def render(*values: str, tests: bool = False) -> list[dict[str, Any]]:
    """The chart's objects; with `tests`, only its `helm test` hook's."""
    out = subprocess.run([str(ensure_helm()), "template", "glideslope", str(CHART), "--namespace",
                          RELEASE_NAMESPACE, *values], check=True, capture_output=True, text=True).stdout
    objs = [d for d in yaml.safe_load_all(out) if d]
    return [o for o in objs if ((o["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test") == tests]


def test_the_helm_test_hook_may_read_only_what_it_checks() -> None:
    objs = render(tests=True)
    rules = [(o["kind"], r) for o in objs if o["kind"] in ("ClusterRole", "Role") for r in o["rules"]]
    assert rules == [
        ("ClusterRole", {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
                         "resourceNames": ["releases.glideslope.dev"], "verbs": ["get"]}),
        ("Role", {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["glideslope"],
                  "verbs": ["get"]}),
    ]
    pod = next(o for o in objs if o["kind"] == "Pod")
    assert pod["spec"]["serviceAccountName"] == "glideslope-test"
    assert pod["spec"]["containers"][0]["command"][:2] == ["glideslope", "selftest"]
    assert {b["subjects"][0]["name"] for b in objs if b["kind"].endswith("Binding")} == {"glideslope-test"}


def grants(role: dict[str, Any]) -> set[Grant]:
    return {(group, resource, verb) for rule in role.get("rules") or [] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


def bound(objs: list[dict[str, Any]]) -> dict[str | None, set[Grant]]:
    """What the ServiceAccount is granted, by namespace (None: cluster-wide)."""
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o
             for o in objs if o["kind"] in ("ClusterRole", "Role")}
    out: dict[str | None, set[Grant]] = {}
    for binding in objs:
        if binding["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "glideslope",
                                        "namespace": RELEASE_NAMESPACE}]
        ref = binding["roleRef"]
        where = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        role = roles[(ref["kind"], None if ref["kind"] == "ClusterRole" else where, ref["name"])]
        out.setdefault(where, set()).update(grants(role))
    return out


def test_namespaced_install_grants_namespaced_resources_in_watched_namespaces_only() -> None:
    objs = render("--set", f"watchNamespaces={{{','.join(WATCHED)}}}")
    by_namespace = bound(objs)
    assert {g[:2] for g in by_namespace[None]} <= CLUSTER_SCOPED, "a ClusterRoleBinding grants namespaced resources"
    expected: dict[str | None, set[Grant]] = {None: CLUSTER | NAMESPACES, RELEASE_NAMESPACE: LEASES}
    expected.update({ns: NAMESPACED | SECRETS for ns in WATCHED})
    assert by_namespace == expected


def test_cluster_wide_install_grants_exactly_what_the_operator_calls() -> None:
    assert bound(render()) == {None: NAMESPACED | CLUSTER | NAMESPACES, RELEASE_NAMESPACE: LEASES}


def test_no_lease_role_without_leader_election() -> None:
    objs = render("--set", "leaderElection.enabled=false", "--set", "watchNamespaces={shop}")
    assert not any(g[1] == "leases" for o in objs if o["kind"] in ("Role", "ClusterRole") for g in grants(o))
    assert RELEASE_NAMESPACE not in bound(objs)


def test_secret_namespaces_may_differ_from_watched_ones() -> None:
    objs = render("--set", "watchNamespaces={shop}", "--set", "secretNamespaces={vault}")
    by_namespace = bound(objs)
    assert by_namespace["shop"] == NAMESPACED and by_namespace["vault"] == SECRETS


def test_releases_join_the_built_in_roles() -> None:
    """People bound to admin or edit in a namespace manage its Releases; view reads them."""
    aggregated = {label: grants(o) for o in render() if o["kind"] == "ClusterRole"
                  for label in (o["metadata"].get("labels") or {}) if label.startswith("rbac.authorization.k8s.io/")}
    writes = {("glideslope.dev", r, v) for r in ("releases", "releases/scale")
              for v in ("create", "update", "patch", "delete", "deletecollection")}
    assert writes <= aggregated["rbac.authorization.k8s.io/aggregate-to-edit"]
    assert aggregated["rbac.authorization.k8s.io/aggregate-to-admin"] == \
        aggregated["rbac.authorization.k8s.io/aggregate-to-edit"]
    assert {v for _, _, v in aggregated["rbac.authorization.k8s.io/aggregate-to-view"]} == {"get", "list", "watch"}


def test_rbac_create_false_leaves_the_rbac_to_the_installer() -> None:
    kinds = {o["kind"] for o in render("--set", "rbac.create=false")}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    assert "ServiceAccount" in kinds and "Deployment" in kinds
