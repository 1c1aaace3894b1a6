"""Least privilege, measured on the API server: a namespaced install (`watchNamespaces`) gives the
operator's token exactly the verbs the operator calls, in the watched namespaces only, and with
no more than that an operator takes a Release through a canary (an HTTPRoute, a job gate, a
Lease) and its deletion without one request refused."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from glideslope.sandbox.build import ensure_helm
from tests.e2e.helpers import REPO, Cluster, stop_process, wait_until
from tests.e2e.operator_fixture import SANDBOX_EGRESS, release, release_finalizers, wait_phase
from tests.unit.test_chart_rbac import CLUSTER, LEASES, NAMESPACED, NAMESPACES, Grant

pytestmark = pytest.mark.e2e

CHART = REPO / "charts" / "glideslope"
RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
EVERYONE = {"authorization.k8s.io", "authentication.k8s.io"}
"""API groups of what every authenticated user may do (review its own access, ask who it is)."""
REFUSED = ("forbidden", "not enough permissions")
"""What the operator's and kopf's logs say of a refused request (a 403's reason is Forbidden)."""


@dataclass
class Install:
    """The chart's ServiceAccount and RBAC, installed for one watched namespace."""

    sandbox: Cluster
    namespace: str
    """The operator's own namespace (its ServiceAccount, its Lease)."""
    watched: str
    account: str
    kubeconfig: Path

    def kubectl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """kubectl with the ServiceAccount's own (TokenRequest) token."""
        return subprocess.run([self.sandbox.kubectl_bin, f"--kubeconfig={self.kubeconfig}", *args], input=input,
                              capture_output=True, text=True, timeout=60)

    def grants(self, namespace: str) -> set[Grant]:
        """What the API server lets the token do in `namespace` (a SelfSubjectRulesReview), but
        what it lets every authenticated user do."""
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
                  "spec": {"namespace": namespace}}
        res = self.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(review))
        assert res.returncode == 0, res.stderr
        status = json.loads(res.stdout)["status"]
        assert not status.get("incomplete"), status
        return {(group, resource, verb) for rule in status["resourceRules"] for group in rule["apiGroups"]
                for resource in rule["resources"] for verb in rule["verbs"] if group not in EVERYONE}


@pytest.fixture
def install(sandbox: Cluster, namespace: str, tmp_path: Path) -> Iterator[Install]:
    """`helm template --set watchNamespaces={namespace}` into a namespace of its own, RBAC only
    (the sandbox has no image registry: the operator runs as a process, with its token)."""
    own = f"{namespace}-op"[:63]
    name = f"rb{uuid.uuid4().hex[:6]}"
    rendered = subprocess.run(
        [str(ensure_helm()), "template", name, str(CHART), "--namespace", own,
         "--set", f"watchNamespaces={{{namespace}}}"], check=True, capture_output=True, text=True).stdout
    objects = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] in RBAC_KINDS]
    cluster_wide = [f"{o['kind'].lower()}/{o['metadata']['name']}" for o in objects
                    if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    sandbox.kubectl("create", "namespace", own)
    try:
        sandbox.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
        account = f"{name}-glideslope"
        kubeconfig = sandbox.kubeconfig_for(account, own, tmp_path / "namespaced.kubeconfig")
        yield Install(sandbox, own, namespace, account, kubeconfig)
    finally:
        if cluster_wide:
            sandbox.kubectl("delete", "--ignore-not-found", *cluster_wide, check=False)
        sandbox.kubectl("delete", "namespace", own, "--wait=false", check=False)


def _create_deployment(namespace: str) -> list[str]:
    return ["create", "deployment", "rbac-probe", "--image=registry.example/probe:1", "-n", namespace,
            "--dry-run=server"]


def _patch_configmap(namespace: str) -> list[str]:
    # Every namespace has kube-root-ca.crt; a server-side dry run is authorized like a write.
    return ["patch", "configmap", "kube-root-ca.crt", "-n", namespace, "--type=merge", "-p",
            '{"metadata":{"annotations":{"glideslope.dev/rbac-probe":"x"}}}', "--dry-run=server"]


def test_namespaced_token_is_refused_outside_its_namespaces(install: Install) -> None:
    watched = install.watched
    wait_until(lambda: install.sandbox.kubectl("get", "configmap", "kube-root-ca.crt", "-n", watched,
                                               check=False).returncode == 0, timeout=30, what="kube-root-ca.crt")
    # What the issue asks: no Deployment created, no ConfigMap patched, in a namespace not watched.
    for denied in (_create_deployment("kube-system"), _patch_configmap("kube-system"),
                   _create_deployment(install.namespace), _patch_configmap("default"),
                   ["get", "deployments", "--all-namespaces"], ["get", "pods", "--all-namespaces"],
                   ["get", "releases.glideslope.dev", "--all-namespaces"],
                   ["get", "secrets", "-n", watched]):
        res = install.kubectl(*denied)
        assert res.returncode != 0 and "forbidden" in res.stderr.lower(), (denied, res.stdout, res.stderr)
    # The same two writes in the watched namespace are allowed.
    for allowed in (_create_deployment(watched), _patch_configmap(watched)):
        res = install.kubectl(*allowed)
        assert res.returncode == 0, (allowed, res.stderr)
    # And exactly the verbs the operator calls, each where it calls it: the namespaced ones in
    # the watched namespace, the Lease in its own, only kopf's reads of CRDs and Namespaces
    # everywhere.
    cluster_wide = CLUSTER | NAMESPACES
    assert install.grants(watched) == NAMESPACED | {("", "secrets", "get")} | cluster_wide
    assert install.grants(install.namespace) == LEASES | cluster_wide
    assert install.grants("kube-system") == cluster_wide


CANARY = {"type": "Canary", "canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "1s"}}],
                                       "trafficRouting": {"gatewayAPI": {"httpRoute": "web"}}}}
SMOKE = {"name": "smoke-tests", "stage": "postDeploy", "job": {
    "template": {"spec": {"containers": [{"name": "smoke", "image": "registry.example/smoke:1"}],
                          "restartPolicy": "Never"}},
    "timeoutSeconds": 60, "ttlSecondsAfterFinished": 600}}


def _route(namespace: str) -> dict[str, Any]:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {"parentRefs": [{"name": "gateway"}], "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}}


def test_namespaced_rbac_suffices_for_a_canary(sandbox: Cluster, install: Install, tmp_path: Path) -> None:
    """The operator on the namespaced token, with leader election, Prometheus and the sandbox's
    egress, as the chart runs it: a gated Gateway API canary, then the Release deleted."""
    namespace, lease = install.watched, f"{install.account}"
    log_path = tmp_path / "operator.log"
    proc = subprocess.Popen(
        [str(REPO / ".venv/bin/glideslope"), "operator", "--namespace", namespace, "--metrics-port", "0",
         "--interval", "0.5", "--prometheus-url", sandbox.prometheus_url, *SANDBOX_EGRESS, "--log-format", "json",
         "--leader-election-namespace", install.namespace, "--leader-election-name", lease],
        env={**os.environ, "KUBECONFIG": str(install.kubeconfig)}, stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT, cwd=REPO)
    try:
        sandbox.apply(_route(namespace), namespace)
        sandbox.apply(release("web", "1", CANARY, replicas=2, gates=[SMOKE]), namespace)
        wait_phase(sandbox, namespace, "web", "Succeeded", version="1", timeout=90)
        sandbox.apply(release("web", "2", CANARY, replicas=2, gates=[SMOKE]), namespace)
        st = wait_phase(sandbox, namespace, "web", "Succeeded", version="2", timeout=120)
        holder = sandbox.get_json("lease", lease, "-n", install.namespace)["spec"]["holderIdentity"]
        assert holder, "the operator leads through its Lease"
        # It wrote what it writes: the HTTPRoute's weights, the smoke test's Job, the record, Events.
        rules = sandbox.get_json("httproute", "web", "-n", namespace)["spec"]["rules"]
        assert {ref["name"]: ref.get("weight", 1) for ref in rules[0]["backendRefs"]} == \
            {"web": 100, "web-preview": 0}
        jobs = sandbox.get_json("jobs", "-n", namespace, "-l", "glideslope.dev/gate=smoke-tests")["items"]
        assert st["stableRevision"] in {j["metadata"]["labels"]["glideslope.dev/revision"] for j in jobs}
        wait_until(lambda: sandbox.kubectl("get", "configmap", "web-record", "-n", namespace,
                                           check=False).returncode == 0, timeout=10, what="the record")
        assert sandbox.get_json("events", "-n", namespace, "--field-selector",
                                "involvedObject.kind=Release")["items"]
        # Deleted, the Release goes once the operator has run its delete handler (its finalizer).
        sandbox.kubectl("delete", "release", "web", "-n", namespace, "--wait=false")
        wait_until(lambda: sandbox.kubectl("get", "release", "web", "-n", namespace,
                                           check=False).returncode != 0, timeout=30, what="the Release gone")
    finally:
        stop_process(proc, grace=10)  # a clean stop hands the Lease over: one more call to be allowed
        release_finalizers(sandbox, namespace)
        log = log_path.read_text(errors="replace")
        print(f"--- operator log ({namespace}) ---\n{log[-6000:]}")
    refused = [line for line in log.splitlines() if any(word in line.lower() for word in REFUSED)]
    assert not refused, "\n".join(refused[:10])
    assert "released lease" in log
