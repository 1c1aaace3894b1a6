"""`glideslope sandbox up | down | status`: a real control plane on one machine, no Docker.

etcd, kube-apiserver (RBAC on), kube-controller-manager, kube-scheduler and kwok run as
plain processes from binaries built by `build.py`; Prometheus comes from Debian's package;
the traffic simulator feeds it. Every process is tracked by a pid file in the sandbox dir,
so `down` stops exactly what `up` started.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from glideslope.sandbox import build
from glideslope.sandbox.pki import Pki, ensure_pki, kubeconfig
from glideslope.sandbox.processes import Exited, Managed, wait_for

REPO_ROOT = Path(__file__).resolve().parents[3]

OPERATOR_NAMESPACE = "glideslope-system"
OPERATOR_SERVICE_ACCOUNT = "glideslope"
NODE_COUNT = 3
# Kept long so a day of tests never sees it expire; `up` issues a fresh one every time.
OPERATOR_TOKEN_DURATION = "48h"

GO_RUNTIME = {**os.environ, "GOGC": "400"}
"""The environment of the busiest Go components (API server, controller manager). They share
two cores with the operator and everything else, and with Go's default (GC at 100% heap
growth) collecting garbage was an eighth of the API server's CPU; with 400 the scale benchmark
at 100 Releases measured a fifth less API server CPU, for a few hundred MiB of memory."""

# The controllers a cluster needs for Deployments, ReplicaSets, Jobs, ServiceAccounts and
# their tokens, namespaces, garbage collection, endpoints and aggregated ClusterRoles. The node
# lifecycle controller lifts the not-ready taint that admission puts on every new node once
# kwok reports Ready.
CONTROLLERS = (
    "node-lifecycle-controller",
    "deployment-controller",
    "replicaset-controller",
    "job-controller",
    "ttl-after-finished-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "namespace-controller",
    "garbage-collector-controller",
    "endpoints-controller",
    "endpointslice-controller",
    "endpointslice-mirroring-controller",
    "root-ca-certificate-publisher-controller",
    "pod-garbage-collector-controller",
    "horizontal-pod-autoscaler-controller",
    "disruption-controller",
    # Folds the chart's aggregated ClusterRoles into admin, edit and view.
    "clusterrole-aggregation-controller",
)


@dataclass(frozen=True)
class Ports:
    etcd_client: int = 23790
    etcd_peer: int = 23800
    apiserver: int = 16443
    prometheus: int = 19090
    simulator: int = 9101
    operator_metrics: int = 9102
    kwok: int = 10247

    @classmethod
    def from_env(cls) -> Ports:
        """All ports moved by `GLIDESLOPE_SANDBOX_PORT_OFFSET`, so two sandboxes can coexist."""
        offset = int(os.environ.get("GLIDESLOPE_SANDBOX_PORT_OFFSET", "0"))
        base = cls()
        return cls(**{k: v + offset for k, v in base.__dict__.items()})


def _log(msg: str) -> None:
    print(f"[sandbox] {msg}", flush=True)


class Sandbox:
    """One local control plane, rooted at a directory (default `.sandbox/`)."""

    COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok",
                  "prometheus", "simulator")

    def __init__(self, folder: Path, ports: Ports | None = None) -> None:
        self.dir = folder.resolve()
        self.ports = ports or Ports.from_env()

    # -- paths -------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def operator_kubeconfig(self) -> Path:
        return self.dir / "operator.kubeconfig"

    @property
    def env_file(self) -> Path:
        return self.dir / "env"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports.apiserver}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.prometheus}"

    def process(self, name: str) -> Managed:
        return Managed(name, self.dir / "pids" / f"{name}.pid", self.dir / "logs" / f"{name}.log")

    # -- up ----------------------------------------------------------------------------
    def up(self) -> None:
        started = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        bins = build.ensure_binaries()
        prometheus = ensure_prometheus()
        pki = ensure_pki(self.dir / "pki")
        self.kubeconfig.write_text(kubeconfig(self.server, pki.ca_cert, "admin", pki.token("admin")))
        self.kubeconfig.chmod(0o600)

        self._start_etcd(bins)
        self._start_apiserver(bins, pki)
        self._start_controllers(bins, pki)
        self._install_crds(bins)
        self._install_admission_policy(bins)
        self._install_analysis_templates(bins)
        self._start_kwok(bins)
        self._make_nodes(bins)
        self._make_operator_identity(bins, pki)
        self._start_prometheus(prometheus)
        self._start_simulator()
        self._wait_cluster_ready(bins)
        self.env_file.write_text(
            f"KUBECONFIG={self.kubeconfig}\n"
            f"GLIDESLOPE_PROMETHEUS_URL={self.prometheus_url}\n"
            f"GLIDESLOPE_OPERATOR_KUBECONFIG={self.operator_kubeconfig}\n"
            f"GLIDESLOPE_SANDBOX_BIN={bins.folder}\n"
        )
        (self.dir / "sandbox.json").write_text(json.dumps(
            {"server": self.server, "prometheus": self.prometheus_url, "bin": str(bins.folder),
             "ports": self.ports.__dict__}, indent=2) + "\n")
        _log(f"up in {time.monotonic() - started:.1f}s")
        self.print_status()
        _log(f"admin kubeconfig:    {self.kubeconfig}")
        _log(f"operator kubeconfig: {self.operator_kubeconfig} "
             f"(ServiceAccount {OPERATOR_NAMESPACE}/{OPERATOR_SERVICE_ACCOUNT})")
        _log(f"environment:         . {self.env_file}   (or: set -a; . {self.env_file})")
        _log(f"kubectl:             {bins.path('kubectl')}")

    def _ensure(self, name: str, argv: list[str], ready: Callable[[], bool] | None, timeout: float = 60,
                env: dict[str, str] | None = None) -> None:
        proc = self.process(name)
        pid = proc.pid()
        if pid is None:
            pid = proc.start(argv, env=env, cwd=self.dir)
            _log(f"started {name} (pid {pid}), log {proc.log_file}")
        else:
            _log(f"{name} already running (pid {pid})")

        def check() -> bool:
            if proc.pid() is None:
                raise Exited(f"{name} exited; see {proc.log_file}")
            return ready() if ready else True

        wait_for(name, check, timeout, interval=0.2, log_file=proc.log_file)

    def _start_etcd(self, bins: build.Binaries) -> None:
        p = self.ports
        client = f"http://127.0.0.1:{p.etcd_client}"
        peer = f"http://127.0.0.1:{p.etcd_peer}"
        self._ensure("etcd", [
            str(bins.path("etcd")), "--name=sandbox", f"--data-dir={self.dir / 'etcd'}",
            f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=sandbox={peer}",
            # A throw-away local store: durability is not worth the fsync latency here.
            "--unsafe-no-fsync", "--quota-backend-bytes=4294967296", "--log-level=warn",
        ], lambda: _http_ok(f"{client}/health"))

    def _start_apiserver(self, bins: build.Binaries, pki: Pki) -> None:
        p = self.ports
        self._ensure("kube-apiserver", [
            str(bins.path("kube-apiserver")),
            f"--etcd-servers=http://127.0.0.1:{p.etcd_client}",
            "--bind-address=127.0.0.1", f"--secure-port={p.apiserver}",
            "--advertise-address=127.0.0.1",
            # The `kubernetes` Service cannot point at loopback; nothing in-cluster needs it.
            "--endpoint-reconciler-type=none",
            f"--cert-dir={self.dir / 'pki'}",
            f"--tls-cert-file={pki.server_cert}", f"--tls-private-key-file={pki.server_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--token-auth-file={pki.tokens}",
            "--authorization-mode=Node,RBAC",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=1",
        ], lambda: _http_ok(f"{self.server}/readyz", pki.ca_cert, pki.token("admin")), timeout=90,
            env=GO_RUNTIME)

    def _component_kubeconfig(self, name: str, pki: Pki, user: str) -> Path:
        path = self.dir / f"{name}.kubeconfig"
        path.write_text(kubeconfig(self.server, pki.ca_cert, user, pki.token(user)))
        path.chmod(0o600)
        return path

    def _start_controllers(self, bins: build.Binaries, pki: Pki) -> None:
        kcm_kc = self._component_kubeconfig("kube-controller-manager", pki, "system:kube-controller-manager")
        self._ensure("kube-controller-manager", [
            str(bins.path("kube-controller-manager")),
            f"--kubeconfig={kcm_kc}",
            f"--authentication-kubeconfig={kcm_kc}", f"--authorization-kubeconfig={kcm_kc}",
            "--bind-address=127.0.0.1", "--secure-port=0",
            f"--service-account-private-key-file={pki.sa_key}",
            f"--root-ca-file={pki.ca_cert}",
            "--use-service-account-credentials=true",
            "--controllers=" + ",".join(CONTROLLERS),
            "--leader-elect=false",
            # Fast reactions: the sandbox is small and tests use short intervals.
            "--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10",
            # Its default client limit (20 requests a second per controller) is sized for a big
            # shared API server; here it would make pods start minutes late once a few hundred
            # Deployments change at once, and the benchmark would measure that queue.
            "--kube-api-qps=300", "--kube-api-burst=600",
            "--v=1",
        ], None, env=GO_RUNTIME)
        sched_kc = self._component_kubeconfig("kube-scheduler", pki, "system:kube-scheduler")
        self._ensure("kube-scheduler", [
            str(bins.path("kube-scheduler")),
            f"--kubeconfig={sched_kc}",
            f"--authentication-kubeconfig={sched_kc}", f"--authorization-kubeconfig={sched_kc}",
            "--bind-address=127.0.0.1", "--secure-port=0",
            "--leader-elect=false", "--kube-api-qps=300", "--kube-api-burst=600", "--v=1",
        ], None)

    def kubectl(self, bins: build.Binaries, *args: str, input: str | None = None,
                kubeconfig_path: Path | None = None) -> subprocess.CompletedProcess[str]:
        argv = [str(bins.path("kubectl")), f"--kubeconfig={kubeconfig_path or self.kubeconfig}", *args]
        res = subprocess.run(argv, input=input, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {res.stderr.strip()}")
        return res

    def _install_crds(self, bins: build.Binaries) -> None:
        files = list(bins.gateway_api_crds) + list(bins.istio_crds)
        ours = [f for f in sorted((REPO_ROOT / "crds").glob("*.yaml")) if f.name != "kustomization.yaml"]
        files += ours
        args = ["apply", "--server-side", "--force-conflicts", "--field-manager=glideslope-sandbox"]
        for f in files:
            args += ["-f", str(f)]
        self.kubectl(bins, *args)
        self.kubectl(bins, "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
        _log(f"CRDs installed: Gateway API {build.GATEWAY_API_VERSION}, Istio {build.ISTIO_API_VERSION}'s "
             f"{len(build.ISTIO_CRDS)} and {len(ours)} of Glideslope's")

    def _install_analysis_templates(self, bins: build.Binaries) -> None:
        """The chart's ClusterAnalysisTemplates `error-rate` and `latency-p95`
        (deploy/analysis-templates.yaml), as an installed operator has them."""
        self.kubectl(bins, "apply", "--server-side", "--force-conflicts", "--field-manager=glideslope-sandbox",
                     "-f", str(REPO_ROOT / "deploy" / "analysis-templates.yaml"))

    def _install_admission_policy(self, bins: build.Binaries) -> None:
        """The chart's ValidatingAdmissionPolicy that keeps approvals honest (deploy/admission-policy.yaml)."""
        self.kubectl(bins, "apply", "--server-side", "--force-conflicts", "--field-manager=glideslope-sandbox",
                     "-f", str(REPO_ROOT / "deploy" / "admission-policy.yaml"))

    def _start_kwok(self, bins: build.Binaries) -> None:
        args = [
            str(bins.path("kwok")), f"--kubeconfig={self.kubeconfig}",
            "--manage-all-nodes=true", "--node-lease-duration-seconds=40",
            "--cidr=10.244.0.0/16", "--node-ip=10.240.0.1",
            f"--server-address=127.0.0.1:{self.ports.kwok}",
        ]
        # kwok's own stages, then the sandbox's files: its options, and a stage for a Job pod that
        # fails on request.
        for stage in [*bins.kwok_stages, *sorted((Path(__file__).parent / "kwok").glob("*.yaml"))]:
            args.append(f"--config={stage}")
        self._ensure("kwok", args, lambda: _http_ok(f"http://127.0.0.1:{self.ports.kwok}/healthz"))

    def _make_nodes(self, bins: build.Binaries) -> None:
        nodes = []
        for i in range(NODE_COUNT):
            nodes.append({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {
                    "name": f"kwok-node-{i}",
                    "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {"type": "kwok", "kubernetes.io/hostname": f"kwok-node-{i}",
                               "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
                },
                "status": {
                    "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
                    "capacity": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
                },
            })
        doc = json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes})
        self.kubectl(bins, "apply", "--server-side", "--field-manager=glideslope-sandbox", "-f", "-", input=doc)

    def _make_operator_identity(self, bins: build.Binaries, pki: Pki) -> None:
        """The operator's own ServiceAccount, bound to exactly the RBAC in deploy/."""
        deploy = REPO_ROOT / "deploy"
        self.kubectl(bins, "apply", "--server-side", "--field-manager=glideslope-sandbox",
                     "-f", str(deploy / "namespace.yaml"), "-f", str(deploy / "rbac.yaml"))
        # TokenRequest (what `kubectl create token` calls): a bound, expiring token.
        token = self.kubectl(bins, "create", "token", OPERATOR_SERVICE_ACCOUNT, "-n", OPERATOR_NAMESPACE,
                             f"--duration={OPERATOR_TOKEN_DURATION}").stdout.strip()
        self.operator_kubeconfig.write_text(kubeconfig(
            self.server, pki.ca_cert, f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SERVICE_ACCOUNT}",
            token, namespace=OPERATOR_NAMESPACE))
        self.operator_kubeconfig.chmod(0o600)

    def _start_prometheus(self, binary: str) -> None:
        p = self.ports
        config = self.dir / "prometheus.yml"
        config.write_text(prometheus_config(p))
        self._ensure("prometheus", [
            binary, f"--config.file={config}", f"--storage.tsdb.path={self.dir / 'prometheus'}",
            f"--web.listen-address=127.0.0.1:{p.prometheus}", "--web.enable-lifecycle",
            "--storage.tsdb.retention.time=1d", "--log.level=warn",
        ], lambda: _http_ok(f"{self.prometheus_url}/-/ready"))
        # An already running Prometheus picks up a changed config without a restart.
        _http_ok(f"{self.prometheus_url}/-/reload", method="POST")

    def _start_simulator(self) -> None:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        self._ensure("simulator", [
            sys.executable, "-m", "glideslope.sandbox.simulator",
            f"--kubeconfig={self.kubeconfig}", f"--port={self.ports.simulator}",
        ], lambda: _http_ok(f"http://127.0.0.1:{self.ports.simulator}/metrics"), env=env)

    def _wait_cluster_ready(self, bins: build.Binaries) -> None:
        def nodes_ready() -> bool:
            # Ready, and schedulable: the not-ready taint is gone too.
            nodes = json.loads(self.kubectl(bins, "get", "nodes", "-o", "json").stdout)["items"]
            ready = [n for n in nodes
                     if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
                     and not n["spec"].get("taints")]
            return len(ready) >= NODE_COUNT

        def default_sa() -> bool:
            self.kubectl(bins, "get", "serviceaccount", "default", "-n", "default")
            return True

        wait_for("kwok nodes Ready", nodes_ready, timeout=60, log_file=self.process("kwok").log_file)
        wait_for("default ServiceAccount", default_sa, timeout=60,
                 log_file=self.process("kube-controller-manager").log_file)

    # -- one component at a time (fault tests) ------------------------------------------
    RESTARTABLE = ("kube-apiserver", "prometheus", "simulator")

    def stop_component(self, name: str) -> None:
        """Stops one component by its pid file (TERM, then KILL), as a crash or upgrade would."""
        if name not in self.RESTARTABLE:
            raise ValueError(f"{name}: only {', '.join(self.RESTARTABLE)} can be restarted")
        self.process(name).stop()

    def start_component(self, name: str) -> None:
        """Starts one stopped component as `up` does, and waits until it is ready."""
        if name == "kube-apiserver":
            self._start_apiserver(build.ensure_binaries(), ensure_pki(self.dir / "pki"))
        elif name == "prometheus":
            self._start_prometheus(ensure_prometheus())
        elif name == "simulator":
            self._start_simulator()
        else:
            raise ValueError(f"{name}: only {', '.join(self.RESTARTABLE)} can be restarted")

    # -- down / status -------------------------------------------------------------------
    def down(self, purge: bool = False) -> None:
        for name in reversed(self.COMPONENTS):
            proc = self.process(name)
            pid = proc.pid()
            if proc.stop():
                _log(f"stopped {name} (pid {pid})")
        if purge:
            for sub in ("etcd", "prometheus"):
                shutil.rmtree(self.dir / sub, ignore_errors=True)
            _log("removed etcd and Prometheus data")

    def status(self) -> dict[str, int | None]:
        return {name: self.process(name).pid() for name in self.COMPONENTS}

    def print_status(self) -> bool:
        all_up = True
        for name, pid in self.status().items():
            state = f"running (pid {pid})" if pid else "stopped"
            all_up = all_up and pid is not None
            print(f"  {name:<24} {state}")
        return all_up


def prometheus_config(p: Ports) -> str:
    return f"""# Written by `glideslope sandbox up`. 1 s scrapes keep analysis fast in tests.
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: simulator
    static_configs: [{{targets: ["127.0.0.1:{p.simulator}"]}}]
  - job_name: glideslope-operator
    static_configs: [{{targets: ["127.0.0.1:{p.operator_metrics}"]}}]
  - job_name: prometheus
    static_configs: [{{targets: ["127.0.0.1:{p.prometheus}"]}}]
"""


def ensure_prometheus() -> str:
    """Prometheus from Debian's package, installed when missing."""
    found = shutil.which("prometheus")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError("prometheus is not installed: run `apt-get install prometheus` as root")
    _log("installing Prometheus from Debian's package")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "prometheus"],
                   check=True, env=env)
    found = shutil.which("prometheus")
    if not found:
        raise RuntimeError("apt-get installed prometheus but it is not on PATH")
    return found


def _http_ok(url: str, ca: Path | None = None, token: str | None = None, method: str = "GET") -> bool:
    req = urllib.request.Request(url, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    ctx = ssl.create_default_context(cafile=str(ca)) if ca else None
    with urllib.request.urlopen(req, timeout=2, context=ctx) as resp:
        return 200 <= int(resp.status) < 300
