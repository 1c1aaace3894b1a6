"""The record a fault test checks: every status of one Release, from a watch, and its Events."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import kubernetes

from tests.e2e.helpers import Cluster

GROUP, VERSION, PLURAL = "glideslope.dev", "v1alpha1", "releases"
ROLLING_OUT = ("Pending", "Gated", "Progressing", "Paused")


@dataclass
class Timeline:
    """Every status the API server holds of one Release, in order (a watch delivers each write).
    `changes` receives (version, phase, step) each time one of them changes."""

    sandbox: Cluster
    namespace: str
    name: str
    statuses: list[dict[str, Any]] = field(default_factory=list)
    changes: queue.Queue[tuple[str | None, str | None, int | None]] = field(default_factory=queue.Queue)
    relists: int = 0

    def __post_init__(self) -> None:
        self.api = kubernetes.config.new_client_from_config(config_file=str(self.sandbox.kubeconfig))
        self._stop = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self._run, daemon=True).start()

    def close(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        custom = kubernetes.client.CustomObjectsApi(self.api)
        version = ""
        selector = f"metadata.name={self.name}"
        while not self._stop.is_set():
            try:
                if not version:
                    listed = custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL,
                                                                  field_selector=selector)
                    self.relists += 1
                    for item in listed["items"]:
                        self._see(item)
                    version = listed["metadata"]["resourceVersion"]
                for event in kubernetes.watch.Watch().stream(
                        custom.list_namespaced_custom_object, GROUP, VERSION, self.namespace, PLURAL,
                        field_selector=selector, resource_version=version, timeout_seconds=20):
                    if event["type"] == "ERROR":
                        version = ""
                        break
                    version = event["object"]["metadata"]["resourceVersion"]
                    self._see(event["object"])
                    if self._stop.is_set():
                        return
            except Exception:  # the API server restarting, an expired version: list again
                version = ""
                time.sleep(0.3)

    def _see(self, obj: dict[str, Any]) -> None:
        st = obj.get("status") or {}
        with self._lock:
            previous = self.statuses[-1] if self.statuses else {}
            if st == previous:
                return
            self.statuses.append(st)
        key = (st.get("version"), st.get("phase"), st.get("currentStep"))
        if key != (previous.get("version"), previous.get("phase"), previous.get("currentStep")):
            self.changes.put(key)

    def steps(self, version: str) -> dict[int, set[str]]:
        """Step number -> the stepStartedAt values it was seen with while `version` rolled out."""
        out: dict[int, set[str]] = {}
        with self._lock:
            for st in self.statuses:
                if st.get("version") == version and st.get("phase") in ROLLING_OUT and st.get("currentStep"):
                    out.setdefault(st["currentStep"], set()).add(st.get("stepStartedAt") or "")
        return out

    def step_order(self, version: str) -> list[int]:
        """The steps of `version` in the order they were seen, each once."""
        order: list[int] = []
        with self._lock:
            for st in self.statuses:
                step = st.get("currentStep")
                if st.get("version") == version and st.get("phase") in ROLLING_OUT and step and (
                        not order or order[-1] != step):
                    order.append(step)
        return order


def release_events(sandbox: Cluster, namespace: str, name: str) -> list[tuple[str, str]]:
    """(reason, message) of the Release's Events, oldest first."""
    items = sandbox.get_json("events", "-n", namespace, "--field-selector",
                             f"involvedObject.kind=Release,involvedObject.name={name}")["items"]
    items.sort(key=lambda e: (e.get("firstTimestamp") or e.get("eventTime") or "", e["metadata"]["name"]))
    return [(e["reason"], e.get("message", "")) for e in items]


def check_one_clean_rollout(timeline: Timeline, sandbox: Cluster, namespace: str, name: str, version: str,
                            total_steps: int, *, every_status_seen: bool = True) -> None:
    """Every step of `version` seen once, in order, none restarted; one Started and one Succeeded
    Event; the status ends Succeeded with `version`'s history entry recorded once.

    `every_status_seen=False` when the watch itself was cut (the API server restarted): then
    a step may have come and gone unseen, and only the order of those seen is checked."""
    steps = timeline.steps(version)
    order = timeline.step_order(version)
    if every_status_seen:
        assert order == list(range(1, total_steps + 1)), (order, steps)
    else:
        assert order == sorted(set(order)) and order[-1] == total_steps, (order, steps)
    restarted = {k: v for k, v in steps.items() if len(v) != 1}
    assert not restarted, f"steps started more than once: {restarted}"
    st = timeline.statuses[-1]
    assert st["phase"] == "Succeeded" and st["version"] == version, st
    assert [h["version"] for h in st["history"] if h["outcome"] == "Succeeded"].count(version) == 1, st["history"]
    reasons = [r for r, m in release_events(sandbox, namespace, name) if f"{version} (" in m or r == "Succeeded"]
    started = [r for r, m in release_events(sandbox, namespace, name) if r == "Started" and m.startswith(
        f"rollout of {version} ")]
    succeeded = [r for r, m in release_events(sandbox, namespace, name) if r == "Succeeded" and m.startswith(
        f"{version} (")]
    assert len(started) == 1 and len(succeeded) == 1, reasons
