"""Scale beside Argo Rollouts and Flagger, in the same sandbox and run: N canaries at once (issue 17).

The plan of test_scale.py for every tool: a canary of 2 replicas, weights 25, 50 and 75, each
followed by a 5 s pause, and one cheap Prometheus check every 5 s (Glideslope's trigger, Argo's
background AnalysisRun from an AnalysisTemplate with the same query). N of them are created at
once (a first rollout, which has no steps), then all N are updated at once: that canary is what
is measured. Each tool runs in turn on the same sandbox, in its own namespace, with the
simulator left running; the previous tool's namespace is deleted, and waited for, before the
next starts, so that its objects and garbage collection do not load the API server. Argo runs
twice, as shipped and tuned (higher client QPS and more rollout workers), each its own figures.

Flagger (Gateway API provider) cannot run the same plan: it has no pause step, and analyses at
most every 10 s. Its nearest is stepWeights 25/50/75 at a 10 s interval, each weight held one
interval, then promotion and finalising, one interval each; it writes 3 Services and an
HTTPRoute per canary, which the simulator then sends traffic to. Its figures stand beside the
others', not against them.

For each tool, from the update until every canary is done:

- seconds until all are done;
- step overhead: each step's actual length minus its configured length (0 for a weight and the
  promotion, 5 s for a pause; Flagger: 10 s, one interval, for each of its states), p50 and
  p99 over all steps of all canaries. Neither Glideslope's nor Argo's status gives every step's
  start on its own clock (Argo keeps only pause start times, at 1 s resolution), so for every
  tool it is taken the same way: the time this benchmark's watch of the tool's resource first
  receives a status at step k (Glideslope `status.currentStep`, Argo `status.currentStepIndex`
  + 1, Flagger phase and `status.canaryWeight`) and, for the last step's end, the first status
  that shows the rollout done (Glideslope phase Succeeded; Argo phase Healthy with `stableRS`
  the new hash; Flagger phase Succeeded). Glideslope's own clock (`status.stepStartedAt`) is
  reported beside it as a cross-check;
- the controller's CPU seconds and peak RSS (its process's /proc);
- API requests by verb (the API server's own `apiserver_request_total`, every client) and the
  CPU seconds of kube-apiserver and of each sandbox process (their /proc);
- Prometheus queries (Prometheus's own `prometheus_http_requests_total`);
- controller and API server CPU per Release-step (N x the steps of the tool's plan).

Writes `results/compare_scale_<N>.json` and prints a table per N. `GLIDESLOPE_COMPARE_SIZES`
picks N (default 100,300), `GLIDESLOPE_COMPARE_TOOLS` the tools (default all four). Asserts no
time, only that each tool finished every canary.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import os
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from glideslope.sandbox.anchors import ARGO_ROLLOUTS_VERSION, FLAGGER_VERSION, ensure_anchors
from tests.bench.argo import install_argo, start_argo
from tests.bench.flagger import MESH_PROVIDER, FlaggerController
from tests.bench.test_scale import (
    ANALYSIS,
    CONFIGURED,
    REPLICAS,
    STEPS,
    WORKERS,
    _each,
    _ts,
    add_nodes,
    apiserver_requests,
    components_cpu,
    drop_finalizers,
    follow,
    free_port,
    manifest,
    percentile,
    proc_usage,
    prometheus_queries,
    start_operator,
)
from tests.e2e.conftest import create_namespace
from tests.e2e.helpers import Cluster, stop_process, wait_until

pytestmark = pytest.mark.bench

RESULTS = Path(__file__).parent / "results"
SIZES = [int(n) for n in os.environ.get("GLIDESLOPE_COMPARE_SIZES", "100,300").split(",") if n.strip()]
TOOLS = os.environ.get("GLIDESLOPE_COMPARE_TOOLS", "glideslope,argo-rollouts,argo-rollouts-tuned,flagger").split(",")
"""The tools to run, in this order; `GLIDESLOPE_COMPARE_TOOLS` picks fewer."""

ARGO_GROUP, ARGO_VERSION_API = "argoproj.io", "v1alpha1"
ARGO_TUNED_FLAGS = ["--qps", "1000", "--burst", "2000", "--rollout-threads", "16"]
"""Its client's rate limit (40 QPS, burst 80 by default) throttles status writes at scale; its
rollout workers (10 by default) bound how many Rollouts reconcile at once."""
GLIDESLOPE_TRIGGER = ANALYSIS["triggers"][0]
ARGO_QUERY = GLIDESLOPE_TRIGGER["query"].replace("{{namespace}}", "{{args.namespace}}").replace(
    "{{release}}", "{{args.release}}")
"""Glideslope's query, with Argo's spelling of the same two arguments."""
FLAGGER_GROUP, FLAGGER_API = "flagger.app", "v1beta1"
FLAGGER_QUERY = GLIDESLOPE_TRIGGER["query"].replace("{{namespace}}", "{{ namespace }}").replace(
    "{{release}}", "{{ target }}")
"""Glideslope's query in Flagger's template variables (the Canary's namespace and target)."""
FLAGGER_INTERVAL = "10s"
"""Flagger's shortest analysis interval: it raises anything under 10 s to 10 s; set as it runs."""
FLAGGER_WEIGHT_STEPS = {0: 1, 25: 2, 50: 3, 75: 4}
"""Canary weight -> step, in phase Progressing: 0 while the new revision scales up, then each weight."""
FLAGGER_PHASE_STEPS = {"Promoting": 5, "Finalising": 6}
FLAGGER_CONFIGURED = [10.0] * 6
"""Flagger moves one state per interval: scale-up, 25, 50, 75, promoting, finalising, succeeded."""


# Receive-time step watch, the same for every tool ----------------------------------------------


@dataclass
class Seen:
    """What one status tells: which Release, which version, at which step (1-based), done."""

    name: str
    version: str | None
    step: int | None
    done: bool
    own_started: str | None = None
    """The tool's own timestamp of the step's start, when its status has one."""
    own_finished: str | None = None


class StepWatch:
    """Watches a tool's resources in a namespace; for each (name, version), the wall time this
    process first received each step, and the rollout done. One method for every tool, so
    their step overheads compare."""

    def __init__(self, list_call: Callable[..., Any], parse: Callable[[dict[str, Any]], Seen]) -> None:
        self.parse = parse
        self.received: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
        self.done: dict[tuple[str, str], float] = {}
        self.own: dict[tuple[str, str], dict[int, str]] = defaultdict(dict)
        self.own_finished: dict[tuple[str, str], str] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=follow, args=(list_call, self._see, self.stop), daemon=True)
        self.thread.start()

    def _see(self, obj: dict[str, Any], deleted: bool) -> None:
        now = time.time()
        if deleted:
            return
        seen = self.parse(obj)
        if seen.version is None:
            return
        key = (seen.name, seen.version)
        with self.lock:
            if seen.done:
                self.done.setdefault(key, now)
                if seen.own_finished:
                    self.own_finished.setdefault(key, seen.own_finished)
            elif seen.step is not None and key not in self.done:
                self.received[key].setdefault(seen.step, now)
                if seen.own_started:
                    self.own[key].setdefault(seen.step, seen.own_started)

    def count_done(self, version: str) -> int:
        with self.lock:
            return sum(1 for (_, v) in self.done if v == version)

    def close(self) -> None:
        self.stop.set()


def overheads(starts: dict[int, float], end: float | None, configured: list[float]) -> list[float] | None:
    """Each step's length minus its configured length, or None if a step went unseen."""
    if end is None or sorted(starts) != list(range(1, len(configured) + 1)):
        return None
    times = [starts[k] for k in range(1, len(configured) + 1)] + [end]
    return [times[i + 1] - times[i] - configured[i] for i in range(len(configured))]


def spread(per_canary: list[list[float]], configured: list[float]) -> dict[str, Any]:
    """p50 and p99 of step overheads: all, by step, and by kind, since a timed step's length is
    the tool's timer (a pause; each of Flagger's intervals) and an untimed one's the wait for
    pods (a weight, the promotion), and the two err differently. None where there are none."""
    def stats(values: list[float]) -> dict[str, float | None]:
        if not values:
            return {"p50": None, "p99": None}
        return {"p50": round(percentile(values, 50), 2), "p99": round(percentile(values, 99), 2)}

    by_step = [[values[i] for values in per_canary] for i in range(len(configured))]
    timed = [v for i, column in enumerate(by_step) if configured[i] > 0 for v in column]
    untimed = [v for i, column in enumerate(by_step) if configured[i] == 0 for v in column]
    every = [v for column in by_step for v in column]
    return {**stats(every), "max": round(max(every), 2) if every else None, "samples": len(every),
            "untimed_steps": stats(untimed), "timed_steps": stats(timed),
            "by_step": {i + 1: stats(column) for i, column in enumerate(by_step)}}


# The tools ------------------------------------------------------------------------------------


@dataclass
class Tool:
    """One tool's run: how to start its controller, write its canaries and read their status."""

    name: str
    settings: dict[str, Any]
    group: str
    version: str
    plural: str
    """The tool's own kind, watched for its status."""
    start: Callable[[str, Path], subprocess.Popen[bytes]]
    """(namespace, log folder) -> the controller's process."""
    write: Callable[[Any, str, str, str], None]
    """(API client, namespace, name, version): version "1" creates the canary, a later one updates it."""
    parse: Callable[[dict[str, Any]], Seen]
    setup: Callable[[str], None] = field(default=lambda ns: None)
    """Namespace-wide objects the canaries need (Argo's AnalysisTemplate, Flagger's MetricTemplate)."""
    finalizers: bool = False
    configured: list[float] = field(default_factory=lambda: list(CONFIGURED))
    """Configured seconds of each step, in the order the tool's status shows them."""
    namespace: str | None = None
    """A namespace made for the tool (Flagger's, which its controller is bound to); else a fresh one."""
    owns_controller: bool = True
    """Whether the run stops the controller (not Flagger's: its fixture does)."""


def _custom_write(body: Callable[[str, str, str], dict[str, Any]], group: str, version: str,
                  plural: str) -> Callable[[Any, str, str, str], None]:
    """A Tool.write for one custom object per canary: created whole, then its spec patched."""
    def write(api: Any, namespace: str, name: str, release: str) -> None:
        custom = kubernetes.client.CustomObjectsApi(api)
        obj = body(namespace, name, release)
        if release == "1":
            custom.create_namespaced_custom_object(group, version, namespace, plural, obj)
        else:
            custom.patch_namespaced_custom_object(group, version, namespace, plural, name, {"spec": obj["spec"]})
    return write


def _glideslope_parse(obj: dict[str, Any]) -> Seen:
    st = obj.get("status") or {}
    phase = st.get("phase")
    done = phase == "Succeeded"
    finished = next((h.get("finishedAt") for h in st.get("history") or []
                     if h.get("outcome") == "Succeeded" and h.get("version") == st.get("version")), None)
    # Once finished the status keeps its last step; only a running step counts as started.
    step = st.get("currentStep") if phase in ("Progressing", "Paused") else None
    return Seen(obj["metadata"]["name"], st.get("version"), step, done,
                own_started=st.get("stepStartedAt") if step else None, own_finished=finished)


def _glideslope_start(namespace: str, log_dir: Path, sandbox: Cluster) -> subprocess.Popen[bytes]:
    return start_operator(sandbox, namespace, log_dir / "glideslope.log", free_port())


def _argo_parse(obj: dict[str, Any]) -> Seen:
    meta, st = obj["metadata"], obj.get("status") or {}
    # The version is the image tag of the spec's template, once the controller has observed that
    # spec: before, the status still describes the previous one. (Not the generation itself:
    # the controller's own first update of a new Rollout bumps it.)
    image = obj["spec"]["template"]["spec"]["containers"][0]["image"]
    observed = st.get("observedGeneration") == str(meta.get("generation"))
    version = image.rpartition(":")[2] if observed else None
    index = st.get("currentStepIndex")
    done = (st.get("phase") == "Healthy" and bool(st.get("stableRS"))
            and st.get("stableRS") == st.get("currentPodHash"))
    return Seen(meta["name"], version, None if index is None else int(index) + 1, done)


def _argo_body(namespace: str, name: str, version: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{ARGO_GROUP}/{ARGO_VERSION_API}", "kind": "Rollout", "metadata": {"name": name},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": f"registry.example/{name}:{version}"}]},
            },
            "strategy": {"canary": {
                "steps": copy.deepcopy(STEPS["canary"]["steps"]),
                # Background analysis from the first step, as Glideslope's trigger runs throughout.
                "analysis": {"templates": [{"templateName": "absent-errors"}],
                             "args": [{"name": "namespace", "value": namespace},
                                      {"name": "release", "value": name}]},
            }},
        },
    }


def _argo_template(sandbox: Cluster, namespace: str) -> None:
    install_argo(sandbox, ensure_anchors())  # its CRDs first: the template is one of its kinds
    sandbox.apply({
        "apiVersion": f"{ARGO_GROUP}/{ARGO_VERSION_API}", "kind": "AnalysisTemplate",
        "metadata": {"name": "absent-errors"},
        "spec": {
            "args": [{"name": "namespace"}, {"name": "release"}],
            "metrics": [{
                "name": "absent-errors", "interval": ANALYSIS["interval"],
                "failureCondition": "result[0] > 1",
                "provider": {"prometheus": {"address": sandbox.prometheus_url, "query": ARGO_QUERY}},
            }],
        },
    }, namespace)


def _argo_start(flags: list[str], namespace: str, log_dir: Path, sandbox: Cluster) -> subprocess.Popen[bytes]:
    """`rollouts-controller` as argo.py's fixture runs it, plus `flags`; started per run so that
    it idles through no other tool's."""
    return start_argo(sandbox, log_dir / f"argo-rollouts-{namespace}.log", *flags)


def _flagger_parse(obj: dict[str, Any]) -> Seen:
    st = obj.get("status") or {}
    phase, name = st.get("phase") or "", obj["metadata"]["name"]
    # One update per canary here: whatever follows its first rollout (Initialized) is version 2.
    if phase in ("", "Initializing", "Initialized"):
        return Seen(name, "1", None, phase == "Initialized")
    if phase == "Progressing":
        step = FLAGGER_WEIGHT_STEPS.get(int(st.get("canaryWeight") or 0))
    else:
        step = FLAGGER_PHASE_STEPS.get(phase)
    return Seen(name, "2", step, phase == "Succeeded")


def _flagger_write(api: Any, namespace: str, name: str, version: str) -> None:
    apps = kubernetes.client.AppsV1Api(api)
    template = {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": f"registry.example/{name}:{version}"}]}}
    if version != "1":
        apps.patch_namespaced_deployment(name, namespace, {"spec": {"template": template}})
        return
    deployment: Any = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": REPLICAS, "selector": {"matchLabels": {"app": name}}, "template": template}}
    apps.create_namespaced_deployment(namespace, deployment)
    # Flagger takes the Deployment over: a primary copy, 3 Services and the HTTPRoute.
    kubernetes.client.CustomObjectsApi(api).create_namespaced_custom_object(
        FLAGGER_GROUP, FLAGGER_API, namespace, "canaries", {
            "apiVersion": f"{FLAGGER_GROUP}/{FLAGGER_API}", "kind": "Canary", "metadata": {"name": name},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                # No Gateway exists in the sandbox; Flagger writes the route all the same.
                "service": {"port": 80, "targetPort": 8080,
                            "gatewayRefs": [{"name": "gateway", "namespace": namespace}]},
                "analysis": {"interval": FLAGGER_INTERVAL, "threshold": 1,
                             "stepWeights": [w for w in FLAGGER_WEIGHT_STEPS if w],
                             "metrics": [{"name": "absent-errors", "templateRef": {"name": "absent-errors"},
                                          "thresholdRange": {"max": 1}}]},
            }})


def _flagger_template(sandbox: Cluster, namespace: str) -> None:
    sandbox.apply({
        "apiVersion": f"{FLAGGER_GROUP}/{FLAGGER_API}", "kind": "MetricTemplate",
        "metadata": {"name": "absent-errors"},
        "spec": {"provider": {"type": "prometheus", "address": sandbox.prometheus_url}, "query": FLAGGER_QUERY},
    }, namespace)


def tools(sandbox: Cluster) -> list[Tool]:
    plan = {"replicas": REPLICAS, "steps": STEPS["canary"]["steps"], "analysis_interval": ANALYSIS["interval"]}
    argo_common = {
        "version": ARGO_ROLLOUTS_VERSION, **plan,
        "strategy": "canary, basic replica ratio (no trafficRouting); background analysis from step 0",
        "analysis": {"query": ARGO_QUERY, "failureCondition": "result[0] > 1", "count": "unset"},
        "run_as": "its own ServiceAccount with the shipped ClusterRole, cluster-wide, --leader-elect=false, "
                  "--loglevel info",
    }
    argo = functools.partial(_custom_write, _argo_body, ARGO_GROUP, ARGO_VERSION_API, "rollouts")
    return [
        Tool("glideslope", {
            **plan, "strategy": "Canary, replica ratio (no Service)",
            "analysis": {"query": GLIDESLOPE_TRIGGER["query"],
                         "failureCondition": GLIDESLOPE_TRIGGER["failureCondition"]},
            "flags": "--namespace <ns> --log-format json (step interval: default 2 s)",
            "run_as": "its own ServiceAccount, one namespace"},
            "glideslope.dev", "v1alpha1", "releases",
            start=functools.partial(_glideslope_start, sandbox=sandbox),
            write=_custom_write(lambda ns, name, version: manifest(name, version),
                                "glideslope.dev", "v1alpha1", "releases"),
            parse=_glideslope_parse, finalizers=True),
        Tool("argo-rollouts", {**argo_common, "flags": "defaults (--qps 40 --burst 80 --rollout-threads 10)"},
             ARGO_GROUP, ARGO_VERSION_API, "rollouts",
             start=functools.partial(_argo_start, [], sandbox=sandbox), write=argo(), parse=_argo_parse,
             setup=functools.partial(_argo_template, sandbox)),
        Tool("argo-rollouts-tuned", {**argo_common, "flags": " ".join(ARGO_TUNED_FLAGS)},
             ARGO_GROUP, ARGO_VERSION_API, "rollouts",
             start=functools.partial(_argo_start, ARGO_TUNED_FLAGS, sandbox=sandbox), write=argo(),
             parse=_argo_parse, setup=functools.partial(_argo_template, sandbox)),
    ]


def flagger_tool(sandbox: Cluster, flagger: FlaggerController) -> Tool:
    return Tool("flagger", {
        "version": FLAGGER_VERSION, "replicas": REPLICAS, "mesh_provider": MESH_PROVIDER,
        "strategy": "progressive canary on an HTTPRoute (Flagger writes the route and 3 Services per canary): "
                    f"stepWeights {[w for w in FLAGGER_WEIGHT_STEPS if w]}, one weight per interval, then "
                    "promotion and finalising, one interval each",
        "analysis_interval": f"{FLAGGER_INTERVAL} (its minimum: 5s would run at 10s)",
        "analysis": {"query": FLAGGER_QUERY, "thresholdRange": {"max": 1}, "threshold": 1},
        "run_as": "tests/bench/flagger.py's fixture: its own ServiceAccount, -namespace <its namespace>, "
                  "-log-level info; started when its turn comes"},
        FLAGGER_GROUP, FLAGGER_API, "canaries", start=lambda ns, log_dir: flagger.proc, write=_flagger_write,
        parse=_flagger_parse, setup=functools.partial(_flagger_template, sandbox),
        configured=FLAGGER_CONFIGURED, namespace=flagger.namespace, owns_controller=False)


# One tool's run -------------------------------------------------------------------------------


def _delta(after: dict[Any, float], before: dict[Any, float]) -> dict[Any, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}


@contextlib.contextmanager
def _namespace(sandbox: Cluster, tool: Tool) -> Iterator[str]:
    name = tool.namespace or create_namespace(sandbox, f"cmp-{tool.name}")
    try:
        yield name
    finally:
        # Waited for: the garbage collector's deletes would otherwise land in the next tool's counts.
        sandbox.kubectl("delete", "namespace", name, "--timeout=600s", check=False, timeout=630)


def run_tool(sandbox: Cluster, tool: Tool, n: int, log_dir: Path) -> dict[str, Any]:
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(sandbox.kubeconfig), client_configuration=config)
    # Set before the client makes its pool: WORKERS threads and the watch share it.
    config.connection_pool_maxsize = WORKERS * 2
    api = kubernetes.client.ApiClient(config)
    custom = kubernetes.client.CustomObjectsApi(api)
    names = [f"app-{i:04d}" for i in range(n)]
    figures: dict[str, Any] = {}
    with _namespace(sandbox, tool) as ns:
        tool.setup(ns)
        controller = tool.start(ns, log_dir)
        listing = functools.partial(custom.list_namespaced_custom_object, tool.group, tool.version, ns, tool.plural)
        watch = StepWatch(listing, tool.parse)
        try:
            t0 = time.monotonic()
            _each(lambda name: tool.write(api, ns, name, "1"), names)
            wait_until(lambda: watch.count_done("1") == n, timeout=600 + 2 * n, what=f"{tool.name}: {n} v1 done",
                       interval=1)
            figures["first_rollout_all_done_seconds"] = round(time.monotonic() - t0, 1)
            requests_before, queries_before = apiserver_requests(sandbox), prometheus_queries(sandbox)
            cpu_before = components_cpu(sandbox, controller.pid)
            t1 = time.monotonic()
            figures["patch_seconds"] = round(_each(lambda name: tool.write(api, ns, name, "2"), names), 1)
            try:
                wait_until(lambda: watch.count_done("2") == n, timeout=900 + 3 * n,
                           what=f"{tool.name}: {n} v2 done", interval=1)
            except AssertionError as exc:
                figures["error"] = str(exc)[:500]
            figures["canary_all_done_seconds"] = round(time.monotonic() - t1, 1)
            requests_after, queries_after = apiserver_requests(sandbox), prometheus_queries(sandbox)
            usage = proc_usage(controller.pid)
            cpu_after = components_cpu(sandbox, controller.pid)
        finally:
            watch.close()
            if tool.owns_controller:
                stop_process(controller, grace=30)
            if tool.finalizers:
                drop_finalizers(custom, ns, names)

    finished = watch.count_done("2")
    received: list[list[float]] = []
    own: list[list[float]] = []
    for name in names:
        key = (name, "2")
        values = overheads(watch.received.get(key, {}), watch.done.get(key), tool.configured)
        if values is not None:
            received.append(values)
        end = watch.own_finished.get(key)
        own_values = overheads({k: _ts(v) for k, v in watch.own.get(key, {}).items()}, _ts(end) if end else None,
                               tool.configured)
        if own_values is not None:
            own.append(own_values)
    cpu = {k: round(v - cpu_before.get(k, 0.0), 1) for k, v in cpu_after.items()}
    controller_cpu = cpu.pop("operator", 0.0)
    apiserver_cpu = cpu.get("kube-apiserver", 0.0)
    requests = _delta(requests_after, requests_before)
    by_verb: dict[str, float] = defaultdict(float)
    for (verb, *_), v in requests.items():
        by_verb[verb] += v
    steps = n * len(tool.configured)
    figures.update({
        "finished": finished, "canaries": n,
        "step_overhead_seconds": {"method": "receive time of the benchmark's watch",
                                  "canaries_with_a_step_unseen": n - len(received),
                                  **spread(received, tool.configured)},
        "controller": {"cpu_seconds_canary": controller_cpu, "cpu_seconds_total": usage["cpu_seconds"],
                       "peak_rss_mib": usage["peak_rss_mib"], "rss_mib_at_end": usage["rss_mib"]},
        "kube_apiserver_cpu_seconds_canary": apiserver_cpu,
        "cpu_seconds_canary_by_sandbox_process": dict(sorted(cpu.items(), key=lambda kv: -kv[1])),
        "api_requests_canary_by_verb": {k: int(v) for k, v in sorted(by_verb.items())},
        "api_requests_canary_total": int(sum(by_verb.values())),
        "api_requests_canary_by_resource": {
            f"{verb} {r}{'/' + s if s else ''}": int(v) for (verb, _, r, s), v in sorted(requests.items())
            if v >= n / 10},
        "prometheus_queries_canary": int(queries_after - queries_before),
        "step_transitions": steps,
        "controller_cpu_ms_per_release_step": round(1000 * controller_cpu / steps, 2),
        "kube_apiserver_cpu_ms_per_release_step": round(1000 * apiserver_cpu / steps, 2),
    })
    if own:
        figures["step_overhead_seconds_own_clock"] = {
            "method": "Glideslope's status.stepStartedAt of consecutive steps, the last ending at "
                      "history[].finishedAt", **spread(own, tool.configured)}
    return figures


# The benchmark --------------------------------------------------------------------------------


def _table(n: int, results: dict[str, dict[str, Any]]) -> str:
    """One row per tool; step overheads as p50/p99, all steps, then untimed (weights, promotion)
    and timed ones (pauses, Flagger's intervals) apart; CPU per Release-step in milliseconds."""
    head = (f"{'N=' + str(n):<21}{'done s':>7}{'overhead':>12}{'untimed':>12}{'timed':>13}{'ctl CPU s':>10}"
            f"{'RSS MiB':>8}{'apisrv CPU':>11}{'API req':>8}{'prom q':>7}{'ctl ms/st':>10}{'api ms/st':>10}"
            f"{'done':>8}")
    rows = [head]

    def pair(d: dict[str, float | None]) -> str:
        return "-" if d["p50"] is None else f"{d['p50']}/{d['p99']}"

    for tool, r in results.items():
        f = r["figures"]
        if "step_overhead_seconds" not in f:
            rows.append(f"{tool:<21} failed: {f.get('error', '?')}")
            continue
        o = f["step_overhead_seconds"]
        rows.append(
            f"{tool:<21}{f['canary_all_done_seconds']:>7}{pair(o):>12}{pair(o['untimed_steps']):>12}"
            f"{pair(o['timed_steps']):>13}{f['controller']['cpu_seconds_canary']:>10}{f['controller']['peak_rss_mib']:>8}"
            f"{f['kube_apiserver_cpu_seconds_canary']:>11}{f['api_requests_canary_total']:>8}"
            f"{f['prometheus_queries_canary']:>7}{f['controller_cpu_ms_per_release_step']:>10}"
            f"{f['kube_apiserver_cpu_ms_per_release_step']:>10}{str(f['finished']) + '/' + str(n):>8}")
    for tool, r in results.items():
        verbs = r["figures"].get("api_requests_canary_by_verb", {})
        rows.append(f"{tool:<21}API requests: " + ", ".join(f"{k} {v}" for k, v in verbs.items()))
    return "\n".join(rows)


def _given(tool: Tool) -> Tool:
    return tool


@pytest.mark.timeout(7200)
@pytest.mark.parametrize("n", SIZES)
def test_compare_scale(sandbox: Cluster, n: int, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    add_nodes(sandbox)
    machine: dict[str, Any] = {"loadavg_at_start": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}
    started = time.monotonic()
    results: dict[str, dict[str, Any]] = {}
    # Flagger's fixture is asked for only at its turn, so that it does not run beside the others.
    turns: list[tuple[str, Callable[[], Tool]]] = [
        (tool.name, functools.partial(_given, tool)) for tool in tools(sandbox) if tool.name in TOOLS]
    if "flagger" in TOOLS:
        turns.append(("flagger", lambda: flagger_tool(sandbox, request.getfixturevalue("flagger"))))
    for name, turn in turns:
        t = time.monotonic()
        settings: dict[str, Any] = {}
        try:
            tool = turn()
            settings = tool.settings
            figures = run_tool(sandbox, tool, n, tmp_path)
        except Exception as exc:  # one tool failing (or its controller not starting) leaves the others' figures
            figures = {"error": f"{type(exc).__name__}: {str(exc)[:500]}", "finished": 0}
        figures["run_seconds"] = round(time.monotonic() - t, 1)
        results[name] = {"settings": settings, "figures": figures}
        print(f"\n[N={n}] {name}: {json.dumps(figures)}", flush=True)
    machine["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result = {
        "benchmark": "compare_scale", "canaries": n,
        "scenario": (f"{n} canaries of {REPLICAS} replicas created at once (first rollout, no steps), then all "
                     "updated at once; plan: setWeight 25/50/75 each followed by a 5 s pause, one Prometheus "
                     f"check every {ANALYSIS['interval']}; the simulator running; each tool in turn in its own "
                     "namespace, the previous one's deleted first"),
        "step_overhead_method": (
            "for every tool: the wall time this benchmark's watch of the tool's resource first received a "
            "status at step k (Glideslope status.currentStep with status.version; Argo status.currentStepIndex+1 "
            "once status.observedGeneration == metadata.generation, the version from the template's image; "
            "Flagger phase Progressing at canaryWeight 0, 25, 50, 75, then Promoting, Finalising), and for "
            "the last step's end the first status showing the rollout done (Glideslope phase Succeeded; Argo "
            "phase Healthy with stableRS == currentPodHash; Flagger phase Succeeded); overhead = length - "
            "configured (0 for weights and promotion, 5 s for pauses; Flagger 10 s, one interval, per state)"),
        "differences": [
            "Argo's pause ends at pauseConditions[].startTime + duration, and that time is stored at 1 s "
            "resolution (truncated): its pauses run 0-1 s short, so its timed steps show negative overhead.",
            "At each weight Argo's basic canary and Glideslope both run the candidate beside the stable revision "
            "by replica ratio; Flagger runs the canary Deployment at full size (2 pods) beside a primary copy.",
            "Flagger analyses at most every 10 s and has no pause step: its plan is 3 weights, promotion and "
            "finalising, one 10 s interval each (6 steps, not 7), so its total time is not comparable.",
            "Flagger's canaries have Services and an HTTPRoute, which the simulator sends traffic to and "
            "lists; Glideslope's and Argo's have none (as in test_scale.py), so the simulator's and "
            "Prometheus's CPU grows in Flagger's run only.",
            "Glideslope's operator watches its one namespace; Argo's controller is cluster-wide (as shipped); "
            "Flagger's is bound to its namespace (as tests/bench/flagger.py runs it).",
        ],
        "order": [tool for tool in results],
        "tools": results,
        "machine": machine,
        "test_seconds": round(time.monotonic() - started, 1),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"compare_scale_{n}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{_table(n, results)}\nload average {machine['loadavg_at_start']} -> {machine['loadavg_at_end']} "
          f"on {machine['cpus']} CPUs; {result['test_seconds']} s")
    unfinished = {tool: r["figures"].get("finished") for tool, r in results.items()
                  if r["figures"].get("finished") != n}
    assert not unfinished, f"canaries finished of {n}: {unfinished}"
