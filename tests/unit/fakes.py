"""Fakes the core's unit tests share: a Release spec builder, and a fake cluster that obeys the
core's actions and brings pods up a few at a time, driven tick by tick by `Run`."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from glideslope.api import Phase, ReleaseSpec, ReleaseStatus, parse_spec
from glideslope.core.decide import decide
from glideslope.core.model import (
    Announce,
    Decision,
    DeleteRevision,
    Observation,
    RestartRevision,
    RevisionState,
    ScaleBaseline,
    ScaleRevision,
    SetTraffic,
)
from glideslope.core.revision import revision_of

T0 = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)


def make_spec(strategy: dict[str, Any], *, image: str = "app:1", replicas: int = 4,
              routed: bool = False, paused: bool = False) -> ReleaseSpec:
    body: dict[str, Any] = {
        "version": image.split(":")[1], "replicas": replicas, "paused": paused,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "app", "image": image}]}},
        "service": {"ports": [{"port": 80}]},
        "strategy": copy.deepcopy(strategy),
    }
    if routed:
        body["strategy"]["canary"]["trafficRouting"] = {"gatewayAPI": {"httpRoute": "web"}}
    return parse_spec(body)


def with_image(spec: ReleaseSpec, image: str) -> ReleaseSpec:
    data = spec.to_dict()
    data["template"]["spec"]["containers"][0]["image"] = image
    data["version"] = image.split(":")[1]
    return parse_spec(data)


@dataclass
class Pods:
    desired: int
    ready: int = 0
    pods: int = 0


@dataclass
class FakeCluster:
    """Deployments that scale down at once and come up `speed` ready pods per tick."""

    revisions: dict[str, Pods] = field(default_factory=dict)
    traffic: SetTraffic | None = None
    events: list[Announce] = field(default_factory=list)
    restarted: dict[str, str] = field(default_factory=dict)
    """Revision -> the restart token on its pod template."""
    baselines: dict[str, int] = field(default_factory=dict)
    """The judge's baseline Deployments: revision -> replicas (all Ready at once)."""

    def observe(self, commands: dict[str, str] | None = None, generation: int = 1) -> Observation:
        return Observation(generation, {r: RevisionState(p.desired, p.ready, p.pods)
                                        for r, p in self.revisions.items()}, commands or {},
                           baselines={r: RevisionState(n, n, n) for r, n in self.baselines.items()})

    def apply(self, decision: Decision) -> None:
        for action in decision.actions:
            if isinstance(action, ScaleRevision):
                pods = self.revisions.setdefault(action.revision, Pods(0))
                pods.desired = action.replicas
                pods.pods = min(pods.pods, action.replicas)
                pods.ready = min(pods.ready, action.replicas)
            elif isinstance(action, SetTraffic):
                self.traffic = action
            elif isinstance(action, DeleteRevision):
                assert self.revisions[action.revision].pods == 0
                del self.revisions[action.revision]
            elif isinstance(action, RestartRevision):
                assert self.revisions[action.revision].desired > 0
                self.restarted[action.revision] = action.token
            elif isinstance(action, ScaleBaseline):
                if action.replicas:
                    self.baselines[action.revision] = action.replicas
                else:
                    self.baselines.pop(action.revision, None)
            else:
                self.events.append(action)

    def progress(self, speed: int) -> None:
        for pods in self.revisions.values():
            pods.pods = pods.desired
            pods.ready = min(pods.desired, pods.ready + speed)

    def serving(self) -> int:
        """Ready pods behind the traffic as routed now."""
        assert self.traffic is not None
        if self.traffic.active is None:
            return sum(p.ready for p in self.revisions.values())
        active = self.revisions[self.traffic.active].ready
        if self.traffic.weight >= 100:
            return self.revisions[self.traffic.preview].ready
        if self.traffic.weight > 0:
            return min(active, self.revisions[self.traffic.preview].ready)
        return active


@dataclass
class Run:
    """A Release driven tick by tick against a FakeCluster."""

    spec: ReleaseSpec
    cluster: FakeCluster = field(default_factory=FakeCluster)
    status: ReleaseStatus = field(default_factory=ReleaseStatus)
    now: datetime = T0
    speed: int = 2
    min_serving: int = 1
    steps_seen: list[int] = field(default_factory=list)

    def tick(self, commands: dict[str, str] | None = None, seconds: float = 1.0,
             lose_actions: bool = False, lose_status: bool = False) -> Decision:
        decision = decide(self.spec, self.status, self.cluster.observe(commands), self.now)
        if not lose_actions:
            was_serving = self.cluster.traffic is not None and self.cluster.serving() > 0
            self.cluster.apply(decision)
            if was_serving and self.min_serving:
                assert self.cluster.serving() >= self.min_serving, (decision, self.cluster)
        if not lose_status:
            self.status = decision.status
        self.steps_seen.append(self.status.current_step or 0)
        self.cluster.progress(self.speed)
        self.now += timedelta(seconds=seconds)
        return decision

    def until(self, phase: Phase, limit: int = 200, **kwargs: Any) -> None:
        for _ in range(limit):
            if self.status.phase == phase and self.status.revision == revision_of(self.spec.template):
                return
            self.tick(**kwargs)
        raise AssertionError(f"never reached {phase}: {self.status.phase} {self.status.message}")

    def deploy(self, spec: ReleaseSpec) -> None:
        self.spec = spec
        self.steps_seen.clear()


CANARY = {"type": "Canary", "canary": {"steps": [{"setWeight": 25}, {"pause": {"duration": "5s"}},
                                                 {"setWeight": 50}, {"analysis": {"duration": "3s"}}]}}
MANUAL = {"type": "Canary", "canary": {"steps": [{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}]}}


def stable_run(strategy: dict[str, Any], **kwargs: Any) -> Run:
    """A Release whose v1 is stable, with v2 applied."""
    run = Run(make_spec(strategy, **kwargs))
    run.until(Phase.SUCCEEDED)
    run.deploy(with_image(run.spec, "app:2"))
    return run


# The shell's fake: the kube adapters the engine calls, over an in-memory cluster --------------

NAMESPACE, NAME = "team-a", "web"


@dataclass
class FakeApiServer:
    """What `engine.step` reads and writes, held in memory: one namespace's Releases (with
    resourceVersions, so a status write decided on an old one is refused), the revision
    Deployments of Release `web` (pods come up `speed` per `progress`), Services and Events.
    `install` puts it behind the kube adapters the engine calls; tests look at the state it
    ends in, not at the calls that led there."""

    releases: dict[str, dict[str, Any]] = field(default_factory=dict)
    revisions: dict[str, Pods] = field(default_factory=dict)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Event name -> (reason, message); a name created twice is a conflict, as on the server."""
    foreign: set[tuple[str, str]] = field(default_factory=set)
    """(kind, name) of objects that exist and are someone else's."""
    before_status_write: list[Any] = field(default_factory=list)
    """Callables run (and dropped) before the next status write: someone else's change landing
    between the engine's read and its write."""
    version: int = 0

    def apply(self, spec: ReleaseSpec, *, annotations: dict[str, str] | None = None) -> None:
        """`kubectl apply` of Release `web` with `spec`: a new generation when the spec changed."""
        body = self.releases.get(NAME)
        if body is None:
            body = {"apiVersion": "glideslope.dev/v1alpha1", "kind": "Release",
                    "metadata": {"name": NAME, "namespace": NAMESPACE, "uid": "uid-web", "generation": 0,
                                 "annotations": {}}}
            self.releases[NAME] = body
        new = spec.to_dict()
        if body.get("spec") != new:
            body["spec"] = new
            body["metadata"]["generation"] += 1
        body["metadata"]["annotations"].update(annotations or {})
        self._bump(body)

    def annotate(self, key: str, value: str) -> None:
        body = self.releases[NAME]
        body["metadata"]["annotations"][key] = value
        self._bump(body)

    def release(self) -> dict[str, Any]:
        return self.releases[NAME]

    def status(self) -> ReleaseStatus:
        return ReleaseStatus.model_validate(self.releases[NAME].get("status") or {})

    def progress(self, speed: int) -> None:
        for pods in self.revisions.values():
            pods.pods = pods.desired
            pods.ready = min(pods.desired, pods.ready + speed)

    def _bump(self, body: dict[str, Any]) -> None:
        self.version += 1
        body["metadata"]["resourceVersion"] = str(self.version)

    # The adapters, as the engine calls them.

    def get(self, _kube: Any, namespace: str, name: str) -> dict[str, Any] | None:
        body = self.releases.get(name) if namespace == NAMESPACE else None
        return copy.deepcopy(body)

    def patch_status(self, _kube: Any, _namespace: str, name: str, patch: dict[str, Any],
                     resource_version: str) -> bool:
        while self.before_status_write:
            self.before_status_write.pop(0)()
        body = self.releases.get(name)
        if body is None or body["metadata"]["resourceVersion"] != resource_version:
            return False
        status = body.setdefault("status", {})
        for key, value in patch.items():  # a JSON merge patch, as the adapter sends it
            if value is None:
                status.pop(key, None)
            elif isinstance(value, dict) and isinstance(status.get(key), dict):
                merged = {**status[key], **value}
                status[key] = {k: v for k, v in merged.items() if v is not None}
            else:
                status[key] = copy.deepcopy(value)
        self._bump(body)
        return True

    def remove_commands(self, _kube: Any, _namespace: str, name: str, commands: dict[str, str]) -> None:
        annotations = self.releases[name]["metadata"]["annotations"]
        if all(annotations.get(k) == v for k, v in commands.items()):  # the adapter's test ops
            for key in commands:
                del annotations[key]
            self._bump(self.releases[name])

    def observe(self, _kube: Any, _namespace: str, _release: str) -> dict[str, RevisionState]:
        return {r: RevisionState(p.desired, p.ready, p.pods) for r, p in self.revisions.items()}

    def apply_candidate(self, _kube: Any, _release: Any, revision: str, replicas: int) -> None:
        self.revisions.setdefault(revision, Pods(0)).desired = replicas

    def scale(self, _kube: Any, _namespace: str, _release: str, revision: str, replicas: int) -> None:
        pods = self.revisions[revision]
        pods.desired, pods.ready, pods.pods = replicas, min(pods.ready, replicas), min(pods.pods, replicas)

    def delete(self, _kube: Any, _namespace: str, _release: str, revision: str) -> None:
        del self.revisions[revision]

    def apply_service(self, _kube: Any, body: dict[str, Any]) -> None:
        self.services[body["metadata"]["name"]] = copy.deepcopy(body)

    def claim(self, _release: Any, kind: str, _read: Any, name: str) -> None:
        from glideslope.kube.ownership import NotOurs

        if (kind, name) in self.foreign:
            raise NotOurs(f"{kind} {NAMESPACE}/{name} exists and is not this Release's")

    def announce(self, _kube: Any, release: Any, announcement: Any) -> bool:
        from glideslope.kube.events import event_name

        name = event_name(release, announcement)
        if name in self.events:
            return False
        self.events[name] = (announcement.reason, announcement.message)
        return True

    def emit_for(self, _kube: Any, body: Any, reason: str, message: str, *, warning: bool = False) -> None:
        self.events[f"{NAME}.{len(self.events)}"] = (reason, message)

    def reasons(self) -> list[str]:
        return [reason for reason, _ in self.events.values()]

    def kube(self) -> Any:
        """The client the engine is given: the adapters are faked, so only the reads it hands
        to `ownership.claim` (faked too) need to exist."""
        from types import SimpleNamespace

        from glideslope.kube.client import Kube

        def unused(*_: Any) -> None:
            raise AssertionError("read through the fake claim, not the client")

        return Kube(None, SimpleNamespace(read_namespaced_service=unused),
                    SimpleNamespace(read_namespaced_deployment=unused), None)

    def install(self, monkeypatch: Any) -> None:
        from glideslope import engine
        from glideslope.kube import events, ownership, records, releases, services, workloads

        for module, attr, fake in [
            (releases, "get", self.get), (releases, "patch_status", self.patch_status),
            (releases, "remove_commands", self.remove_commands),
            (workloads, "observe", self.observe), (workloads, "apply_candidate", self.apply_candidate),
            (workloads, "scale", self.scale), (workloads, "delete", self.delete),
            (services, "apply", self.apply_service), (ownership, "claim", self.claim),
            (events, "announce", self.announce), (events, "emit_for", self.emit_for),
            (records, "write", lambda *_, **__: None),
            (engine, "publish", lambda *_, **__: None),
        ]:
            monkeypatch.setattr(module, attr, fake)
