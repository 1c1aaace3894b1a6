"""The chart and deploy/ install what the operator needs, and nothing more, on a real API server."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from glideslope.sandbox.build import ensure_helm
from tests.e2e.helpers import REPO, Cluster, stop_process, wait_until

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
    # The `helm test` hook's pod needs its ServiceAccount to exist: it is tested by `helm test` below.
    rendered = helm("template", "glideslope", str(CHART), "--namespace", "glideslope-system", "--skip-tests", *values)
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


def test_helm_install_gives_an_operator_that_completes_a_canary_and_no_more(
        sandbox: Cluster, namespace: str, tmp_path: Path) -> None:
    """The chart's ServiceAccount, run as a process (the sandbox has no image registry), is
    enough for a canary, and is refused what it does not need."""
    from tests.e2e.operator_fixture import release, release_finalizers, wait_phase

    install_ns = f"{namespace}-op"[:63]
    helm_release = f"gs{uuid.uuid4().hex[:6]}"
    env_args = ["--kubeconfig", str(sandbox.kubeconfig)]
    # The sandbox has the CRDs and the chart's ClusterAnalysisTemplates already (cluster-wide, one set per
    # cluster): this second install of the chart skips both.
    helm("install", helm_release, str(CHART), "--namespace", install_ns, "--create-namespace", "--skip-crds",
         "--set", "analysisTemplates.enabled=false", "--set", "replicas=0",
         "--set", f"watchNamespaces={{{namespace}}}", "--wait", "--timeout", "60s", *env_args)
    proc = None
    try:
        account = f"{helm_release}-glideslope"
        kubeconfig = sandbox.kubeconfig_for(account, install_ns, tmp_path / "chart-operator.kubeconfig")

        def as_chart(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sandbox.kubectl_bin, f"--kubeconfig={kubeconfig}", *args],
                                  capture_output=True, text=True, timeout=60)

        # A Secret it is named to read, in its watched namespace: allowed, one by one, not listed.
        sandbox.kubectl("create", "secret", "generic", "prom-auth", "-n", namespace, "--from-literal=token=x")
        assert as_chart("get", "secret", "prom-auth", "-n", namespace).returncode == 0
        for denied in (["get", "secrets", "-n", namespace], ["get", "secrets", "-n", "default"],
                       ["get", "secrets", "-A"],
                       ["create", "namespace", f"{namespace}-x"], ["delete", "nodes", "--all"]):
            res = as_chart(*denied)
            assert res.returncode != 0 and "forbidden" in res.stderr.lower(), denied

        log = (tmp_path / "operator.log").open("ab")
        proc = subprocess.Popen(
            [str(REPO / ".venv/bin/glideslope"), "operator", "--namespace", namespace, "--metrics-port", "0",
             "--interval", "0.5"], env={**os.environ, "KUBECONFIG": str(kubeconfig)},
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        canary = {"type": "Canary", "canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "1s"}}]}}
        sandbox.apply(release("shop", "1", canary, replicas=2), namespace)
        wait_phase(sandbox, namespace, "shop", "Succeeded", version="1", timeout=60)
        sandbox.apply(release("shop", "2", canary, replicas=2), namespace)
        wait_phase(sandbox, namespace, "shop", "Succeeded", version="2", timeout=90)
        assert "Forbidden" not in (tmp_path / "operator.log").read_text(errors="replace")
    finally:
        if proc:
            stop_process(proc)
        release_finalizers(sandbox, namespace)
        helm("uninstall", helm_release, "--namespace", install_ns, *env_args)
        sandbox.kubectl("delete", "namespace", install_ns, "--wait=false", check=False)


def _run_test_hook(sandbox: Cluster, namespace: str, pod_name: str, tmp_path: Path) -> tuple[int, str]:
    """Run the `helm test` pod's command as that pod would, with its own ServiceAccount (kwok
    nodes run no containers), and report its exit on the pod, as a kubelet does."""
    def created() -> dict[str, Any] | None:
        res = sandbox.kubectl("get", "pod", pod_name, "-n", namespace, "-o", "json", check=False)
        return None if res.returncode else dict(yaml.safe_load(res.stdout))

    pod: dict[str, Any] = wait_until(created, 60, f"the test pod {pod_name}")
    command = pod["spec"]["containers"][0]["command"]
    assert command[0] == "glideslope"
    kubeconfig = sandbox.kubeconfig_for(pod["spec"]["serviceAccountName"], namespace, tmp_path / f"{pod_name}.kc")
    ran = subprocess.run([str(REPO / ".venv/bin/glideslope"), *command[1:]], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "KUBECONFIG": str(kubeconfig)})
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    terminated = {"exitCode": ran.returncode, "reason": "Completed" if ran.returncode == 0 else "Error",
                  "startedAt": now, "finishedAt": now}
    status = {"status": {"phase": "Succeeded" if ran.returncode == 0 else "Failed", "containerStatuses": [
        {"name": "selftest", "image": pod["spec"]["containers"][0]["image"], "imageID": "", "ready": False,
         "restartCount": 0, "state": {"terminated": terminated}}]}}
    sandbox.kubectl("patch", "pod", pod_name, "-n", namespace, "--subresource=status", "--type=merge",
                    "-p", json.dumps(status))
    return ran.returncode, ran.stdout + ran.stderr


def test_helm_test_passes_on_a_ready_install_and_fails_without_an_operator(
        sandbox: Cluster, namespace: str, tmp_path: Path) -> None:
    install_ns = f"{namespace}-ht"[:63]
    helm_release = f"ht{uuid.uuid4().hex[:6]}"
    kube = ["--kubeconfig", str(sandbox.kubeconfig)]
    helm("install", helm_release, str(CHART), "--namespace", install_ns, "--create-namespace", "--skip-crds",
         "--set", "replicas=1", "--set", f"watchNamespaces={{{namespace}}}", "--wait", "--timeout", "60s", *kube,
         # The sandbox's own install holds the shipped ClusterAnalysisTemplates.
         "--set", "analysisTemplates.enabled=false")
    operator_deployment = f"{helm_release}-glideslope"
    try:
        for replicas, passes in ((1, True), (0, False)):
            sandbox.kubectl("scale", "deployment", operator_deployment, "-n", install_ns, f"--replicas={replicas}")
            if replicas == 0:
                wait_until(lambda: not sandbox.get_json("deployment", operator_deployment, "-n", install_ns)
                           ["status"].get("replicas"), 30, "the operator scaled to 0")
            tested = subprocess.Popen([str(ensure_helm()), "test", helm_release, "--namespace", install_ns,
                                       "--timeout", "60s", *kube], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True)
            code, said = _run_test_hook(sandbox, install_ns, f"{operator_deployment}-test", tmp_path)
            out, _ = tested.communicate(timeout=90)
            assert (code == 0) == passes, said
            assert (tested.returncode == 0) == passes, out
            if passes:
                assert "Phase:          Succeeded" in out and "Established" in said, out
            else:
                assert "0 replicas: no operator runs" in said and "Failed" in out, (said, out)
    finally:
        helm("uninstall", helm_release, "--namespace", install_ns, *kube)
        sandbox.kubectl("delete", "namespace", install_ns, "--wait=false", check=False)
