"""`kubectl release adopt`: the Release it prints for a Deployment parses, adopts that Deployment,
selects its pods, and carries a strategy and a commented trigger."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from glideslope.api import parse_release
from glideslope.cli.adopt import STRATEGIES, AdoptError, manifest, target

pytestmark = pytest.mark.unit


IMAGE = "registry.example:5000/web:2.4.1"


def deployment(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web", "tier": "front"}},
                                  "spec": {"containers": [{"name": "app", "image": IMAGE}]}},
                     **spec}}


SERVICE = {"metadata": {"name": "web-svc"},
           "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080,
                                                           "protocol": "TCP"}]}}


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_every_strategy_prints_a_release_the_operator_accepts(strategy: str) -> None:
    text = manifest(deployment(), strategy, SERVICE)
    release = parse_release(yaml.safe_load(text))
    spec = release.spec
    assert release.metadata.name == "web" and spec.template is None
    assert spec.workload_ref is not None and spec.workload_ref.name == "web"
    assert spec.selector.match_labels == {"app": "web"} and spec.replicas == 3
    assert spec.strategy.type.value == strategy and spec.version == "2.4.1"
    assert spec.service is not None and spec.service.name == "web-svc" and spec.service.ports[0].target_port == 8080
    assert "kubectl annotate service web-svc glideslope.dev/adopt=web" in text
    # The trigger is there, commented: a user without metrics can apply the manifest as it is.
    assert "#     - name: error-rate" in text and "failureCondition: result > 0.01" in text
    assert not spec.analysis.triggers


def test_without_a_service_and_the_canary_default() -> None:
    release = parse_release(yaml.safe_load(manifest(deployment())))
    assert release.spec.service is None
    assert [s.set_weight for s in release.spec.strategy.canary.steps if s.set_weight] == [20, 50]  # type: ignore[union-attr]


def test_what_cannot_be_adopted_says_why() -> None:
    with pytest.raises(AdoptError, match="matchLabels only"):
        manifest(deployment(selector={"matchExpressions": [{"key": "app", "operator": "Exists"}]}))
    with pytest.raises(AdoptError, match="--service"):
        manifest(deployment(), "BlueGreen")
    with pytest.raises(AdoptError, match="deployment/NAME"):
        target("statefulset/web")
    assert target("deployment/web") == target("deploy/web") == "web"
