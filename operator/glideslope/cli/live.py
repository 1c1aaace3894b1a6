"""The live view of one Release (`kubectl release status NAME -w`, and `make demo`).

It redraws on watch events (the Release, its Deployments, its Events), never by polling:
a thread per watch feeds one queue, and the view is drawn from the latest objects.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, watch
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from glideslope.api import FINAL_PHASES, GROUP, PLURAL, VERSION, Phase, ReleaseStatus, parse_release, parse_status
from glideslope.core.model import RELEASE_LABEL, REVISION_LABEL
from glideslope.core.strategies import strategy_for

PHASE_STYLE: dict[str, str] = {
    Phase.SUCCEEDED: "green", Phase.ROLLED_BACK: "red", Phase.FAILED: "red", Phase.ROLLING_BACK: "yellow",
    Phase.PAUSED: "yellow", Phase.GATED: "cyan", Phase.VALIDATING: "cyan", Phase.PROGRESSING: "blue"}


@dataclass
class Snapshot:
    """The latest objects seen for one Release."""

    release: dict[str, Any] | None = None
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)


def render(snap: Snapshot) -> RenderableType:
    body = snap.release
    if body is None:
        return Text("waiting for the Release...")
    spec = body.get("spec", {})
    status = parse_status(body.get("status"))
    phase = str(status.phase or Phase.PENDING)
    parts: list[RenderableType] = [_header(body, status, phase), Text(status.message or "", style="italic")]
    steps = _step_line(body, status, phase)
    if steps is not None:
        parts.append(steps)
    parts += [_weight(status), _revisions(snap, status)]
    # Gates, triggers and events only when there are some: an empty titled table is noise.
    for part in (_gates(status), _triggers(spec, status), _events(snap)):
        if part is not None:
            parts.append(part)
    return Panel(Group(*parts), title="kubectl release", border_style=PHASE_STYLE.get(phase, "white"))


def _header(body: dict[str, Any], status: ReleaseStatus, phase: str) -> Table:
    """Which Release, its phase, from what version to what, by which strategy."""
    meta, spec = body["metadata"], body.get("spec", {})
    head = Table.grid(padding=(0, 2))
    head.add_row(Text(f"{meta['namespace']}/{meta['name']}", style="bold"),
                 Text(phase, style=f"bold {PHASE_STYLE.get(phase, 'white')}"),
                 _versions(status.stable_version, spec.get("version")),
                 str(spec.get("strategy", {}).get("type", "")))
    return head


def _step_line(body: dict[str, Any], status: ReleaseStatus, phase: str) -> Text | None:
    """The strategy's steps on one line, the current one marked; None when there are none."""
    steps = _steps(body)
    if not steps:
        return None
    line = Text()
    for i, step in enumerate(steps, start=1):
        current = status.current_step == i and phase not in FINAL_PHASES
        done = (status.current_step or 0) > i or phase == Phase.SUCCEEDED
        mark, style = ("▶ ", "bold yellow") if current else (("✔ ", "green") if done else ("· ", "dim"))
        line.append(f"{mark}{step}  ", style=style)
    return line


def _weight(status: ReleaseStatus) -> Table:
    """The candidate's share of the traffic, as a bar."""
    weight = status.weight or 0
    bar = Table.grid(padding=(0, 1))
    measured = "" if status.measured_weight is None else f" ({status.measured_weight}% measured)"
    bar.add_row("weight", ProgressBar(total=100, completed=weight, width=40), f"{weight}% to the candidate{measured}")
    return bar


def _revisions(snap: Snapshot, status: ReleaseStatus) -> Table:
    """Each revision's Deployment: its role, replicas and ready replicas."""
    revisions = Table(title="revisions", title_justify="left", box=None, header_style="bold")
    for col in ("revision", "role", "replicas", "ready"):
        revisions.add_column(col)
    for rev, dep in sorted(snap.deployments.items()):
        role = "candidate" if rev == status.revision and rev != status.stable_revision else (
            "stable" if rev == status.stable_revision else "previous")
        revisions.add_row(rev, role, str(dep.get("spec", {}).get("replicas", 0)),
                          str(dep.get("status", {}).get("readyReplicas") or 0))
    return revisions


def _gates(status: ReleaseStatus) -> Table | None:
    """The gates and their states; None without gates."""
    if not status.gates:
        return None
    gates = Table(title=f"gates {status.gates_display or ''}", title_justify="left", box=None, header_style="bold")
    for col in ("gate", "stage", "state", "message"):
        gates.add_column(col)
    for g in status.gates:
        style = {"Passed": "green", "Failed": "red"}.get(str(g.state), "yellow")
        gates.add_row(g.name, str(g.stage or ""), Text(str(g.state), style=style), g.message or "")
    return gates


def _triggers(spec: dict[str, Any], status: ReleaseStatus) -> Table | None:
    """The rollback triggers' measurements, each with its condition from the spec; None without any."""
    if not status.analysis:
        return None
    # The templates' triggers are not in the spec: the status keeps those of this rollout.
    kept = status.template_triggers.triggers if status.template_triggers is not None else []
    conditions = {t.get("name"): t.get("failureCondition") or t.get("successCondition") or ""
                  for t in [*spec.get("analysis", {}).get("triggers", []), *kept]}
    triggers = Table(title="triggers", title_justify="left", box=None, header_style="bold")
    for col in ("trigger", "severity", "state", "last value", "condition", "ok/fail/none/err"):
        triggers.add_column(col)
    for t in status.analysis:
        style = {"Passing": "green", "Failing": "red", "Inconclusive": "yellow"}.get(str(t.state), "white")
        value = "-" if t.last_value is None else f"{t.last_value:.4g}"
        triggers.add_row(t.name, str(t.severity or ""), Text(str(t.state), style=style), value,
                         conditions.get(t.name, ""),
                         f"{t.successes}/{t.failures}/{t.inconclusive}/{t.errors}")
    return triggers


def _events(snap: Snapshot) -> Table | None:
    """The six latest Events of the Release, warnings in red; None without any."""
    recent = sorted(snap.events.values(), key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")[-6:]
    if not recent:
        return None
    events = Table(title="events", title_justify="left", box=None, header_style="bold")
    for col in ("time", "reason", "message"):
        events.add_column(col)
    for e in recent:
        stamp = str(e.get("lastTimestamp") or e.get("eventTime") or "")[11:19]
        style = "red" if e.get("type") == "Warning" else ""
        events.add_row(stamp, Text(str(e.get("reason", "")), style=style), str(e.get("message", "")))
    return events


def _versions(stable: str | None, wanted: Any) -> str:
    """From what to what: the first rollout has nothing to come from, and a settled Release
    is at its version (not `1.0.0 → 1.0.0`)."""
    if not stable:
        return f"first rollout of {wanted}"
    return str(wanted) if stable == str(wanted) else f"{stable} → {wanted}"


def _steps(body: dict[str, Any]) -> list[str]:
    try:
        spec = parse_release(body).spec
    except ValueError:
        return []
    return [s.describe() for s in strategy_for(spec).plan(spec)]


class Watcher:
    """Follows one Release, its Deployments and its Events; `changes` gets a token per event."""

    def __init__(self, namespace: str, name: str) -> None:
        self.namespace, self.name = namespace, name
        self.snapshot = Snapshot()
        self.changes: queue.Queue[str] = queue.Queue()
        self._lock = threading.Lock()
        self._watches: list[watch.Watch] = []

    def start(self) -> None:
        custom, apps, core = client.CustomObjectsApi(), client.AppsV1Api(), client.CoreV1Api()
        ns = self.namespace
        self._follow("release", lambda **kw: custom.list_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, field_selector=f"metadata.name={self.name}", **kw), self._on_release)
        self._follow("deployments", lambda **kw: apps.list_namespaced_deployment(
            ns, label_selector=f"{RELEASE_LABEL}={self.name}", **kw), self._on_deployment)
        self._follow("events", lambda **kw: core.list_namespaced_event(
            ns, field_selector=f"involvedObject.name={self.name},involvedObject.kind=Release", **kw),
            self._on_event)

    def stop(self) -> None:
        for w in self._watches:
            w.stop()

    def _follow(self, what: str, lister: Callable[..., Any], apply: Callable[[str, dict[str, Any]], None]) -> None:
        w = watch.Watch()
        self._watches.append(w)

        def loop() -> None:
            while True:
                try:
                    for ev in w.stream(lister, timeout_seconds=300):
                        obj = ev["object"]
                        body = obj if isinstance(obj, dict) else client.ApiClient().sanitize_for_serialization(obj)
                        with self._lock:
                            apply(ev["type"], body)
                        self.changes.put(what)
                except Exception:  # a dropped watch is restarted; the view keeps its last state
                    time.sleep(1)
                if getattr(w, "_stop", False):
                    return

        threading.Thread(target=loop, name=f"watch-{what}", daemon=True).start()

    def _on_release(self, kind: str, body: dict[str, Any]) -> None:
        self.snapshot.release = None if kind == "DELETED" else body

    def _on_deployment(self, kind: str, body: dict[str, Any]) -> None:
        rev = body["metadata"].get("labels", {}).get(REVISION_LABEL, body["metadata"]["name"])
        if kind == "DELETED":
            self.snapshot.deployments.pop(rev, None)
        else:
            self.snapshot.deployments[rev] = body

    def _on_event(self, kind: str, body: dict[str, Any]) -> None:
        if kind != "DELETED":
            self.snapshot.events[body["metadata"]["name"]] = body

    def view(self) -> RenderableType:
        with self._lock:
            return render(self.snapshot)

    def phase(self) -> str | None:
        with self._lock:
            body = self.snapshot.release
            return None if body is None else (body.get("status") or {}).get("phase")

    def settled_phase(self) -> str | None:
        """The phase, once the operator has acted on the current spec (else None): a status
        written for an older spec says nothing yet about the rollout just applied."""
        with self._lock:
            body = self.snapshot.release
            if body is None:
                return None
            status = body.get("status") or {}
            current = status.get("observedGeneration") == body["metadata"].get("generation")
            return status.get("phase") if current else None
