"""The engine's common behaviour (first rollout, commands, superseding, history); the fake cluster
the core's tests share is in `fakes.py`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glideslope.api import HistoryOutcome, Phase, parse_spec
from glideslope.core.decide import HANDOVER_SECONDS, wake_at
from glideslope.core.decide.commands import OBEY
from glideslope.core.model import (
    ABORT,
    COMMANDS,
    PROMOTE,
    RESTART,
    RETRY,
    UNDO,
    Announce,
    RestartRevision,
)
from glideslope.core.revision import revision_of
from tests.unit.fakes import CANARY, MANUAL, Run, make_spec, stable_run, with_image

pytestmark = pytest.mark.unit

def test_first_rollout_deploys_directly() -> None:
    run = Run(make_spec(CANARY))
    run.until(Phase.SUCCEEDED)
    rev = revision_of(run.spec.template)
    assert run.status.stable_revision == rev and run.status.stable_version == "1"
    assert run.cluster.revisions[rev].ready == 4
    assert [e.outcome for e in run.status.history] == [HistoryOutcome.SUCCEEDED]
    assert run.status.condition("Ready").status == "True"  # type: ignore[union-attr]


def test_a_command_is_recorded_with_the_status_that_obeys_it_and_obeyed_once() -> None:
    run = stable_run(CANARY)
    run.tick()
    step = run.status.current_step
    decision = run.tick(commands={PROMOTE: "step"})
    assert decision.consumed == (PROMOTE,) and decision.status.obeyed_commands == {PROMOTE: "step"}
    assert run.status.current_step == (step or 0) + 1
    # The operator stopped before removing it: seen again, it is removed, not obeyed again.
    again = run.tick(commands={PROMOTE: "step"})
    assert again.consumed == (PROMOTE,) and run.status.current_step == (step or 0) + 1
    assert not [a for a in again.actions if isinstance(a, Announce) and a.reason == "Promoted"]
    # Once it is gone the record is cleared, and the same command given again is obeyed.
    assert run.tick().status.obeyed_commands == {}
    run.tick(commands={PROMOTE: "step"})
    assert run.status.current_step == (step or 0) + 2


def restarts(decision: Any) -> set[RestartRevision]:
    return {a for a in decision.actions if isinstance(a, RestartRevision)}


def test_restart_renews_the_pods_of_what_serves_once_and_the_rollout_goes_on() -> None:
    run = Run(make_spec(CANARY))
    run.until(Phase.SUCCEEDED)
    v1 = revision_of(run.spec.template)
    decision = run.tick(commands={RESTART: "2026-11-28T17:00:00Z"})
    assert restarts(decision) == {RestartRevision(v1, "2026-11-28T17:00:00Z")}
    assert [a.reason for a in decision.actions if isinstance(a, Announce)] == ["Restarted"]
    assert run.status.phase == Phase.SUCCEEDED
    assert not restarts(run.tick(commands={RESTART: "2026-11-28T17:00:00Z"}))  # obeyed already: removed only

    run.deploy(with_image(run.spec, "app:2"))
    run.until(Phase.PROGRESSING)
    while run.status.current_step != 2:
        run.tick()
    decision = run.tick(commands={RESTART: "again"})
    assert {r.revision for r in restarts(decision)} == {v1, revision_of(run.spec.template)}
    assert run.status.current_step == 2 and run.status.phase == Phase.PROGRESSING
    run.until(Phase.SUCCEEDED)


def test_restart_with_no_pods_is_ignored_and_says_why() -> None:
    decision = Run(make_spec(CANARY)).tick(commands={RESTART: "now"})
    assert not restarts(decision) and decision.consumed == (RESTART,)
    ignored = [a.message for a in decision.actions if isinstance(a, Announce) and a.reason == "CommandIgnored"]
    assert ignored == ["restart: no revision has pods"]


def test_a_recorded_value_is_bounded() -> None:
    run = stable_run(CANARY)
    decision = run.tick(commands={ABORT: "x" * 5000})
    assert decision.status.obeyed_commands[ABORT] == "x" * 256
    assert run.status.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK)


def test_identical_spec_changes_nothing() -> None:
    run = Run(make_spec(CANARY))
    run.until(Phase.SUCCEEDED)
    before = run.status
    decision = run.tick()
    assert decision.status.model_dump(exclude={"conditions"}) == before.model_dump(exclude={"conditions"})
    assert not [a for a in decision.actions if isinstance(a, Announce)]


def test_abort_mid_canary_puts_everything_back_on_stable() -> None:
    run = stable_run(CANARY)
    old = run.status.stable_revision
    for _ in range(4):
        run.tick()
    assert run.status.phase == Phase.PROGRESSING
    decision = run.tick(commands={ABORT: "bad"})
    assert decision.consumed == (ABORT,)
    assert run.status.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK)
    run.until(Phase.ROLLED_BACK)
    new = revision_of(run.spec.template)
    assert run.cluster.revisions[old or ""].ready == 4 and run.cluster.revisions[new].desired == 0
    assert run.status.history[-1].outcome == HistoryOutcome.ROLLED_BACK
    assert run.status.history[-1].rollback_seconds is not None
    assert run.status.condition("Degraded").status == "True"  # type: ignore[union-attr]
    # retry starts the same rollout again, from step 1
    run.tick(commands={RETRY: "1"})
    assert run.status.phase == Phase.PROGRESSING and run.status.current_step == 1
    run.until(Phase.SUCCEEDED)


def test_manual_pause_waits_for_promote_step() -> None:
    run = stable_run(MANUAL)
    for _ in range(20):
        run.tick()
    assert run.status.phase == Phase.PAUSED and run.status.current_step == 2
    run.tick(commands={PROMOTE: "step"})
    assert run.status.current_step == 3
    run.until(Phase.SUCCEEDED)


def test_each_step_taken_is_in_the_status_with_its_start() -> None:
    # What the closing record rebuilds its timeline from after a restart (core.notes).
    run = stable_run(CANARY)
    starts: dict[int, datetime] = {}
    for _ in range(40):
        run.tick()
        if run.status.phase != Phase.PROGRESSING:
            break
        if run.status.current_step is not None and run.status.step_started_at is not None:
            starts.setdefault(run.status.current_step, run.status.step_started_at)
    assert [(s.step, s.at) for s in run.status.step_starts] == sorted(starts.items())
    assert [s.step for s in run.status.step_starts] == list(range(1, run.status.total_steps + 1))
    # A new rollout starts the list again.
    run.until(Phase.SUCCEEDED)
    run.deploy(with_image(run.spec, "app:3"))
    run.tick()
    assert [s.step for s in run.status.step_starts] == [1]


def test_the_core_says_when_it_next_has_something_to_do() -> None:
    run = stable_run(CANARY)
    run.tick()
    while run.status.current_step != 2:  # the pause of 5 s
        run.tick(seconds=0.5)
    started = run.status.step_started_at
    assert started is not None
    # As the tick that began the step found it: the hand-over ends first.
    assert wake_at(run.spec, run.status, started) == started + timedelta(seconds=HANDOVER_SECONDS)
    run.now = started + timedelta(seconds=HANDOVER_SECONDS + 0.1)
    assert wake_at(run.spec, run.status, run.now) == started + timedelta(seconds=5)
    # Nothing timed once it has settled and the hand-over is over.
    run.until(Phase.SUCCEEDED)
    assert wake_at(run.spec, run.status, run.now + timedelta(seconds=HANDOVER_SECONDS + 1)) is None


def test_promote_full_jumps_to_full_promotion() -> None:
    run = stable_run(MANUAL)
    run.tick()
    run.tick(commands={PROMOTE: "full"})
    assert run.status.current_step == run.status.total_steps
    run.until(Phase.SUCCEEDED)


def test_spec_change_mid_rollout_supersedes() -> None:
    run = stable_run(CANARY)
    stable = run.status.stable_revision
    for _ in range(4):
        run.tick()
    half = revision_of(run.spec.template)
    run.deploy(with_image(run.spec, "app:3"))
    run.tick()
    assert run.status.history[-1].outcome == HistoryOutcome.SUPERSEDED
    assert run.status.history[-1].revision == half
    assert run.status.current_step == 1 and run.status.stable_revision == stable
    run.until(Phase.SUCCEEDED)
    assert run.cluster.revisions[half].desired == 0


def test_undo_after_success_goes_back_to_previous_revision() -> None:
    run = stable_run(CANARY)
    v1 = run.status.stable_revision
    run.until(Phase.SUCCEEDED)
    run.tick(commands={UNDO: ""})
    run.until(Phase.ROLLED_BACK)
    assert run.status.stable_revision == v1 and run.status.stable_version == "1"
    assert run.cluster.revisions[v1 or ""].ready == 4


def test_commands_without_a_rollout_are_consumed_and_ignored() -> None:
    run = Run(make_spec(CANARY))
    run.until(Phase.SUCCEEDED)
    decision = run.tick(commands={PROMOTE: "step", ABORT: "x"})
    assert set(decision.consumed) == {PROMOTE, ABORT}
    assert run.status.phase == Phase.SUCCEEDED
    assert {e.reason for e in decision.actions if isinstance(e, Announce)} == {"CommandIgnored"}


def test_every_command_is_obeyed_by_a_function_of_its_own() -> None:
    # The table decide dispatches on: a command key without an entry would raise, not be ignored.
    assert set(OBEY) == set(COMMANDS)


def test_spec_paused_holds_the_step() -> None:
    run = stable_run(CANARY)
    run.deploy(with_image(make_spec(CANARY, paused=True), "app:2"))
    for _ in range(30):
        run.tick()
    assert run.status.phase == Phase.PAUSED and run.status.current_step == 1


def test_old_revisions_beyond_the_limit_are_deleted() -> None:
    run = Run(make_spec(CANARY))
    run.until(Phase.SUCCEEDED)
    for n in range(2, 7):
        run.deploy(with_image(run.spec, f"app:{n}"))
        run.until(Phase.SUCCEEDED)
    run.tick()
    run.tick()
    # stable + two scaled-down revisions
    assert len(run.cluster.revisions) == 3
    assert sum(p.desired for p in run.cluster.revisions.values()) == 4


def test_revision_is_stable_under_key_order() -> None:
    a = make_spec(CANARY)
    data = a.to_dict()
    data["template"] = dict(reversed(list(data["template"].items())))
    assert revision_of(parse_spec(data).template) == revision_of(a.template)
    assert revision_of(with_image(a, "app:9").template) != revision_of(a.template)


STRATEGIES: dict[str, dict[str, Any]] = {
    "canary": MANUAL,
    "canary-routed": MANUAL,
    "bluegreen": {"type": "BlueGreen", "blueGreen": {"previewReplicas": 2, "scaleDownDelaySeconds": 3}},
    "rolling": {"type": "Rolling", "rolling": {"maxSurge": 1, "maxUnavailable": 1, "pauseBetweenBatches": "2s"}},
}
OPS = st.sampled_from(["tick", "tick", "tick", "promote", "full", "abort", "undo", "retry", "new", "pause"])


@settings(max_examples=120, deadline=None)
@given(name=st.sampled_from(sorted(STRATEGIES)), replicas=st.integers(1, 5), speed=st.integers(1, 3),
       ops=st.lists(OPS, max_size=40))
def test_any_command_sequence_keeps_pods_serving(name: str, replicas: int, speed: int, ops: list[str]) -> None:
    """Whatever people do, in any order, some Ready pod serves, and a retry and a promotion
    always finish the rollout of the spec's revision."""
    run = Run(make_spec(STRATEGIES[name], replicas=replicas, routed=name == "canary-routed"), speed=speed)
    run.until(Phase.SUCCEEDED)
    version = 2
    for op in ops:
        if op == "new":
            version += 1
            run.deploy(with_image(run.spec, f"app:{version}"))
            run.tick()
        elif op == "pause":
            data = run.spec.to_dict()
            data["paused"] = not run.spec.paused
            run.spec = parse_spec(data)
            run.tick()
        elif op == "tick":
            run.tick()
        else:
            key = {"promote": PROMOTE, "full": PROMOTE, "abort": ABORT, "undo": UNDO, "retry": RETRY}[op]
            decision = run.tick(commands={key: "full" if op == "full" else ""})
            assert decision.consumed == (key,)
    data = run.spec.to_dict()
    data["paused"] = False
    run.spec = parse_spec(data)
    for _ in range(300):
        if run.status.phase == Phase.SUCCEEDED and run.status.stable_revision == revision_of(run.spec.template):
            break
        run.tick(commands={RETRY: ""} if run.status.phase == Phase.ROLLED_BACK else {PROMOTE: "full"})
        run.tick()  # the operator removes a command once obeyed: the next tick sees it gone
    assert run.status.phase == Phase.SUCCEEDED, run.status.message
    assert run.status.stable_revision == revision_of(run.spec.template)
    for _ in range(4):
        run.tick()
    assert sum(p.desired for p in run.cluster.revisions.values()) == replicas
    assert len(run.cluster.revisions) <= 4  # stable, candidate and two kept revisions at most
