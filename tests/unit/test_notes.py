"""Release notes and the closing record (core/notes.py): folding a rollout's ticks, the bounds
that keep it inside one ConfigMap, and the Markdown `kubectl release notes` prints."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glideslope.api import (
    AnalysisState,
    GateStage,
    GateState,
    GateStatus,
    HistoryEntry,
    HistoryOutcome,
    Phase,
    ReleaseSpec,
    ReleaseStatus,
    Severity,
    StepStart,
    TriggerStatus,
    parse_spec,
)
from glideslope.core import notes
from glideslope.core.model import Announce
from glideslope.core.revision import revision_of

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 26, 9, 0, 0, tzinfo=UTC)
STEPS = [{"setWeight": 20}, {"analysis": {"duration": "15s"}}, {"setWeight": 60}]


def spec(version: str, notes_text: str | None = None) -> ReleaseSpec:
    body: dict[str, Any] = {
        "version": version, "replicas": 2, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "app", "image": f"web:{version}"}]}},
        "strategy": {"type": "Canary", "canary": {"steps": STEPS}},
    }
    if notes_text is not None:
        body["releaseNotes"] = notes_text
    return parse_spec(body)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class Rollout:
    """Ticks of one Release as the engine would hand them to the record: spec, status, Events."""

    def __init__(self) -> None:
        self.record = notes.Record()
        self.mark: notes.StepMark | None = None
        self.pending: list[notes.Entry] = []

    def tick(self, sp: ReleaseSpec, status: ReleaseStatus, now: datetime, *events: Announce) -> None:
        self.mark, steps = notes.steps_taken(self.mark, sp, status, now)
        self.pending += notes.announced(events, status, now) + steps
        if events:  # written only on ticks that announce something
            self.record = notes.fold(self.record, sp, status, self.pending, release="web", namespace="shop")
            self.pending = []


def status(sp: ReleaseSpec, **fields: Any) -> ReleaseStatus:
    values: dict[str, Any] = {"revision": revision_of(sp.template), "version": sp.version, "total_steps": 4}
    values.update(fields)
    return ReleaseStatus(**values)


V1, V2, V3 = spec("1.0.0", "- first"), spec("1.1.0", "### 1.1.0\n- Faster search"), spec("1.2.0", "- payments")
R1, R2, R3 = (revision_of(s.template) for s in (V1, V2, V3))
SUCCEEDED_1 = HistoryEntry(version="1.0.0", revision=R1, outcome=HistoryOutcome.SUCCEEDED, started_at=at(-100),
                           finished_at=at(-90), duration_seconds=10.0)


def rolled_out_1_1(r: Rollout) -> list[HistoryEntry]:
    """1.0.0 stable, then 1.1.0 through its steps to success; returns the history."""
    stable = {"stable_revision": R1, "stable_version": "1.0.0", "history": [SUCCEEDED_1]}
    r.tick(V2, status(V2, phase=Phase.PROGRESSING, current_step=1, step_started_at=at(0), started_at=at(0),
                      **stable), at(0), Announce("Started", f"rollout of 1.1.0 ({R2}) started"))
    r.tick(V2, status(V2, phase=Phase.PROGRESSING, current_step=1, step_started_at=at(0), started_at=at(0),
                      **stable), at(1))
    r.tick(V2, status(V2, phase=Phase.PROGRESSING, current_step=2, step_started_at=at(3), started_at=at(0),
                      **stable), at(3))
    r.tick(V2, status(V2, phase=Phase.PROGRESSING, current_step=3, step_started_at=at(18), started_at=at(0),
                      **stable), at(18))
    history = [SUCCEEDED_1, HistoryEntry(version="1.1.0", revision=R2, outcome=HistoryOutcome.SUCCEEDED,
                                         started_at=at(0), finished_at=at(25), duration_seconds=25.0)]
    analysis = [TriggerStatus(name="error-rate", severity=Severity.CRITICAL, state=AnalysisState.PASSING,
                              last_value=0.0, successes=20)]
    gates = [GateStatus(name="change-approved", stage=GateStage.PRE_DEPLOY, state=GateState.PASSED,
                        message="approved", approved_by="alice")]
    r.tick(V2, status(V2, phase=Phase.SUCCEEDED, current_step=4, step_started_at=at(25), started_at=at(0),
                      stable_revision=R2, stable_version="1.1.0", history=history, analysis=analysis, gates=gates),
           at(25), Announce("Succeeded", f"1.1.0 ({R2}) is stable"))
    return history


def test_a_successful_rollout_has_its_steps_in_time_and_its_durations() -> None:
    r = Rollout()
    rolled_out_1_1(r)
    record = r.record
    assert [x.version for x in record.rollouts] == ["1.0.0", "1.1.0"]  # 1.0.0 known from history only
    rollout = record.find()
    assert rollout is not None and rollout.revision == R2 and record.current == R2
    assert [(e.reason, e.at) for e in rollout.timeline] == [
        ("Started", at(0)), ("Step", at(0)), ("Step", at(3)), ("Step", at(18)), ("Succeeded", at(25))]
    assert rollout.timeline[2].message == "step 2/4: analysis 15s"
    assert rollout.notes == "### 1.1.0\n- Faster search"
    assert (rollout.replaced_version, rollout.replaced_revision) == ("1.0.0", R1)
    assert rollout.outcome == "Succeeded" and rollout.attempts[-1].duration_seconds == 25.0
    assert rollout.analysis[0].successes == 20 and rollout.gates[0].approved_by == "alice"
    assert record.find("1.0.0") is not None and record.find("1.0.0").outcome == "Succeeded"  # type: ignore[union-attr]


def test_a_rollback_keeps_the_failing_values_and_the_rollback_time() -> None:
    r = Rollout()
    history = rolled_out_1_1(r)
    stable = {"stable_revision": R2, "stable_version": "1.1.0"}
    r.tick(V3, status(V3, phase=Phase.PROGRESSING, current_step=1, step_started_at=at(100), started_at=at(100),
                      history=history, **stable), at(100), Announce("Started", "rollout of 1.2.0 started"))
    failing = [TriggerStatus(name="error-rate", severity=Severity.HIGH, state=AnalysisState.FAILING,
                             last_value=0.31, failures=3, successes=1, query="sum(rate(x[5s]))")]
    for i in range(3):  # a trigger failing at every measurement is one entry, counted
        r.tick(V3, status(V3, phase=Phase.PROGRESSING, current_step=1, step_started_at=at(100),
                          started_at=at(100), history=history, analysis=failing, **stable), at(101 + i),
               Announce("TriggerFailed", f"trigger error-rate (high): failed {i + 1} times; query: sum(rate(x[5s]))",
                           warning=True))
    back = HistoryEntry(version="1.2.0", revision=R3, outcome=HistoryOutcome.ROLLED_BACK, started_at=at(100),
                        finished_at=at(103), duration_seconds=3.0, reason="trigger error-rate failed")
    r.tick(V3, status(V3, phase=Phase.ROLLING_BACK, current_step=1, started_at=at(100), history=[*history, back],
                      analysis=failing, **stable), at(103), Announce("RollingBack", "rolling back", warning=True))
    back = back.model_copy(update={"rollback_seconds": 4.5})
    r.tick(V3, status(V3, phase=Phase.ROLLED_BACK, current_step=1, started_at=at(100), history=[*history, back],
                      analysis=[], **stable), at(107), Announce("RolledBack", "rolled back", warning=True))

    rollout = r.record.find("1.2.0")
    assert rollout is not None and rollout.outcome == "RolledBack"
    assert [(e.reason, e.count) for e in rollout.timeline] == [
        ("Started", 1), ("Step", 1), ("TriggerFailed", 3), ("RollingBack", 1), ("RolledBack", 1)]
    repeated = rollout.timeline[2]
    assert repeated.until == at(103) and "failed 3 times" in repeated.message
    assert len(rollout.attempts) == 1 and rollout.attempts[0].rollback_seconds == 4.5  # updated, not added
    assert rollout.analysis[0].last_value == 0.31  # the values that rolled it back, not the reset
    text = notes.render(r.record, rollout)
    assert "**Durations:** deployment 3.0s, rollback 4.5s" in text
    assert "**Outcome:** **RolledBack**: trigger error-rate failed" in text
    assert "| error-rate | high | Failing | 0.31 | 1 | 3 | 0 | 0 |" in text
    assert "| TriggerFailed \u00d73 | trigger error-rate (high): failed 3 times |" in text.replace("**", "")
    assert text.count("sum(rate(x[5s]))") == 1 and "- `error-rate`: `sum(rate(x[5s]))`" in text  # said once
    # The earlier rollout keeps its own notes, not the new spec's.
    older = r.record.find("1.1.0")
    assert older is not None and older.notes == "### 1.1.0\n- Faster search" and older.outcome == "Succeeded"


def test_superseded_is_told_on_the_rollout_it_ends() -> None:
    r = Rollout()
    history = rolled_out_1_1(r)
    stable = {"stable_revision": R2, "stable_version": "1.1.0"}
    r.tick(V3, status(V3, phase=Phase.PROGRESSING, current_step=1, step_started_at=at(100), started_at=at(100),
                      history=history, **stable), at(100), Announce("Started", "rollout of 1.2.0 started"))
    v4 = spec("1.3.0")
    superseded = HistoryEntry(version="1.2.0", revision=R3, outcome=HistoryOutcome.SUPERSEDED, started_at=at(100),
                              finished_at=at(110), reason="superseded by x (1.3.0)")
    r.tick(v4, status(v4, phase=Phase.PROGRESSING, current_step=1, step_started_at=at(110), started_at=at(110),
                      history=[*history, superseded], **stable), at(110),
           Announce("Superseded", f"rollout of {R3} superseded"), Announce("Started", "rollout of 1.3.0"))
    ended = r.record.find("1.2.0")
    assert ended is not None and ended.outcome == "Superseded" and ended.timeline[-1].reason == "Superseded"
    current = r.record.find()
    assert current is not None and current.version == "1.3.0"
    assert [e.reason for e in current.timeline] == ["Started", "Step"]


def test_a_spec_newer_than_the_status_lends_the_rollout_nothing() -> None:
    # `kubectl release notes` right after an apply: the status still describes 1.1.0.
    r = Rollout()
    rolled_out_1_1(r)
    now = status(V2, phase=Phase.SUCCEEDED, stable_revision=R2)
    refolded = notes.fold(r.record, V3, now, [], release="web", namespace="shop")
    rollout = refolded.find()
    assert rollout is not None and rollout.version == "1.1.0" and rollout.notes == "### 1.1.0\n- Faster search"


def test_steps_on_first_sight_come_from_the_status() -> None:
    # After a restart, every step the status says the rollout took: those taken on quiet ticks
    # waited in the memory of the process that died.
    taken = [StepStart(step=1, at=at(1)), StepStart(step=2, at=at(5))]
    st_ = status(V2, phase=Phase.PROGRESSING, current_step=2, step_started_at=at(5), stable_revision=R1,
                 step_starts=taken)
    mark, entries = notes.steps_taken(None, V2, st_, at(9), first_sight=True)
    assert mark == (R2, 2)
    assert [(e.at, e.message) for e in entries] == [(at(1), "step 1/4: setWeight 20"),
                                                        (at(5), "step 2/4: analysis 15s")]
    # Later ticks: the step that began, once.
    after = st_.model_copy(update={"current_step": 3, "step_started_at": at(20)})
    assert [e.message for e in notes.steps_taken(mark, V2, after, at(20))[1]] == ["step 3/4: setWeight 60"]
    assert notes.steps_taken((R2, 3), V2, after, at(21)) == ((R2, 3), [])
    # A first rollout has no steps to tell.
    first = status(V1, phase=Phase.PROGRESSING, current_step=1, step_started_at=at(0))
    assert notes.steps_taken(None, V1, first, at(0)) == (None, [])


def test_a_step_written_before_a_restart_is_not_written_twice() -> None:
    r = Rollout()
    rolled_out_1_1(r)
    taken = [StepStart(step=1, at=at(1))]
    st_ = status(V2, phase=Phase.PROGRESSING, current_step=1, step_started_at=at(1), stable_revision=R1,
                 step_starts=taken)
    step = notes.steps_taken(None, V2, st_, at(1), first_sight=True)[1]
    once = notes.fold(r.record, V2, st_, step, release="web", namespace="shop")
    twice = notes.fold(once, V2, st_, step, release="web", namespace="shop")
    assert twice == once


def test_find_by_revision_prefix_or_version() -> None:
    r = Rollout()
    rolled_out_1_1(r)
    assert r.record.find(R2[:5]) is r.record.find("1.1.0") is r.record.find(R2)
    assert r.record.find("nope") is None
    assert notes.Record().find() is None


def test_markdown_cells_stay_in_their_table() -> None:
    record = notes.fold(notes.Record(), V2, status(V2, phase=Phase.PROGRESSING, started_at=at(0),
                                                    stable_revision=R1, stable_version="1.0.0"),
                        [notes.Entry(at=at(1), reason="Aborted", message="abort: a | b\nnext line", warning=True)],
                        release="web", namespace="shop")
    rollout = record.find()
    assert rollout is not None
    text = notes.render(record, rollout)
    row = next(line for line in text.splitlines() if "Aborted" in line)
    assert row == "| 2026-11-26 09:00:01 | +1.0s | **Aborted** | abort: a \\| b next line |"
    assert "_no rollback triggers measured_" in text and "_no gates_" in text
    assert "(still under way)" in text


# ---------------------------------------------------------------------------------------------
# Bounds: whatever happens, the record fits its ConfigMap and reads back as written.

REASONS = ["Started", "Promoted", "TriggerFailed", "Succeeded", "RollingBack", "CommandIgnored", "Paused"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 14), st.sampled_from(REASONS), st.text(max_size=1500),
                          st.integers(0, 5)), min_size=1, max_size=120),
       st.text(max_size=20000))
def test_the_record_stays_bounded_and_round_trips(ticks: list[tuple[int, str, str, int]], notes_text: str) -> None:
    record = notes.Record()
    history: list[HistoryEntry] = []
    last_revision = None
    for i, (version, reason, message, steps) in enumerate(ticks):
        sp = spec(f"1.{version}.0", notes_text)
        revision = revision_of(sp.template)
        if revision != last_revision and last_revision is not None:
            history = [*history, HistoryEntry(revision=last_revision, outcome=HistoryOutcome.SUPERSEDED,
                                              started_at=at(i), finished_at=at(i))][-20:]
        last_revision = revision
        st_ = status(sp, phase=Phase.PROGRESSING, current_step=1 + steps % 4, step_started_at=at(i),
                     started_at=at(0), stable_revision="0000000000", history=history)
        entries = notes.announced([Announce(reason, message)] * (1 + steps), st_, at(i))
        record = notes.fold(record, sp, st_, entries, release="web", namespace="shop")
        assert len(record.rollouts) <= notes.MAX_ROLLOUTS
        assert record.find() is not None and record.find().revision == revision  # type: ignore[union-attr]
        for rollout in record.rollouts:
            assert len(rollout.timeline) <= notes.MAX_TIMELINE
            assert all(len(e.message) <= notes.MAX_MESSAGE for e in rollout.timeline)
            assert len(rollout.notes or "") <= notes.MAX_NOTES
        stored = notes.serialise(record)
        assert len(stored) <= notes.MAX_BYTES
        assert notes.Record.from_dict(json.loads(stored)) == record
    current = record.find()
    assert current is not None
    kept = sum(e.count for e in current.timeline) + current.left_out
    assert kept <= sum(1 + s for v, _, _, s in ticks if spec(f"1.{v}.0").version == current.version)
    notes.render(record, current)  # renders whatever was folded
