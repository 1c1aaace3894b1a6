"""The monitoring files (charts/glideslope/files/): the rules pass promtool, alert as intended, and
use only metrics that exist; the dashboard is valid; the chart renders both unchanged."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from glideslope.metrics import OperatorMetrics
from glideslope.sandbox.build import ensure_helm
from glideslope.sandbox.simulator import MetricsSink

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "glideslope"
RULES = CHART / "files" / "prometheus-rules.yaml"
DASHBOARD = CHART / "files" / "glideslope-dashboard.json"

# A glideslope_*/http_* name that is not part of a recording rule's level:metric:operation name.
METRIC = re.compile(r"(?<![\w:])((?:glideslope|http)_[a-z0-9_]+)(?![\w:])")
RECORDED = re.compile(r"(?<![\w:])([a-z_]+:[a-z0-9_]+:[a-z0-9_]+)(?![\w:])")
SELECTOR = re.compile(r"(?<![\w:])([a-z_:][a-z0-9_:]*)\s*\{([^}]*)\}")
MATCHER = re.compile(r"([a-z_]\w*)\s*(?:=~|!~|!=|=)")
# Labels Prometheus adds at scrape time.
TARGET_LABELS = {"job", "instance"}


def _exposed(metrics: list[Counter | Gauge | Histogram]) -> dict[str, set[str]]:
    """Series names as Prometheus scrapes them, with their label names."""
    out: dict[str, set[str]] = {}
    for m in metrics:
        name, kind, labels = m._name, m._type, set(m._labelnames) | TARGET_LABELS
        if kind == "counter":
            out[f"{name}_total"] = labels
        elif kind == "histogram":
            out.update({f"{name}_bucket": labels | {"le"}, f"{name}_sum": labels, f"{name}_count": labels})
        else:
            out[name] = labels
    return out


def _known_series() -> dict[str, set[str]]:
    operator = OperatorMetrics()
    families = [v for v in vars(operator).values() if isinstance(v, Counter | Gauge | Histogram)]
    traffic = MetricsSink(CollectorRegistry())
    known = _exposed([*families, traffic.requests, traffic.duration])
    known["up"] = set(TARGET_LABELS)
    return known


def _groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULES.read_text())["groups"]
    return groups


def _rules() -> list[dict[str, Any]]:
    return [r for g in _groups() for r in g["rules"]]


def _recorded() -> dict[str, set[str]]:
    # level:metric:operation: the level names the labels that are kept.
    return {r["record"]: set(r["record"].split(":")[0].split("_")) - {""} for r in _rules() if "record" in r}


def _dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def _dashboard_exprs() -> list[str]:
    exprs = [t["expr"] for p in _dashboard()["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in _dashboard()["templating"]["list"] if v["type"] == "query"]
    return exprs


def _all_exprs() -> list[str]:
    return [r["expr"] for r in _rules()] + _dashboard_exprs()


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.fail("promtool is not installed: it comes with Debian's prometheus package (`make system-deps`)")
    return found


def test_rule_groups_pass_promtool_check(promtool: str, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": _groups()}))
    out = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


# Series at 1m steps; `_` is no sample. promtool runs the real rule engine over them.
RULE_TESTS = """
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # A rollback counted for the first time: the series starts at 1.
      - series: 'glideslope_rollbacks_total{namespace="shop",release="web",strategy="Canary"}'
        values: '_x5 1x40'
      - series: 'glideslope_release_phase{namespace="shop",release="web",phase="Progressing"}'
        values: '1x90'
      - series: 'glideslope_release_step{namespace="shop",release="web"}'
        values: '2x90'
      # Paused for 90m, but moving on a step every half hour: not stuck.
      - series: 'glideslope_release_phase{namespace="shop",release="api",phase="Paused"}'
        values: '1x90'
      - series: 'glideslope_release_step{namespace="shop",release="api"}'
        values: '1x29 2x29 3x30'
      - series: 'up{job="glideslope-metrics"}'
        values: '0x20'
    alert_rule_test:
      - eval_time: 8m
        alertname: GlideslopeRollback
        exp_alerts:
          - exp_labels: {severity: warning, namespace: shop, release: web, strategy: Canary}
            exp_annotations:
              summary: "Release shop/web rolled back"
              description: >-
                Release shop/web (Canary) rolled back to its stable revision in the last 10 minutes.
                See `kubectl release history web -n shop`.
      - eval_time: 30m
        alertname: GlideslopeRollback
      - eval_time: 50m
        alertname: GlideslopeReleaseStuck
      - eval_time: 61m
        alertname: GlideslopeReleaseStuck
        exp_alerts:
          - exp_labels: {severity: warning, namespace: shop, release: web, phase: Progressing}
            exp_annotations:
              summary: "Release shop/web stuck in Progressing"
              description: >-
                Release shop/web has been Progressing at the same step for more than 1h.
                See `kubectl release status web -n shop`.
      - eval_time: 10m
        alertname: GlideslopeOperatorAbsent
        exp_alerts:
          - exp_labels: {severity: critical}
            exp_annotations:
              summary: "The Glideslope operator is down or not scraped"
              description: >-
                No Prometheus target with a job matching .*glideslope.* has been up for 5 minutes:
                Releases are not reconciled (or not observed), and the other Glideslope alerts cannot fire.
"""

# The DORA windows are days long: evaluate hourly.
DORA_TESTS = """
rule_files: [rules.yaml]
evaluation_interval: 1h
tests:
  - interval: 1h
    input_series:
      # Per hour: 3 succeeded, 1 rolled back (a change failure), 5 superseded (not deployments).
      - series: 'glideslope_rollouts_total{namespace="shop",release="web",strategy="Canary",outcome="Succeeded"}'
        values: '0+3x200'
      - series: 'glideslope_rollouts_total{namespace="shop",release="web",strategy="Canary",outcome="RolledBack"}'
        values: '0+1x200'
      - series: 'glideslope_rollouts_total{namespace="shop",release="web",strategy="Canary",outcome="Superseded"}'
        values: '0+5x200'
      - series: 'glideslope_change_failures_total{namespace="shop",release="web",strategy="Canary"}'
        values: '0+1x200'
      - series: 'glideslope_rollback_seconds_sum{strategy="Canary"}'
        values: '0+30x200'
      - series: 'glideslope_rollback_seconds_count{strategy="Canary"}'
        values: '0+1x200'
      # Half of the deployments of shop/api fail.
      - series: 'glideslope_rollouts_total{namespace="shop",release="api",strategy="Canary",outcome="Succeeded"}'
        values: '0+1x200'
      - series: 'glideslope_rollouts_total{namespace="shop",release="api",strategy="Canary",outcome="Failed"}'
        values: '0+1x200'
      - series: 'glideslope_change_failures_total{namespace="shop",release="api",strategy="Canary"}'
        values: '0+1x200'
    promql_expr_test:
      - expr: namespace_release:glideslope_deployments:increase1d
        eval_time: 190h
        exp_samples:
          - labels: 'namespace_release:glideslope_deployments:increase1d{namespace="shop",release="web"}'
            value: 96
          - labels: 'namespace_release:glideslope_deployments:increase1d{namespace="shop",release="api"}'
            value: 48
      - expr: namespace_release:glideslope_change_failure_rate:ratio7d
        eval_time: 190h
        exp_samples:
          - labels: 'namespace_release:glideslope_change_failure_rate:ratio7d{namespace="shop",release="web"}'
            value: 0.25
          - labels: 'namespace_release:glideslope_change_failure_rate:ratio7d{namespace="shop",release="api"}'
            value: 0.5
      - expr: strategy:glideslope_rollback_seconds:mean7d
        eval_time: 190h
        exp_samples:
          - labels: 'strategy:glideslope_rollback_seconds:mean7d{strategy="Canary"}'
            value: 30
    alert_rule_test:
      - eval_time: 190h
        alertname: GlideslopeChangeFailureRateHigh
        exp_alerts:
          - exp_labels: {severity: warning, namespace: shop, release: api}
            exp_annotations:
              summary: "Release shop/api: change failure rate 50%"
              description: >-
                50% of the deployments of Release shop/api in the last 7 days were rolled back or failed
                (DORA change failure rate; threshold 30%).
"""


@pytest.mark.parametrize("tests", [RULE_TESTS, DORA_TESTS], ids=["alerts", "dora"])
def test_rules_alert_and_record_as_intended(promtool: str, tmp_path: Path, tests: str) -> None:
    shutil.copy(RULES, tmp_path / "rules.yaml")
    (tmp_path / "tests.yaml").write_text(tests)
    out = subprocess.run([promtool, "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_alerts_have_severity_and_name_the_release() -> None:
    known = _known_series()
    recorded = _recorded()
    alerts = [r for r in _rules() if "alert" in r]
    assert {a["alert"] for a in alerts} >= {
        "GlideslopeReleaseStuck", "GlideslopeRollback", "GlideslopeChangeFailureRateHigh",
        "GlideslopeSlowRollbacks", "GlideslopeOperatorAbsent", "GlideslopeAPIErrors"}
    for a in alerts:
        assert a["labels"]["severity"] in {"critical", "warning", "info"}, a["alert"]
        assert a["annotations"]["summary"] and a["annotations"]["description"], a["alert"]
        names = set(METRIC.findall(a["expr"])) | set(RECORDED.findall(a["expr"]))
        if "absent(" not in a["expr"] and any("release" in (known | recorded).get(n, set()) for n in names):
            for key in ("summary", "description"):
                assert "$labels.release" in a["annotations"][key], f"{a['alert']} {key} does not name the Release"


def test_every_metric_exists() -> None:
    known = _known_series()
    recorded = _recorded()
    for expr in _all_exprs():
        for name in METRIC.findall(expr):
            assert name in known, f"{name} is not a metric of metrics.py or the simulator: {expr}"
        for name in RECORDED.findall(expr):
            assert name in recorded, f"{name} is not recorded by a rule: {expr}"


def test_every_label_matcher_exists() -> None:
    known = _known_series() | _recorded()
    for expr in _all_exprs():
        for name, matchers in SELECTOR.findall(expr):
            if name not in known:
                continue
            for label in MATCHER.findall(matchers):
                assert label in known[name], f"{name} has no label {label}: {expr}"


def test_dashboard_is_valid() -> None:
    d = _dashboard()
    assert d["uid"] and d["title"] and 36 <= d["schemaVersion"] <= 41
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "release"):
        assert variables[name]["type"] == "query"
        assert variables[name]["definition"].startswith("label_values(")
        assert variables[name]["datasource"]["uid"] == "${datasource}"
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    for p in d["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        if p["type"] == "row":  # a heading: no queries of its own
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["expr"].strip() and t["datasource"]["uid"] == "${datasource}", p["title"]


def test_chart_renders_the_files_unchanged() -> None:
    base = [str(ensure_helm()), "template", "glideslope", str(CHART), "--namespace", "glideslope-system"]
    off = subprocess.run(base, check=True, capture_output=True, text=True).stdout
    assert "PrometheusRule" not in off and "grafana_dashboard" not in off, "monitoring must be off by default"
    on = subprocess.run([*base, "--set", "monitoring.prometheusRule.enabled=true",
                         "--set", "monitoring.dashboard.enabled=true"],
                        check=True, capture_output=True, text=True).stdout
    docs = {d["kind"]: d for d in yaml.safe_load_all(on) if d and d["kind"] in {"PrometheusRule", "ConfigMap"}}
    assert docs["PrometheusRule"]["apiVersion"] == "monitoring.coreos.com/v1"
    assert docs["PrometheusRule"]["spec"] == {"groups": _groups()}
    config_map = docs["ConfigMap"]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["glideslope-dashboard.json"]) == _dashboard()
