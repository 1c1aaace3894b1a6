"""Status writes against an API server whose Release CRD is older than the operator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from glideslope import engine
from glideslope.api import Phase, ReleaseStatus, StepStart, status_patch
from glideslope.kube import releases

pytestmark = pytest.mark.unit

AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


class OldServer:
    """Stores the status its CRD knows: `stepStarts` is pruned, as a structural schema prunes."""

    def __init__(self) -> None:
        self.writes = 0

    def patch_namespaced_custom_object_status(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.writes += 1
        body = args[5]
        status = {k: v for k, v in body["status"].items() if k != "stepStarts" and v is not None}
        return {"metadata": {"name": "web", "namespace": "shop", "resourceVersion": "2"}, "status": status}


@pytest.fixture(autouse=True)
def nothing_dropped() -> Iterator[None]:
    releases._dropped.clear()
    yield
    releases._dropped.clear()


def test_a_field_the_server_drops_is_told_once_and_no_longer_compared(caplog: pytest.LogCaptureFixture) -> None:
    server = OldServer()
    kube: Any = SimpleNamespace(custom=server)
    status = ReleaseStatus(phase=Phase.PROGRESSING, current_step=1, step_started_at=AT,
                           step_starts=[StepStart(step=1, at=AT)])
    assert releases.patch_status(kube, "shop", "web", status_patch(status), "1")
    assert releases.dropped_fields() == {"stepStarts"}
    assert "status.stepStarts" in caplog.text and "older than this operator" in caplog.text
    releases.patch_status(kube, "shop", "web", status_patch(status), "2")
    assert caplog.text.count("older than this operator") == 1
    # What the server stored and what the operator decided now compare equal.
    stored = ReleaseStatus(phase=Phase.PROGRESSING, current_step=1, step_started_at=AT)
    assert engine._storable(status) == engine._storable(stored)
    assert status != stored


def test_a_current_server_drops_nothing() -> None:
    class Server(OldServer):
        def patch_namespaced_custom_object_status(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            return {"metadata": {"resourceVersion": "2"}, "status": args[5]["status"]}

    status = ReleaseStatus(phase=Phase.PROGRESSING, step_starts=[StepStart(step=1, at=AT)])
    releases.patch_status(SimpleNamespace(custom=Server()), "shop", "web", status_patch(status), "1")  # type: ignore[arg-type]
    assert releases.dropped_fields() == frozenset()
    assert engine._storable(status) is status
