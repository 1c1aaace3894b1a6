"""An adopting Release (`spec.workloadRef`): what its Deployment and Services do during the first
rollout, driven through `decide` tick by tick, and what it says after a rollback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from glideslope.api import Phase, PodTemplateSpec, ReleaseSpec, ReleaseStatus, ScaleDown
from glideslope.core.adoption import deployment_replicas, holds_traffic, rolled_back_note, with_note
from glideslope.core.decide import decide
from glideslope.core.model import Observation, RevisionState, ScaleRevision, SetTraffic
from glideslope.core.revision import revision_of

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)
TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "web:1"}]}}


def spec(scale_down: str = "progressively", replicas: int = 4) -> ReleaseSpec:
    """As the engine hands it to the core: the Deployment's template resolved into `template`."""
    parsed = ReleaseSpec.from_dict({
        "version": "1", "replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
        "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "scaleDown": scale_down},
        "service": {"name": "web", "ports": [{"port": 80}]},
        "strategy": {"type": "Canary", "canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "10s"}}]}},
    })
    return parsed.model_copy(update={"template": PodTemplateSpec.from_dict(TEMPLATE)})


def test_the_crd_form_has_no_template_and_defaults_to_progressively() -> None:
    parsed = ReleaseSpec.from_dict({**spec().to_dict(), "template": None})
    assert parsed.template is None and parsed.workload_ref is not None
    defaulted = ReleaseSpec.from_dict({**spec().to_dict(), "workloadRef": {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}}).workload_ref
    assert defaulted is not None and defaulted.scale_down == ScaleDown.PROGRESSIVELY
    with pytest.raises(ValueError, match="workloadRef"):
        revision_of(parsed.template)


def first_rollout(scale_down: str, found: int = 4) -> list[dict[str, Any]]:
    """The first rollout, one pod of the candidate becoming Ready per tick; per tick what the
    Deployment is scaled to, the Release's Ready pods, whether the Services are held, and the
    phase."""
    s = spec(scale_down)
    candidate = revision_of(s.template)
    status = ReleaseStatus()
    deployment = found
    ready = 0
    seen: list[dict[str, Any]] = []
    now = T0
    for _ in range(12):
        revisions = {candidate: RevisionState(s.replicas, ready, ready)} if ready or status.revision else {}
        observation = Observation(generation=1, revisions=revisions, name="web", namespace="shop")
        decision = decide(s, status, observation, now)
        status = decision.status
        wanted = deployment_replicas(s, status, observation, found)
        if wanted is not None:
            deployment = wanted
        held = holds_traffic(s, status)
        traffic = [a for a in decision.actions if isinstance(a, SetTraffic)]
        seen.append({"deployment": deployment, "ready": ready, "held": held, "phase": status.phase,
                     "traffic": traffic, "scaled": [a for a in decision.actions if isinstance(a, ScaleRevision)]})
        if any(isinstance(a, ScaleRevision) for a in decision.actions) or status.revision:
            ready = min(ready + 1, s.replicas)
        now += timedelta(seconds=1)
    return seen


def test_progressively_never_drops_serving_pods_and_ends_at_zero() -> None:
    seen = first_rollout("progressively")
    # Until the first rollout succeeds the Services are held as found, and select both the
    # Deployment's pods and the Release's: together never fewer than the 4 found.
    for tick in seen:
        if tick["held"]:
            assert tick["deployment"] + tick["ready"] >= 4, tick
    assert [t["deployment"] for t in seen[:5]] == [4, 3, 2, 1, 0]
    assert seen[-1]["phase"] == Phase.SUCCEEDED and seen[-1]["deployment"] == 0 and not seen[-1]["held"]
    # The first rollout asks for the candidate at full size at once (nothing of it served yet).
    assert seen[0]["scaled"][0].replicas == 4


def test_onsuccess_keeps_the_deployment_until_the_first_rollout_succeeds() -> None:
    seen = first_rollout("onsuccess")
    for tick in seen:
        assert tick["deployment"] == (0 if tick["phase"] == Phase.SUCCEEDED else 4), tick


def test_never_leaves_the_deployment_alone() -> None:
    s = spec("never")
    status = ReleaseStatus(stable_revision="abc", phase=Phase.SUCCEEDED)
    assert deployment_replicas(s, status, Observation(generation=1), 4) is None
    assert all(t["deployment"] == 4 for t in first_rollout("never"))


def test_services_are_held_only_for_an_adopting_release_before_its_first_success() -> None:
    assert holds_traffic(spec(), ReleaseStatus())
    assert not holds_traffic(spec(), ReleaseStatus(stable_revision="abc"))
    plain = spec().model_copy(update={"workload_ref": None})
    assert not holds_traffic(plain, ReleaseStatus())


def test_a_rolled_back_adopting_release_says_the_deployment_is_the_rolled_back_revision() -> None:
    s = spec()
    status = ReleaseStatus(phase=Phase.ROLLED_BACK, revision="bad", stable_revision="good",
                           message="rolled back to 1 (good); retry to roll out bad again")
    note = rolled_back_note(s, status, "bad")
    assert note is not None
    assert "Deployment web's template is the rolled-back revision bad" in note
    assert "kubectl rollout undo deployment/web" in note
    once = with_note(status.message, note)
    assert once is not None and once.startswith("rolled back to 1 (good)")
    assert with_note(once, note) == once
    # A new template (the next rollout), or another phase: nothing to add.
    assert rolled_back_note(s, status, "fixed") is None
    assert rolled_back_note(s, status.model_copy(update={"phase": Phase.SUCCEEDED}), "bad") is None
