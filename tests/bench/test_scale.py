"""Scale: N Releases at once in one operator process (N = 100, 300, 1,000 by default).

Each Release is a canary of 2 replicas with three weights, each followed by a 5 s pause, and
one trigger. All N are created at once (their first rollout, which has no steps), then all N
get a new version at once: that canary is what is measured. For each N this prints and writes
`results/scale_<N>.json`:

- seconds until every Release is Succeeded (first rollout, and the canary);
- step overhead: each step's actual length minus its configured length (0 for setWeight and
  promote, 5 s for a pause), from the operator's own `status.stepStartedAt` of consecutive
  steps (the last step ends at `history[].finishedAt`), p50 and p99 over all N x 7 steps;
  and that overhead split in two: the wait for the step's candidate pods to be Ready (what
  kube-controller-manager, the scheduler and kwok take, seen by this benchmark's own watch of
  the pods) and the rest, the operator's share (from the moment the step could end to the
  moment the operator started the next);
- the operator's peak RSS (the kernel's high-water mark) and CPU seconds;
- API requests during the canary by verb, from the API server's own `apiserver_request_total`
  (every client: the operator, kube-controller-manager, the scheduler, kwok, this benchmark),
  and the writes on the kinds only the operator writes, per step transition;
- Prometheus queries (Prometheus's own `prometheus_http_requests_total`);
- the machine's load average and CPU count: the machine is shared, the numbers are noisy.

`GLIDESLOPE_BENCH_SIZES=100,300` picks the sizes. The benchmark asserts no time, only that every
Release went through every step once, in order. `python -m tests.bench.plot` redraws the plot.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from glideslope.core.model import RELEASE_LABEL, REVISION_LABEL
from glideslope.core.strategies.canary import candidate_pods
from glideslope.sandbox.cluster import Sandbox
from tests.bench import plot
from tests.e2e.helpers import REPO, Cluster, wait_until
from tests.e2e.operator_fixture import release

pytestmark = pytest.mark.bench

RESULTS = Path(__file__).parent / "results"
SIZES = [int(n) for n in os.environ.get("GLIDESLOPE_BENCH_SIZES", "100,300,1000").split(",") if n.strip()]
GROUP, VERSION, PLURAL = "glideslope.dev", "v1alpha1", "releases"
REPLICAS = 2
PAUSE = 5.0
STEPS: dict[str, Any] = {"type": "Canary", "canary": {"steps": [
    {"setWeight": 25}, {"pause": {"duration": "5s"}},
    {"setWeight": 50}, {"pause": {"duration": "5s"}},
    {"setWeight": 75}, {"pause": {"duration": "5s"}}]}}
CONFIGURED = [0.0, PAUSE, 0.0, PAUSE, 0.0, PAUSE, 0.0]
"""Configured seconds of each step of the plan; the operator adds a last step, full promotion."""
CANDIDATE_PODS = [candidate_pods(REPLICAS, w) for w in (25, 25, 50, 50, 75, 75, 100)]
"""Ready candidate pods each step waits for (the weight it holds, as the operator rounds it)."""
ANALYSIS: dict[str, Any] = {"interval": "5s", "triggers": [{
    "name": "absent-errors", "severity": "critical",
    # Always 1 and cheap for Prometheus, yet templated per Release like a real query.
    "query": 'absent(bench_errors_total{namespace="{{namespace}}",release="{{release}}"})',
    "failureCondition": "result > 1"}]}
EXTRA_NODES = 4
"""kwok nodes added beside the sandbox's 3, so 1,000 Releases' pods (up to 4 each) fit."""
TICK_HISTOGRAMS = ("glideslope_tick_wait_seconds", "glideslope_tick_seconds")
"""The operator's own: how long a due tick waited for a stepper, and how long ticks took."""
WORKERS = 16
"""Client threads creating and updating Releases: "at once", as fast as the API server takes them."""


def manifest(name: str, version: str) -> dict[str, Any]:
    body = release(name, version, STEPS, replicas=REPLICAS, analysis=ANALYSIS)
    # No Services: the simulator would add 50 requests a second per Release to the machine.
    del body["spec"]["service"]
    return body


def follow(list_call: Callable[..., Any], see: Callable[[dict[str, Any], bool], None], stop: threading.Event) -> None:
    """List with `list_call`, then watch from there, calling `see(object, deleted)` for each,
    until `stop`. Raw JSON: the client's models would cost this process more CPU than the
    operator's. A dropped watch resumes where it was; an expired version lists again."""
    version = ""
    while not stop.is_set():
        try:
            if not version:
                listed = json.loads(list_call(_preload_content=False).data)
                for item in listed["items"]:
                    see(item, False)
                version = listed["metadata"]["resourceVersion"]
            for event in kubernetes.watch.Watch().stream(list_call, resource_version=version, timeout_seconds=30,
                                                         allow_watch_bookmarks=True, deserialize=False):
                if event["type"] == "ERROR":
                    version = ""
                    break
                version = event["object"]["metadata"]["resourceVersion"]
                if event["type"] != "BOOKMARK":
                    see(event["object"], event["type"] == "DELETED")
                if stop.is_set():
                    return
        except kubernetes.client.ApiException as exc:
            if exc.status == 410:
                version = ""
            time.sleep(0.2)
        except Exception:  # a dropped connection: watch again from where we were
            time.sleep(0.2)


class Timeline:
    """Every status the benchmark sees of its Releases, from one watch: per Release and version,
    when each step started (the operator's own clock) and when the rollout finished."""

    def __init__(self, api: Any, namespace: str) -> None:
        self.steps: dict[tuple[str, str], dict[int, str]] = defaultdict(dict)
        self.repeats: list[str] = []
        self.finished: dict[tuple[str, str], str] = {}
        self.revision: dict[tuple[str, str], str] = {}
        self.phase: dict[str, tuple[str | None, str | None]] = {}
        self.writes: dict[str, list[str]] = defaultdict(list)
        """Per Release, each status seen: phase, step and message (a status write each)."""
        self.stop = threading.Event()
        self.lock = threading.Lock()
        custom = kubernetes.client.CustomObjectsApi(api)
        listing = functools.partial(custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL)
        self.thread = threading.Thread(target=follow, args=(listing, self._see, self.stop), daemon=True)
        self.thread.start()

    def _see(self, obj: dict[str, Any], deleted: bool) -> None:
        name = obj["metadata"]["name"]
        st = obj.get("status") or {}
        version, step, started = st.get("version"), st.get("currentStep"), st.get("stepStartedAt")
        with self.lock:
            self.phase[name] = (st.get("phase"), version)
            if version and st.get("revision"):
                self.revision[(name, version)] = st["revision"]
            self.writes[name].append(f"v{version} {st.get('phase')} {st.get('stepDisplay')}: {st.get('message')}")
            # Once finished the status keeps its last step, with the finish time as its start.
            if version and step and started and st.get("phase") in ("Progressing", "Paused"):
                seen = self.steps[(name, version)]
                if step in seen and seen[step] != started:
                    self.repeats.append(f"{name} v{version} step {step}: {seen[step]} then {started}")
                seen.setdefault(step, started)
            for entry in st.get("history") or []:
                if entry.get("outcome") == "Succeeded" and entry.get("finishedAt"):
                    self.finished.setdefault((name, entry.get("version") or ""), entry["finishedAt"])

    def count(self, phase: str, version: str) -> int:
        with self.lock:
            return sum(1 for p in self.phase.values() if p == (phase, version))

    def close(self) -> None:
        self.stop.set()


class Readiness:
    """When each revision of each Release first had k Ready pods (k = 1, 2...), by this
    benchmark's own watch of the namespace's pods: what a step that raises the weight waits for
    before the operator can take it (kube-controller-manager, the scheduler and kwok making the
    pods), so that the operator's own share of a step's overhead can be told apart."""

    def __init__(self, api: Any, namespace: str) -> None:
        self.first: dict[tuple[str, str, int], float] = {}
        """(release, revision, k) -> wall time when that revision first had k Ready pods."""
        self._ready: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.stop = threading.Event()
        core = kubernetes.client.CoreV1Api(api)
        listing = functools.partial(core.list_namespaced_pod, namespace, label_selector=RELEASE_LABEL)
        self.thread = threading.Thread(target=follow, args=(listing, self._see, self.stop), daemon=True)
        self.thread.start()

    def _see(self, pod: dict[str, Any], gone: bool) -> None:
        meta = pod["metadata"]
        labels = meta.get("labels") or {}
        key = (labels.get(RELEASE_LABEL, ""), labels.get(REVISION_LABEL, ""))
        conditions = (pod.get("status") or {}).get("conditions") or []
        ready = not gone and not meta.get("deletionTimestamp") and any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        pods = self._ready[key]
        if ready:
            pods.add(meta["name"])
            self.first.setdefault((*key, len(pods)), time.time())
        else:
            pods.discard(meta["name"])

    def close(self) -> None:
        self.stop.set()


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = q / 100 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _metrics(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels_text, _, value = line[len(name) + 1:].rpartition("} ")
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels_text))
            out.append((labels, float(value)))
    return out


def apiserver_requests(sandbox: Cluster) -> dict[tuple[str, str, str, str], float]:
    """(verb, group, resource, subresource) -> requests so far."""
    text = sandbox.kubectl("get", "--raw", "/metrics", timeout=60).stdout
    totals: dict[tuple[str, str, str, str], float] = defaultdict(float)
    for labels, value in _metrics(text, "apiserver_request_total"):
        key = (labels.get("verb", ""), labels.get("group", ""), labels.get("resource", ""),
               labels.get("subresource", ""))
        totals[key] += value
    return totals


def prometheus_queries(sandbox: Cluster) -> float:
    import urllib.request

    with urllib.request.urlopen(f"{sandbox.prometheus_url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return sum(v for labels, v in _metrics(text, "prometheus_http_requests_total")
               if labels.get("handler") in ("/api/v1/query", "/api/v1/query_range"))


def proc_usage(pid: int) -> dict[str, float]:
    """Peak RSS (MiB) and CPU seconds of a live process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    hwm = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    rss = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]
    return {"peak_rss_mib": round(hwm / 1024, 1), "rss_mib": round(rss / 1024, 1),
            "cpu_seconds": round((int(fields[11]) + int(fields[12])) / ticks, 1)}


def start_operator(sandbox: Cluster, namespace: str, log_path: Path, metrics_port: int) -> subprocess.Popen[bytes]:
    """The operator for one namespace as its own ServiceAccount, with its default step interval."""
    return subprocess.Popen(
        [str(REPO / ".venv/bin/glideslope"), "operator", "--namespace", namespace, "--metrics-port", str(metrics_port),
         "--metrics-address", "127.0.0.1",
         "--log-format", "json", "--prometheus-url", sandbox.prometheus_url],
        env={**os.environ, "KUBECONFIG": str(sandbox.operator_kubeconfig)},
        stdout=log_path.open("wb"), stderr=subprocess.STDOUT, cwd=REPO)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def histograms(port: int) -> dict[str, dict[float, float]]:
    """The operator's tick histograms: name -> upper bound -> cumulative count."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, dict[float, float]] = {}
    for name in TICK_HISTOGRAMS:
        out[name] = {float(labels["le"]): v for labels, v in _metrics(text, f"{name}_bucket")}
    return out


def histogram_quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float | None:
    """As PromQL's histogram_quantile over the increase between two scrapes."""
    buckets = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return lower
            return round(lower + (le - lower) * (rank - below) / max(count - below, 1e-9), 3)
        lower, below = le, count
    return lower


def components_cpu(sandbox: Cluster, operator_pid: int) -> dict[str, float]:
    """CPU seconds so far of the operator and of each sandbox process (they share the machine)."""
    pids = {"operator": operator_pid}
    for path in (sandbox.kubeconfig.parent / "pids").glob("*.pid"):
        with contextlib.suppress(ValueError, IndexError):
            pids[path.stem] = int(path.read_text().split()[0])
    out = {}
    for name, pid in pids.items():
        with contextlib.suppress(OSError):
            out[name] = proc_usage(pid)["cpu_seconds"]
    return out


def add_nodes(sandbox: Cluster) -> None:
    nodes = [{"apiVersion": "v1", "kind": "Node", "metadata": {
        "name": f"kwok-bench-{i}", "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
        "labels": {"type": "kwok", "kubernetes.io/hostname": f"kwok-bench-{i}", "kubernetes.io/os": "linux"}},
        "status": {"allocatable": {"cpu": "256", "memory": "1Ti", "pods": "2000"},
                   "capacity": {"cpu": "256", "memory": "1Ti", "pods": "2000"}}} for i in range(EXTRA_NODES)]
    sandbox.kubectl("apply", "--server-side", "--field-manager=glideslope-bench", "-f", "-",
                    input=json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes}))


@pytest.fixture
def quiet_sandbox(sandbox: Cluster) -> Iterator[None]:
    """The sandbox without its traffic simulator: the benchmark's Releases have no Services, and
    the simulator's own watches and scrapes took a tenth of the machine. Started again after."""
    box = Sandbox(sandbox.kubeconfig.parent)
    running = box.process("simulator").pid() is not None
    if running:
        box.stop_component("simulator")
    yield
    if running:
        box.start_component("simulator")


@pytest.fixture
def bench_namespace(sandbox: Cluster, quiet_sandbox: None) -> Iterator[str]:
    name = f"scale-{uuid.uuid4().hex[:6]}"
    sandbox.kubectl("create", "namespace", name)
    wait_until(lambda: sandbox.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0,
               timeout=60, what=f"ServiceAccount default in {name}")
    yield name
    # Waited for: the garbage collector's deletes would otherwise land in the next size's counts.
    sandbox.kubectl("delete", "namespace", name, "--timeout=300s", check=False, timeout=330)


def _each(fn: Any, names: list[str]) -> float:
    """Runs fn(name) for every name from WORKERS threads; returns the seconds it took."""
    started = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(fn, names))
    return time.monotonic() - started


@pytest.mark.timeout(3600)
@pytest.mark.parametrize("n", SIZES)
def test_scale(sandbox: Cluster, bench_namespace: str, n: int, tmp_path: Path) -> None:
    ns = bench_namespace
    add_nodes(sandbox)
    api = kubernetes.config.new_client_from_config(config_file=str(sandbox.kubeconfig))
    api.configuration.connection_pool_maxsize = WORKERS * 2
    custom = kubernetes.client.CustomObjectsApi(api)
    names = [f"app-{i:04d}" for i in range(n)]
    log_path = RESULTS / f"scale_{n}.operator.log.tmp"
    RESULTS.mkdir(exist_ok=True)
    metrics_port = free_port()
    operator = start_operator(sandbox, ns, log_path, metrics_port)
    timeline = Timeline(api, ns)
    readiness = Readiness(api, ns)
    load = {"loadavg_at_start": list(os.getloadavg()), "cpus": os.cpu_count()}
    try:
        # The first rollout of all N at once (it has no steps).
        t0 = time.monotonic()
        created = _each(lambda name: custom.create_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, manifest(name, "1")), names)
        wait_until(lambda: timeline.count("Succeeded", "1") == n, timeout=600 + 2 * n, what=f"{n} v1 Succeeded",
                   interval=1)
        first = time.monotonic() - t0
        print(f"\n[N={n}] created in {created:.1f}s; all v1 Succeeded after {first:.1f}s")
        requests_before, queries_before = apiserver_requests(sandbox), prometheus_queries(sandbox)
        usage_before = proc_usage(operator.pid)
        cpu_before = components_cpu(sandbox, operator.pid)
        ticks_before = histograms(metrics_port)
        events_before = len(operator_events(api, ns))
        # The canary of all N at once.
        t1 = time.monotonic()
        updated = _each(lambda name: custom.patch_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, name, {"spec": manifest(name, "2")["spec"]}), names)
        rss_timeline: list[tuple[float, float]] = []

        def all_done() -> bool:
            rss_timeline.append((round(time.monotonic() - t1, 1), proc_usage(operator.pid)["rss_mib"]))
            return timeline.count("Succeeded", "2") == n

        wait_until(all_done, timeout=900 + 3 * n, what=f"{n} v2 Succeeded", interval=1)
        canary = time.monotonic() - t1
        requests_after, queries_after = apiserver_requests(sandbox), prometheus_queries(sandbox)
        usage = proc_usage(operator.pid)
        cpu_after = components_cpu(sandbox, operator.pid)
        ticks_after = histograms(metrics_port)
        events_during = len(operator_events(api, ns)) - events_before
        load["loadavg_at_end"] = list(os.getloadavg())
    finally:
        timeline.close()
        readiness.close()
        operator.send_signal(signal.SIGTERM)
        try:
            operator.wait(timeout=30)
        except subprocess.TimeoutExpired:
            operator.kill()
        drop_finalizers(custom, ns, names)

    # Steps: consecutive stepStartedAt of each Release, the last ending at finishedAt.
    overheads: list[float] = []
    by_step: dict[int, list[float]] = defaultdict(list)
    pod_waits: list[float] = []
    operator_share: list[float] = []
    share_by_step: dict[int, list[float]] = defaultdict(list)
    shares: list[tuple[float, str, int, str]] = []
    broken: list[str] = list(timeline.repeats)
    for name in names:
        seen = timeline.steps.get((name, "2"), {})
        end = timeline.finished.get((name, "2"))
        if sorted(seen) != list(range(1, len(CONFIGURED) + 1)) or end is None:
            broken.append(f"{name}: steps seen {sorted(seen)}, finished {end}")
            continue
        starts = [_ts(seen[i]) for i in range(1, len(CONFIGURED) + 1)] + [_ts(end)]
        revision = timeline.revision.get((name, "2"), "")
        for i in range(len(CONFIGURED)):
            overheads.append(starts[i + 1] - starts[i] - CONFIGURED[i])
            by_step[i + 1].append(overheads[-1])
            # The step could end once its time was up and its pods were Ready, not before.
            pods_ready = readiness.first.get((name, revision, CANDIDATE_PODS[i]), 0.0)
            waited = max(pods_ready - starts[i] - CONFIGURED[i], 0.0)
            pod_waits.append(waited)
            operator_share.append(overheads[-1] - waited)
            share_by_step[i + 1].append(operator_share[-1])
            shares.append((operator_share[-1], name, i + 1, seen[i + 1]))
    by_verb: dict[str, float] = defaultdict(float)
    delta: dict[tuple[str, str, str, str], float] = {}
    for key, value in requests_after.items():
        d = value - requests_before.get(key, 0.0)
        if d > 0:
            delta[key] = d
            by_verb[key[0]] += d
    write_verbs = ("POST", "PUT", "PATCH", "APPLY", "DELETE")
    # Kinds that only the operator writes (the benchmark's own N spec patches are taken off).
    operator_writes = {
        "releases": sum(v for (verb, g, r, _), v in delta.items() if g == GROUP and r == "releases"
                        and verb in write_verbs) - n,
        "deployments": sum(v for (verb, g, r, s), v in delta.items() if r == "deployments" and s == ""
                           and verb in write_verbs),
        "services": sum(v for (verb, g, r, s), v in delta.items() if r == "services" and verb in write_verbs),
        # The closing record `<release>-record`: one apply per tick that announced something.
        "configmaps": sum(v for (verb, g, r, s), v in delta.items() if r == "configmaps" and verb in write_verbs),
        "events (the operator's, counted in the namespace)": float(events_during),
    }
    transitions = n * (len(CONFIGURED) + 1)
    result = {
        "benchmark": "scale", "releases": n, "replicas": REPLICAS, "steps": STEPS["canary"]["steps"],
        "configured_seconds": sum(CONFIGURED), "operator_interval_seconds": "default",
        "create_seconds": round(created, 1), "first_rollout_all_succeeded_seconds": round(first, 1),
        "patch_seconds": round(updated, 1), "canary_all_succeeded_seconds": round(canary, 1),
        "step_overhead_seconds": {"p50": round(percentile(overheads, 50), 2),
                                  "p99": round(percentile(overheads, 99), 2),
                                  "max": round(max(overheads, default=float("nan")), 2),
                                  "samples": len(overheads),
                                  "p50_by_step": {k: round(percentile(v, 50), 2) for k, v in sorted(by_step.items())},
                                  "p99_by_step": {k: round(percentile(v, 99), 2) for k, v in sorted(by_step.items())}},
        "step_wait_for_pods_seconds": {"p50": round(percentile(pod_waits, 50), 2),
                                       "p99": round(percentile(pod_waits, 99), 2)},
        "step_overhead_operator_share_seconds": {
            "p50": round(percentile(operator_share, 50), 2), "p99": round(percentile(operator_share, 99), 2),
            "max": round(max(operator_share, default=float("nan")), 2),
            "p50_by_step": {k: round(percentile(v, 50), 2) for k, v in sorted(share_by_step.items())},
            "p99_by_step": {k: round(percentile(v, 99), 2) for k, v in sorted(share_by_step.items())},
            "largest": [f"{name} step {step} (started {started}): {share:.2f} s"
                        for share, name, step, started in sorted(shares, reverse=True)[:5]]},
        "operator": {"peak_rss_mib": usage["peak_rss_mib"], "rss_mib_before_canary": usage_before["rss_mib"],
                     "rss_mib_during_canary_every_10s": [r for t, r in rss_timeline[::10]],
                     "cpu_seconds_total": usage["cpu_seconds"],
                     "cpu_seconds_canary": round(usage["cpu_seconds"] - usage_before["cpu_seconds"], 1)},
        "operator_ticks_during_canary": {
            name.removeprefix("glideslope_"): {
                "count": int(max(ticks_after[name].values(), default=0) - max(ticks_before[name].values(), default=0)),
                **{f"p{q}": histogram_quantile(q / 100, ticks_before[name], ticks_after[name]) for q in (50, 90, 99)}}
            for name in TICK_HISTOGRAMS},
        "cpu_seconds_during_canary_by_process": dict(sorted(
            ((k, round(v - cpu_before.get(k, 0.0), 1)) for k, v in cpu_after.items()), key=lambda kv: -kv[1])),
        "api_requests_during_canary_by_verb": {k: int(v) for k, v in sorted(by_verb.items())},
        "api_requests_during_canary_by_resource": {
            f"{verb} {r}{'/' + s if s else ''}": int(v) for (verb, _, r, s), v in sorted(delta.items()) if v >= n / 10},
        "operator_writes_during_canary": {k: int(v) for k, v in operator_writes.items()},
        "step_transitions": transitions,
        "operator_writes_per_step_transition": round(sum(operator_writes.values()) / transitions, 2),
        "prometheus_queries_during_canary": int(queries_after - queries_before),
        "machine": load,
        "statuses_seen_of_one_release": timeline.writes.get(names[0], []),
        "broken": broken[:20],
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (RESULTS / f"scale_{n}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=1))
    plot.draw(RESULTS)
    assert not broken, broken[:20]


def operator_events(api: Any, namespace: str) -> list[Any]:
    """The operator's Events in the namespace (the client's CoreV1Event objects)."""
    core = kubernetes.client.CoreV1Api(api)
    items = core.list_namespaced_event(namespace).items
    return [e for e in items if e.reporting_component == "glideslope.dev/operator"]


def drop_finalizers(custom: Any, namespace: str, names: list[str]) -> None:
    """Without the operator, kopf's finalizer would hold the Releases, and so the namespace."""
    def drop(name: str) -> None:
        with contextlib.suppress(kubernetes.client.ApiException):
            custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name,
                                                  {"metadata": {"finalizers": None}})
    _each(drop, names)
