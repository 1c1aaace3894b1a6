"""Release notes and the closing record of each rollout: folded from what the engine announces,
rendered as Markdown for `kubectl release notes`. Pure: no I/O, no clock (`now` is passed in).

One `Record` per Release holds one `RolloutRecord` per revision, oldest first: its version,
the release notes it shipped with (`spec.releaseNotes` while it was the candidate), the
revision it replaced, a timeline (Events announced and steps taken, with times), the
attempts from `status.history` (durations, rollback time, outcome), and the last analysis
and gates seen while it was the candidate. The shell keeps it in one ConfigMap, so it is
bounded: `MAX_ROLLOUTS` rollouts, `MAX_TIMELINE` entries each, `MAX_BYTES` in all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import Field

from glideslope.api import (
    GOING_BACK_PHASES,
    STEPPING_PHASES,
    UNDER_WAY_PHASES,
    ApiModel,
    GateStatus,
    HistoryEntry,
    HistoryOutcome,
    Phase,
    ReleaseSpec,
    ReleaseStatus,
    TriggerStatus,
)
from glideslope.api.types import Timestamp
from glideslope.core.model import Announce, Reason
from glideslope.core.revision import revision_of
from glideslope.core.strategies import strategy_for

SCHEMA_VERSION = 1
MAX_ROLLOUTS = 10
"""Rollouts kept per Release; the oldest go first (never the current one)."""
MAX_TIMELINE = 100
"""Timeline entries kept per rollout: the first `TIMELINE_HEAD` and the latest."""
TIMELINE_HEAD = 10
MAX_MESSAGE = 500
"""Characters of an entry's message kept (Events carry up to 1024)."""
MAX_NOTES = 16384
"""Characters of release notes kept per rollout (the API allows 32768 in the spec)."""
MAX_BYTES = 512 * 1024
"""The serialised record stays under this, well inside a ConfigMap's 1 MiB."""

STEP = "Step"
"""The reason of a timeline entry for a step taken (steps are not Events)."""

# Reasons that repeat while a condition lasts (a trigger failing at every measurement): one
# entry with a count and a last time, so they cannot push the rest out of the timeline.
_REPEATING = frozenset({Reason.TRIGGER_FAILED, Reason.ANALYSIS_INCONCLUSIVE, Reason.COMMAND_IGNORED})


class Entry(ApiModel):
    """One line of a rollout's timeline."""

    at: Timestamp
    reason: str
    message: str = ""
    warning: bool = False
    count: int = Field(default=1, ge=1)
    """How many times it happened in a row (repeating reasons only)."""
    until: Timestamp | None = None
    """The last time, when `count` > 1."""
    revision: str | None = None
    """The rollout it belongs to, when not the current one (only while folding; not stored)."""


class RolloutRecord(ApiModel):
    """What happened to one revision."""

    revision: str
    version: str | None = None
    strategy: str | None = None
    notes: str | None = None
    """`spec.releaseNotes` while this revision was the candidate."""
    replaced_version: str | None = None
    replaced_revision: str | None = None
    started_at: Timestamp | None = None
    outcome: str | None = None
    """The last phase seen while it was the candidate (`Progressing`, `RolledBack`...), or once
    another revision is the candidate, its last attempt's outcome (`Superseded` too)."""
    message: str | None = None
    attempts: list[HistoryEntry] = Field(default_factory=list)
    """Its entries of `status.history`, oldest first: durations, rollback time, reason."""
    analysis: list[TriggerStatus] = Field(default_factory=list)
    gates: list[GateStatus] = Field(default_factory=list)
    timeline: list[Entry] = Field(default_factory=list)
    left_out: int = Field(default=0, ge=0)
    """Timeline entries dropped to keep it bounded (they were between the head and the tail)."""


class Record(ApiModel):
    """The closing records of a Release's rollouts, oldest first."""

    schema_version: int = SCHEMA_VERSION
    release: str | None = None
    namespace: str | None = None
    current: str | None = None
    """The candidate revision when last folded."""
    rollouts: list[RolloutRecord] = Field(default_factory=list)

    def find(self, wanted: str | None = None) -> RolloutRecord | None:
        """The rollout of a revision (or a unique prefix of it) or a version; None: the current one."""
        if not self.rollouts:
            return None
        if not wanted:
            return next((r for r in self.rollouts if r.revision == self.current), self.rollouts[-1])
        found = [r for r in self.rollouts if r.revision == wanted] or [
            r for r in self.rollouts if r.version == wanted]
        if found:
            return found[-1]
        prefixed = [r for r in self.rollouts if r.revision.startswith(wanted)]
        return prefixed[0] if len(prefixed) == 1 else None


# ---------------------------------------------------------------------------------------------
# Folding

StepMark = tuple[str, int]
"""(revision, current step): which step of which rollout was last seen."""


def announced(events: Sequence[Announce], status: ReleaseStatus, now: datetime) -> list[Entry]:
    """Timeline entries for the Events a tick announces, each on the rollout it is about."""
    entries = []
    for event in events:
        revision = None
        last = status.history[-1] if status.history else None
        if event.reason == Reason.SUPERSEDED and last is not None and last.outcome == HistoryOutcome.SUPERSEDED:
            # Announced once the new rollout has started: it is about the one before.
            revision = last.revision
        entries.append(Entry(at=now, reason=event.reason, message=event.message, warning=event.warning,
                             revision=revision))
    return entries


def step_mark(status: ReleaseStatus) -> StepMark | None:
    """Where a rollout stands, while it is taking steps (not a first rollout, which has none)."""
    if (status.revision is None or status.current_step is None or status.phase not in STEPPING_PHASES
            or status.stable_revision in (None, status.revision)):
        return None
    return status.revision, status.current_step


def steps_taken(previous: StepMark | None, spec: ReleaseSpec, status: ReleaseStatus, now: datetime, *,
                first_sight: bool = False) -> tuple[StepMark | None, list[Entry]]:
    """The new mark, and a timeline entry when a step began since `previous`. On `first_sight`
    (nothing known before, e.g. after a restart) every step of the current rollout in
    `status.stepStarts`: those written before are dropped when folded (`_append`), and those a
    restart lost, taken on quiet ticks and waiting in memory for the next write, come back."""
    mark = step_mark(status)
    if mark is None or mark == previous:
        return mark, []
    steps = strategy_for(spec).plan(spec)

    def entry(step: int, at: datetime) -> Entry:
        what = steps[step - 1].describe() if 0 < step <= len(steps) else "step"
        return Entry(at=at, reason=STEP, message=f"step {step}/{len(steps)}: {what}", revision=mark[0])

    if first_sight:
        return mark, [entry(s.step, s.at) for s in status.step_starts]
    return mark, [entry(mark[1], status.step_started_at or now)]


def fold(record: Record, spec: ReleaseSpec, status: ReleaseStatus, entries: Sequence[Entry], *,
         release: str, namespace: str) -> Record:
    """`record` with the current rollout brought up to date from `spec` and `status`, the
    attempts of `status.history` merged in, and `entries` appended to their timelines."""
    rollouts: dict[str, RolloutRecord] = {r.revision: r.model_copy(deep=True) for r in record.rollouts}
    current = status.revision
    if current is not None:
        rollout = rollouts.pop(current, None) or RolloutRecord(revision=current)
        # The current rollout goes last: it is the newest, even when a revision comes back.
        rollouts[current] = _update_current(rollout, spec, status)
    # Revisions known only from history (it began before the record did) are older than the rest.
    unknown = {a.revision: RolloutRecord(revision=a.revision, version=a.version, started_at=a.started_at)
               for a in status.history if a.revision is not None and a.revision not in rollouts}
    rollouts = {**unknown, **rollouts}
    for attempt in status.history:
        if attempt.revision is not None:
            _merge_attempt(rollouts[attempt.revision], attempt)
    for rollout in rollouts.values():
        if rollout.revision != current and rollout.attempts:
            last = rollout.attempts[-1]
            rollout.outcome, rollout.message = str(last.outcome), last.reason
    for entry in entries:
        target = rollouts.get(entry.revision or current or "")
        if target is not None:
            _append(target, entry)
    kept = list(rollouts.values())
    while len(kept) > MAX_ROLLOUTS and _drop_oldest(kept, current):
        pass
    result = Record(release=release, namespace=namespace, current=current, rollouts=kept)
    while len(serialise(result)) > MAX_BYTES and _drop_oldest(result.rollouts, current):
        pass
    return result


def serialise(record: Record) -> str:
    """The stored form: compact JSON."""
    return json.dumps(record.to_dict(), separators=(",", ":"), ensure_ascii=False)


def _update_current(rollout: RolloutRecord, spec: ReleaseSpec, status: ReleaseStatus) -> RolloutRecord:
    rollout.version = status.version or rollout.version
    if revision_of(spec.template) == rollout.revision:
        # Else the spec is newer than the status (the operator has not seen it yet).
        rollout.version = spec.version
        rollout.strategy = spec.strategy.type.value
        notes = spec.release_notes
        rollout.notes = None if notes is None else _cut(notes, MAX_NOTES)
    if rollout.replaced_revision is None and status.stable_revision not in (None, rollout.revision):
        rollout.replaced_revision, rollout.replaced_version = status.stable_revision, status.stable_version
    if status.started_at is not None and (rollout.started_at is None or not rollout.timeline):
        rollout.started_at = status.started_at
    rollout.outcome = None if status.phase is None else str(status.phase)
    rollout.message = status.message
    # A new rollout starts with empty analysis and gates: keep the last values seen instead.
    if status.analysis:
        rollout.analysis = [t.model_copy() for t in status.analysis]
    if status.gates:
        rollout.gates = [g.model_copy() for g in status.gates]
    return rollout


def _merge_attempt(rollout: RolloutRecord, attempt: HistoryEntry) -> None:
    """Replace the same attempt (same start and outcome: a rollback's time is filled in later) or add it."""
    key = (attempt.started_at, attempt.outcome)
    for i, known in enumerate(rollout.attempts):
        if (known.started_at, known.outcome) == key:
            rollout.attempts[i] = attempt.model_copy()
            return
    rollout.attempts.append(attempt.model_copy())
    rollout.attempts.sort(key=lambda a: a.finished_at or a.started_at or datetime.min.replace(tzinfo=UTC))
    del rollout.attempts[:-MAX_TIMELINE]
    if rollout.version is None:
        rollout.version = attempt.version


def _append(rollout: RolloutRecord, entry: Entry) -> None:
    entry = entry.model_copy(update={"revision": None, "message": _cut(entry.message, MAX_MESSAGE)})
    last = rollout.timeline[-1] if rollout.timeline else None
    if (last is not None and entry.reason in _REPEATING and last.reason == entry.reason
            and _subject(last.message) == _subject(entry.message)):
        # The latest message (and value) is the one worth reading.
        rollout.timeline[-1] = last.model_copy(update={"count": last.count + entry.count, "until": entry.at,
                                                       "message": entry.message})
        return
    if entry.reason == STEP and any(e.reason == STEP and e.message == entry.message and e.at == entry.at
                                    for e in rollout.timeline):
        return  # the same step seen twice (a restart, a write that was retried)
    rollout.timeline.append(entry)
    if len(rollout.timeline) > MAX_TIMELINE:
        dropped = len(rollout.timeline) - MAX_TIMELINE
        rollout.timeline = rollout.timeline[:TIMELINE_HEAD] + rollout.timeline[TIMELINE_HEAD + dropped:]
        rollout.left_out += dropped


def _subject(message: str) -> str:
    """What a repeating message is about: `trigger error-rate (critical)` of `trigger error-rate (critical): ...`."""
    return message.partition(":")[0]


def _drop_oldest(rollouts: list[RolloutRecord], current: str | None) -> bool:
    for i, rollout in enumerate(rollouts):
        if rollout.revision != current:
            del rollouts[i]
            return True
    return False


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


# ---------------------------------------------------------------------------------------------
# Markdown


def render(record: Record, rollout: RolloutRecord) -> str:
    """One rollout's notes and closing record, as Markdown."""
    notes = ["## Release notes", "", (rollout.notes or "").strip() or "_none given (`spec.releaseNotes`)_", ""]
    return "\n".join([*_facts(record, rollout), *notes, *_timeline(rollout), *_attempts(rollout),
                      *_analysis(rollout), *_gates(rollout)])


def _facts(record: Record, rollout: RolloutRecord) -> list[str]:
    """The title and the facts list: which Release, what it replaced, when, how it ended, how long it took."""
    where = f"{record.namespace}/{record.release}" if record.namespace else (record.release or "")
    title = f"# {record.release or 'release'} {rollout.version or rollout.revision}"
    out = [title + (f": {rollout.outcome}" if rollout.outcome else ""), ""]
    facts = [f"- **Release:** `{where}`, revision `{rollout.revision}`"
             + (f", strategy {rollout.strategy}" if rollout.strategy else "")]
    if rollout.replaced_revision:
        facts.append(f"- **Replaced:** {rollout.replaced_version or '?'} (`{rollout.replaced_revision}`)")
    if rollout.started_at:
        facts.append(f"- **Started:** {_time(rollout.started_at)}")
    facts.append(f"- **Outcome:** {_outcome(rollout)}")
    durations = _durations(rollout)
    if durations:
        facts.append(f"- **Durations:** {durations}")
    return [*out, *facts, ""]


def _timeline(rollout: RolloutRecord) -> list[str]:
    """The timeline table, with a marker row where the middle was left out."""
    out = ["## Timeline", ""]
    if rollout.timeline:
        start = rollout.started_at or rollout.timeline[0].at
        out += ["| time (UTC) | after | event | details |", "|---|---|---|---|"]
        for i, entry in enumerate(rollout.timeline):
            if rollout.left_out and i == TIMELINE_HEAD:
                out.append(f"| \u2026 | | | {rollout.left_out} entries left out |")
            event = entry.reason + (f" \u00d7{entry.count}" if entry.count > 1 else "")
            if entry.warning:
                event = f"**{event}**"
            when = _time(entry.at) + (f" \u2013 {_clock(entry.until)}" if entry.until else "")
            out.append(f"| {when} | {_after(start, entry.at)} | {event} | {_cell(_short(entry.message))} |")
    else:
        out.append("_nothing recorded_")
    out.append("")
    return out


def _attempts(rollout: RolloutRecord) -> list[str]:
    """The attempts table; nothing at all when there were none (unlike the other sections)."""
    if not rollout.attempts:
        return []
    out = ["## Attempts", "", "| outcome | started | finished | duration | rollback | reason |",
           "|---|---|---|---|---|---|"]
    for a in rollout.attempts:
        out.append(f"| {a.outcome} | {_time(a.started_at)} | {_time(a.finished_at)} | "
                   f"{_seconds(a.duration_seconds)} | {_seconds(a.rollback_seconds)} | "
                   f"{_cell(_short(a.reason or ''))} |")
    out.append("")
    return out


def _analysis(rollout: RolloutRecord) -> list[str]:
    """The triggers' tallies, then each trigger's query on one line."""
    out = ["## Analysis", ""]
    if rollout.analysis:
        out += ["| trigger | severity | state | last value | successes | failures | inconclusive | errors |",
                "|---|---|---|---|---|---|---|---|"]
        for t in rollout.analysis:
            value = "-" if t.last_value is None else f"{t.last_value:.6g}"
            out.append(f"| {_cell(t.name)} | {t.severity or ''} | {t.state} | {value} | {t.successes} | "
                       f"{t.failures} | {t.inconclusive} | {t.errors} |")
        queries = [t for t in rollout.analysis if t.query]
        if queries:
            out.append("")
            out += [f"- `{t.name}`: `{' '.join((t.query or '').split()).replace('`', chr(39))}`" for t in queries]
    else:
        out.append("_no rollback triggers measured_")
    out.append("")
    return out


def _gates(rollout: RolloutRecord) -> list[str]:
    """The gates, with who approved one unless its message already says so."""
    out = ["## Gates", ""]
    if rollout.gates:
        out += ["| gate | stage | state | message |", "|---|---|---|---|"]
        for g in rollout.gates:
            message = g.message or ""
            if g.approved_by and g.approved_by not in message:
                message = f"{message} (approved by {g.approved_by})".strip()
            out.append(f"| {_cell(g.name)} | {g.stage or ''} | {g.state} | {_cell(message)} |")
    else:
        out.append("_no gates_")
    out.append("")
    return out


def _outcome(rollout: RolloutRecord) -> str:
    outcome = rollout.outcome or "unknown"
    last = rollout.attempts[-1] if rollout.attempts else None
    text = f"**{outcome}**"
    if outcome in UNDER_WAY_PHASES:
        text += " (still under way)"
    if last is not None and last.reason and outcome in GOING_BACK_PHASES:
        text += f": {last.reason}"
    elif rollout.message and outcome != Phase.SUCCEEDED:
        text += f": {rollout.message}"
    return _cell(_short(text))


def _durations(rollout: RolloutRecord) -> str:
    last = rollout.attempts[-1] if rollout.attempts else None
    if last is None:
        return ""
    parts = []
    if last.duration_seconds is not None:
        parts.append(f"deployment {_seconds(last.duration_seconds)}")
    if last.rollback_seconds is not None:
        parts.append(f"rollback {_seconds(last.rollback_seconds)}")
    if last.downtime_seconds is not None:
        parts.append(f"downtime {_seconds(last.downtime_seconds)}")
    if len(rollout.attempts) > 1:
        parts.append(f"{len(rollout.attempts)} attempts")
    return ", ".join(parts)


def _time(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if at else ""


def _clock(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%H:%M:%S")


def _after(start: datetime, at: datetime) -> str:
    return f"+{max((at - start).total_seconds(), 0.0):.1f}s"


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}s"


# Trigger messages end in the query they ran; the Analysis section shows each query once.
_QUERY = re.compile(r"; query: .*?(?=; retry to roll out|$)", re.DOTALL)


def _short(text: str) -> str:
    return _QUERY.sub("", text)


def _cell(text: str) -> str:
    """Text that stays in its Markdown table cell: one line, no column breaks."""
    return " ".join(text.split()).replace("|", "\\|")
