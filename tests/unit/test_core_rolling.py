"""Rolling: batch arithmetic (table) and capacity never below replicas - maxUnavailable."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glideslope.api import Phase
from glideslope.core.decide import plan
from glideslope.core.model import StepKind
from glideslope.core.strategies.rolling import budget
from tests.unit.fakes import Run, make_spec, with_image

pytestmark = pytest.mark.unit


def rolling(surge: int | str = 1, unavailable: int | str = 0, pause: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"maxSurge": surge, "maxUnavailable": unavailable}
    if pause:
        block["pauseBetweenBatches"] = pause
    return {"type": "Rolling", "rolling": block}


@pytest.mark.parametrize(("replicas", "surge", "unavailable", "batches"), [
    (4, 1, 0, [1, 2, 3, 4]),
    (4, "25%", 0, [1, 2, 3, 4]),
    (4, "50%", 0, [2, 4]),
    (5, 2, 1, [3, 5]),
    (3, 0, 1, [1, 2, 3]),
    (3, "0%", "10%", [1, 2, 3]),  # both round to zero: one unavailable, as Deployments do
    (0, 1, 0, [0]),
])
def test_batches(replicas: int, surge: int | str, unavailable: int | str, batches: list[int]) -> None:
    steps = plan(make_spec(rolling(surge, unavailable), replicas=replicas))
    assert [s.replicas for s in steps if s.kind is StepKind.BATCH] == batches


def test_pauses_between_batches_only() -> None:
    steps = plan(make_spec(rolling(2, 0, "3s")))
    assert [s.kind for s in steps] == [StepKind.BATCH, StepKind.PAUSE, StepKind.BATCH]


@settings(max_examples=80, deadline=None)
@given(replicas=st.integers(1, 8), surge=st.integers(0, 3), unavailable=st.integers(0, 2),
       speed=st.integers(1, 3), pause=st.booleans(), lost=st.lists(st.booleans(), min_size=60, max_size=60))
def test_capacity_and_surge_bounds(replicas: int, surge: int, unavailable: int, speed: int, pause: bool,
                                   lost: list[bool]) -> None:
    spec = make_spec(rolling(surge, unavailable, "2s" if pause else None), replicas=replicas)
    max_surge, max_unavailable = budget(spec)
    run = Run(spec, speed=speed, min_serving=0)
    run.until(Phase.SUCCEEDED)
    run.min_serving = max(replicas - max_unavailable, 1)
    run.deploy(with_image(spec, "app:2"))
    run.tick()
    for lose in lost:
        run.tick(lose_status=lose)
        assert sum(p.desired for p in run.cluster.revisions.values()) <= replicas + max_surge
    run.until(Phase.SUCCEEDED)
    seen = [s for s in run.steps_seen if s]
    assert all(b - a in (0, 1) for a, b in itertools.pairwise(seen)), seen
