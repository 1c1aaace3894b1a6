"""Argo Rollouts as a benchmark anchor: its CRDs and RBAC installed from the module it was built
from (`glideslope.sandbox.anchors`), its controller run as a process with its own ServiceAccount's
token, as its manifests ship, never as an admin."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from glideslope.sandbox.anchors import Anchors, ensure_anchors
from tests.bench.test_scale import free_port
from tests.e2e.conftest import create_namespace
from tests.e2e.helpers import Cluster, stop_process

ARGO_NAMESPACE = "argo-rollouts"
ARGO_ACCOUNT = "argo-rollouts"


def install_argo(sandbox: Cluster, anchors: Anchors) -> None:
    for crd in anchors.argo_rollouts_crds:
        # Server-side: the Rollout CRD is too large for the last-applied annotation.
        sandbox.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
    for crd in anchors.argo_rollouts_crds:
        sandbox.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(crd))
    if sandbox.kubectl("get", "namespace", ARGO_NAMESPACE, check=False).returncode != 0:
        sandbox.kubectl("create", "namespace", ARGO_NAMESPACE)
    for manifest in [*anchors.argo_rollouts_rbac, *anchors.argo_rollouts_config]:
        sandbox.kubectl("apply", "-n", ARGO_NAMESPACE, "-f", str(manifest))


@dataclass
class ArgoController:
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_argo(sandbox: Cluster, log_path: Path, *flags: str) -> subprocess.Popen[bytes]:
    """`rollouts-controller` watching the cluster as its own ServiceAccount (a 4 h token: a scale
    run is long), its shipped RBAC installed first; `flags` after its defaults."""
    anchors = ensure_anchors()
    install_argo(sandbox, anchors)
    kubeconfig = sandbox.kubeconfig_for(ARGO_ACCOUNT, ARGO_NAMESPACE, log_path.with_suffix(".kubeconfig"), "4h")
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [str(anchors.rollouts_controller), "--kubeconfig", str(kubeconfig), "--leader-elect=false",
             "--metricsPort", str(free_port()), "--healthzPort", str(free_port()), "--loglevel", "info", *flags],
            env={**os.environ, "POD_NAMESPACE": ARGO_NAMESPACE}, stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture
def argo(sandbox: Cluster, tmp_path: Path) -> Iterator[ArgoController]:
    """`rollouts-controller` watching the cluster, with its shipped RBAC (never as admin)."""
    log_path = tmp_path / "argo-rollouts.log"
    proc = start_argo(sandbox, log_path)
    controller = ArgoController(proc, log_path)
    try:
        yield controller
    finally:
        # `proc` may have been replaced: a benchmark that kills the controller starts another.
        stop_process(controller.proc)
        print(f"--- argo-rollouts log (tail) ---\n{controller.log()[-4000:]}")


@pytest.fixture
def argo_namespace(sandbox: Cluster) -> Iterator[str]:
    name = create_namespace(sandbox, "compare-argo")
    yield name
    sandbox.kubectl("delete", "namespace", name, "--wait=false", check=False)
