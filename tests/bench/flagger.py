"""Flagger as a benchmark anchor: its CRDs and RBAC installed from the module it was built from
(`glideslope.sandbox.anchors`), its controller run as a process with its own ServiceAccount's
token, as its kustomize base ships it, never as an admin; plus a `confirm-traffic-increase`
webhook served by the test, to hold a canary at its first weight while its analysis goes on."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from glideslope.sandbox.anchors import Anchors, ensure_anchors
from tests.bench.test_scale import free_port
from tests.e2e.conftest import create_namespace
from tests.e2e.helpers import Cluster, stop_process, wait_until

FLAGGER_NAMESPACE = "flagger-system"
FLAGGER_ACCOUNT = "flagger"
MESH_PROVIDER = "gatewayapi:v1"


def _install_flagger(sandbox: Cluster, anchors: Anchors) -> None:
    for crd in anchors.flagger_crds:
        # Server-side, as for Argo's: the Canary CRD is large for the last-applied annotation.
        sandbox.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
    for crd in anchors.flagger_crds:
        sandbox.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(crd))
    if sandbox.kubectl("get", "namespace", FLAGGER_NAMESPACE, check=False).returncode != 0:
        sandbox.kubectl("create", "namespace", FLAGGER_NAMESPACE)
    # The ServiceAccount flagger-system/flagger and the ClusterRole bound to it, unchanged: it
    # already covers what the Gateway API provider touches (Deployments, Services, HTTPRoutes,
    # Canaries, MetricTemplates, Events, ConfigMaps and Secrets for config tracking).
    for manifest in anchors.flagger_rbac:
        sandbox.kubectl("apply", "-n", FLAGGER_NAMESPACE, "-f", str(manifest))


@dataclass
class FlaggerController:
    proc: subprocess.Popen[bytes]
    log_path: Path
    namespace: str

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def flagger_namespace(sandbox: Cluster) -> Iterator[str]:
    name = create_namespace(sandbox, "compare-flagger")
    yield name
    sandbox.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def flagger(sandbox: Cluster, flagger_namespace: str, tmp_path: Path) -> Iterator[FlaggerController]:
    """`flagger` with the Gateway API provider, watching `flagger_namespace` only, with its shipped
    RBAC (never as admin); its built-in metrics server is the sandbox's Prometheus."""
    anchors = ensure_anchors()
    _install_flagger(sandbox, anchors)
    kubeconfig = sandbox.kubeconfig_for(FLAGGER_ACCOUNT, FLAGGER_NAMESPACE, tmp_path / "flagger.kubeconfig", "4h")
    log_path = tmp_path / "flagger.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [str(anchors.flagger), "-kubeconfig", str(kubeconfig), f"-mesh-provider={MESH_PROVIDER}",
             f"-metrics-server={sandbox.prometheus_url}", f"-namespace={flagger_namespace}",
             "-port", str(free_port()), "-log-level", "info", "-zap-encoding", "console"],
            stdout=log, stderr=subprocess.STDOUT)
    controller = FlaggerController(proc, log_path, flagger_namespace)
    try:
        wait_until(lambda: proc.poll() is not None or "Started operator workers" in controller.log(),
                   60, "Flagger's workers")
        assert proc.poll() is None, f"flagger exited:\n{controller.log()[-4000:]}"
        yield controller
    finally:
        stop_process(proc)
        print(f"--- flagger log (tail) ---\n{controller.log()[-4000:]}")


class TrafficHold:
    """A `confirm-traffic-increase` webhook on loopback that lets each revision of a canary (told
    apart by Flagger's checksum in the payload) take its first step, and refuses every later one:
    the canary stays at its first weight, in phase Progressing, analysed at every interval.

    Flagger calls this hook only after the interval's analysis passed, so each refusal also marks
    a passing check, at a known time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._approved: set[str] = set()
        self._refusals: list[float] = []
        hold = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                checksum = str(json.loads(body or b"{}").get("checksum", ""))
                code = hold._answer(checksum)
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass  # one call per interval: not worth the noise

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/confirm-traffic-increase"
        threading.Thread(target=self._server.serve_forever, name="traffic-hold", daemon=True).start()

    def _answer(self, checksum: str) -> int:
        with self._lock:
            if checksum not in self._approved:
                self._approved.add(checksum)
                return 200
            self._refusals.append(time.monotonic())
            return 403

    def reset(self) -> None:
        """Forget the refusals counted so far (before a new revision)."""
        with self._lock:
            self._refusals.clear()

    def refusals(self) -> list[float]:
        """When each refusal since the last reset was given (time.monotonic())."""
        with self._lock:
            return list(self._refusals)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def traffic_hold() -> Iterator[TrafficHold]:
    hold = TrafficHold()
    yield hold
    hold.close()
