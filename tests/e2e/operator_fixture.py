"""The operator as a subprocess per test namespace, authenticated as its own ServiceAccount,
plus helpers to write Releases and wait on their status.

Import the fixture into a test module with
`from tests.e2e.operator_fixture import operator_fixture  # noqa: F401` and ask for `operator`.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import REPO, Cluster, wait_until

INTERVAL = "0.5"
"""Seconds between steps: short, so the e2e suite stays fast."""
SANDBOX_EGRESS = ("--egress-allow", "127.0.0.0/8", "--prometheus-allow", "http://127.0.0.1:")
"""The tests' webhook receivers and stand-in Prometheus servers listen on loopback, which the
operator's egress policy denies by default."""


@dataclass
class Operator:
    """A running `glideslope operator --namespace NS`."""

    sandbox: Cluster
    namespace: str
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = field(default=0)

    def start(self) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.sandbox.operator_kubeconfig)}
        log = self.log_path.open("ab")
        self.starts += 1
        self.proc = subprocess.Popen(
            [str(REPO / ".venv/bin/glideslope"), "operator", "--namespace", self.namespace,
             "--metrics-port", "0", "--interval", INTERVAL,
             "--prometheus-url", self.sandbox.prometheus_url, *SANDBOX_EGRESS],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)

    def kill(self) -> None:
        """Dies at once, as a crash would (no cleanup)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture(name="operator")
def operator_fixture(sandbox: Cluster, namespace: str, tmp_path: Path) -> Iterator[Operator]:
    op = Operator(sandbox, namespace, tmp_path / "operator.log")
    op.start()
    yield op
    op.stop()
    # pytest shows captured output of failed tests only.
    print(f"--- operator log ({namespace}) ---\n{op.log()[-6000:]}")
    release_finalizers(sandbox, namespace)


def release_finalizers(sandbox: Cluster, namespace: str) -> None:
    """Drop kopf's finalizer from the namespace's Releases: without a running operator it would
    keep them, and so the namespace, from being deleted."""
    for name in sandbox.kubectl("get", "releases", "-n", namespace, "-o", "name", check=False).stdout.split():
        sandbox.kubectl("patch", name, "-n", namespace, "--type=merge", "-p",
                        '{"metadata":{"finalizers":null}}', check=False)


# Manifests ------------------------------------------------------------------------------------


def release(name: str, version: str, strategy: dict[str, Any], *, replicas: int = 4,
            error_rate: float = 0.0, **spec: Any) -> dict[str, Any]:
    """A Release of image `app:<version>`; the template changes with the version."""
    return {
        "apiVersion": "glideslope.dev/v1alpha1", "kind": "Release", "metadata": {"name": name},
        "spec": {
            "version": version, "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name},
                             "annotations": {"sim.glideslope.dev/error-rate": str(error_rate)}},
                "spec": {"containers": [{"name": "app", "image": f"registry.example/{name}:{version}"}]},
            },
            "service": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
            "strategy": copy.deepcopy(strategy),
            **spec,
        },
    }


def status(sandbox: Cluster, namespace: str, name: str) -> dict[str, Any]:
    body = sandbox.get_json("release", name, "-n", namespace)
    result: dict[str, Any] = body.get("status") or {}
    return result


def wait_phase(sandbox: Cluster, namespace: str, name: str, phase: str, *, version: str | None = None,
               timeout: float = 120) -> dict[str, Any]:
    """Wait until the Release is in `phase` (for `version`, when given); returns its status."""
    def check() -> dict[str, Any] | None:
        st = status(sandbox, namespace, name)
        if st.get("phase") == phase and (version is None or st.get("version") == version):
            return st
        return None
    result: dict[str, Any] = wait_until(check, timeout=timeout, what=f"{name} {phase} {version or ''}",
                                        interval=0.3)
    return result


def deployments(sandbox: Cluster, namespace: str, name: str) -> dict[str, dict[str, int]]:
    """revision -> {replicas, ready} of the Release's Deployments."""
    items = sandbox.get_json("deployments", "-n", namespace, "-l", f"glideslope.dev/release={name}")["items"]
    return {d["metadata"]["labels"]["glideslope.dev/revision"]:
            {"replicas": d["spec"]["replicas"], "ready": d["status"].get("readyReplicas", 0)} for d in items}


def snapshot(sandbox: Cluster, namespace: str, name: str) -> tuple[dict[str, Any], dict[str, dict[str, int]]]:
    """The Release's status and, per revision, its Deployment's replicas and its Ready pods, from
    one API call (cheap enough to poll). Readiness is counted on pods, as the operator does:
    Deployment status lags behind them."""
    items = sandbox.get_json("releases,deployments,pods", "-n", namespace)["items"]
    st: dict[str, Any] = next((i.get("status") or {} for i in items
                               if i["kind"] == "Release" and i["metadata"]["name"] == name), {})
    ours = [i for i in items if (i["metadata"].get("labels") or {}).get("glideslope.dev/release") == name]
    pods = {d["metadata"]["labels"]["glideslope.dev/revision"]: {"replicas": d["spec"]["replicas"], "ready": 0}
            for d in ours if d["kind"] == "Deployment"}
    for pod in ours:
        revision = pod["metadata"]["labels"].get("glideslope.dev/revision")
        if pod["kind"] == "Pod" and revision in pods and not pod["metadata"].get("deletionTimestamp") and any(
                c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", [])):
            pods[revision]["ready"] += 1
    return st, pods


def selector(sandbox: Cluster, namespace: str, service: str) -> dict[str, str]:
    result: dict[str, str] = sandbox.get_json("service", service, "-n", namespace)["spec"]["selector"]
    return result


def annotate(sandbox: Cluster, namespace: str, name: str, key: str, value: str) -> None:
    sandbox.kubectl("annotate", "--overwrite", "release", name, "-n", namespace, f"{key}={value}")


def grant_secrets(sandbox: Cluster, namespace: str) -> None:
    """Let the operator read Secrets in `namespace`, as the chart's `secretNamespaces` does."""
    sandbox.apply([
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "glideslope-secrets"},
         "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "glideslope-secrets"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "glideslope-secrets"},
         "subjects": [{"kind": "ServiceAccount", "name": "glideslope", "namespace": "glideslope-system"}]},
    ], namespace)


def events(sandbox: Cluster, namespace: str) -> list[str]:
    items = sandbox.get_json("events", "-n", namespace, "--field-selector", "involvedObject.kind=Release")["items"]
    return [e["reason"] for e in items]


def dump(value: Any) -> str:
    return json.dumps(value, indent=1)[:4000]
