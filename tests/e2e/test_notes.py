"""Release notes and the closing record on the sandbox: `kubectl release notes` after a rollout
that succeeds and after one that a trigger rolls back, and the ConfigMap that keeps them."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.e2e.analysis_helpers import analysis, trigger
from tests.e2e.helpers import Cluster
from tests.e2e.operator_fixture import Operator, operator_fixture, release, wait_phase  # noqa: F401
from tests.e2e.test_plugin import kubectl_release

pytestmark = pytest.mark.e2e

STEPS = {"type": "Canary", "canary": {"steps": [
    {"setWeight": 25}, {"analysis": {"duration": "3s"}}, {"setWeight": 50}, {"pause": {"duration": "1s"}}]}}


def timeline(markdown: str) -> list[str]:
    """The event column of the timeline table, in order."""
    section = markdown.split("## Timeline", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|") for line in section.splitlines() if line.startswith("| 2")]
    return [row[3].strip().strip("*") for row in rows]


def test_notes_after_a_rollout_and_a_rollback(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    spec: dict[str, Any] = {"analysis": analysis(trigger("critical"))}
    sandbox.apply(release("web", "1.0.0", STEPS, releaseNotes="### 1.0.0\n- first", **spec), namespace)
    wait_phase(sandbox, namespace, "web", "Succeeded", version="1.0.0")
    sandbox.apply(release("web", "1.1.0", STEPS, releaseNotes="### 1.1.0\n- Faster search", **spec), namespace)
    good = wait_phase(sandbox, namespace, "web", "Succeeded", version="1.1.0", timeout=90)

    shown = kubectl_release(sandbox, "notes", "web", "-n", namespace)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert text.startswith("# web 1.1.0: Succeeded"), text[:300]
    assert "- Faster search" in text and f"`{good['revision']}`" in text
    assert "**Replaced:** 1.0.0" in text and "deployment " in text
    events = timeline(text)
    assert events[0] == "Started" and events[-1] == "Succeeded", events
    steps = [e for e in events if e == "Step"]
    assert len(steps) == 5, text  # every step of the plan (4 and the promotion), each with its time
    assert re.search(r"\| step 2/5: analysis 3s \|", text), text
    assert re.search(r"\| error-rate \| critical \| Passing \| 0 \| [1-9]", text), text

    sandbox.apply(release("web", "1.2.0", STEPS, error_rate=0.5, releaseNotes="### 1.2.0\n- New payment flow",
                          **spec), namespace)
    wait_phase(sandbox, namespace, "web", "RolledBack", version="1.2.0", timeout=90)

    shown = kubectl_release(sandbox, "notes", "web", "-n", namespace)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert text.startswith("# web 1.2.0: RolledBack"), text[:300]
    assert "- New payment flow" in text and "rollback " in text
    events = timeline(text)
    assert events[0] == "Started" and events[-1] == "RolledBack", events
    assert events.index("TriggerFailed") < events.index("RollingBack") < events.index("RolledBack"), events
    assert re.search(r"\| error-rate \| critical \| Failing \| 0\.\d+ \|", text), text

    # The earlier rollout is still there, by version or by revision prefix.
    older = kubectl_release(sandbox, "notes", "web", "--revision", good["revision"][:6], "-n", namespace)
    assert older.returncode == 0 and older.stdout.startswith("# web 1.1.0: Succeeded"), older.stdout[:300]
    everything = kubectl_release(sandbox, "notes", "web", "--all", "-n", namespace)
    assert [line for line in everything.stdout.splitlines() if line.startswith("# web ")] == [
        "# web 1.2.0: RolledBack", "# web 1.1.0: Succeeded", "# web 1.0.0: Succeeded"]
    missing = kubectl_release(sandbox, "notes", "web", "--revision", "9.9.9", "-n", namespace)
    assert missing.returncode == 1 and "no rollout of '9.9.9'" in missing.stderr and "1.1.0" in missing.stderr

    # One ConfigMap, owned by the Release: deleting the Release deletes it.
    cm = sandbox.get_json("configmap", "web-record", "-n", namespace)
    owner = cm["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "Release" and owner["name"] == "web"
    stored = json.loads(cm["data"]["record.json"])
    assert [r["version"] for r in stored["rollouts"]] == ["1.0.0", "1.1.0", "1.2.0"]
