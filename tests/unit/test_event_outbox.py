"""Events that survive a crash: a transition's Events are written into the status with it and
recorded under names derived from them, so recording them again after a restart is a no-op."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import kubernetes
import pytest

from glideslope import engine
from glideslope.api import Announcement, Release, ReleaseStatus, parse_release
from glideslope.kube import events
from glideslope.kube.client import Kube
from glideslope.runtime import ReleaseMemory

pytestmark = pytest.mark.unit


class FakeCore:
    def __init__(self) -> None:
        self.created: dict[str, dict[str, Any]] = {}

    def create_namespaced_event(self, namespace: str, body: dict[str, Any], **_: Any) -> None:
        name = body["metadata"]["name"]
        if name in self.created:
            raise kubernetes.client.ApiException(status=409, reason="AlreadyExists")
        self.created[name] = body


def subject(announcements: list[Announcement]) -> Release:
    release = parse_release({
        "apiVersion": "glideslope.dev/v1alpha1", "kind": "Release",
        "metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "generation": 1},
        "spec": {"version": "1", "replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "app", "image": "app:1"}]}},
                 "strategy": {"type": "BigBang", "bigBang": {}}},
    })
    return release.model_copy(update={"status": ReleaseStatus(announcements=announcements)})


def test_an_announcement_is_recorded_once_whoever_records_it() -> None:
    core = FakeCore()
    kube = Kube(None, core, None, None)
    now = datetime.now(UTC)
    started = Announcement(reason="Started", message="rollout of 1 started", at=now)
    release = subject([started])
    assert events.announce(kube, release, started)
    assert not events.announce(kube, release, started), "the second recording is a no-op"
    (body,) = core.created.values()
    assert body["reason"] == "Started" and body["firstTimestamp"] == now.isoformat()


def test_a_restarted_operator_records_what_its_predecessor_did_not() -> None:
    core = FakeCore()
    kube = Kube(None, core, None, None)
    now = datetime.now(UTC)
    recorded = Announcement(reason="Started", message="a", at=now)
    lost = Announcement(reason="Promoted", message="b", at=now)
    stale = Announcement(reason="Paused", message="c", at=now - timedelta(hours=1))
    release = subject([recorded, lost, stale])
    events.announce(kube, release, recorded)  # the predecessor got this far, then died
    memory = ReleaseMemory()  # a new process remembers nothing
    engine._redeliver(kube, release, memory)
    assert sorted(b["reason"] for b in core.created.values()) == ["Promoted", "Started"], \
        "the lost one is recorded, the recorded one not twice, the hour-old one not at all"
    engine._redeliver(kube, release, memory)
    assert len(core.created) == 2, "once per process: nothing is tried again"
