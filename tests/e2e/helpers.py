"""Helpers for end-to-end tests against a real cluster (see conftest.py for the fixtures)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path
    operator_kubeconfig: Path
    prometheus_url: str
    kubectl_bin: str

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                as_operator: bool = False, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        config = self.operator_kubeconfig if as_operator else self.kubeconfig
        res = subprocess.run([self.kubectl_bin, f"--kubeconfig={config}", *args], input=input,
                             capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({res.returncode}): {res.stderr}")
        return res

    def apply(self, manifest: dict[str, Any] | list[dict[str, Any]], namespace: str | None = None) -> None:
        items = manifest if isinstance(manifest, list) else [manifest]
        doc = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
        args = ["apply", "-f", "-"] + (["-n", namespace] if namespace else [])
        self.kubectl(*args, input=doc)

    def kubeconfig_for(self, account: str, namespace: str, path: Path, duration: str = "1h") -> Path:
        """A kubeconfig at `path` for ServiceAccount `namespace/account`, with a TokenRequest token."""
        token = self.kubectl("create", "token", account, "-n", namespace, f"--duration={duration}").stdout.strip()
        config = yaml.safe_load(self.kubeconfig.read_text())
        config["users"] = [{"name": account, "user": {"token": token}}]
        config["contexts"][0]["context"]["user"] = account
        path.write_text(yaml.safe_dump(config))
        return path

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def promql(self, query: str) -> list[dict[str, Any]]:
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


def _read_env_file(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            env[key.strip().removeprefix("export ").strip()] = value.strip()
    return env


def cluster_from_environment() -> Cluster:
    env = dict(os.environ)
    if not (env.get("KUBECONFIG") and env.get("GLIDESLOPE_PROMETHEUS_URL")
            and env.get("GLIDESLOPE_OPERATOR_KUBECONFIG")):
        env_file = Path(env.get("GLIDESLOPE_SANDBOX_DIR", REPO / ".sandbox")) / "env"
        if not env_file.exists():
            pytest.fail(f"no cluster for e2e tests: run `glideslope sandbox up` (no {env_file}), "
                        "or set KUBECONFIG, GLIDESLOPE_OPERATOR_KUBECONFIG and GLIDESLOPE_PROMETHEUS_URL")
        env = {**env, **_read_env_file(env_file)}
    bin_dir = env.get("GLIDESLOPE_SANDBOX_BIN")
    kubectl = str(Path(bin_dir) / "kubectl") if bin_dir else shutil.which("kubectl")
    if not kubectl:
        pytest.fail("kubectl not found")
    return Cluster(Path(env["KUBECONFIG"]), Path(env["GLIDESLOPE_OPERATOR_KUBECONFIG"]),
                   env["GLIDESLOPE_PROMETHEUS_URL"].rstrip("/"), kubectl)


def stop_process(proc: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """SIGTERM (a clean stop: an operator hands its lease over), then SIGKILL after `grace`."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def wait_until(check: Any, timeout: float, what: str, interval: float = 0.25) -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Relay:
    """Forwards raw TCP from 127.0.0.1:<port> to `target` (the API server, Prometheus) until
    `cut`: then it accepts nothing and drops every connection it relayed (TLS runs end to end
    through it). A test cuts a process off from a server this way."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        self.cut_off = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="relay", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return  # cut
            try:
                # No timeout on either side: a watch is quiet for minutes, and must stay open.
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self.cut_off.is_set():
                    for s in (client, upstream):
                        s.close()
                    return
                self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self._lock:
            self.cut_off.set()
            # Shutting the listener down wakes the accept(); closed, the port refuses connections.
            with contextlib.suppress(OSError):
                self.server.shutdown(socket.SHUT_RDWR)
            self.server.close()
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
