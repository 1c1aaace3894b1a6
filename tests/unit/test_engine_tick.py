"""The engine's tick against a fake cluster (`fakes.FakeApiServer`): what the cluster and the
stored Release look like after the ticks, whatever calls led there."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from glideslope import engine
from glideslope.api import ConditionType, HistoryOutcome, Phase
from glideslope.core.model import ABORT, Reason
from glideslope.core.revision import revision_of
from glideslope.egress import EgressPolicy
from glideslope.kube.ownership import NotOurs
from glideslope.metrics import OperatorMetrics
from glideslope.runtime import Runtime
from tests.unit.fakes import CANARY, NAME, NAMESPACE, T0, FakeApiServer, make_spec, with_image

pytestmark = pytest.mark.unit

SPEC = make_spec(CANARY)
V2 = with_image(SPEC, "app:2")
V1_REV, V2_REV = revision_of(SPEC.template), revision_of(V2.template)


@pytest.fixture(name="rt")
def runtime(cluster: FakeApiServer) -> Iterator[Runtime]:
    built = Runtime(cluster.kube(), lambda namespace, name: None, metrics=OperatorMetrics(),
                    policy=EgressPolicy())
    yield built
    built.egress.close()


@pytest.fixture(name="cluster")
def fake_cluster(monkeypatch: pytest.MonkeyPatch) -> FakeApiServer:
    cluster = FakeApiServer()
    cluster.install(monkeypatch)
    return cluster


class Clock:
    now = T0


def tick_until(rt: Runtime, cluster: FakeApiServer, phase: Phase, revision: str, *, limit: int = 100,
               clock: Clock | None = None) -> None:
    """Tick (a second apart, two pods ready a tick) until the stored status says `phase` of `revision`."""
    clock = clock or Clock()
    for _ in range(limit):
        stored = cluster.status()
        if stored.phase == phase and stored.revision == revision:
            return
        engine.step(rt, NAMESPACE, NAME, clock.now)
        cluster.progress(2)
        clock.now += timedelta(seconds=1)
    raise AssertionError(f"never stored {phase} of {revision}: {cluster.status().phase} {cluster.status().message}")


def test_a_canary_leaves_the_cluster_as_its_stored_status_says(rt: Runtime, cluster: FakeApiServer) -> None:
    clock = Clock()
    cluster.apply(SPEC)
    tick_until(rt, cluster, Phase.SUCCEEDED, V1_REV, clock=clock)
    cluster.apply(V2)
    tick_until(rt, cluster, Phase.SUCCEEDED, V2_REV, clock=clock)

    stored = cluster.status()
    assert stored.stable_revision == V2_REV and stored.stable_version == "2"
    assert [e.outcome for e in stored.history] == [HistoryOutcome.SUCCEEDED, HistoryOutcome.SUCCEEDED]
    assert stored.observed_generation == cluster.release()["metadata"]["generation"] == 2
    assert cluster.revisions[V2_REV].desired == cluster.revisions[V2_REV].ready == 4
    assert cluster.revisions.get(V1_REV) is None or cluster.revisions[V1_REV].desired == 0
    assert set(cluster.services) == {"web", "web-preview"}
    # Every transition stored was announced, once (Event names are derived from what they say).
    announced = {(a.reason, a.message) for a in stored.announcements}
    assert announced <= set(cluster.events.values())
    assert cluster.reasons().count(Reason.SUCCEEDED) == 2


def test_an_abort_is_obeyed_once_and_the_stable_revision_serves_again(rt: Runtime, cluster: FakeApiServer) -> None:
    clock = Clock()
    cluster.apply(SPEC)
    tick_until(rt, cluster, Phase.SUCCEEDED, V1_REV, clock=clock)
    cluster.apply(V2)
    tick_until(rt, cluster, Phase.PROGRESSING, V2_REV, clock=clock)
    cluster.annotate(ABORT, "by-test")
    tick_until(rt, cluster, Phase.ROLLED_BACK, V2_REV, clock=clock)
    for _ in range(5):  # the ticks after obey nothing more
        engine.step(rt, NAMESPACE, NAME, clock.now)
        clock.now += timedelta(seconds=1)

    stored = cluster.status()
    assert ABORT not in cluster.release()["metadata"]["annotations"]
    assert stored.stable_revision == V1_REV
    assert cluster.revisions[V1_REV].desired == 4 and cluster.revisions[V2_REV].desired == 0
    assert cluster.reasons().count(Reason.ABORTED) == 1
    assert cluster.reasons().count(Reason.ROLLED_BACK) == 1


def test_a_release_changed_before_the_status_write_is_decided_again_and_announced_once(
        rt: Runtime, cluster: FakeApiServer) -> None:
    cluster.apply(SPEC)
    # Someone's edit lands between the first tick's read and its status write.
    cluster.before_status_write.append(lambda: cluster.annotate("team/owner", "a"))
    engine.step(rt, NAMESPACE, NAME, T0)
    assert cluster.status().phase is None and not cluster.events  # nothing said of a status not stored
    tick_until(rt, cluster, Phase.SUCCEEDED, V1_REV)
    reasons = cluster.reasons()
    assert len(reasons) == len(set(reasons)), reasons


def test_an_invalid_spec_is_degraded_once_and_touches_nothing(rt: Runtime, cluster: FakeApiServer) -> None:
    spec = SPEC.to_dict()
    spec["gates"] = [{"name": "office-hours", "window": {"timezone": "Mars/Olympus_Mons",
                                                         "schedule": [{"days": ["Mon"], "start": "09:00",
                                                                       "end": "17:00"}]}}]
    cluster.apply(type(SPEC).model_validate(spec))
    for second in range(3):
        engine.step(rt, NAMESPACE, NAME, T0 + timedelta(seconds=second))

    degraded = cluster.status().condition(ConditionType.DEGRADED)
    assert degraded is not None and degraded.status == "True" and degraded.reason == "InvalidSpec"
    assert "spec.gates[0].window.timezone" in (degraded.message or "")
    assert not cluster.revisions and not cluster.services
    assert cluster.reasons() == ["InvalidSpec"]


def test_an_object_that_is_someone_elses_stops_the_release_before_it_writes(
        rt: Runtime, cluster: FakeApiServer) -> None:
    cluster.foreign.add(("Service", "web"))
    cluster.apply(SPEC)
    engine.step(rt, NAMESPACE, NAME, T0)

    degraded = cluster.status().condition(ConditionType.DEGRADED)
    assert degraded is not None and degraded.reason == "Conflict"
    assert not cluster.revisions and not cluster.services
    cluster.foreign.clear()  # handed over: the next generation claims again and rolls out
    cluster.apply(V2)
    tick_until(rt, cluster, Phase.SUCCEEDED, V2_REV)
    assert cluster.revisions[V2_REV].ready == 4


class Router:
    """A traffic router whose object (as ingress-nginx's canary copy) someone else may hold."""

    supports: frozenset[Any] = frozenset()
    weighs_baseline = False

    def __init__(self) -> None:
        self.foreign = False
        self.weights: list[int] = []

    def check(self, kube: Any, release: Any) -> str | None:
        return None

    def claim(self, kube: Any, release: Any) -> None:
        if self.foreign:
            raise NotOurs(f"Ingress {NAMESPACE}/web-canary exists and is not this Release's")

    def set_weight(self, kube: Any, release: Any, stable: str, preview: str, weight: int, routes: Any = None,
                   baseline: int | None = None) -> None:
        self.weights.append(weight)


def test_a_routers_object_of_someone_else_is_a_conflict_on_any_tick_of_a_generation(
        rt: Runtime, cluster: FakeApiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    router = Router()
    monkeypatch.setattr(engine, "router_for", lambda release: router)
    cluster.apply(SPEC)
    tick_until(rt, cluster, Phase.SUCCEEDED, V1_REV)
    cluster.apply(V2)
    engine.step(rt, NAMESPACE, NAME, T0)  # claimed for this generation
    # The router's object appears mid-generation: the next tick is a Conflict, writing nothing.
    router.foreign = True
    written = len(router.weights)
    engine.step(rt, NAMESPACE, NAME, T0 + timedelta(seconds=1))
    degraded = cluster.status().condition(ConditionType.DEGRADED)
    assert degraded is not None and degraded.status == "True" and degraded.reason == "Conflict", degraded
    assert f"Ingress {NAMESPACE}/web-canary exists and is not this Release's" in (degraded.message or "")
    assert "Conflict" in cluster.reasons() and "InvalidSpec" not in cluster.reasons()
    assert len(router.weights) == written
    router.foreign = False  # handed over: the rollout goes on
    clock = Clock()
    clock.now = T0 + timedelta(seconds=2)
    tick_until(rt, cluster, Phase.SUCCEEDED, V2_REV, clock=clock)
    assert cluster.status().condition(ConditionType.DEGRADED).status == "False"  # type: ignore[union-attr]
