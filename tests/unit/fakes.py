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
