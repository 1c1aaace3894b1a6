"""The chart's values as chart users expect them: checked by values.schema.json at install, the
usual overrides, a PodDisruptionBudget for a standby, the log level and extra flags."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from glideslope.sandbox.build import ensure_helm
from tests.unit.test_chart_rbac import CHART, render

pytestmark = pytest.mark.unit


def refusal(*values: str) -> str:
    res = subprocess.run([str(ensure_helm()), "template", "glideslope", str(CHART), *values],
                         capture_output=True, text=True)
    assert res.returncode != 0, "helm accepted it"
    return res.stderr


def operator_args(objs: list[dict[str, Any]]) -> list[str]:
    deployment = next(o for o in objs if o["kind"] == "Deployment")
    args: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


@pytest.mark.parametrize(("values", "said"), [
    (("--set", "watchNamespace=shop"), "additional properties 'watchNamespace' not allowed"),
    (("--set", "logLevel=loud"), "/logLevel"),
    (("--set", "metrics.port=70000"), "/metrics/port"),
    (("--set", "watchNamespaces={Shop}"), "/watchNamespaces/0"),
    (("--set", "prometheusUrl=prometheus:9090"), "/prometheusUrl"),
])
def test_the_schema_refuses_a_typo_or_a_bad_value(values: tuple[str, ...], said: str) -> None:
    assert said in refusal(*values)


def test_the_defaults_pass_the_schema() -> None:
    schema = Path(CHART, "values.schema.json")
    assert schema.exists()
    assert yaml.safe_load(Path(CHART, "values.yaml").read_text())  # and render() below validates it
    assert operator_args(render())


def test_name_overrides() -> None:
    objs = render("--set", "fullnameOverride=rollouts")
    assert next(o for o in objs if o["kind"] == "Deployment")["metadata"]["name"] == "rollouts"
    objs = render("--set", "nameOverride=gs")
    deployment = next(o for o in objs if o["kind"] == "Deployment")
    assert deployment["metadata"]["name"] == "glideslope-gs"
    assert deployment["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == "gs"


def test_a_standby_gets_a_disruption_budget() -> None:
    assert not [o for o in render() if o["kind"] == "PodDisruptionBudget"]  # one replica: nothing to keep
    pdb = next(o for o in render("--set", "replicas=2") if o["kind"] == "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == "glideslope"


def test_log_level_and_extra_flags_reach_the_operator() -> None:
    args = operator_args(render("--set", "logLevel=debug", "--set", "extraArgs={--interval=1}"))
    assert "--log-level=debug" in args and args[-1] == "--interval=1"
