"""BigBang: old to zero, then new up once the old pods are gone; downtime recorded."""

from __future__ import annotations

import pytest

from glideslope.api import Phase
from glideslope.core.model import ABORT
from glideslope.core.revision import revision_of
from tests.unit.fakes import stable_run, with_image

pytestmark = pytest.mark.unit

BIG_BANG = {"type": "BigBang", "bigBang": {}}


def test_old_goes_first_then_new_comes_up() -> None:
    run = stable_run(BIG_BANG)
    run.min_serving = 0
    old = run.status.stable_revision or ""
    new = revision_of(run.spec.template)
    run.tick()
    assert run.cluster.revisions[old].desired == 0
    assert new not in run.cluster.revisions or run.cluster.revisions[new].desired == 0
    assert "downtime window" in (run.status.message or "")
    run.until(Phase.SUCCEEDED)
    assert run.cluster.revisions[new].ready == 4
    assert run.status.downtime_seconds is not None and run.status.downtime_seconds > 0
    assert run.status.history[-1].downtime_seconds == run.status.downtime_seconds


def test_new_waits_while_old_pods_linger() -> None:
    run = stable_run(BIG_BANG)
    run.min_serving = 0
    old = run.status.stable_revision or ""
    new = revision_of(run.spec.template)
    run.tick()
    run.cluster.revisions[old].pods = 2  # terminating
    run.tick()
    run.cluster.revisions[old].pods = 2
    run.tick()
    assert new not in run.cluster.revisions or run.cluster.revisions[new].desired == 0
    run.until(Phase.SUCCEEDED)


def test_abort_brings_the_old_revision_back() -> None:
    run = stable_run(BIG_BANG)
    run.min_serving = 0
    old = run.status.stable_revision or ""
    run.tick()
    run.tick()
    run.tick(commands={ABORT: "no"})
    run.until(Phase.ROLLED_BACK)
    assert run.cluster.revisions[old].ready == 4


def test_superseded_candidate_pods_go_before_the_next_one_comes() -> None:
    run = stable_run(BIG_BANG)
    run.min_serving = 0
    run.speed = 1
    for _ in range(3):
        run.tick()
    half = revision_of(run.spec.template)
    assert run.cluster.revisions[half].desired == 4
    run.deploy(with_image(run.spec, "app:3"))
    newest = revision_of(run.spec.template)
    run.tick()
    assert run.cluster.revisions[half].desired == 0
    assert newest not in run.cluster.revisions or run.cluster.revisions[newest].desired == 0
    run.until(Phase.SUCCEEDED)
    assert run.status.history[-2].outcome == "Superseded"
