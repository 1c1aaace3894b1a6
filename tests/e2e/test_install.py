"""The chart and deploy/ install what the operator needs, and nothing more, on a real API server."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml

from glideslope.sandbox.build import ensure_helm
from tests.e2e.helpers import REPO, Cluster

pytestmark = pytest.mark.e2e

CHART = REPO / "charts" / "glideslope"


def helm(*args: str) -> str:
    res = subprocess.run([str(ensure_helm()), *args], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_chart_lints_clean() -> None:
    out = helm("lint", "--strict", str(CHART), "--set", "watchNamespaces={shop,staging}")
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("values", [[], ["--set", "watchNamespaces={default,kube-public}"]],
                         ids=["all-namespaces", "watched-namespaces"])
def test_chart_is_accepted_by_the_api_server(sandbox: Cluster, values: list[str]) -> None:
    rendered = helm("template", "glideslope", str(CHART), "--namespace", "glideslope-system", *values)
    res = sandbox.kubectl("apply", "--dry-run=server", "-f", "-", input=rendered, check=False)
    assert res.returncode == 0, res.stderr


def test_deploy_kustomization_is_accepted_by_the_api_server(sandbox: Cluster) -> None:
    res = sandbox.kubectl("apply", "--dry-run=server", "-k", str(REPO / "deploy"), check=False)
    assert res.returncode == 0, res.stderr
    assert "deployment.apps/glideslope" in res.stdout


def _objects(*values: str) -> list[dict[str, Any]]:
    rendered = helm("template", "glideslope", str(CHART), "--namespace", "glideslope-system", *values)
    return [d for d in yaml.safe_load_all(rendered) if d]


def test_secrets_are_readable_only_in_named_namespaces() -> None:
    objs = _objects("--set", "watchNamespaces={shop,staging}")
    cluster_rules = [r for o in objs if o["kind"] == "ClusterRole" for r in o["rules"]]
    assert cluster_rules and not any("secrets" in r["resources"] for r in cluster_rules)
    secret_roles = {o["metadata"]["namespace"] for o in objs
                    if o["kind"] == "Role" and any("secrets" in r["resources"] for r in o["rules"])}
    assert secret_roles == {"shop", "staging"}
    assert not [o for o in _objects() if o["kind"] == "Role" and o["metadata"]["name"].endswith("-secrets")]


def test_operator_pod_is_restricted() -> None:
    deployment = next(o for o in _objects() if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    container = pod["containers"][0]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}
    assert container["resources"]["limits"] and container["resources"]["requests"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
