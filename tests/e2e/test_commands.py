"""A command is never lost: an abort given while an autoscaler writes the Release's scale every
200 ms and a GitOps tool re-applies its manifest every second takes effect, within 5 s, every
time, and is obeyed once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import kubernetes
import pytest

from tests.e2e.helpers import Cluster, wait_until
from tests.e2e.operator_fixture import (
    Operator,
    annotate,
    events,
    operator_fixture,  # noqa: F401
    release,
    status,
    wait_phase,
)

pytestmark = pytest.mark.e2e

MANUAL = {"type": "Canary", "canary": {"steps": [{"setWeight": 25}, {"pause": {}}, {"setWeight": 75}]}}
ABORTS = 3
TAKES_EFFECT_WITHIN = 5.0


@contextmanager
def contention(sandbox: Cluster, namespace: str, name: str) -> Iterator[list[int]]:
    """Writes the Release's scale every 200 ms (4, 5, 4, ...) and re-applies its manifest every
    second, until the block ends; yields the count of writes made [scale, apply]."""
    stop = threading.Event()
    made = [0, 0]
    api = kubernetes.client.CustomObjectsApi(kubernetes.config.new_client_from_config(str(sandbox.kubeconfig)))

    def scale() -> None:
        replicas = 4
        while not stop.wait(0.2):
            replicas = 9 - replicas
            api.patch_namespaced_custom_object_scale("glideslope.dev", "v1alpha1", namespace, "releases", name,
                                                     {"spec": {"replicas": replicas}})
            made[0] += 1

    def reapply() -> None:
        while not stop.wait(1.0):
            sandbox.apply(release(name, "2", MANUAL), namespace)
            made[1] += 1

    threads = [threading.Thread(target=scale, daemon=True), threading.Thread(target=reapply, daemon=True)]
    for thread in threads:
        thread.start()
    try:
        yield made
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)


def test_abort_under_contention_always_takes_effect(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    sandbox.apply(release("web", "1", MANUAL), namespace)
    wait_phase(sandbox, namespace, "web", "Succeeded", version="1")
    sandbox.apply(release("web", "2", MANUAL), namespace)
    wait_phase(sandbox, namespace, "web", "Paused", version="2")
    took: list[float] = []
    with contention(sandbox, namespace, "web") as made:
        for attempt in range(1, ABORTS + 1):
            time.sleep(1.0)  # let the writers run first
            reason = f"abort {attempt} under contention"
            given = time.monotonic()
            annotate(sandbox, namespace, "web", "glideslope.dev/abort", reason)

            def aborted(reason: str = reason) -> bool:
                st = status(sandbox, namespace, "web")
                history = st.get("history") or []
                return st.get("phase") in ("RollingBack", "RolledBack") and bool(history) and \
                    reason in (history[-1].get("reason") or "")

            wait_until(aborted, timeout=30, what=f"abort {attempt} taking effect", interval=0.1)
            took.append(time.monotonic() - given)
            wait_phase(sandbox, namespace, "web", "RolledBack", timeout=60)
            annotate(sandbox, namespace, "web", "glideslope.dev/retry", str(attempt))
            wait_phase(sandbox, namespace, "web", "Paused", version="2", timeout=60)
    print(f"aborts took {', '.join(f'{t:.2f}' for t in took)} s under {made[0]} scale writes and "
          f"{made[1]} re-applies")
    assert made[0] >= 10 and made[1] >= 3, made  # the writers really ran
    assert max(took) <= TAKES_EFFECT_WITHIN, took
    # Each abort obeyed exactly once, and no command is left on the Release.
    st = status(sandbox, namespace, "web")
    reasons = [h.get("reason") or "" for h in st["history"]]
    assert [i for i in range(1, ABORTS + 1) for r in reasons if f"abort {i} under" in r] == \
        list(range(1, ABORTS + 1)), reasons
    assert events(sandbox, namespace).count("Aborted") == ABORTS
    annotations = sandbox.get_json("release", "web", "-n", namespace)["metadata"].get("annotations") or {}
    assert not [k for k in annotations if k in ("glideslope.dev/abort", "glideslope.dev/retry")], annotations
    wait_until(lambda: not status(sandbox, namespace, "web").get("obeyedCommands"), timeout=10,
               what="the record of obeyed commands cleared")
