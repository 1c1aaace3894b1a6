"""A noisy neighbour: one operator serves a hostile namespace and an honest one, and the hostile
one cannot stall, crash or steer it for the honest one.

The hostile namespace applies, all at once: a trigger condition as costly as the CRD lets
through (1,014 levels deep), 20 webhook gates to a server that accepts connections and never
answers, a Prometheus that sends 200 MB and one that trickles a byte every 2 s, the cloud
metadata address as a Prometheus and as a webhook, and a webhook gate whose `headersFrom`
names a ServiceAccount token. Each must end Degraded or Failed with a message naming its field, and
nothing it fetched may reach its status, Events or record.

The honest namespace's 10 canaries (one of them breaching, so it rolls back) are timed
alone first, before any hostile Release exists, then again beside the hostile ones: their
step overhead and the breach-to-rollback time must stay within 1 s of what they were alone.
Meanwhile the operator process is never restarted and stays under the Helm chart's memory
limit. The figures are printed (`-s`) and written to tests/bench/results/noisy_neighbour.json.

`make test-faults` runs this file in its serial phase: the timing comparison must not share
the CPU with another fault test.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import selectors
import signal
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import kubernetes
import pytest

from tests.e2e.analysis_helpers import analysis, trigger
from tests.e2e.conftest import create_namespace
from tests.e2e.helpers import REPO, Cluster, wait_until
from tests.e2e.operator_fixture import grant_secrets, release, release_finalizers

pytestmark = pytest.mark.faults

RESULTS = REPO / "tests" / "bench" / "results" / "noisy_neighbour.json"

# The honest namespace ------------------------------------------------------------------------

HEALTHY = tuple(f"app-{i}" for i in range(9))
BREACHING = "app-breach"
HONEST = (*HEALTHY, BREACHING)
STEPS = {"type": "Canary", "canary": {"steps": [
    {"setWeight": 25}, {"pause": {"duration": "2s"}}, {"setWeight": 50}, {"pause": {"duration": "2s"}}]}}
PLANNED_PAUSES = 4.0
"""Seconds of `STEPS` that are waiting by design; the rest of a rollout is the operator's overhead
(and the analysis it waits for)."""
TOLERANCE = 1.0
"""How much worse the honest figures may get beside the hostile Releases: the issue's "within 1 s"."""
HONEST_TIMEOUT = 150.0

# The hostile namespace -----------------------------------------------------------------------

BLACK_HOLES = 20
MARKER = "GLIDESLOPE-NOISY-NEIGHBOUR-MARKER"
"""What the hostile Prometheus servers send: it must never reach a status, an Event or a record."""
FLOOD_BYTES = 200 * 1024 * 1024
TRICKLE_SECONDS = 2.0
METADATA = "169.254.169.254"
HOSTILE_TIMEOUT = 200.0
"""Seconds from applying the hostile Releases until each has ended: 22 webhook gates (20 black
holes, the metadata address, the token) share 4 slots, ~11 s each (2 attempts of 5 s)."""
CONSENT = {"glideslope.dev/release-secret": "true"}
TOKEN_SECRET = "default-token"

# The operator --------------------------------------------------------------------------------

MEMORY_LIMIT_MIB = 384
"""The Helm chart's `resources.limits.memory` (charts/glideslope/values.yaml)."""
SAMPLE_SECONDS = 0.5


def _expensive_condition() -> str:
    """The costliest condition the CRD accepts. Its rules refuse what has no bound by itself (the
    macros map, filter, all, exists, exists_one, and matches; backslashes and carriage returns)
    and allow 1,024 characters; what remains costs most by nesting, and a chain of unary minus
    nests one level a character: 1,014 levels. Unchecked, cel-python's recursive evaluator dies
    of it (RecursionError; with a raised recursion limit, the C stack). The operator must refuse
    it from its parse tree (at most 16 levels), evaluating nothing."""
    return "-" * (1024 - len("result<0.0")) + "result<0.0"


# Stand-ins for what a hostile tenant points its Releases at -----------------------------------


class BlackHole:
    """A TCP server that accepts every connection, reads what it is sent and never answers."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=256)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.accepted = 0
        self.open = 0
        self.peak_open = 0
        self._thread = threading.Thread(target=self._run, name="black-hole", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/approve"

    def _run(self) -> None:
        while not self._stop.is_set():
            ready = [cast(socket.socket, key.fileobj) for key, _ in self._selector.select(timeout=0.2)]
            # Hang-ups before new connections: a slot's next request may arrive in the same batch
            # as the close of the one before it, and `peak_open` must not count both.
            for sock in sorted(ready, key=lambda s: s is self._listener):
                if sock is self._listener:
                    try:
                        conn, _ = sock.accept()
                    except BlockingIOError:
                        continue
                    conn.setblocking(False)
                    self._selector.register(conn, selectors.EVENT_READ)
                    with self._lock:
                        self.accepted += 1
                        self.open += 1
                        self.peak_open = max(self.peak_open, self.open)
                    continue
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:  # the operator gave up on it
                    self._selector.unregister(sock)
                    sock.close()
                    with self._lock:
                        self.open -= 1
        for key in list(self._selector.get_map().values()):
            cast(socket.socket, key.fileobj).close()
        self._selector.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class StandIn(ThreadingHTTPServer):
    """A local HTTP server that counts what it is asked; its handler decides the answer."""

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.active = 0
        self.bytes_sent = 0
        threading.Thread(target=self.serve_forever, name=handler.__name__, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def seen(self, handler: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.requests.append((handler.command, handler.path, dict(handler.headers)))

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def stand_in(self) -> StandIn:
        return cast(StandIn, self.server)


def _flood_body() -> Iterator[bytes]:
    """200 MB that start as Prometheus' JSON and go on with the marker, 64 KiB at a time."""
    head = b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{"leak":"'
    chunk = (MARKER + " ").encode() * (65536 // (len(MARKER) + 1))
    yield head
    sent = len(head)
    while sent < FLOOD_BYTES:
        piece = chunk[:FLOOD_BYTES - sent]
        yield piece
        sent += len(piece)


class Flood(_Quiet):
    """A Prometheus that answers every request with 200 MB and no Content-Length (so only the
    bytes read can tell how big it is)."""

    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        server = self.stand_in
        server.seen(self)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        with server.lock:
            server.active += 1
        try:
            for piece in _flood_body():
                self.wfile.write(piece)
                with server.lock:
                    server.bytes_sent += len(piece)
        except OSError:
            pass  # the reader hung up: what a bounded client does
        finally:
            with server.lock:
                server.active -= 1

    do_POST = do_GET


TRICKLE_BODY = ('{"status":"success","data":{"resultType":"vector","result":[{"metric":{"leak":"'
                + MARKER + '"},"value":[0,"1"]}]}}').encode()


class Trickle(_Quiet):
    """A Prometheus that sends its headers at once, then its body a byte every 2 s."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        server = self.stand_in
        server.seen(self)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(TRICKLE_BODY)))
        self.end_headers()
        with server.lock:
            server.active += 1
        try:
            self.wfile.flush()
            for byte in TRICKLE_BODY:
                if server.stopping.wait(TRICKLE_SECONDS):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                with server.lock:
                    server.bytes_sent += 1
        except OSError:
            self.close_connection = True
        finally:
            with server.lock:
                server.active -= 1

    do_POST = do_GET


class Receiver(_Quiet):
    """The webhook a ServiceAccount token would be sent to: it must never be asked."""

    def do_POST(self) -> None:
        self.stand_in.seen(self)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST


@dataclass
class Endpoints:
    black_hole: BlackHole
    flood: StandIn
    trickle: StandIn
    receiver: StandIn


@pytest.fixture
def endpoints() -> Iterator[Endpoints]:
    found = Endpoints(BlackHole(), StandIn(Flood), StandIn(Trickle), StandIn(Receiver))
    yield found
    found.black_hole.close()
    for server in (found.flood, found.trickle, found.receiver):
        server.stop()


# The operator, watched -----------------------------------------------------------------------


def _rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _sockets_to(pid: int, address: str) -> list[str]:
    """The operator's TCP sockets whose remote end is `address` (from /proc: any state, SYN_SENT
    included, so an attempt to connect shows while it lasts)."""
    wanted = socket.inet_aton(address)[::-1].hex().upper()
    inodes: set[str] = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        with open(f"/proc/{pid}/net/tcp") as f:
            lines = f.readlines()[1:]
    except OSError:
        return []
    return [line.strip() for line in lines
            if line.split()[2].split(":")[0] == wanted and line.split()[9] in inodes]


class Sampler:
    """Every `SAMPLE_SECONDS`: the operator's RSS, and whether it holds a socket to the cloud
    metadata address. The socket check sees an attempt that lasts (a connection held, a SYN
    unanswered), not one opened and closed between two samples: the refusal messages say the
    address was refused before any request, this backs them where it can."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kib = 0
        self.samples = 0
        self.missing = 0
        self.metadata_sockets: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            rss = _rss_kib(self.pid)
            if rss is None:
                self.missing += 1
            else:
                self.samples += 1
                self.peak_kib = max(self.peak_kib, rss)
            self.metadata_sockets += _sockets_to(self.pid, METADATA)
            if self._stop.wait(SAMPLE_SECONDS):
                return

    @property
    def peak_mib(self) -> float:
        return self.peak_kib / 1024

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@dataclass
class NoisyOperator:
    proc: subprocess.Popen[bytes]
    log_path: Path
    sampler: Sampler
    starts: int = 1

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def hostile(sandbox: Cluster) -> Iterator[str]:
    """The hostile namespace (the honest one is the `namespace` fixture), with what its
    Releases refer to: the operator may read its Secrets, and one of them is a ServiceAccount
    token its owner labelled for Releases."""
    name = create_namespace(sandbox, "noisy-hostile")
    grant_secrets(sandbox, name)
    sandbox.apply({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
                   "metadata": {"name": TOKEN_SECRET, "labels": CONSENT,
                                "annotations": {"kubernetes.io/service-account.name": "default"}}}, name)
    yield name
    sandbox.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def noisy_operator(sandbox: Cluster, namespace: str, hostile: str, endpoints: Endpoints,
                   tmp_path: Path) -> Iterator[NoisyOperator]:
    """One operator for both namespaces, authenticated as its own ServiceAccount; its egress
    policy lets it reach the test's loopback servers, and the two hostile Prometheus servers."""
    log_path = tmp_path / "operator.log"
    env = {**os.environ, "KUBECONFIG": str(sandbox.operator_kubeconfig)}
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [str(REPO / ".venv/bin/glideslope"), "operator", "--namespace", hostile, "--namespace", namespace,
             "--metrics-port", "0", "--interval", "0.5", "--prometheus-url", sandbox.prometheus_url,
             "--egress-allow", "127.0.0.0/8",
             "--prometheus-allow", endpoints.flood.url, "--prometheus-allow", endpoints.trickle.url],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    op = NoisyOperator(proc, log_path, Sampler(proc.pid))
    try:
        yield op
    finally:
        op.sampler.stop()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
        # pytest shows captured output of failed tests only.
        print(f"--- operator log ({log_path}) ---\n{op.log()[-12000:]}")
        for ns in (hostile, namespace):
            release_finalizers(sandbox, ns)


# Reading Releases ----------------------------------------------------------------------------


class Releases:
    """Lists a namespace's Releases with the Python client: cheaper than a kubectl per poll,
    which matters when the polls run beside the rollouts they time."""

    def __init__(self, sandbox: Cluster) -> None:
        self._api = kubernetes.client.CustomObjectsApi(
            kubernetes.config.new_client_from_config(config_file=str(sandbox.kubeconfig)))

    def statuses(self, namespace: str) -> dict[str, dict[str, Any]]:
        listed = cast(dict[str, Any], self._api.list_namespaced_custom_object(
            "glideslope.dev", "v1alpha1", namespace, "releases", _request_timeout=10))
        return {item["metadata"]["name"]: item.get("status") or {} for item in listed["items"]}


def _wait(check: Callable[[], bool], timeout: float, what: str, describe: Callable[[], str],
          interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}:\n{describe()}")


def _brief(statuses: dict[str, dict[str, Any]], names: tuple[str, ...]) -> str:
    return "\n".join(f"  {n}: version={statuses.get(n, {}).get('version')} phase={statuses.get(n, {}).get('phase')} "
                     f"message={str(statuses.get(n, {}).get('message'))[:300]!r}" for n in names)


# The honest namespace's runs -----------------------------------------------------------------


def _honest(name: str, version: str) -> dict[str, Any]:
    error_rate = 0.5 if name == BREACHING and version != "1" else 0.0
    return release(name, version, STEPS, replicas=2, error_rate=error_rate, analysis=analysis(trigger("critical")))


@dataclass
class Run:
    """One roll of the 10 honest Releases to one version."""

    version: str
    overheads: dict[str, float]
    """Per healthy Release: its rollout's duration minus `PLANNED_PAUSES`."""
    breach_to_rollback: float
    """The breaching Release's `rollbackSeconds`: first failed measurement to stable serving all."""
    wall_seconds: float

    @property
    def median_overhead(self) -> float:
        return statistics.median(self.overheads.values())

    @property
    def max_overhead(self) -> float:
        return max(self.overheads.values())

    def figures(self) -> dict[str, Any]:
        return {"version": self.version, "median_overhead_seconds": round(self.median_overhead, 3),
                "max_overhead_seconds": round(self.max_overhead, 3),
                "breach_to_rollback_seconds": round(self.breach_to_rollback, 3),
                "wall_seconds": round(self.wall_seconds, 2),
                "overhead_seconds": {k: round(v, 3) for k, v in sorted(self.overheads.items())}}


def _entry(st: dict[str, Any], version: str, outcome: str) -> dict[str, Any]:
    found: dict[str, Any] = next((e for e in reversed(st.get("history") or [])
                                  if e.get("version") == version and e.get("outcome") == outcome), {})
    return found


def _roll(sandbox: Cluster, releases: Releases, namespace: str, version: str) -> Run:
    """Roll all 10 honest Releases to `version` at once; wait until the healthy ones succeeded
    and the breaching one rolled back."""
    began = time.monotonic()
    sandbox.apply([_honest(name, version) for name in HONEST], namespace)
    last: dict[str, dict[str, Any]] = {}

    def done() -> bool:
        nonlocal last
        last = releases.statuses(namespace)
        for name in HONEST:
            st = last.get(name, {})
            if st.get("version") != version:
                return False
            wrong = "RolledBack" if name in HEALTHY else "Succeeded"
            assert st.get("phase") != wrong, f"{name} {version} ended {wrong}: {st.get('message')}\n{json.dumps(st)}"
            if st.get("phase") != ("Succeeded" if name in HEALTHY else "RolledBack"):
                return False
        return True

    _wait(done, HONEST_TIMEOUT, f"the honest Releases at {version}", lambda: _brief(last, HONEST))
    wall = time.monotonic() - began
    overheads: dict[str, float] = {}
    for name in HEALTHY:
        entry = _entry(last[name], version, "Succeeded")
        assert entry.get("durationSeconds") is not None, f"{name}: no history entry for {version}: {last[name]}"
        overheads[name] = float(entry["durationSeconds"]) - PLANNED_PAUSES
    rolled_back = _entry(last[BREACHING], version, "RolledBack")
    assert rolled_back.get("rollbackSeconds") is not None, f"{BREACHING}: no rollbackSeconds: {last[BREACHING]}"
    return Run(version, overheads, float(rolled_back["rollbackSeconds"]), wall)


# The hostile namespace's Releases ------------------------------------------------------------


@dataclass(frozen=True)
class Hostile:
    name: str
    manifest: dict[str, Any]
    end: str
    """`Degraded` (reason InvalidSpec) or `Failed` (its first gate failed)."""
    field: str
    """The field its message must name."""
    says: tuple[str, ...] = ()
    """More the message must say."""


def _webhook_gate(url: str, **extra: Any) -> list[dict[str, Any]]:
    return [{"name": "change-ticket", "stage": "preDeploy",
             "webhook": {"url": url, "timeoutSeconds": 5, "retries": 1, **extra}}]


def _metric_gate(address: str) -> dict[str, Any]:
    return {"analysis": {"interval": "1s", "prometheus": {"address": address}},
            "gates": [{"name": "quiet", "stage": "preDeploy",
                       "metric": {"query": "vector(1)", "successCondition": "result == 1.0", "timeoutSeconds": 15}}]}


def _hostile_releases(endpoints: Endpoints) -> list[Hostile]:
    def gated(name: str, **spec: Any) -> dict[str, Any]:
        return release(name, "1", STEPS, replicas=1, **spec)

    expensive = _expensive_condition()
    out = [Hostile("expensive-condition",
                   gated("expensive-condition", analysis=analysis(trigger("critical", failureCondition=expensive))),
                   "Degraded", "spec.analysis.triggers[0].failureCondition", ("nesting deeper than 16 levels",))]
    out += [Hostile(f"black-hole-{i:02d}", gated(f"black-hole-{i:02d}", gates=_webhook_gate(endpoints.black_hole.url)),
                    "Failed", "spec.gates[0].webhook", ("within 5s",)) for i in range(BLACK_HOLES)]
    out += [Hostile("flood-prometheus", gated("flood-prometheus", **_metric_gate(endpoints.flood.url)),
                    "Failed", "spec.analysis.prometheus.address", ("more than 1048576 bytes",)),
            Hostile("trickle-prometheus", gated("trickle-prometheus", **_metric_gate(endpoints.trickle.url)),
                    "Failed", "spec.analysis.prometheus.address", ("no answer",)),
            Hostile("metadata-prometheus",
                    gated("metadata-prometheus", analysis=analysis(trigger("critical"), address=f"http://{METADATA}/")),
                    "Degraded", "spec.analysis.prometheus.address", ("--prometheus-allow",)),
            Hostile("metadata-webhook",
                    gated("metadata-webhook", gates=_webhook_gate(f"http://{METADATA}/latest/meta-data/")),
                    "Failed", "spec.gates[0].webhook", ("denied by the operator's egress policy",)),
            Hostile("token-headers",
                    gated("token-headers", gates=_webhook_gate(f"{endpoints.receiver.url}/check",
                                                               headersFrom={"name": TOKEN_SECRET, "keys": ["token"]})),
                    "Failed", "spec.gates[0].webhook.headersFrom", ("kubernetes.io/service-account-token",))]
    return out


def _end_message(h: Hostile, st: dict[str, Any]) -> str | None:
    """The message of `h`'s expected end once it is there; None before."""
    if h.end == "Degraded":
        cond: dict[str, Any] = next((c for c in st.get("conditions") or [] if c.get("type") == "Degraded"), {})
        if cond.get("status") == "True" and cond.get("reason") == "InvalidSpec":
            return str(cond.get("message") or "")
        return None
    if st.get("phase") == "Failed":
        gate: dict[str, Any] = next(iter(st.get("gates") or []), {})
        return str(gate.get("message") or "")
    return None


class HostileWatch:
    """Polls the hostile namespace every second: when each Release reached its expected end."""

    def __init__(self, releases: Releases, namespace: str, hostile: list[Hostile], since: float) -> None:
        self._releases = releases
        self._namespace = namespace
        self._hostile = hostile
        self._since = since
        self.ended: dict[str, tuple[float, str]] = {}
        self.last: dict[str, dict[str, Any]] = {}
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hostile-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.last = self._releases.statuses(self._namespace)
            except Exception:  # the API server is busy: look again next second
                self.errors += 1
            now = time.monotonic()
            for h in self._hostile:
                message = _end_message(h, self.last.get(h.name, {}))
                if message is not None and h.name not in self.ended:
                    self.ended[h.name] = (now - self._since, message)
            if len(self.ended) == len(self._hostile):
                return
            self._stop.wait(1.0)

    def done(self) -> bool:
        return len(self.ended) == len(self._hostile)

    def describe(self) -> str:
        return _brief(self.last, tuple(h.name for h in self._hostile if h.name not in self.ended))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


def _leaks(sandbox: Cluster, namespace: str, name: str, secrets: tuple[str, ...], st: dict[str, Any]) -> list[str]:
    """Where any of `secrets` shows in the Release's status, its Events or its record."""
    found = [f"status ({s[:40]})" for s in secrets if s in json.dumps(st)]
    events = sandbox.get_json("events", "-n", namespace, "--field-selector", f"involvedObject.name={name}")["items"]
    found += [f"Event {e['reason']}: {e.get('message', '')[:200]!r}" for e in events
              if any(s in (e.get("message") or "") for s in secrets)]
    record = sandbox.kubectl("get", "configmap", f"{name}-record", "-n", namespace, "-o", "json", check=False)
    if record.returncode == 0 and any(s in record.stdout for s in secrets):
        found.append(f"ConfigMap {name}-record")
    return found


# The test ------------------------------------------------------------------------------------


@pytest.mark.timeout(480)
def test_a_hostile_namespace_cannot_hurt_an_honest_one(sandbox: Cluster, namespace: str, hostile: str,
                                                      endpoints: Endpoints, noisy_operator: NoisyOperator) -> None:
    honest = namespace
    op = noisy_operator
    releases = Releases(sandbox)
    encoded = wait_until(lambda: (sandbox.get_json("secret", TOKEN_SECRET, "-n", hostile).get("data") or {})
                         .get("token"), timeout=30, what="the token controller to fill the ServiceAccount token Secret")
    token = base64.b64decode(str(encoded)).decode()
    assert len(token) > 20, token

    # First rollouts (no analysis: nothing is stable yet).
    sandbox.apply([_honest(name, "1") for name in HONEST], honest)
    last: dict[str, dict[str, Any]] = {}

    def first_rollouts() -> bool:
        nonlocal last
        last = releases.statuses(honest)
        return all(last.get(n, {}).get("phase") == "Succeeded" and last[n].get("version") == "1" for n in HONEST)

    _wait(first_rollouts, HONEST_TIMEOUT, "the honest Releases' first rollouts", lambda: _brief(last, HONEST))

    # Alone: no hostile Release exists yet.
    alone = _roll(sandbox, releases, honest, "2")

    # Hostile, all at once; then beside them, once they hold what they can.
    hostile_releases = _hostile_releases(endpoints)
    applied = time.monotonic()
    sandbox.apply([h.manifest for h in hostile_releases], hostile)
    watch = HostileWatch(releases, hostile, hostile_releases, applied)
    try:
        black_hole, flood, trickle = endpoints.black_hole, endpoints.flood, endpoints.trickle
        _wait(lambda: black_hole.open >= 4 and len(flood.requests) >= 1 and trickle.active >= 1, 60,
              "the hostile Releases to be at it (4 connections held by the black hole, the flood and the "
              "trickle each asked)",
              lambda: f"  black hole open {black_hole.open}, accepted {black_hole.accepted}; flood asked "
                      f"{len(flood.requests)}; trickle active {trickle.active}\n{watch.describe()}")
        hostile_at = {"black_hole_open": black_hole.open, "flood_requests": len(flood.requests),
                      "trickle_active": trickle.active, "seconds_after_apply": round(time.monotonic() - applied, 2)}
        beside = _roll(sandbox, releases, honest, "3")
        _wait(watch.done, max(HOSTILE_TIMEOUT - (time.monotonic() - applied), 1), "every hostile Release to end",
              watch.describe, interval=1.0)
    finally:
        watch.stop()
    op.sampler.stop()
    alive = op.proc.poll() is None

    ended = {h.name: watch.ended[h.name] for h in hostile_releases}
    holes = sorted(ended[h.name][0] for h in hostile_releases if h.name.startswith("black-hole-"))
    results: dict[str, Any] = {
        "benchmark": "noisy_neighbour",
        "honest": {"releases": len(HONEST), "breaching": BREACHING, "planned_pauses_seconds": PLANNED_PAUSES,
                   "alone": alone.figures(), "beside": beside.figures()},
        "operator": {"peak_rss_mib": round(op.sampler.peak_mib, 1), "memory_limit_mib": MEMORY_LIMIT_MIB,
                     "rss_samples": op.sampler.samples, "alive_at_end": alive, "starts": op.starts},
        "hostile": {
            "releases": len(hostile_releases), "active_when_beside_began": hostile_at,
            "black_hole": {"accepted": black_hole.accepted, "peak_open": black_hole.peak_open,
                           "ended_after_seconds": {"min": round(holes[0], 1),
                                                   "median": round(statistics.median(holes), 1),
                                                   "max": round(holes[-1], 1)}},
            "flood": {"requests": len(flood.requests), "bytes_sent": flood.bytes_sent},
            "trickle": {"requests": len(trickle.requests), "bytes_sent": trickle.bytes_sent},
            "token_receiver_requests": len(endpoints.receiver.requests),
            "ended": {name: {"after_seconds": round(t, 1), "message": m} for name, (t, m) in ended.items()},
        },
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nnoisy neighbour: {len(HONEST)} honest canaries, {len(hostile_releases)} hostile Releases")
    for label, run in (("alone", alone), ("beside", beside)):
        print(f"  {label:6}: step overhead median {run.median_overhead:.2f}s max {run.max_overhead:.2f}s; "
              f"breach-to-rollback {run.breach_to_rollback:.2f}s; all 10 done in {run.wall_seconds:.1f}s")
    print(f"  operator: peak RSS {op.sampler.peak_mib:.1f} MiB (limit {MEMORY_LIMIT_MIB} MiB) over "
          f"{op.sampler.samples} samples; alive at the end: {alive}")
    print(f"  black hole: {black_hole.accepted} connections, at most {black_hole.peak_open} held at once; "
          f"{BLACK_HOLES} gates ended after {holes[0]:.0f}s to {holes[-1]:.0f}s "
          f"(median {statistics.median(holes):.0f}s)")
    print(f"  flood: {len(flood.requests)} requests, {flood.bytes_sent / 2**20:.1f} MiB written; trickle: "
          f"{len(trickle.requests)} requests, {trickle.bytes_sent} bytes written")
    for name, (t, m) in ended.items():
        if not name.startswith("black-hole-") or name == "black-hole-00":
            print(f"  {name}: ended after {t:.0f}s: {m[:240]}")
    print(f"  results: {RESULTS.relative_to(REPO)}")

    # The operator: one process, never restarted, within its memory limit.
    assert alive, f"the operator exited ({op.proc.returncode}); see its log below"
    assert op.starts == 1
    assert op.sampler.missing == 0, f"the operator's /proc entry was missing {op.sampler.missing} times"
    assert op.sampler.peak_mib < MEMORY_LIMIT_MIB, \
        f"peak RSS {op.sampler.peak_mib:.1f} MiB is over the chart's limit of {MEMORY_LIMIT_MIB} MiB"

    # Every hostile Release ended as it should, saying which field, and kept nothing it fetched.
    statuses = releases.statuses(hostile)
    problems: list[str] = []
    for h in hostile_releases:
        st = statuses.get(h.name, {})
        message = _end_message(h, st)
        if message is None:
            problems.append(f"{h.name}: expected {h.end}, is phase={st.get('phase')}: {st.get('message')}")
            continue
        for wanted in (h.field, *h.says):
            if wanted not in message:
                problems.append(f"{h.name}: its {h.end} message does not say {wanted!r}: {message!r}")
        for leak in _leaks(sandbox, hostile, h.name, (MARKER, token), st):
            problems.append(f"{h.name}: what it fetched (or the token) is in its {leak}")
    assert not problems, "\n".join(problems)
    assert sandbox.get_json("deployments", "-n", hostile)["items"] == [], "a hostile Release changed the cluster"
    assert black_hole.peak_open <= 4, \
        f"the black hole held {black_hole.peak_open} connections at once: more than the namespace's 4 webhook slots"
    assert endpoints.receiver.requests == [], \
        f"the token's receiver was asked: {endpoints.receiver.requests}"
    assert op.sampler.metadata_sockets == [], \
        f"the operator opened sockets to {METADATA}: {op.sampler.metadata_sockets}"
    assert MARKER not in op.log(), "the hostile Prometheus servers' body reached the operator's log"
    assert token not in op.log(), "the ServiceAccount token reached the operator's log"

    # The honest Releases did not notice. One run of each on a 2-core machine: the overhead
    # compares medians over the 9 healthy canaries, robust to one of them being unlucky with the
    # scheduler; breach-to-rollback is a single Release's figure.
    assert beside.median_overhead <= alone.median_overhead + TOLERANCE, (
        f"step overhead beside the hostile Releases: median {beside.median_overhead:.2f}s, alone "
        f"{alone.median_overhead:.2f}s (more than {TOLERANCE}s worse)")
    assert beside.breach_to_rollback <= alone.breach_to_rollback + TOLERANCE, (
        f"breach-to-rollback beside the hostile Releases: {beside.breach_to_rollback:.2f}s, alone "
        f"{alone.breach_to_rollback:.2f}s (more than {TOLERANCE}s worse)")
