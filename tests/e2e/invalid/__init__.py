"""The catalogue of invalid Releases: each is a valid base manifest with one mutation, and the
text the API server's error must contain (the field path, so users see what to fix).

Shared by the e2e test (the real API server rejects each) and a unit test (the models or the
CRD's CEL rules, evaluated locally, reject each).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Manifest = dict[str, Any]


def base() -> Manifest:
    """A valid Canary Release that exercises gates of every kind, triggers and notifications."""
    return {
        "apiVersion": "glideslope.dev/v1alpha1",
        "kind": "Release",
        "metadata": {"name": "checkout"},
        "spec": {
            "version": "2.5.0",
            "replicas": 4,
            "selector": {"matchLabels": {"app": "checkout"}},
            "template": {
                "metadata": {"labels": {"app": "checkout"}},
                "spec": {"containers": [{"name": "app", "image": "registry.example/shop/checkout:2.5.0"}]},
            },
            "service": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
            "strategy": {"type": "Canary", "canary": {"steps": [
                {"setWeight": 10}, {"pause": {"duration": "30s"}}, {"analysis": {"duration": "60s"}},
                {"setWeight": 50}, {"pause": {}},
            ]}},
            "gates": [
                {"name": "change-approved", "stage": "preDeploy", "approval": {}},
                {"name": "business-hours", "stage": "preDeploy", "window": {
                    "timezone": "Europe/Berlin", "days": ["Mon", "Tue"], "start": "09:00", "end": "16:00",
                    "freezes": [{"start": "2026-12-20T00:00:00Z", "end": "2027-01-05T00:00:00Z"}]}},
                {"name": "no-critical-alerts",
                 "metric": {"query": "vector(0)", "successCondition": "result == 0.0"}},
                {"name": "change-ticket", "webhook": {"url": "https://change.example/api/check"}},
                {"name": "smoke-tests", "stage": "postDeploy", "job": {"template": {"spec": {
                    "containers": [{"name": "smoke", "image": "registry.example/smoke:1"}],
                    "restartPolicy": "Never"}}}},
            ],
            "analysis": {"interval": "30s", "triggers": [
                {"name": "error-rate", "severity": "critical", "query": "sum(rate(x[1m]))",
                 "failureCondition": "result > 0.001"},
            ]},
            "notifications": [
                {"name": "deploys", "webhook": {"url": "https://hooks.example/x", "format": "slack"},
                 "events": ["Started", "Failed"]},
            ],
        },
    }


@dataclass(frozen=True)
class Case:
    id: str
    mutate: Callable[[Manifest], None]
    expected: str
    """Text the API server's error must contain: the path of the offending field."""

    def manifest(self) -> Manifest:
        doc = copy.deepcopy(base())
        self.mutate(doc)
        return doc


def _set(path: str, value: Any) -> Callable[[Manifest], None]:
    """A mutation setting a dotted path; integer parts index lists."""
    def mutate(doc: Manifest) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value
    return mutate


def _del(path: str) -> Callable[[Manifest], None]:
    def mutate(doc: Manifest) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[last]
    return mutate


def _all(*mutations: Callable[[Manifest], None]) -> Callable[[Manifest], None]:
    def mutate(doc: Manifest) -> None:
        for m in mutations:
            m(doc)
    return mutate


STEPS = "spec.strategy.canary.steps"
_JUDGE_METRIC = {"name": "errors", "query": 'sum(rate(x{revision="{{sideRevision}}"}[10s]))'}
_JUDGE: Manifest = {"baseline": True, "metrics": [_JUDGE_METRIC]}
WINDOW = "spec.gates.1.window"
TRIGGER = "spec.analysis.triggers.0"

CASES: list[Case] = [
    # The release as a whole
    Case("name-too-long", _set("metadata.name", "a" * 70), "metadata.name"),
    Case("name-dotted-default-service", _set("metadata.name", "checkout.v2"), "spec.service.name is required"),
    Case("name-long-default-preview", _set("metadata.name", "c" * 60), "spec.service.previewName is required"),
    Case("service-name-long-default-preview", _set("spec.service.name", "s" * 60),
         "spec.service.previewName is required"),
    Case("replicas-over-int32", _set("spec.replicas", 2**31), "spec.replicas:"),
    Case("version-missing", _del("spec.version"), "spec.version: Required value"),
    Case("version-empty", _set("spec.version", ""), "spec.version:"),
    Case("replicas-negative", _set("spec.replicas", -1), "spec.replicas:"),
    Case("paused-not-bool", _set("spec.paused", "yes"), "spec.paused:"),
    Case("selector-missing", _del("spec.selector"), "spec.selector: Required value"),
    Case("selector-empty", _set("spec.selector.matchLabels", {}), "spec.selector.matchLabels:"),
    Case("selector-not-in-template", _set("spec.selector.matchLabels", {"app": "other"}),
         "spec.selector.matchLabels:"),
    Case("template-without-containers", _set("spec.template.spec.containers", []),
         "spec.template.spec.containers:"),
    Case("template-label-invalid", _set("spec.template.metadata.labels.tier", "web tier"),
         "spec.template.metadata.labels.tier:"),
    # Strategy
    Case("strategy-type-unknown", _set("spec.strategy.type", "Linear"),
         "spec.strategy.type: Unsupported value"),
    Case("strategy-block-mismatch", _set("spec.strategy.type", "Rolling"),
         "spec.strategy: Required value: spec.strategy.rolling must be set when spec.strategy.type is"),
    Case("strategy-two-blocks", _set("spec.strategy.rolling", {}),
         "spec.strategy: Invalid value: \"object\": spec.strategy must set exactly one of"),
    Case("strategy-no-block", _del("spec.strategy.canary"), "spec.strategy:"),
    Case("step-two-keys", _set(f"{STEPS}.0", {"setWeight": 10, "pause": {}}), f"{STEPS}[0]:"),
    Case("step-empty", _set(f"{STEPS}.0", {}), f"{STEPS}[0]:"),
    Case("step-weight-over-100", _set(f"{STEPS}.0.setWeight", 150), f"{STEPS}[0].setWeight:"),
    Case("step-weight-negative", _set(f"{STEPS}.0.setWeight", -5), f"{STEPS}[0].setWeight:"),
    Case("step-duration-malformed", _set(f"{STEPS}.1.pause.duration", "30 seconds"),
         f"{STEPS}[1].pause.duration:"),
    Case("step-analysis-without-duration", _set(f"{STEPS}.2.analysis", {}), f"{STEPS}[2].analysis.duration:"),
    Case("steps-empty", _set(STEPS, []), f"{STEPS}:"),
    Case("steps-too-many", _set(STEPS, [{"setWeight": 1}] * 65), f"{STEPS}: Too many"),
    Case("traffic-routing-empty", _set("spec.strategy.canary.trafficRouting", {}),
         "spec.strategy.canary.trafficRouting:"),
    Case("traffic-routing-two-routers", _set("spec.strategy.canary.trafficRouting",
                                             {"nginx": {"ingress": "checkout"},
                                              "istio": {"virtualService": "checkout", "routes": ["primary"]}}),
         "spec.strategy.canary.trafficRouting: Invalid value"),
    Case("verify-two-routers", _set("spec.strategy.canary.trafficRouting", {
        "gatewayAPI": {"httpRoute": "web"}, "nginx": {"ingress": "web"}, "verify": {}}),
         "spec.strategy.canary.trafficRouting: Invalid value"),
    Case("verify-tolerance-over-50", _set("spec.strategy.canary.trafficRouting", {"verify": {"tolerance": 51}}),
         "spec.strategy.canary.trafficRouting.verify.tolerance:"),
    Case("verify-timeout-zero", _set("spec.strategy.canary.trafficRouting", {"verify": {"timeoutSeconds": 0}}),
         "spec.strategy.canary.trafficRouting.verify.timeoutSeconds:"),
    Case("verify-timeout-over-an-hour", _set("spec.strategy.canary.trafficRouting",
                                             {"verify": {"timeoutSeconds": 3601}}),
         "spec.strategy.canary.trafficRouting.verify.timeoutSeconds:"),
    Case("verify-query-too-long", _set("spec.strategy.canary.trafficRouting", {"verify": {"query": "q" * 9000}}),
         "spec.strategy.canary.trafficRouting.verify.query:"),
    Case("istio-without-routes", _set("spec.strategy.canary.trafficRouting",
                                      {"istio": {"virtualService": "checkout", "routes": []}}),
         "spec.strategy.canary.trafficRouting.istio.routes:"),
    Case("nginx-ingress-too-long", _set("spec.strategy.canary.trafficRouting", {"nginx": {"ingress": "i" * 250}}),
         "spec.strategy.canary.trafficRouting.nginx.ingress:"),
    Case("header-route-without-router", _set(f"{STEPS}.0", {"setHeaderRoute": {"name": "beta", "match": [
        {"headerName": "x-beta", "headerValue": {"exact": "1"}}]}}), f"{STEPS}: Invalid value"),
    Case("mirror-route-with-nginx", _all(
        _set("spec.strategy.canary.trafficRouting", {"nginx": {"ingress": "checkout"}}),
        _set(f"{STEPS}.0", {"setMirrorRoute": {"name": "shadow", "percentage": 10}})),
         "ingress-nginx cannot mirror"),
    Case("step-header-and-weight", _set(f"{STEPS}.0", {"setWeight": 10, "setHeaderRoute": {"name": "beta"}}),
         f"{STEPS}[0]:"),
    Case("header-value-two-kinds", _set(f"{STEPS}.0", {"setHeaderRoute": {"name": "beta", "match": [
        {"headerName": "x-beta", "headerValue": {"exact": "1", "prefix": "1"}}]}}),
         f"{STEPS}[0].setHeaderRoute.match[0].headerValue:"),
    Case("header-regex-too-long", _set(f"{STEPS}.0", {"setHeaderRoute": {"name": "beta", "match": [
        {"headerName": "x-beta", "headerValue": {"regex": "a" * 257}}]}}),
         f"{STEPS}[0].setHeaderRoute.match[0].headerValue.regex:"),
    Case("header-matches-too-many", _set(f"{STEPS}.0", {"setHeaderRoute": {"name": "beta", "match": [
        {"headerName": f"x-{i}", "headerValue": {"exact": "1"}} for i in range(9)]}}),
         f"{STEPS}[0].setHeaderRoute.match: Too many"),
    Case("header-name-invalid", _set(f"{STEPS}.0", {"setHeaderRoute": {"name": "beta", "match": [
        {"headerName": "x beta", "headerValue": {"exact": "1"}}]}}),
         f"{STEPS}[0].setHeaderRoute.match[0].headerName:"),
    Case("mirror-percentage-over-100", _set(f"{STEPS}.0", {"setMirrorRoute": {"name": "shadow", "percentage": 101}}),
         f"{STEPS}[0].setMirrorRoute.percentage:"),
    Case("traffic-routing-without-service",
         _all(_set("spec.strategy.canary.trafficRouting", {"gatewayAPI": {"httpRoute": "checkout"}}),
              _del("spec.service")), "spec.service: Required value"),
    Case("bluegreen-without-service",
         _all(_set("spec.strategy", {"type": "BlueGreen", "blueGreen": {}}), _del("spec.service")),
         "spec.service: Required value"),
    Case("bluegreen-autopromotion-negative",
         _set("spec.strategy", {"type": "BlueGreen", "blueGreen": {"autoPromotionSeconds": -1}}),
         "spec.strategy.blueGreen.autoPromotionSeconds:"),
    Case("rolling-both-zero",
         _set("spec.strategy", {"type": "Rolling", "rolling": {"maxSurge": 0, "maxUnavailable": "0%"}}),
         "spec.strategy.rolling.maxSurge:"),
    Case("rolling-percent-over-100",
         _set("spec.strategy", {"type": "Rolling", "rolling": {"maxSurge": "150%"}}),
         "spec.strategy.rolling.maxSurge:"),
    Case("rolling-not-a-percent",
         _set("spec.strategy", {"type": "Rolling", "rolling": {"maxUnavailable": "1/4"}}),
         "spec.strategy.rolling.maxUnavailable:"),
    Case("rolling-negative-count",
         _set("spec.strategy", {"type": "Rolling", "rolling": {"maxSurge": -1}}),
         "spec.strategy.rolling.maxSurge:"),
    # Gates
    Case("gate-duplicate-name", _set("spec.gates.1.name", "change-approved"),
         "spec.gates[1]: Duplicate value"),
    Case("gate-two-kinds", _set("spec.gates.0.webhook", {"url": "https://x.example"}), "spec.gates[0]:"),
    Case("gate-no-kind", _set("spec.gates.0", {"name": "empty"}), "spec.gates[0]:"),
    Case("gate-stage-unknown", _set("spec.gates.0.stage", "preFlight"),
         "spec.gates[0].stage: Unsupported value"),
    Case("gate-name-invalid", _set("spec.gates.0.name", "Change_Approved"), "spec.gates[0].name:"),
    Case("window-start-malformed", _set(f"{WINDOW}.start", "9:00"), "spec.gates[1].window.start:"),
    Case("window-end-out-of-range", _set(f"{WINDOW}.end", "24:30"), "spec.gates[1].window.end:"),
    Case("window-start-without-end", _del(f"{WINDOW}.end"), "spec.gates[1].window.start:"),
    Case("window-start-equals-end", _set(f"{WINDOW}.end", "09:00"), "spec.gates[1].window.end:"),
    Case("window-empty", _set(WINDOW, {"timezone": "UTC"}), "spec.gates[1].window:"),
    Case("window-day-unknown", _set(f"{WINDOW}.days", ["Monday"]), "spec.gates[1].window.days[0]:"),
    Case("window-day-duplicate", _set(f"{WINDOW}.days", ["Mon", "Mon"]), "spec.gates[1].window.days[1]:"),
    Case("window-timezone-malformed", _set(f"{WINDOW}.timezone", "Europe Berlin"),
         "spec.gates[1].window.timezone:"),
    Case("freeze-end-before-start", _set(f"{WINDOW}.freezes.0.end", "2026-12-01T00:00:00Z"),
         "spec.gates[1].window.freezes[0].end:"),
    Case("freeze-start-not-a-time", _set(f"{WINDOW}.freezes.0.start", "next friday"),
         "spec.gates[1].window.freezes[0].start:"),
    Case("freeze-without-zone", _set(f"{WINDOW}.freezes.0.start", "2026-12-20T00:00:00"),
         "spec.gates[1].window.freezes[0].start:"),
    Case("metric-gate-without-condition", _del("spec.gates.2.metric.successCondition"),
         "spec.gates[2].metric.successCondition:"),
    Case("webhook-gate-not-http", _set("spec.gates.3.webhook.url", "ftp://change.example/x"),
         "spec.gates[3].webhook.url:"),
    Case("webhook-gate-url-and-url-from",
         _set("spec.gates.3.webhook.urlFrom", {"secretKeyRef": {"name": "s", "key": "url"}}),
         "spec.gates[3].webhook.url:"),
    Case("job-gate-restart-always", _set("spec.gates.4.job.template.spec.restartPolicy", "Always"),
         "spec.gates[4].job.template.spec.restartPolicy:"),
    Case("job-gate-timeout-zero", _set("spec.gates.4.job.timeoutSeconds", 0),
         "spec.gates[4].job.timeoutSeconds:"),
    Case("release-gate-name-invalid",
         _set("spec.gates.0", {"name": "staging", "release": {"name": "Checkout"}}),
         "spec.gates[0].release.name:"),
    # Analysis
    Case("analysis-interval-without-unit", _set("spec.analysis.interval", "30"), "spec.analysis.interval:"),
    Case("analysis-interval-zero", _set("spec.analysis.interval", "0s"), "spec.analysis.interval:"),
    Case("prometheus-address-not-url", _set("spec.analysis.prometheus", {"address": "prometheus:9090"}),
         "spec.analysis.prometheus.address:"),
    Case("trigger-duplicate-name",
         lambda d: d["spec"]["analysis"]["triggers"].append(dict(d["spec"]["analysis"]["triggers"][0])),
         "spec.analysis.triggers[1]: Duplicate value"),
    Case("trigger-without-condition", _del(f"{TRIGGER}.failureCondition"),
         "spec.analysis.triggers[0].failureCondition:"),
    Case("trigger-without-query", _del(f"{TRIGGER}.query"),
         "spec.analysis.triggers[] must set exactly one of query, provider"),
    Case("trigger-severity-unknown", _set(f"{TRIGGER}.severity", "urgent"),
         "spec.analysis.triggers[0].severity: Unsupported value"),
    Case("trigger-on-no-data-pass", _set(f"{TRIGGER}.onNoData", "Pass"),
         "spec.analysis.triggers[0].onNoData: Unsupported value"),
    Case("trigger-failure-limit-zero", _set(f"{TRIGGER}.failureLimit", 0),
         "spec.analysis.triggers[0].failureLimit:"),
    # The judge
    Case("judge-marginal-above-pass", _set("spec.analysis.judge", {**_JUDGE, "passScore": 70, "marginalScore": 80}),
         "spec.analysis.judge.marginalScore"),
    Case("judge-without-metrics", _set("spec.analysis.judge", {**_JUDGE, "metrics": []}),
         "spec.analysis.judge.metrics:"),
    Case("judge-direction-unknown", _set("spec.analysis.judge", {**_JUDGE, "metrics": [
        {**_JUDGE_METRIC, "direction": "up"}]}), "spec.analysis.judge.metrics[0].direction: Unsupported value"),
    Case("judge-metric-duplicate-name", _set("spec.analysis.judge", {**_JUDGE, "metrics": [
        _JUDGE_METRIC, _JUDGE_METRIC]}), "spec.analysis.judge.metrics[1]: Duplicate value"),
    Case("judge-min-samples-too-few", _set("spec.analysis.judge", {**_JUDGE, "minSamples": 2}),
         "spec.analysis.judge.minSamples:"),
    Case("judge-alpha-too-large", _set("spec.analysis.judge", {**_JUDGE, "alpha": 0.9}),
         "spec.analysis.judge.alpha:"),
    Case("judge-step-too-short", _set("spec.analysis.judge", {**_JUDGE, "step": "500ms"}),
         "spec.analysis.judge.step"),
    Case("judge-horizon-too-short", _set("spec.analysis.judge", {**_JUDGE, "horizon": "5s"}),
         "spec.analysis.judge.horizon"),
    Case("judge-baseline-without-canary", _all(
        _set("spec.analysis.judge", _JUDGE),
        _set("spec.strategy", {"type": "Rolling", "rolling": {}})), "spec.analysis.judge.baseline"),
    Case("judge-tolerance-negative", _set("spec.analysis.judge", {**_JUDGE, "metrics": [
        {**_JUDGE_METRIC, "tolerance": -1}]}), "spec.analysis.judge.metrics[0].tolerance:"),
    Case("validation-window-negative", _set("spec.validation", {"windowSeconds": -5}),
         "spec.validation.windowSeconds:"),
    Case("rollback-automatic-not-bool", _set("spec.rollback", {"automatic": "no"}),
         "spec.rollback.automatic:"),
    # Notifications
    Case("notification-format-unknown", _set("spec.notifications.0.webhook.format", "xml"),
         "spec.notifications[0].webhook.format: Unsupported value"),
    Case("notification-event-unknown", _set("spec.notifications.0.events", ["Deployed"]),
         "spec.notifications[0].events[0]: Unsupported value"),
    Case("notification-without-url", _set("spec.notifications.0.webhook", {"format": "json"}),
         "spec.notifications[0].webhook.url:"),
    Case("notification-pagerduty-without-routing-key",
         _set("spec.notifications.0.webhook", {"format": "pagerduty"}),
         "spec.notifications[0].webhook.routingKeyFrom"),
    Case("notification-routing-key-without-pagerduty",
         _set("spec.notifications.0.webhook.routingKeyFrom", {"secretKeyRef": {"name": "pd", "key": "key"}}),
         "spec.notifications[0].webhook.routingKeyFrom"),
    Case("notification-pagerduty-with-template",
         _set("spec.notifications.0.webhook", {"format": "pagerduty", "template": "{{ summary }}",
                                               "routingKeyFrom": {"secretKeyRef": {"name": "pd", "key": "key"}}}),
         "spec.notifications[0].webhook.template"),
    Case("notification-template-too-long", _set("spec.notifications.0.webhook.template", "x" * 8193),
         "spec.notifications[0].webhook.template"),
    Case("notification-duplicate-name",
         lambda d: d["spec"]["notifications"].append(copy.deepcopy(d["spec"]["notifications"][0])),
         "spec.notifications[1]: Duplicate value"),
    # Service
    Case("service-port-out-of-range", _set("spec.service.ports.0.port", 70000),
         "spec.service.ports[0].port:"),
    Case("service-ports-unnamed", _set("spec.service.ports", [{"port": 80}, {"port": 81}]),
         "spec.service.ports:"),
    Case("service-name-invalid", _set("spec.service.name", "Checkout"), "spec.service.name:"),
    Case("service-preview-name-same",
         _set("spec.service", {"name": "a", "previewName": "a", "ports": [{"port": 80}]}),
         "spec.service.previewName:"),
    Case("service-target-port-invalid", _set("spec.service.ports.0.targetPort", "HTTP_PORT"),
         "spec.service.ports[0].targetPort:"),
    # workloadRef
    Case("workload-ref-and-template",
         _set("spec.workloadRef", {"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout"}),
         "spec.template: exactly one of spec.template and spec.workloadRef"),
    Case("neither-template-nor-workload-ref", _del("spec.template"),
         "spec.template: exactly one of spec.template and spec.workloadRef"),
    Case("workload-ref-kind", _all(_del("spec.template"), _set(
        "spec.workloadRef", {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "checkout"})),
         "spec.workloadRef.kind:"),
    Case("workload-ref-api-version", _all(_del("spec.template"), _set(
        "spec.workloadRef", {"apiVersion": "apps/v1beta1", "kind": "Deployment", "name": "checkout"})),
         "spec.workloadRef.apiVersion:"),
    Case("workload-ref-scale-down", _all(_del("spec.template"), _set(
        "spec.workloadRef", {"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout",
                             "scaleDown": "later"})),
         "spec.workloadRef.scaleDown: Unsupported value"),
    Case("workload-ref-name-invalid", _all(_del("spec.template"), _set(
        "spec.workloadRef", {"apiVersion": "apps/v1", "kind": "Deployment", "name": "Checkout_1"})),
         "spec.workloadRef.name:"),
]
