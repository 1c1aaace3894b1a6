"""`kubectl release lint` and `kubectl release set image`, offline."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from glideslope.cli import lint
from glideslope.cli.plugin import PluginError, image_patch, run
from tests.e2e.invalid import base

pytestmark = pytest.mark.unit

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


def _lint(tmp_path: Path, *docs: object) -> tuple[int, list[str]]:
    path = tmp_path / "release.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    lines: list[str] = []
    return lint.run([str(path)], lines.append), lines


def test_every_example_is_valid() -> None:
    lines: list[str] = []
    assert lint.run([str(p) for p in EXAMPLES], lines.append) == 0, lines


def test_a_bad_field_is_named_with_the_api_server_spelling(tmp_path: Path) -> None:
    bad = base()
    bad["spec"]["strategy"]["canary"]["steps"][0] = {"setWeight": 150}
    code, lines = _lint(tmp_path, bad)
    assert code == 1
    assert any(": spec.strategy.canary.steps[0].setWeight:" in line for line in lines), lines
    assert not any("spec.spec" in line for line in lines)  # the operator's Degraded message said so


def test_a_condition_is_checked_as_the_operator_checks_it(tmp_path: Path) -> None:
    bad = base()
    bad["spec"]["analysis"]["triggers"][0]["failureCondition"] = "result.exists(x, x > 1)"
    code, lines = _lint(tmp_path, bad, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    assert code == 1 and any("spec.analysis.triggers[0].failureCondition" in line for line in lines), lines
    assert len(lines) == 1  # the ConfigMap is not a Release: skipped


def test_analysis_templates_are_linted_too(tmp_path: Path) -> None:
    shipped = Path(__file__).resolve().parents[2] / "deploy" / "analysis-templates.yaml"
    lines: list[str] = []
    assert lint.run([str(shipped)], lines.append) == 0, lines
    assert lines[0].endswith("ClusterAnalysisTemplate error-rate: valid")
    bad = {"apiVersion": "glideslope.dev/v1alpha1", "kind": "AnalysisTemplate", "metadata": {"name": "checks"},
           "spec": {"args": [{"name": "window"}], "triggers": [
               {"name": "a", "query": "x[{{args.windw}}]", "failureCondition": "result > 1"},
               {"name": "b", "query": "x", "failureCondition": "result >"},
               {"name": "c", "successCondition": "result < 1",
                "provider": {"web": {"url": "https://s.example/x", "jsonPath": "$..["}}}]}}
    code, lines = _lint(tmp_path, bad)
    assert code == 1
    assert [line.split(": ", 2)[2] for line in lines] == [
        "spec.triggers[0]: {{args.windw}}: the template declares no arg 'windw'",
        lines[1].split(": ", 2)[2],
        "spec.triggers[2].provider.web.jsonPath: invalid JSONPath '$..[': Parse error near the end of string!"]
    assert lines[1].startswith(f"{tmp_path / 'release.yaml'}: AnalysisTemplate checks: "
                               "spec.triggers[1].failureCondition:"), lines


def test_no_release_or_an_unreadable_file_is_exit_2(tmp_path: Path) -> None:
    assert _lint(tmp_path, {"apiVersion": "v1", "kind": "ConfigMap"})[0] == 2
    assert lint.run([str(tmp_path / "missing.yaml")], [].append) == 2
    (tmp_path / "broken.yaml").write_text("spec: [unclosed")
    assert lint.run([str(tmp_path / "broken.yaml")], [].append) == 2


def test_the_plugin_lints_without_a_cluster(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(base()))
    assert run(["lint", str(path)]) == 0


def test_set_image_patches_the_container_named_and_guards_the_version_read() -> None:
    body = copy.deepcopy(base())
    body["metadata"]["resourceVersion"] = "42"
    container = body["spec"]["template"]["spec"]["containers"][0]["name"]
    patch = image_patch(body, [f"{container}=registry.example/shop/checkout:2.6.0"], "2.6.0")
    assert patch["metadata"] == {"resourceVersion": "42"}
    assert patch["spec"]["version"] == "2.6.0"
    assert patch["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/shop/checkout:2.6.0"
    assert body["spec"]["template"]["spec"]["containers"][0]["image"] != "registry.example/shop/checkout:2.6.0"
    with pytest.raises(PluginError, match="no container 'nope'"):
        image_patch(body, ["nope=x:1"], None)
    with pytest.raises(PluginError, match="not CONTAINER=IMAGE"):
        image_patch(body, ["x"], None)
