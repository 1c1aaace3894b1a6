"""Command annotations, obeyed once each: one function per command (`OBEY`), in the order of
`COMMANDS`. A command is consumed whatever happens; one that does not apply says why in a
`CommandIgnored` Event. What each does for a person is `COMMAND_EFFECTS` (core/model.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from glideslope.api import ROLLING_OUT_PHASES, GateStage, GateState, Phase, ReleaseStatus
from glideslope.core.decide import rollback
from glideslope.core.decide.gates import gate_deploy
from glideslope.core.decide.stepping import finish, reset_analysis
from glideslope.core.decide.tick import Tick
from glideslope.core.gates import approval, checklist
from glideslope.core.model import (
    ABORT,
    APPROVE,
    APPROVED_BY,
    COMMANDS,
    PAUSE,
    PROMOTE,
    RESTART,
    RESUME,
    RETRY,
    UNDO,
    Reason,
)

OBEYED_VALUE_LIMIT = 256
"""Characters of a command's value kept in `status.obeyedCommands` (values are free text)."""


def obey(tick: Tick) -> tuple[str, ...]:
    """Obey the commands present that the stored status has not obeyed yet; the annotations to
    remove once this status is stored."""
    commands = tick.observation.commands
    consumed = tuple(k for k in COMMANDS if k in commands)
    obeyed = {k: commands[k][:OBEYED_VALUE_LIMIT] for k in consumed}
    for key in consumed:
        if tick.before.obeyed_commands.get(key) == obeyed[key]:
            continue  # obeyed by the status written last; only its removal did not happen
        OBEY[key](tick, commands[key])
    # Recorded with the status that obeys them, removed once it is stored (the engine).
    tick.status.obeyed_commands = obeyed
    if APPROVE in consumed and APPROVED_BY in commands:
        consumed += (APPROVED_BY,)
    return consumed


def _rolling_out(status: ReleaseStatus) -> bool:
    """A rollout is under way from a stable revision (not a first rollout)."""
    return (status.phase in ROLLING_OUT_PHASES and status.stable_revision is not None
            and status.revision != status.stable_revision)


def _ignored(tick: Tick, message: str, *, warning: bool = True) -> None:
    tick.announce(Reason.COMMAND_IGNORED, message, warning=warning)


def abort(tick: Tick, value: str) -> None:
    _abort(tick, ABORT, value)


def _abort(tick: Tick, key: str, value: str) -> None:
    """Abort the rollout under way (`abort`, or `undo` during a rollout)."""
    status = tick.status
    name = key.removeprefix("glideslope.dev/")
    if not _rolling_out(status):
        _ignored(tick, f"{name}: no rollout in progress")
        return
    reason = f"{name}: {value}" if value else name
    # In the validation window the previous revision is scaled down: traffic stays on the
    # candidate until it is Ready again.
    rollback.roll_back(tick, status.revision, reason, keep_traffic=status.phase == Phase.VALIDATING)
    tick.announce(Reason.ABORTED if key == ABORT else Reason.UNDO,
                  f"{reason}; traffic back on {status.stable_revision}", warning=True)


def undo(tick: Tick, value: str) -> None:
    status = tick.status
    if _rolling_out(status):
        _abort(tick, UNDO, value)
        return
    previous = rollback.previous(status, value, tick.observation)
    if status.phase == Phase.ROLLING_BACK:
        _ignored(tick, "undo: a rollback is already under way")
        return
    if previous is None:
        _ignored(tick, "undo: no previous revision is kept")
        return
    revision, version = previous
    rollback.roll_back(tick, status.stable_revision, f"undo to {revision}")
    status.stable_revision, status.stable_version = revision, version
    # Traffic stays on the current revision until the previous one is Ready again.
    status.weight = 100
    tick.announce(Reason.UNDO, f"undo: back to {version} ({revision})", warning=True)


def retry(tick: Tick, value: str) -> None:
    status = tick.status
    if status.phase not in (Phase.ROLLED_BACK, Phase.FAILED) or status.revision == status.stable_revision:
        _ignored(tick, "retry: nothing was rolled back")
        return
    status.phase, status.current_step, status.weight = Phase.PROGRESSING, 1, 0
    status.started_at = status.step_started_at = tick.now
    reset_analysis(status)
    checklist.retry(tick.spec, status, tick.now)
    tick.announce(Reason.RETRIED, f"rollout of {status.version} ({status.revision}) started again")
    if not gate_deploy(tick):
        status.message = f"retry: step 1/{len(tick.steps)}: {tick.steps[0].describe()}"


def approve(tick: Tick, value: str) -> None:
    spec, status = tick.spec, tick.status
    approver = tick.observation.commands.get(APPROVED_BY)
    gate = next((g for g in spec.gates if g.name == value.strip() and g.approval is not None), None)
    given = next((g for g in status.gates if gate is not None and g.name == gate.name), None)
    if gate is None or given is None:
        known = ", ".join(g.name for g in spec.gates if g.approval is not None) or "none"
        _ignored(tick, f"approve: no approval gate named {value.strip()!r} (approval gates: {known})")
    elif given.state != GateState.PENDING:
        _ignored(tick, f"approve: gate {gate.name} is already {given.state.value}"
                 + (f" ({given.message})" if given.message else ""), warning=False)
    elif (refused := approval.refusal(gate, approver)) is not None:
        _ignored(tick, refused)
    else:
        approved = approval.approve(given, approver, tick.now)
        status.gates = [approved if g.name == gate.name else g for g in status.gates]
        tick.announce(Reason.GATE_PASSED, f"gate {gate.name} (approval, {gate.stage.value}) passed: "
                      f"{approved.message} for {status.version} ({status.revision})")


def pause(tick: Tick, value: str) -> None:
    status = tick.status
    if not (status.phase in ROLLING_OUT_PHASES and status.revision != status.stable_revision):
        _ignored(tick, "pause: no rollout in progress")
        return
    status.paused_by = value.strip() or "paused by a person"
    tick.announce(Reason.PAUSED, f"rollout of {status.version} ({status.revision}) paused: {status.paused_by}")


def resume(tick: Tick, value: str) -> None:
    status = tick.status
    if status.paused_by is None:
        _ignored(tick, f"resume: {'spec.paused is set: change the spec' if tick.spec.paused else 'not paused'}")
        return
    status.paused_by = None
    status.phase = Phase.PROGRESSING if status.phase == Phase.PAUSED else status.phase
    tick.announce(Reason.RESUMED, f"rollout of {status.version} ({status.revision}) resumed")


def promote(tick: Tick, value: str) -> None:
    status, steps = tick.status, tick.steps
    if not _rolling_out(status) or tick.spec.paused:
        _ignored(tick, "promote: no running rollout to promote")
        return
    if status.phase == Phase.VALIDATING:
        _end_validation(tick, value)
        return
    current = (status.current_step or 1) - 1
    nxt = max(current, tick.strategy.full_step(steps)) if value == "full" else min(current + 1, len(steps) - 1)
    if nxt != current:
        status.current_step, status.step_started_at = nxt + 1, tick.now
    status.promoted_step = nxt + 1
    status.phase = Phase.PROGRESSING
    tick.announce(Reason.PROMOTED, f"promote {value or 'step'}: step {nxt + 1}/{len(steps)}")


def _end_validation(tick: Tick, value: str) -> None:
    """Ends the validation window now, whatever the triggers say; not the postDeploy gates,
    which are a checklist, not a judgement."""
    spec, status = tick.spec, tick.status
    status.promoted_step = len(tick.steps) + 1
    tick.announce(Reason.PROMOTED, f"promote {value or 'step'}: validation window ended")
    if checklist.waits(spec, status, GateStage.POST_DEPLOY) or status.paused_by:
        status.step_started_at = tick.now - timedelta(seconds=spec.validation.window_seconds)
        return
    status.step_started_at = tick.now
    finish(tick, status.revision or "", downtime=status.downtime_seconds)


def restart(tick: Tick, value: str) -> None:
    running = sorted(r for r, state in tick.observation.revisions.items() if state.replicas > 0)
    if not running:
        _ignored(tick, "restart: no revision has pods")
        return
    tick.restart = value[:OBEYED_VALUE_LIMIT] or tick.now.isoformat()
    tick.announce(Reason.RESTARTED, f"restart: new pods for {', '.join(running)}, one at a time")


OBEY: dict[str, Callable[[Tick, str], None]] = {
    ABORT: abort, UNDO: undo, RETRY: retry, APPROVE: approve, PAUSE: pause, RESUME: resume, PROMOTE: promote,
    RESTART: restart,
}
"""The function that obeys each command key (the keys of `COMMANDS`), given its value."""
