"""Gates through `decide`: the three stages, each kind's verdict, and what a failure does."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, timedelta
from typing import Any

import pytest

from glideslope.api import GateStage, GateState, HistoryOutcome, Phase, ReleaseSpec, parse_spec
from glideslope.core.analysis import Measurement
from glideslope.core.decide import decide
from glideslope.core.gates import GateObservation, JobObservation, ReleaseObservation, WebhookAnswer, checklist
from glideslope.core.gates.job import job_name
from glideslope.core.model import ABORT, APPROVE, APPROVED_BY, PAUSE, RESUME, RETRY, Decision
from glideslope.core.revision import revision_of
from tests.unit.fakes import CANARY, T0, Run, make_spec, with_image

pytestmark = pytest.mark.unit

Answer = Callable[["GatedRun"], Mapping[str, GateObservation]]


@dataclass
class GatedRun(Run):
    """A Run whose shell also answers for the gates that are due."""

    answer: Answer = lambda run: {}
    looked: list[str] = field(default_factory=list)

    def tick(self, commands: dict[str, str] | None = None, seconds: float = 1.0,
             lose_actions: bool = False, lose_status: bool = False) -> Decision:
        due = checklist.due(self.spec, self.status, timedelta(seconds=2), self.now)
        self.looked += [g.name for g in due]
        answers = {k: v for k, v in self.answer(self).items() if k in {g.name for g in due}} if due else {}
        observation = replace(self.cluster.observe(commands), gates=answers, zones={"UTC": UTC},
                              name="web", namespace="shop")
        decision = decide(self.spec, self.status, observation, self.now)
        if not lose_actions:
            self.cluster.apply(decision)
        if not lose_status:
            self.status = decision.status
        self.cluster.progress(self.speed)
        self.now += timedelta(seconds=seconds)
        return decision

    def state(self, gate: str) -> GateState:
        return next(g.state for g in self.status.gates if g.name == gate)


def gated(gates: list[dict[str, Any]], strategy: dict[str, Any] | None = None, **kwargs: Any) -> ReleaseSpec:
    spec = make_spec(strategy or CANARY, **kwargs)
    return parse_spec({**spec.to_dict(), "gates": gates})


def stable_gated_run(gates: list[dict[str, Any]], answer: Answer | None = None,
                     strategy: dict[str, Any] | None = None) -> GatedRun:
    """v1 stable (its gates approved/answered), then v2 applied."""
    run = GatedRun(gated(gates, strategy))
    if answer is not None:
        run.answer = answer
    for gate in gates:
        if "approval" in gate:
            run.tick({APPROVE: gate["name"]})
    run.until(Phase.SUCCEEDED, limit=400)
    run.deploy(with_image(run.spec, "app:2"))
    run.looked.clear()
    return run


APPROVAL = [{"name": "change-approved", "stage": "preDeploy", "approval": {}}]


def test_approval_blocks_until_approved_and_nothing_is_created() -> None:
    run = stable_gated_run(APPROVAL)
    v1, v2 = revision_of(with_image(run.spec, "app:1").template), revision_of(run.spec.template)
    for _ in range(5):
        run.tick()
    assert run.status.phase == Phase.GATED
    assert "kubectl release approve web --gate change-approved" in (run.status.message or "")
    assert v2 not in run.cluster.revisions, "a gated candidate must not exist"
    assert run.cluster.revisions[v1].desired == 4
    assert run.status.gates_display == "0/1"
    decision = run.tick({APPROVE: "change-approved", APPROVED_BY: "alice"})
    assert set(decision.consumed) == {APPROVE, APPROVED_BY}
    run.until(Phase.SUCCEEDED)
    gate = run.status.gates[0]
    assert (gate.state, gate.approved_by, gate.message) == (GateState.PASSED, "alice", "approved by alice")
    assert run.status.gates_display == "1/1"
    reasons = [e.reason for e in run.cluster.events]
    assert reasons.index("Gated") < reasons.index("GatePassed") < len(reasons) - 1


def test_an_approval_holds_for_one_revision_only() -> None:
    run = stable_gated_run(APPROVAL)
    run.tick({APPROVE: "change-approved", APPROVED_BY: "alice"})
    run.until(Phase.SUCCEEDED)
    run.deploy(with_image(run.spec, "app:3"))
    run.tick()
    assert run.status.phase == Phase.GATED and run.state("change-approved") == GateState.PENDING


def test_approving_an_unknown_gate_is_ignored_with_an_event() -> None:
    run = stable_gated_run(APPROVAL)
    run.tick({APPROVE: "nope"})
    assert run.status.phase == Phase.GATED
    assert any(e.reason == "CommandIgnored" and "approval gates: change-approved" in e.message
               for e in run.cluster.events)


def window_around(now_hour: int, opens_in_hours: int) -> dict[str, Any]:
    start = (now_hour + opens_in_hours) % 24
    return {"name": "hours", "stage": "preDeploy",
            "window": {"timezone": "UTC", "start": f"{start:02d}:00", "end": f"{(start + 1) % 24:02d}:00"}}


def test_a_closed_window_holds_then_opens() -> None:
    run = stable_gated_run([window_around(T0.hour, 0)])
    run.now = run.now.replace(hour=(T0.hour + 2) % 24)  # past the window
    run.tick()
    assert run.status.phase == Phase.GATED
    assert "opens at" in (run.status.message or "")
    run.now += timedelta(hours=22)  # the next day's window
    run.until(Phase.SUCCEEDED)
    assert run.state("hours") == GateState.PASSED


def test_a_window_never_blocks_a_rollback() -> None:
    gates = [{"name": "hours", "stage": "prePromotion",
              "window": {"timezone": "UTC", "days": ["Sat"], "freezes": [
                  {"start": "2026-01-01T00:00:00Z", "end": "2027-01-01T00:00:00Z", "reason": "year freeze"}]}}]
    run = stable_gated_run([], strategy=CANARY)
    run.spec = parse_spec({**run.spec.to_dict(), "gates": gates})
    run.tick()
    for _ in range(30):
        run.tick()
    assert run.status.phase == Phase.PROGRESSING and "year freeze" in (run.status.message or "")
    run.tick({ABORT: "bad"})
    run.until(Phase.ROLLED_BACK)


METRIC = [{"name": "alerts", "stage": "preDeploy",
           "metric": {"query": "sum(ALERTS)", "successCondition": "result == 0.0", "timeoutSeconds": 20}}]


def test_a_metric_gate_waits_for_its_condition() -> None:
    values = iter([3.0, 2.0, 0.0])
    run = stable_gated_run(METRIC, answer=lambda r: {"alerts": Measurement(
        next(values, 0.0) if r.spec.version == "2" else 0.0, None, r.now)})
    run.until(Phase.PROGRESSING, limit=20)
    assert run.state("alerts") == GateState.PASSED
    assert run.status.gates[0].last_value == 0.0
    assert run.looked.count("alerts") == 3, "measured every interval, not every tick"


def test_a_metric_gate_times_out_and_the_stable_revision_is_untouched() -> None:
    run = stable_gated_run(METRIC, answer=lambda r: {"alerts": Measurement(1.0 if r.status.stable_version == "1"
                                                                           else 0.0, None, r.now)})
    v1 = run.status.stable_revision
    run.until(Phase.FAILED, limit=40)
    assert "timed out after 20s" in (run.status.message or "")
    assert "nothing was changed" in (run.status.message or "")
    assert set(run.cluster.revisions) == {v1}
    assert run.status.history[-1].outcome == HistoryOutcome.FAILED
    # A retry checks the gates again.
    run.answer = lambda r: {"alerts": Measurement(0.0, None, r.now)}
    run.tick({RETRY: "now"})
    assert run.status.phase == Phase.GATED
    run.until(Phase.SUCCEEDED, limit=100)


def test_no_data_is_never_a_pass() -> None:
    run = stable_gated_run(METRIC, answer=lambda r: {"alerts": Measurement(None if r.status.stable_version == "1"
                                                                           else 0.0, None, r.now)})
    for _ in range(10):
        run.tick()
    assert run.status.phase == Phase.GATED and "no data" in (run.status.message or "")


def test_staging_first_with_the_same_version() -> None:
    staging: dict[str, Any] = {"found": True, "phase": "Succeeded", "version": "1", "stable_version": "1"}
    run = stable_gated_run([{"name": "staging", "release": {"name": "web", "namespace": "staging",
                                                            "sameVersion": True}}],
                           answer=lambda r: {"staging": ReleaseObservation(**staging)})
    staging.update(phase="Progressing", version="2")
    for _ in range(5):
        run.tick()
    assert run.status.phase == Phase.GATED
    assert "waiting for Release staging/web to succeed with 2" in (run.status.message or "")
    staging.update(phase="Succeeded", stable_version="2")
    run.until(Phase.SUCCEEDED)


SMOKE = {"name": "smoke", "stage": "postDeploy",
         "job": {"template": {"spec": {"containers": [{"name": "t", "image": "t"}], "restartPolicy": "Never"}},
                 "timeoutSeconds": 60}}


def job_answer(outcome: Callable[[GatedRun], str]) -> Answer:
    def answer(run: GatedRun) -> Mapping[str, GateObservation]:
        status = next((g for g in run.status.gates if g.name == "smoke"), None)
        if status is None or status.started_at is None:
            return {}
        name = job_name("web", "smoke", run.status.revision or "", status.started_at)
        state = outcome(run)
        return {"smoke": JobObservation(name, "shop", succeeded=state == "ok", failed=state == "fail",
                                        reason="BackoffLimitExceeded" if state == "fail" else None)}
    return answer


def test_a_failing_smoke_test_after_promotion_rolls_back() -> None:
    ticks = {"n": 0}

    def outcome(run: GatedRun) -> str:
        ticks["n"] += 1
        return "ok" if run.status.stable_version is None or run.spec.version == "1" else (
            "fail" if ticks["n"] > 3 else "running")

    run = stable_gated_run([SMOKE], answer=job_answer(outcome))
    # The first rollout has nothing to roll back to: its postDeploy gates are skipped.
    assert run.status.history[-1].outcome == HistoryOutcome.SUCCEEDED
    run.until(Phase.VALIDATING, limit=100)
    assert run.status.weight == 100 and run.status.gate_stage == GateStage.POST_DEPLOY
    run.until(Phase.ROLLED_BACK, limit=100)
    assert "postDeploy gate smoke: Job web-smoke-" in (run.status.history[-1].reason or "")
    assert "logs: kubectl logs -n shop job/web-smoke-" in (run.status.history[-1].reason or "")
    assert run.state("smoke") == GateState.FAILED
    assert any(e.reason == "GateFailed" for e in run.cluster.events)


def test_first_rollout_skips_later_stages() -> None:
    run = GatedRun(gated([SMOKE]))
    run.until(Phase.SUCCEEDED)
    assert run.state("smoke") == GateState.SKIPPED and run.status.gates_display is None
    assert run.looked == []


def test_a_passing_smoke_test_completes_the_release() -> None:
    run = stable_gated_run([SMOKE], answer=job_answer(lambda r: "ok"))
    run.until(Phase.SUCCEEDED, limit=100)
    assert run.state("smoke") == GateState.PASSED and run.status.gate_stage is None


def test_pre_promotion_is_asked_once_at_full_promotion_and_a_no_aborts() -> None:
    weights: list[int | None] = []

    def answer(run: GatedRun) -> Mapping[str, GateObservation]:
        weights.append(run.status.weight)
        return {"scan": WebhookAnswer(403, "HTTP 403: vulnerable")}

    run = stable_gated_run([{"name": "scan", "stage": "prePromotion", "webhook": {"url": "http://scan.example/"}}],
                           answer=answer)
    weights.clear()
    run.until(Phase.ROLLED_BACK, limit=100)
    assert run.looked == ["scan"], "asked once, when the rollout reached full promotion"
    assert "the webhook said no: HTTP 403" in (run.status.history[-1].reason or "")
    assert weights[-1] == 50, "held at the weight before full promotion"


def test_pause_and_resume_commands() -> None:
    run = stable_gated_run([])
    run.tick()
    run.tick({PAUSE: "wait for the CAB"})
    assert run.status.paused_by == "wait for the CAB"
    for _ in range(30):
        run.tick()
    assert run.status.phase == Phase.PAUSED and "wait for the CAB" in (run.status.message or "")
    run.tick({RESUME: ""})
    assert run.status.paused_by is None
    run.until(Phase.SUCCEEDED)
    reasons = [e.reason for e in run.cluster.events]
    assert "Paused" in reasons and "Resumed" in reasons


def test_a_gate_added_after_a_rollout_waits_for_the_next_one() -> None:
    run = stable_gated_run([])
    run.until(Phase.SUCCEEDED)
    run.spec = parse_spec({**run.spec.to_dict(), "gates": APPROVAL})
    run.tick()
    assert run.status.phase == Phase.SUCCEEDED and run.state("change-approved") == GateState.SKIPPED
    run.deploy(with_image(run.spec, "app:3"))
    run.tick()
    assert run.status.phase == Phase.GATED and run.state("change-approved") == GateState.PENDING
