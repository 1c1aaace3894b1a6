"""`kubectl release adopt deployment/NAME`: a Release manifest that adopts an existing Deployment,
ready to `kubectl apply`. Pure: it is given the Deployment (and Service) as the API returns them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from glideslope.api import API_VERSION, KIND, StrategyType, parse_release
from glideslope.core.model import ADOPT_ANNOTATION

STRATEGIES: dict[str, dict[str, Any]] = {
    StrategyType.CANARY.value: {"canary": {"steps": [
        {"setWeight": 20}, {"analysis": {"duration": "60s"}},
        {"setWeight": 50}, {"analysis": {"duration": "60s"}}]}},
    StrategyType.BLUE_GREEN.value: {"blueGreen": {"autoPromotionSeconds": 60, "scaleDownDelaySeconds": 600}},
    StrategyType.ROLLING.value: {"rolling": {"maxSurge": "25%", "maxUnavailable": 0, "pauseBetweenBatches": "30s"}},
    StrategyType.BIG_BANG.value: {"bigBang": {}},
}
"""The strategy block `adopt` writes for each type: sensible steps to start from."""

TRIGGER = """\
  # Roll back on errors: uncomment once the application's request metrics are in Prometheus.
  # analysis:
  #   interval: 30s
  #   triggers:
  #     - name: error-rate
  #       severity: critical
  #       query: |
  #         sum(rate(http_requests_total{namespace="{{namespace}}",revision="{{revision}}",code=~"5.."}[1m]))
  #         / sum(rate(http_requests_total{namespace="{{namespace}}",revision="{{revision}}"}[1m]))
  #       failureCondition: result > 0.01
"""


class AdoptError(Exception):
    """The Deployment (or Service) cannot be adopted as it is; the message says why."""


def target(text: str) -> str:
    """The Deployment's name from `deployment/NAME` (also `deployments/`, `deploy/`, `deployment.apps/`)."""
    kind, _, name = text.partition("/")
    if kind not in ("deployment", "deployments", "deploy", "deployment.apps", "deployments.apps") or not name:
        raise AdoptError(f"{text}: name a Deployment as deployment/NAME (only a Deployment can be adopted)")
    return name


def manifest(deployment: Mapping[str, Any], strategy: str = StrategyType.CANARY.value,
             service: Mapping[str, Any] | None = None) -> str:
    """The Release adopting `deployment` (as the API returns it), as YAML with comments; with
    `service`, the Release takes that Service over (its ports; it must be handed over with the
    annotation the header says)."""
    meta, spec = deployment.get("metadata") or {}, deployment.get("spec") or {}
    name = meta.get("name") or ""
    selector = spec.get("selector") or {}
    labels = selector.get("matchLabels") or {}
    if selector.get("matchExpressions") or not labels:
        raise AdoptError(f"deployment/{name}: a Release selects its pods with matchLabels only, and this "
                         "Deployment's selector has matchExpressions (or no labels)")
    if strategy == StrategyType.BLUE_GREEN.value and service is None:
        raise AdoptError("--strategy BlueGreen switches a Service: name it with --service")
    release: dict[str, Any] = {
        "apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name},
        "spec": {
            "version": _version(spec),
            "replicas": spec.get("replicas") if spec.get("replicas") is not None else 1,
            "selector": {"matchLabels": dict(labels)},
            "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                            "scaleDown": "progressively"},
        },
    }
    if service is not None:
        release["spec"]["service"] = {"name": (service.get("metadata") or {}).get("name"),
                                      "ports": _ports(service)}
    release["spec"]["strategy"] = {"type": strategy, **STRATEGIES[strategy]}
    parse_release(release)  # what it prints, the operator accepts
    header = [f"# A Release adopting deployment/{name}: apply it, and the operator scales the Deployment down",
              "# as the Release's pods become Ready; a change of the Deployment's template is a rollout."]
    if service is not None:
        service_name = release["spec"]["service"]["name"]
        header.append(f"# First hand the Service over: kubectl annotate service {service_name} "
                      f"{ADOPT_ANNOTATION}={name}")
    text = yaml.safe_dump(release, sort_keys=False)
    return "\n".join(header) + "\n" + text + TRIGGER


def _version(spec: Mapping[str, Any]) -> str:
    """The first container's image tag (a human label; the revision is the template's hash)."""
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or [{}]
    image = str(containers[0].get("image") or "")
    tag = image.rsplit("/", 1)[-1].partition("@")[0].rpartition(":")[2] if ":" in image.rsplit("/", 1)[-1] else ""
    tag = re.sub(r"[^A-Za-z0-9._-]", "", tag)[:128]
    return tag or "1"


def _ports(service: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Service's ports, as `spec.service.ports` writes them."""
    ports = []
    for port in (service.get("spec") or {}).get("ports") or []:
        entry: dict[str, Any] = {"port": port["port"]}
        for key in ("name", "targetPort", "protocol", "appProtocol"):
            if port.get(key) is not None:
                entry[key] = port[key]
        ports.append(entry)
    if not ports:
        raise AdoptError(f"service/{(service.get('metadata') or {}).get('name')} has no ports to serve")
    return ports
