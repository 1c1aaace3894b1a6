"""The controller SIGKILLed at a step boundary of 10 running canaries, Glideslope beside Argo
Rollouts and Flagger, in the same sandbox and run (issue 17, crash scenario).

Each tool runs 10 canaries at once, each of 2 replicas with a Service (so the simulator's traffic
runs) and the same plan: setWeight 25, pause 5 s, setWeight 50, pause 5 s, setWeight 75, pause
5 s, then full promotion (Glideslope's step 7, Argo's `currentStepIndex` 6). Flagger has no pause
steps: its Canary holds each of `stepWeights` [25, 50, 75] for one `interval` (5s asked, which
Flagger raises to its minimum, 10 s), then promotes. Per round and tool: the new version of all
10 without a crash (the baseline), then the next version with the controller SIGKILLed as soon
as this benchmark's own watch sees any canary enter step `CRASH_AT_STEP`, and started again
`GAP` seconds later with the same command line.

Steps are numbered from 1 for every tool: Glideslope's `status.currentStep`, Argo's
`status.currentStepIndex` + 1, Flagger's `status.canaryWeight` 25, 50, 75 as steps 1, 3, 5 and
its phases Promoting and Finalising as step 7. From watches of the tool's resources and of the
pods, with receive times, per canary:

- a step is entered when the watch first shows it (Glideslope: phase Progressing or Paused; Argo:
  a status of the spec's generation; Flagger: once it progresses the new revision), and entered
  again when shown after another step, or with a new start time of the tool's own (Glideslope's
  `stepStartedAt`, Argo's pause condition `startTime`): *repeated*;
- a step never shown by the watch is *passed between observations* when the tool's own record
  has it (Glideslope's `<release>-record` timeline; Argo's and Flagger's Events, as their
  controllers log each one) or, for Flagger, its HTTPRoute took that step's weight (the traffic
  itself), else *skipped*; a step the record has twice is counted apart;
- a pause's overrun: receive time of the step after it minus that of the pause (Flagger: of the
  weight before it), minus the configured hold; it spans the crash when it began before the
  restart and ended after it (a status received between kill and restart was written before
  the kill);
- time lost: the crashed run's seconds from the watch's first sight of the new spec to
  completion, minus the baseline's (the run just before), minus the gap;
- weight backwards: a canary's Ready candidate pods going down, or its other pods' going up,
  before it completed (the Service's endpoints: what the simulator sends traffic to), for
  Flagger its HTTPRoute's canary weight going down before promotion (the simulator follows the
  route); and the tool's own weight going down
  (Glideslope's `status.weight`, Argo's weight of the step it is at, Flagger's
  `status.canaryWeight` while Progressing, which it writes with the route's weights);
- the wrong state: `SETTLE` s after completion, not every canary with its 2 candidate pods Ready
  and none of another revision, or the tool's resource not done.

Prints a table and writes results/compare_crash.json; asserts no time, only that every canary
finished. `GLIDESLOPE_CRASH_ROUNDS` (default 3), `GLIDESLOPE_CRASH_STEP` (3),
`GLIDESLOPE_CRASH_GAP` (3 s) and `GLIDESLOPE_CRASH_TOOLS` (glideslope,argo-rollouts,flagger)
set the rounds, the step, the gap and the tools.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import re
import signal
import statistics
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from glideslope.sandbox.anchors import ARGO_ROLLOUTS_VERSION, FLAGGER_VERSION
from tests.bench.argo import ARGO_NAMESPACE, ArgoController
from tests.bench.flagger import MESH_PROVIDER, FlaggerController
from tests.bench.test_scale import follow, percentile
from tests.e2e.helpers import Cluster, stop_process, wait_until
from tests.e2e.operator_fixture import INTERVAL, Operator, operator_fixture, release  # noqa: F401

pytestmark = pytest.mark.bench

RESULTS = Path(__file__).parent / "results"
ROUNDS = int(os.environ.get("GLIDESLOPE_CRASH_ROUNDS", "3"))
CRASH_AT_STEP = int(os.environ.get("GLIDESLOPE_CRASH_STEP", "3"))
GAP = float(os.environ.get("GLIDESLOPE_CRASH_GAP", "3"))
TOOLS = [t.strip() for t in os.environ.get("GLIDESLOPE_CRASH_TOOLS", "glideslope,argo-rollouts,flagger").split(",")
         if t.strip()]
CANARIES = 10
REPLICAS = 2
PAUSE = 5.0
PLAN: list[dict[str, Any]] = [
    {"setWeight": 25}, {"pause": {"duration": "5s"}},
    {"setWeight": 50}, {"pause": {"duration": "5s"}},
    {"setWeight": 75}, {"pause": {"duration": "5s"}}]
STEPS = list(range(1, len(PLAN) + 2))
"""The plan's steps and full promotion (Glideslope's last step, Argo's index past the plan)."""
PAUSE_STEPS = [i + 1 for i, step in enumerate(PLAN) if "pause" in step]
WEIGHTS = [next((s["setWeight"] for s in reversed(PLAN[:i + 1]) if "setWeight" in s), 0)
           for i in range(len(PLAN))] + [100]
"""The weight each step holds (by step number - 1): Argo's own weight, as it has no other."""
FLAGGER_INTERVAL = "5s"
FLAGGER_HOLD = 10.0
"""Flagger's interval as it runs: Canary.GetAnalysisInterval raises anything under 10 s to 10 s."""
FLAGGER_STEPS = {25: 1, 50: 3, 75: 5}
"""Flagger's canary weight -> the plan's step that sets it."""
RUN_TIMEOUT = 240.0
SETTLE = 60.0
"""Seconds after completion for the pods to reach the final state before it counts as wrong."""
REVISION = "glideslope.dev/revision"
VERSION_ANNOTATION = "bench.glideslope.dev/version"
"""On Flagger's Canary: its spec stays the same from one version to the next (the Deployment changes)."""
NAMES = [f"c{i:02d}" for i in range(CANARIES)]

GLIDESLOPE_STRATEGY = {"type": "Canary", "canary": {"steps": PLAN}}
SETTINGS: dict[str, dict[str, Any]] = {
    "glideslope": {
        "strategy": "Canary, replica ratio (no router), the plan; step 7 is full promotion",
        "operator": f"`glideslope operator` as the e2e fixture starts it (--interval {INTERVAL} s between steps), "
                    "SIGKILLed, started again with the same command line",
        "steps_seen_as": "status.currentStep while phase is Progressing or Paused; status.stepStartedAt",
        "own_record": "the <release>-record ConfigMap's timeline (Step entries)",
    },
    "argo-rollouts": {
        "version": ARGO_ROLLOUTS_VERSION,
        "strategy": "canary, basic replica ratio (no trafficRouting), the plan; currentStepIndex 6 is full promotion",
        "controller": "rollouts-controller with its defaults (--leader-elect=false), SIGKILLed, started again "
                      "with the same command line",
        "steps_seen_as": "status.currentStepIndex + 1 once status.observedGeneration is the spec's; "
                         "the CanaryPauseStep pause condition's startTime",
        "own_record": "its Events (RolloutUpdated: step 1; RolloutStepCompleted 'step k/6': step k + 1) as its "
                      "controller logs each one, before the API server's spam filter or a kill can drop them",
    },
    "flagger": {
        "version": FLAGGER_VERSION,
        "mesh_provider": MESH_PROVIDER,
        "strategy": f"Canary on an HTTPRoute, stepWeights [25, 50, 75], interval {FLAGGER_INTERVAL} (run as "
                    f"{FLAGGER_HOLD:.0f} s, Flagger's minimum), no metrics; then promotion (Promoting, Finalising)",
        "controller": "flagger watching its namespace, SIGKILLed, started again with the same command line",
        "steps_seen_as": "status.canaryWeight 25/50/75 while Progressing: steps 1/3/5; Promoting or Finalising: "
                         "step 7; no pause steps (each weight is held one interval)",
        "pause_configured_seconds": FLAGGER_HOLD,
        "own_record": "its Events ('Advance NAME.NS canary weight W', 'Copying NAME.NS template spec') as its "
                      "controller logs each one",
    },
}


# Watching: each status and each pod, with receive times ----------------------------------------


@dataclass(frozen=True)
class Seen:
    """One status of one canary, as this benchmark received it."""

    t: float
    spec_version: str
    fresh: bool
    """The status is about the spec's version (Glideslope), generation (Argo) or revision (Flagger)."""
    step: int | None
    """The step it is at, from 1, while it is taking steps."""
    started: str | None
    """The step's start as the tool itself records it (Argo: of a pause only; Flagger: none)."""
    weight: int | None
    revision: str | None
    """The candidate's `glideslope.dev/revision` label."""
    done: bool
    phase: str | None


def _glideslope_seen(obj: dict[str, Any], t: float) -> Seen:
    spec_version = str(obj["spec"].get("version"))
    st = obj.get("status") or {}
    fresh = st.get("version") == spec_version
    stepping = st.get("phase") in ("Progressing", "Paused")
    return Seen(t, spec_version, fresh, st.get("currentStep") if fresh and stepping else None,
                st.get("stepStartedAt"), st.get("weight"), st.get("revision"),
                fresh and st.get("phase") == "Succeeded", st.get("phase"))


def _argo_seen(obj: dict[str, Any], t: float) -> Seen:
    labels = obj["spec"]["template"]["metadata"]["labels"]
    spec_version = labels[REVISION].removeprefix("v")
    st = obj.get("status") or {}
    fresh = str(st.get("observedGeneration")) == str(obj["metadata"]["generation"])
    index = st.get("currentStepIndex")
    step = index + 1 if fresh and index is not None else None
    pause = next((c.get("startTime") for c in st.get("pauseConditions") or []
                  if c.get("reason") == "CanaryPauseStep"), None)
    done = (fresh and index == len(PLAN) and st.get("phase") == "Healthy"
            and bool(st.get("stableRS")) and st.get("stableRS") == st.get("currentPodHash"))
    return Seen(t, spec_version, fresh, step, pause, WEIGHTS[step - 1] if step else None, labels[REVISION],
                done, st.get("phase"))


class FlaggerSeen:
    """Flagger's status names no revision: it is about the new one once it has left Succeeded for
    a phase of analysis or promotion since the version changed (its Canary's annotation)."""

    def __init__(self) -> None:
        self.progressed: set[tuple[str, str]] = set()

    def __call__(self, obj: dict[str, Any], t: float) -> Seen:
        spec_version = str((obj["metadata"].get("annotations") or {}).get(VERSION_ANNOTATION, "")).removeprefix("v")
        key = (obj["metadata"]["name"], spec_version)
        st = obj.get("status") or {}
        phase = st.get("phase")
        if phase in ("Progressing", "Promoting", "Finalising", "WaitingPromotion", "Waiting"):
            self.progressed.add(key)
        fresh = key in self.progressed
        weight = st.get("canaryWeight")
        step = None
        if fresh and phase == "Progressing":
            step = FLAGGER_STEPS.get(weight or 0)
        elif fresh and phase in ("Promoting", "Finalising"):
            step = STEPS[-1]
        # A first version is Initialized, without analysis.
        done = (fresh and phase == "Succeeded") or (spec_version == "0" and phase == "Initialized")
        return Seen(t, spec_version, fresh, step, None, weight if phase == "Progressing" else None,
                    f"v{spec_version}", done, phase)


@dataclass(frozen=True)
class PodSeen:
    t: float
    canary: str
    revision: str
    pod: str
    ready: bool


class Recorder:
    """Every status of one tool's canaries and every pod of its namespace, from two watches,
    with the time each arrived. `trigger` is called with each status as it arrives."""

    def __init__(self, api: Any, namespace: str, group: str, plural: str,
                 parse: Callable[[dict[str, Any], float], Seen], *, routes: bool = False) -> None:
        self.statuses: dict[str, list[Seen]] = defaultdict(list)
        self.pods: list[PodSeen] = []
        self.routes: dict[str, list[tuple[float, int]]] = defaultdict(list)
        """Per HTTPRoute, (receive time, weight of its `<name>-canary` backend) at each change."""
        self.trigger: Callable[[str, Seen], None] | None = None
        self._parse = parse
        self._lock = threading.Lock()
        self.stop = threading.Event()
        custom = kubernetes.client.CustomObjectsApi(api)
        core = kubernetes.client.CoreV1Api(api)
        watches = ((functools.partial(custom.list_namespaced_custom_object, group, "v1alpha1" if group != "flagger.app"
                                      else "v1beta1", namespace, plural), self._see_status),
                   (functools.partial(core.list_namespaced_pod, namespace), self._see_pod))
        if routes:
            watches += ((functools.partial(custom.list_namespaced_custom_object, "gateway.networking.k8s.io", "v1",
                                           namespace, "httproutes"), self._see_route),)
        for listing, see in watches:
            threading.Thread(target=follow, args=(listing, see, self.stop), daemon=True).start()

    def _see_route(self, route: dict[str, Any], deleted: bool) -> None:
        name = route["metadata"]["name"]
        weight = sum(int(ref.get("weight", 1)) for rule in (route.get("spec") or {}).get("rules") or []
                     for ref in rule.get("backendRefs") or [] if ref.get("name") == f"{name}-canary")
        with self._lock:
            changes = self.routes[name]
            if not changes or changes[-1][1] != weight:
                changes.append((time.time(), weight))

    def _see_status(self, obj: dict[str, Any], deleted: bool) -> None:
        seen = self._parse(obj, time.time())
        name = obj["metadata"]["name"]
        with self._lock:
            self.statuses[name].append(seen)
        if self.trigger:
            self.trigger(name, seen)

    def _see_pod(self, pod: dict[str, Any], deleted: bool) -> None:
        meta = pod["metadata"]
        labels = meta.get("labels") or {}
        ready = not deleted and not meta.get("deletionTimestamp") and any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (pod.get("status") or {}).get("conditions") or [])
        # Flagger's primary pods are labelled app=<name>-primary.
        canary = labels.get("app", "").removesuffix("-primary")
        with self._lock:
            self.pods.append(PodSeen(time.time(), canary, labels.get(REVISION, ""), meta["name"], ready))

    def of(self, name: str, version: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.statuses[name] if s.spec_version == version]

    def done(self, name: str, version: str) -> float | None:
        return next((s.t for s in self.of(name, version) if s.done), None)

    def ready(self, name: str, candidate: str) -> tuple[int, int]:
        """(Ready candidate pods, Ready pods of other revisions) of one canary, now."""
        last: dict[str, PodSeen] = {p.pod: p for p in self.pod_history(name)}
        ours = sum(1 for p in last.values() if p.ready and p.revision == candidate)
        return ours, sum(1 for p in last.values() if p.ready) - ours

    def pod_history(self, name: str) -> list[PodSeen]:
        with self._lock:
            return [p for p in self.pods if p.canary == name]

    def route_history(self, name: str, start: float, end: float) -> list[tuple[float, int]]:
        """The canary backend's weight at `start` and at each change up to `end`."""
        with self._lock:
            changes = list(self.routes.get(name, []))
        before = [c for c in changes if c[0] < start][-1:]
        return before + [c for c in changes if start <= c[0] <= end]


# The tools -------------------------------------------------------------------------------------


@dataclass
class Tool:
    name: str
    namespace: str
    recorder: Recorder
    apply: Callable[[int], None]
    kill: Callable[[], None]
    start: Callable[[], None]
    own_record: Callable[[str, str, Any], dict[int, int]]
    """(canary, candidate revision, mark taken before the run) -> step -> times the tool's own
    record shows it entered."""
    mark: Callable[[], Any]
    steps: list[int] = field(default_factory=lambda: list(STEPS))
    """The steps a rollout goes through, as this benchmark numbers them."""
    hold: float = PAUSE
    """A pause's configured length."""
    pods_carry_weight: bool = True
    """Traffic follows Ready pods (the Service's endpoints), else the HTTPRoute's weights."""


def _argo_manifests(version: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in NAMES:
        out.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                    "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
        out.append({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": name},
            "spec": {
                "replicas": REPLICAS, "selector": {"matchLabels": {"app": name}},
                "template": {
                    # The revision label as Glideslope's pods carry it: the simulator labels series by it.
                    "metadata": {"labels": {"app": name, REVISION: f"v{version}"},
                                 "annotations": {"sim.glideslope.dev/error-rate": "0.0"}},
                    "spec": {"containers": [{"name": "app", "image": f"registry.example/{name}:{version}"}]},
                },
                "strategy": {"canary": {"steps": PLAN}},
            },
        })
    return out


def _flagger_manifests(namespace: str, version: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in NAMES:
        # The Canary before its Deployment, so its version is known when Flagger sees the change.
        out.append({
            "apiVersion": "flagger.app/v1beta1", "kind": "Canary",
            "metadata": {"name": name, "annotations": {VERSION_ANNOTATION: f"v{version}"}},
            "spec": {
                "provider": MESH_PROVIDER,
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                # No Gateway exists in the sandbox: the simulator follows the route's weights alone.
                "service": {"port": 80, "targetPort": 8080,
                            "gatewayRefs": [{"name": "gateway", "namespace": namespace}]},
                "analysis": {"interval": FLAGGER_INTERVAL, "threshold": 1, "stepWeights": [25, 50, 75],
                             "metrics": []},
            },
        })
        out.append({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {
                "replicas": REPLICAS, "selector": {"matchLabels": {"app": name}},
                "template": {
                    # Flagger copies the template's labels to the primary's pods when it promotes.
                    "metadata": {"labels": {"app": name, REVISION: f"v{version}"},
                                 "annotations": {"sim.glideslope.dev/error-rate": "0.0"}},
                    "spec": {"containers": [{"name": "app", "image": f"registry.example/{name}:{version}"}]},
                },
            },
        })
    return out


def _log_since(path: Path, offset: Any) -> str:
    with path.open("rb") as f:
        f.seek(int(offset))
        return f.read().decode(errors="replace")


ARGO_EVENT = re.compile(r"""Name:\\?"(?P<name>[^"\\]+)\\?".*?reason: '(?P<reason>\w+)' (?P<message>[^"]*)""")
ARGO_STEP = re.compile(r"Rollout step (\d+)/\d+ completed")


def argo_events(log: str) -> list[tuple[str, str, str]]:
    """(rollout, reason, message) of each Event the controller logged, in order: its broadcaster
    logs every Event before the API server's spam filter (25 per object, then one per 5 min)
    could drop it."""
    out = []
    for line in log.splitlines():
        if "Event(v1.ObjectReference" in line and "Rollout" in line and (found := ARGO_EVENT.search(line)):
            out.append((found["name"], found["reason"], found["message"].rstrip("\\")))
    return out


def _argo_record(argo: ArgoController, name: str, offset: Any) -> dict[int, int]:
    """Steps entered by Argo's Events since `offset` in its log: RolloutUpdated is step 1,
    'Rollout step k/6 completed' is step k + 1 entered."""
    steps: Counter[int] = Counter()
    for rollout, reason, message in argo_events(_log_since(argo.log_path, offset)):
        if rollout != name:
            continue
        if reason == "RolloutUpdated":
            steps[1] += 1
        elif reason == "RolloutStepCompleted" and (found := ARGO_STEP.search(message)):
            steps[int(found[1]) + 1] += 1
    return dict(steps)


FLAGGER_ADVANCE = re.compile(r"Advance ([^.\s]+)\.\S+ canary weight (\d+)")
FLAGGER_PROMOTE = re.compile(r"Copying ([^.\s]+)\.\S+ template spec to")


def _flagger_record(flagger: FlaggerController, name: str, offset: Any) -> dict[int, int]:
    """Steps entered by Flagger's Events since `offset` in its log (it logs each as it records it)."""
    steps: Counter[int] = Counter()
    for line in _log_since(flagger.log_path, offset).splitlines():
        if (found := FLAGGER_ADVANCE.search(line)) and found[1] == name:
            steps[FLAGGER_STEPS.get(int(found[2]), 0)] += 1
        elif (found := FLAGGER_PROMOTE.search(line)) and found[1] == name:
            steps[STEPS[-1]] += 1
    return dict(steps)


def _glideslope_record(sandbox: Cluster, namespace: str, name: str, candidate: str) -> dict[int, int]:
    """Steps of the candidate's rollout in the operator's closing record (its timeline)."""
    res = sandbox.kubectl("get", "configmap", f"{name}-record", "-n", namespace, "-o", "json", check=False)
    if res.returncode != 0:
        return {}
    record = json.loads(json.loads(res.stdout)["data"]["record.json"])
    rollout = next((r for r in record.get("rollouts", []) if r.get("revision") == candidate), {})
    steps: Counter[int] = Counter()
    for entry in rollout.get("timeline", []):
        found = re.match(r"step (\d+)/", entry.get("message", ""))
        if entry.get("reason") == "Step" and found:
            steps[int(found[1])] += entry.get("count", 1)
    return dict(steps)


def _sigkill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)


def _respawn(proc: subprocess.Popen[bytes], log_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The same command line again (the fixture's), its output appended to the same log."""
    with log_path.open("ab") as log:
        return subprocess.Popen(proc.args, env=env, stdout=log, stderr=subprocess.STDOUT)


def _glideslope(request: pytest.FixtureRequest, sandbox: Cluster, api: Any) -> Tool:
    operator: Operator = request.getfixturevalue("operator")
    namespace: str = request.getfixturevalue("namespace")

    def apply(version: int) -> None:
        sandbox.apply([release(name, str(version), GLIDESLOPE_STRATEGY, replicas=REPLICAS) for name in NAMES],
                      namespace)
    return Tool("glideslope", namespace, Recorder(api, namespace, "glideslope.dev", "releases", _glideslope_seen),
                apply, operator.kill, operator.start,
                lambda name, candidate, _: _glideslope_record(sandbox, namespace, name, candidate), lambda: None)


def _argo(request: pytest.FixtureRequest, sandbox: Cluster, api: Any) -> Tool:
    argo: ArgoController = request.getfixturevalue("argo")
    namespace: str = request.getfixturevalue("argo_namespace")

    def start() -> None:
        argo.proc = _respawn(argo.proc, argo.log_path, {**os.environ, "POD_NAMESPACE": ARGO_NAMESPACE})
    return Tool("argo-rollouts", namespace, Recorder(api, namespace, "argoproj.io", "rollouts", _argo_seen),
                lambda version: sandbox.apply(_argo_manifests(version), namespace),
                lambda: _sigkill(argo.proc), start,
                lambda name, _, offset: _argo_record(argo, name, offset), lambda: argo.log_path.stat().st_size)


def _flagger(request: pytest.FixtureRequest, sandbox: Cluster, api: Any) -> Tool:
    flagger: FlaggerController = request.getfixturevalue("flagger")
    namespace = flagger.namespace
    first = flagger.proc

    def start() -> None:
        flagger.proc = _respawn(flagger.proc, flagger.log_path, dict(os.environ))
    # The fixture stops the process it started; a restarted one is this benchmark's to stop.
    request.addfinalizer(lambda: stop_process(flagger.proc) if flagger.proc is not first else None)
    return Tool("flagger", namespace, Recorder(api, namespace, "flagger.app", "canaries", FlaggerSeen(), routes=True),
                lambda version: sandbox.apply(_flagger_manifests(namespace, version), namespace),
                lambda: _sigkill(flagger.proc), start,
                lambda name, _, offset: _flagger_record(flagger, name, offset),
                lambda: flagger.log_path.stat().st_size,
                steps=[1, 3, 5, STEPS[-1]], hold=FLAGGER_HOLD, pods_carry_weight=False)


@pytest.fixture
def tools(request: pytest.FixtureRequest, sandbox: Cluster) -> Iterator[list[Tool]]:
    api = kubernetes.config.new_client_from_config(config_file=str(sandbox.kubeconfig))
    makers = {"glideslope": _glideslope, "argo-rollouts": _argo, "flagger": _flagger}
    chosen = [makers[name](request, sandbox, api) for name in TOOLS]
    try:
        yield chosen
    finally:
        for tool in chosen:
            tool.recorder.stop.set()


# One run: all 10 canaries to a new version, with or without a crash ---------------------------


@dataclass
class Run:
    tool: str
    version: int
    crash: bool
    applied_at: float = 0.0
    trigger: str | None = None
    trigger_seen_at: float | None = None
    kill_at: float | None = None
    restart_at: float | None = None
    mark: Any = None
    finished_at: float | None = None


def _run(tool: Tool, version: int, crash: bool) -> Run:
    run = Run(tool.name, version, crash, mark=tool.mark())
    fired = threading.Event()
    if crash:
        def trigger(name: str, seen: Seen) -> None:
            if seen.spec_version == str(version) and (seen.step or 0) >= CRASH_AT_STEP and not fired.is_set():
                run.trigger, run.trigger_seen_at = name, seen.t
                fired.set()
        tool.recorder.trigger = trigger
    run.applied_at = time.time()
    tool.apply(version)
    try:
        if crash:
            assert fired.wait(RUN_TIMEOUT), f"{tool.name}: no canary reached step {CRASH_AT_STEP}"
            run.kill_at = time.time()
            tool.kill()
            time.sleep(GAP)
            run.restart_at = time.time()
            tool.start()
    finally:
        tool.recorder.trigger = None
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline and not all(tool.recorder.done(n, str(version)) for n in NAMES):
        time.sleep(0.2)
    run.finished_at = time.time()
    return run


def _ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def _entries(statuses: list[Seen]) -> list[Seen]:
    """Each time a step was entered: a step other than the last one seen, or the same step with
    another start time of the tool's own (it began it again)."""
    out: list[Seen] = []
    for seen in statuses:
        if not seen.fresh or seen.step is None:
            continue
        last = out[-1] if out else None
        if last is None or seen.step != last.step or (
                seen.started and last.started and seen.started != last.started):
            out.append(seen)
        elif not last.started and seen.started:
            # Argo writes a pause's start after it entered the step: keep it with the entry.
            out[-1] = replace(last, started=seen.started)
    return out


def _backwards(pods: list[PodSeen], candidate: str, start: float, end: float) -> list[str]:
    """Ready candidate pods going down, or other Ready pods going up, between start and end."""
    state: dict[str, PodSeen] = {}
    out: list[str] = []
    before = (0, 0)
    for pod in pods:
        state[pod.pod] = pod
        ours = sum(1 for p in state.values() if p.ready and p.revision == candidate)
        others = sum(1 for p in state.values() if p.ready) - ours
        if start <= pod.t <= end and (ours < before[0] or others > before[1]):
            out.append(f"at {pod.t - start:.2f}s: Ready candidate/other {before[0]}/{before[1]} -> {ours}/{others}")
        before = (ours, others)
    return out


def _ready_path(pods: list[PodSeen], candidate: str, start: float, end: float) -> list[list[Any]]:
    """[seconds, Ready candidate pods, other Ready pods] at each change between start and end."""
    state: dict[str, PodSeen] = {}
    out: list[list[Any]] = []
    for pod in pods:
        state[pod.pod] = pod
        ours = sum(1 for p in state.values() if p.ready and p.revision == candidate)
        counts = [ours, sum(1 for p in state.values() if p.ready) - ours]
        if start <= pod.t <= end and (not out or out[-1][1:] != counts):
            out.append([round(pod.t - start, 2), *counts])
    return out


def _route_steps(route: list[tuple[float, int]], start: float) -> list[tuple[int, float]]:
    """(step, receive time) each time the route took a weight of the plan, from `start`."""
    out: list[tuple[int, float]] = []
    for t, weight in route:
        step = FLAGGER_STEPS.get(weight)
        if t >= start and step and (not out or out[-1][0] != step):
            out.append((step, t))
    return out


def _pauses(tool: Tool, run: Run, first: dict[int, float], own: dict[int, str | None]) -> list[dict[str, Any]]:
    """Each pause's overrun: from its start (Flagger: the weight before it) to the next step."""
    out = []
    for step in PAUSE_STEPS:
        begin, end = first.get(step) or first.get(step - 1), first.get(step + 1)
        if begin is None or end is None:
            continue
        own_clock = None
        if tool.name == "glideslope" and (a := _ts(own.get(step))) and (b := _ts(own.get(step + 1))):
            own_clock = round(b - a - tool.hold, 2)
        # A status received while no controller ran was written before the kill: what ended
        # then did not span the crash.
        spans = run.restart_at is not None and begin < run.restart_at < end
        out.append({"step": step, "overrun_seconds": round(end - begin - tool.hold, 2),
                    "overrun_seconds_own_clock": own_clock, "spans_crash": spans})
    return out


def _analyse(tool: Tool, run: Run) -> dict[str, Any]:
    version = str(run.version)
    canaries: dict[str, dict[str, Any]] = {}
    for name in NAMES:
        statuses = tool.recorder.of(name, version)
        seen_at = statuses[0].t if statuses else run.applied_at
        done = next((s.t for s in statuses if s.done), None)
        entries = _entries(statuses)
        candidate = next((s.revision for s in reversed(statuses) if s.fresh and s.revision), "")
        record = tool.own_record(name, candidate, run.mark)
        entered = Counter(e.step for e in entries)
        end = done or run.finished_at or time.time()
        route = tool.recorder.route_history(name, seen_at, end)
        route_steps = _route_steps(route, seen_at)
        first: dict[int, float] = {}
        for step, t in [(e.step or 0, e.t) for e in entries] + route_steps:
            first[step] = min(first.get(step, t), t)
        unseen = [s for s in tool.steps if s not in entered]
        in_route = {s for s, _ in route_steps}
        own_weights = [s.weight for s in statuses if s.fresh and s.weight is not None]
        before_kill = [e for e in entries if run.kill_at is not None and e.t <= run.kill_at]
        pods = tool.recorder.pod_history(name)
        promoted = next((e.t for e in entries if e.step == STEPS[-1]), end)
        route_weights = [w for t, w in route if t <= promoted]
        canaries[name] = {
            "seconds_to_done": round(done - seen_at, 2) if done else None,
            "steps": [[e.step, round(e.t - seen_at, 2)] for e in entries],
            "step_at_kill": before_kill[-1].step if before_kill else None,
            "repeated": sorted(s for s, n in entered.items() if n > 1),
            "repeated_in_own_record": sorted(s for s, n in record.items() if n > 1),
            "skipped": [s for s in unseen if not record.get(s) and s not in in_route],
            "passed_between_observations": [s for s in unseen if record.get(s) or s in in_route],
            "unexpected_steps": sorted(s for s in entered if s not in tool.steps),
            "missing_in_own_record": sorted(s for s in entered if not record.get(s)),
            "own_record_steps": {str(k): v for k, v in sorted(record.items())},
            "pauses": _pauses(tool, run, first, {e.step or 0: e.started for e in entries}),
            "own_weight_backwards": any(b < a for a, b in itertools.pairwise(own_weights)),
            "ready_pods_backwards": _backwards(pods, candidate, seen_at, end) if tool.pods_carry_weight else None,
            "ready_pods": _ready_path(pods, candidate, seen_at, end),
            **({} if tool.pods_carry_weight else {
                "route_canary_weight": [[round(t - seen_at, 2), w] for t, w in route],
                "route_steps": [[s, round(t - seen_at, 2)] for s, t in route_steps],
                "repeated_in_route": sorted(s for s, n in Counter(s for s, _ in route_steps).items() if n > 1),
                "route_weight_backwards": any(b < a for a, b in itertools.pairwise(route_weights))}),
            "candidate": candidate,
        }
    after_restart = [s.t for name in NAMES for s in tool.recorder.of(name, version)
                     if run.restart_at is not None and s.t > run.restart_at]
    wrong = _final_state(tool, run, canaries)
    return {
        "version": run.version, "crash": run.crash, "trigger": run.trigger,
        "kill_after_apply_seconds": round(run.kill_at - run.applied_at, 2) if run.kill_at else None,
        "kill_after_trigger_seen_seconds": round(run.kill_at - run.trigger_seen_at, 3)
        if run.kill_at and run.trigger_seen_at else None,
        "gap_seconds": round(run.restart_at - run.kill_at, 2) if run.restart_at and run.kill_at else None,
        "first_status_after_restart_seconds": round(min(after_restart) - run.restart_at, 2)
        if after_restart and run.restart_at else None,
        "unfinished": [n for n, c in canaries.items() if c["seconds_to_done"] is None],
        "wrong_state": wrong, "canaries": canaries}


def _final_state(tool: Tool, run: Run, canaries: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Canaries not in the state they must end in, SETTLE seconds after the last completed."""
    version = str(run.version)

    def wrong() -> dict[str, str]:
        out = {}
        for name in NAMES:
            statuses = tool.recorder.of(name, version)
            last = statuses[-1] if statuses else None
            pods = tool.recorder.ready(name, canaries[name]["candidate"])
            if last is None or not last.done or pods != (REPLICAS, 0):
                out[name] = (f"{last.phase if last else None}, step {last.step if last else None}, "
                             f"Ready candidate/other pods {pods[0]}/{pods[1]}")
        return out
    deadline = time.monotonic() + SETTLE
    while (found := wrong()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return found


# Figures ---------------------------------------------------------------------------------------


def _stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2),
            "max": round(max(values), 2), "p90": round(percentile(values, 90), 2), "samples": len(values)}


def _summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    lost: list[float] = []
    delta: list[float] = []
    pauses: dict[str, list[float]] = defaultdict(list)
    counts: Counter[str] = Counter()
    for r in rounds:
        base, crash = r["baseline"], r["crash"]
        per_round = []
        for name in NAMES:
            b, c = base["canaries"][name]["seconds_to_done"], crash["canaries"][name]["seconds_to_done"]
            if b is not None and c is not None:
                per_round.append(round(c - b, 2))
        r["completion_delta_seconds"] = _stats(per_round)
        r["time_lost_seconds"] = _stats([d - GAP for d in per_round])
        delta += per_round
        lost += [round(d - GAP, 2) for d in per_round]
        for label, run in (("baseline", base), ("crash", crash)):
            for c in run["canaries"].values():
                for key in ("repeated", "repeated_in_own_record", "skipped", "passed_between_observations",
                            "unexpected_steps", "missing_in_own_record"):
                    counts[f"{label}_{key}"] += len(c[key])
                counts[f"{label}_own_weight_backwards"] += int(c["own_weight_backwards"])
                counts[f"{label}_ready_pods_backwards"] += len(c["ready_pods_backwards"] or [])
                counts[f"{label}_route_weight_backwards"] += int(c.get("route_weight_backwards", False))
                counts[f"{label}_repeated_in_route"] += len(c.get("repeated_in_route", []))
                for p in c["pauses"]:
                    kind = "baseline_runs" if label == "baseline" else (
                        "spanning_the_crash" if p["spans_crash"] else "other_pauses_of_crashed_runs")
                    pauses[kind].append(p["overrun_seconds"])
            counts[f"{label}_unfinished"] += len(run["unfinished"])
            counts[f"{label}_wrong_state"] += len(run["wrong_state"])
    return {"counts": dict(counts), "time_lost_seconds": _stats(lost), "completion_delta_seconds": _stats(delta),
            "pause_overrun_seconds": {k: _stats(pauses[k]) for k in
                                      ("spanning_the_crash", "other_pauses_of_crashed_runs", "baseline_runs")}}


def _cell(stats: dict[str, float] | None) -> str:
    return f"{stats['median']} / {stats['max']}" if stats else "-"


@pytest.mark.timeout(600 + 2 * len(TOOLS) * ROUNDS * (RUN_TIMEOUT + SETTLE))
def test_compare_crash(sandbox: Cluster, tools: list[Tool]) -> None:
    # Version 0 of each becomes stable without steps (a first rollout has none).
    for tool in tools:
        tool.apply(0)
    for tool in tools:
        wait_until(lambda t=tool: all(t.recorder.done(n, "0") and t.recorder.ready(n, next(
            (s.revision for s in reversed(t.recorder.of(n, "0")) if s.revision), ""))[0] == REPLICAS
            for n in NAMES), 180, f"{tool.name}: {CANARIES} canaries at version 0")

    results: dict[str, list[dict[str, Any]]] = {tool.name: [] for tool in tools}
    started = time.monotonic()
    version = 0
    for round_ in range(1, ROUNDS + 1):
        for tool in tools:
            pair: dict[str, Any] = {"round": round_}
            for crash in (False, True):
                version += 1
                pair["crash" if crash else "baseline"] = _analyse(tool, _run(tool, version, crash))
            results[tool.name].append(pair)
            c = pair["crash"]
            print(f"round {round_} {tool.name}: killed {c['kill_after_apply_seconds']}s after the update "
                  f"({c['trigger']} at step {CRASH_AT_STEP}); steps at the kill "
                  f"{[x['step_at_kill'] for x in c['canaries'].values()]}; first status "
                  f"{c['first_status_after_restart_seconds']}s after the restart; repeated "
                  f"{sum(len(x['repeated']) for x in c['canaries'].values())}, skipped "
                  f"{sum(len(x['skipped']) for x in c['canaries'].values())}, unfinished {c['unfinished']}, "
                  f"wrong state {c['wrong_state']}", flush=True)

    summaries = {name: {"settings": SETTINGS[name], **_summary(rounds), "rounds": rounds}
                 for name, rounds in results.items()}
    result = {
        "benchmark": "compare_crash",
        "scenario": (f"{CANARIES} canaries at once, {REPLICAS} replicas each, a Service each (simulated traffic); "
                     f"plan {PLAN}; per round and tool a run without a crash, then one whose controller is "
                     f"SIGKILLed when this benchmark's watch sees any canary enter step {CRASH_AT_STEP}, and started "
                     f"again {GAP} s later"),
        "settings": {"canaries": CANARIES, "replicas": REPLICAS, "plan": PLAN, "steps": STEPS,
                     "pause_steps": PAUSE_STEPS, "crash_at_step": CRASH_AT_STEP, "gap_seconds": GAP,
                     "rounds": ROUNDS, "settle_seconds": SETTLE, "tools": TOOLS},
        "counting": {
            "repeated": "a step entered twice: shown again after another step, or with a new start time of the "
                        "tool's own; repeated_in_own_record: a step the tool's own record has twice",
            "skipped": "a step never shown by the watch and not in the tool's own record (nor, for Flagger, "
                       "taken by its HTTPRoute); one that is, is passed_between_observations",
            "pause_overrun": "receive time of the step after the pause minus that of the pause (Flagger: of the "
                             "weight before it), minus the configured hold; spans the crash when it began before "
                             "the restart and ended after it",
            "missing_in_own_record": "steps the watch saw entered that the tool's own record lacks",
            "time_lost": "per canary, the crashed run's seconds from the watch's first sight of the new spec to "
                         "completion, minus the baseline run's (just before), minus the gap; "
                         "completion_delta is the same without the gap taken off",
            "ready_pods_backwards": "Ready candidate pods down or other Ready pods up before completion "
                                    "(not for Flagger: its traffic follows the HTTPRoute)",
            "route_weight_backwards": "Flagger: canaries whose HTTPRoute canary weight went down before "
                                      "promotion (the simulator's view of its traffic)",
            "own_weight_backwards": "canaries whose own weight went down: Glideslope status.weight, Argo the "
                                    "step's weight, Flagger status.canaryWeight while Progressing",
            "wrong_state": f"{SETTLE:.0f} s after completion not {REPLICAS} Ready candidate pods and none other, "
                           "or the tool's resource not done",
        },
        "order": "per round, for each tool in turn: a baseline run, then a crashed run",
        "tools": summaries,
        "duration_seconds": round(time.monotonic() - started, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "compare_crash.json").write_text(json.dumps(result, indent=2) + "\n")

    head = ["repeated", "skipped", "between obs.", "pause over crash", "time lost", "wrong state",
            "backwards", "unfinished"]
    widths = [12, 9, 14, 18, 15, 13, 13, 12]
    print(f"\n{'crash runs':<15}" + "".join(f"{h:>{w}}" for h, w in zip(head, widths, strict=True)))
    for name, s in summaries.items():
        n = s["counts"]
        pods = str(n.get("crash_ready_pods_backwards", 0)) if name != "flagger" else \
            f"route {n.get('crash_route_weight_backwards', 0)}"
        cells = [f"{n.get('crash_repeated', 0)} ({n.get('crash_repeated_in_own_record', 0)})",
                 str(n.get("crash_skipped", 0)), str(n.get("crash_passed_between_observations", 0)),
                 _cell(s["pause_overrun_seconds"]["spanning_the_crash"]), _cell(s["time_lost_seconds"]),
                 str(n.get("crash_wrong_state", 0)), f"{pods} / {n.get('crash_own_weight_backwards', 0)}",
                 str(n.get("crash_unfinished", 0))]
        print(f"{name:<15}" + "".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)))
    print(f"{ROUNDS} round(s) of {CANARIES} canaries, killed at step {CRASH_AT_STEP}, gap {GAP} s. Repeated (in "
          "the tool's own record); seconds as median / max; backwards: pod events / canaries whose own weight fell")
    for name, s in summaries.items():
        n = s["counts"]
        print(f"  {name} baseline runs: repeated {n.get('baseline_repeated', 0)}, skipped "
              f"{n.get('baseline_skipped', 0)}, pause overrun {_cell(s['pause_overrun_seconds']['baseline_runs'])}; "
              f"crashed runs: completion delta {_cell(s['completion_delta_seconds'])}, other pauses "
              f"{_cell(s['pause_overrun_seconds']['other_pauses_of_crashed_runs'])}, steps missing in its own "
              f"record {n.get('crash_missing_in_own_record', 0)}")
    print(f"load average {result['load_average']} on {result['cpus']} CPUs; {result['duration_seconds']} s")
    unfinished = {name: [(r["round"], run, r[run]["unfinished"]) for r in rounds for run in ("baseline", "crash")
                         if r[run]["unfinished"]] for name, rounds in results.items()}
    assert not any(unfinished.values()), unfinished
