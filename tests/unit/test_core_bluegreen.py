"""BlueGreen: preview, promotion, the one-write switch, blue kept for the scale-down delay."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glideslope.api import HistoryOutcome, Phase
from glideslope.core.decide import plan
from glideslope.core.model import ABORT, PROMOTE, UNDO, StepKind
from glideslope.core.revision import revision_of
from tests.unit.fakes import Run, make_spec, stable_run, with_image

pytestmark = pytest.mark.unit


def blue_green(auto: int | None = 3, preview: int | None = 2, delay: int = 5) -> dict[str, Any]:
    block: dict[str, Any] = {"scaleDownDelaySeconds": delay}
    if auto is not None:
        block["autoPromotionSeconds"] = auto
    if preview is not None:
        block["previewReplicas"] = preview
    return {"type": "BlueGreen", "blueGreen": block}


def test_plan() -> None:
    steps = plan(make_spec(blue_green()))
    assert [s.kind for s in steps] == [StepKind.PREVIEW, StepKind.PAUSE, StepKind.SWITCH, StepKind.SCALE_DOWN_DELAY]
    assert steps[1].seconds == 3 and steps[3].seconds == 5


def test_switch_happens_once_green_is_ready_and_blue_waits_for_the_delay() -> None:
    run = stable_run(blue_green())
    blue = run.status.stable_revision or ""
    green = revision_of(run.spec.template)
    seen: list[tuple[str | None, int, int]] = []
    while run.status.phase != Phase.SUCCEEDED or run.status.revision != green:
        run.tick()
        assert run.cluster.traffic is not None
        seen.append((run.cluster.traffic.active, run.cluster.revisions[blue].desired,
                     run.cluster.revisions[green].ready))
    # blue serves until green has every pod ready; then green, with blue still at full size
    assert all(ready == 4 for active, _, ready in seen if active == green)
    assert any(active == green and blue_pods == 4 for active, blue_pods, _ in seen)
    run.tick()
    assert run.cluster.revisions[blue].desired == 4  # a moment for the switch to reach the proxies
    run.tick()
    run.tick()
    assert run.cluster.revisions[blue].desired == 0
    assert run.cluster.traffic.active == green and run.cluster.traffic.preview == green


def test_waits_for_promote_without_auto_promotion() -> None:
    run = stable_run(blue_green(auto=None))
    for _ in range(20):
        run.tick()
    assert run.status.phase == Phase.PAUSED and run.status.current_step == 2
    assert run.cluster.traffic is not None and run.cluster.traffic.active == run.status.stable_revision
    run.tick(commands={PROMOTE: "step"})
    run.until(Phase.SUCCEEDED)


@pytest.mark.parametrize("command", [UNDO, ABORT])
def test_undo_during_scale_down_delay_switches_back_at_once(command: str) -> None:
    run = stable_run(blue_green(delay=60))
    blue = run.status.stable_revision
    run.tick()
    while run.status.current_step != 4:
        run.tick()
    run.tick()
    assert run.cluster.traffic is not None and run.cluster.traffic.active != blue
    run.tick(commands={command: ""})
    assert run.cluster.traffic.active == blue  # at once: blue was still at full size
    run.until(Phase.ROLLED_BACK, limit=4)
    assert run.status.history[-1].outcome == HistoryOutcome.ROLLED_BACK


@settings(max_examples=50, deadline=None)
@given(replicas=st.integers(1, 6), preview=st.one_of(st.none(), st.integers(0, 6)), speed=st.integers(1, 3),
       lost=st.lists(st.booleans(), min_size=100, max_size=100))
def test_never_without_serving_pods(replicas: int, preview: int | None, speed: int, lost: list[bool]) -> None:
    run = Run(make_spec(blue_green(preview=preview), replicas=replicas), speed=speed)
    run.until(Phase.SUCCEEDED)
    run.deploy(with_image(run.spec, "app:2"))
    run.tick()
    for lose in lost:
        run.tick(lose_status=lose)
    run.until(Phase.SUCCEEDED)
    seen = [s for s in run.steps_seen if s]
    assert all(b - a in (0, 1) for a, b in itertools.pairwise(seen)), seen
