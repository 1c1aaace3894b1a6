"""How the engine measures a Release's traffic share (`trafficRouting.verify`): through the
egress layer, never blocking a stepper; both revisions' rates in one answer; an empty result is
no requests; at most one measurement a second; a query that does not render is Degraded."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from glideslope import engine
from glideslope.api import Release, parse_release
from glideslope.core.analysis import Measurement
from glideslope.core.model import TrafficSample
from glideslope.core.revision import revision_of
from glideslope.egress import EgressPolicy
from glideslope.metrics import OperatorMetrics
from glideslope.runtime import Runtime
from tests.unit.fakes import T0, FakeApiServer, make_spec

pytestmark = pytest.mark.unit

KEY = ("shop", "web")
STRATEGY = {"type": "Canary", "canary": {"steps": [{"setWeight": 20}], "trafficRouting": {
    "gatewayAPI": {"httpRoute": "web"}, "verify": {"query": 'rate(x{rev="{{revision}}"}[5s])'}}}}


class FakePrometheus:
    def __init__(self, answers: dict[str, float | None]) -> None:
        self.answers, self.asked = answers, []

    async def query(self, query: str) -> Measurement:
        self.asked.append(query)
        return Measurement(self.answers.get(query), None, T0)


def release(query: str | None = None, phase: str = "Progressing") -> Release:
    spec = make_spec(STRATEGY).to_dict()
    if query is not None:
        spec["strategy"]["canary"]["trafficRouting"]["verify"]["query"] = query
    return parse_release({"apiVersion": "glideslope.dev/v1alpha1", "kind": "Release",
                          "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "1"},
                          "spec": spec, "status": {"phase": phase, "stableRevision": "stable1"}})


@pytest.fixture(name="rt")
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    cluster = FakeApiServer()
    cluster.install(monkeypatch)
    built = Runtime(cluster.kube(), lambda namespace, name: None, metrics=OperatorMetrics(), policy=EgressPolicy())
    yield built
    built.egress.close()


def measure(rt: Runtime, rel: Release) -> TrafficSample | bool:
    deadline = time.monotonic() + 5
    while (answer := engine._traffic_share(rt, KEY, {"metadata": {}}, rel, T0)) is True:
        assert time.monotonic() < deadline, "no answer"
        time.sleep(0.01)
    return answer


def test_both_revisions_are_measured_in_one_answer_and_no_more_than_once_a_second(
        rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    rel = release()
    candidate = revision_of(rel.spec.template)
    prometheus = FakePrometheus({f'rate(x{{rev="{candidate}"}}[5s])': 10.0})  # the stable has no series
    monkeypatch.setattr(engine, "_prometheus", lambda *_: prometheus)
    # The first ask only starts the request: the stepper goes on.
    assert engine._traffic_share(rt, KEY, {"metadata": {}}, rel, T0) is True
    sample = measure(rt, rel)
    assert sample == TrafficSample(10.0, 0.0, T0, None)
    assert sorted(prometheus.asked) == sorted([f'rate(x{{rev="{candidate}"}}[5s])', 'rate(x{rev="stable1"}[5s])'])
    # Read just now: the next one waits for MEASURE_EVERY.
    assert engine._traffic_share(rt, KEY, {"metadata": {}}, rel, T0) is True
    assert len(prometheus.asked) == 2


def test_nothing_is_measured_outside_a_rollout(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "_prometheus", lambda *_: pytest.fail("asked Prometheus"))
    assert engine._traffic_share(rt, KEY, {"metadata": {}}, release(phase="Succeeded"), T0) is True


def test_a_query_that_does_not_render_is_degraded_naming_the_field(
        rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    problems: list[Any] = []
    monkeypatch.setattr(engine, "_invalid", lambda kube, body, rel, found, **_: problems.extend(found))
    assert engine._traffic_share(rt, KEY, {"metadata": {}}, release('rate(x{r="{{nope}}"}[5s])'), T0) is False
    assert problems and problems[0].startswith("spec.strategy.canary.trafficRouting.verify.query: ")
