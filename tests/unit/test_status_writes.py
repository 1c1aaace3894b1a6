"""Which status changes a tick writes at once, and which wait (engine._worth_writing)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from glideslope import engine
from glideslope.api import AnalysisState, Phase, ReleaseStatus, TriggerStatus
from glideslope.egress import EgressPolicy
from glideslope.kube.client import Kube
from glideslope.metrics import OperatorMetrics
from glideslope.runtime import ReleaseMemory, Runtime

pytestmark = pytest.mark.unit

T = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KEY = ("ns", "web")


def rolling(**changes: object) -> ReleaseStatus:
    trigger = TriggerStatus(name="errors", state=AnalysisState.PASSING, successes=3, last_value=0.0,
                            message="0 does not meet failureCondition", last_measured_time=T)
    base = ReleaseStatus(phase=Phase.PROGRESSING, current_step=2, replicas=4, ready_replicas=4, analysis=[trigger])
    return base.model_copy(update=changes)


@pytest.fixture(name="rt", scope="module")
def runtime() -> Iterator[Runtime]:
    built = Runtime(Kube(None, None, None, None), lambda namespace, name: None, metrics=OperatorMetrics(),
                    policy=EgressPolicy())
    yield built
    built.egress.close()


@pytest.fixture(autouse=True)
def memory(rt: Runtime) -> Iterator[ReleaseMemory]:
    """The Release's memory, its status just written."""
    remembered = rt.memory(KEY)
    remembered.status_written = engine.time.monotonic()
    yield remembered
    rt.forget(*KEY)


def test_a_refreshed_measurement_or_pod_count_waits(memory: ReleaseMemory) -> None:
    old = rolling()
    measured = old.analysis[0].model_copy(update={"successes": 4, "last_value": 0.01, "last_measured_time": T,
                                                  "message": "0.01 does not meet failureCondition"})
    assert not engine._worth_writing(memory, old, rolling(analysis=[measured], ready_replicas=3))
    memory.status_written -= engine.REFRESH_EVERY
    assert engine._worth_writing(memory, old, rolling(analysis=[measured]))


@pytest.mark.parametrize("change", [
    {"current_step": 3},
    {"phase": Phase.PAUSED},
    {"message": "step 2/7: pause 5s: until 12:00:05Z"},
])
def test_anything_else_is_written_at_once(memory: ReleaseMemory, change: dict[str, object]) -> None:
    assert engine._worth_writing(memory, rolling(), rolling(**change))


def test_a_failed_measurement_is_written_at_once(memory: ReleaseMemory) -> None:
    old = rolling()
    failed = old.analysis[0].model_copy(update={"failures": 1, "state": AnalysisState.FAILING})
    assert engine._worth_writing(memory, old, rolling(analysis=[failed]))


def test_a_settled_release_counts_wait_too_and_its_tick_comes_back_for_them(memory: ReleaseMemory,
                                                                           rt: Runtime) -> None:
    """After a rollout the previous revision's pods go one by one: each count is not a write."""
    old = rolling(phase=Phase.SUCCEEDED)
    assert not engine._worth_writing(memory, old, rolling(phase=Phase.SUCCEEDED, ready_replicas=3))
    assert engine._worth_writing(memory, rolling(), old)  # the phase changed
    memory.unwritten = ("7", rolling(phase=Phase.SUCCEEDED, ready_replicas=3))
    due = engine.refresh_due(rt, *KEY)
    assert due is not None and 0 < due <= engine.REFRESH_EVERY
    memory.unwritten = None
    assert engine.refresh_due(rt, *KEY) is None
    rt.forget(*KEY)
    assert engine.refresh_due(rt, *KEY) is None


def test_a_forgotten_release_leaves_nothing_behind(memory: ReleaseMemory, rt: Runtime) -> None:
    """Its Services' last state went with it too (it once stayed for the operator's life)."""
    memory.announced = ("Started/2026-11-26T12:00:00+00:00",)
    memory.traffic = (engine.SetTraffic(active="r1", preview="r2", weight=20), 3)
    rt.forget(*KEY)
    assert rt.remembered(KEY) is None
