"""The generated CRD: up to date in crds/, structural, and its CEL rules well formed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml

from glideslope.api.crd import openapi_schema, render_crd, render_crd_yaml, structural

pytestmark = pytest.mark.unit

CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / "glideslope.dev_releases.yaml"


def test_checked_in_crd_is_up_to_date() -> None:
    assert CRD_FILE.read_text() == render_crd_yaml(), (
        "crds/ is stale: run `python -m glideslope.api.crd > crds/glideslope.dev_releases.yaml`")


def test_yaml_is_the_dict() -> None:
    docs = [d for d in yaml.safe_load_all(render_crd_yaml()) if d]
    assert docs == [render_crd()]


def test_identity() -> None:
    crd = render_crd()
    assert crd["metadata"]["name"] == "releases.glideslope.dev"
    spec = crd["spec"]
    assert (spec["group"], spec["scope"]) == ("glideslope.dev", "Namespaced")
    assert spec["names"] == {"kind": "Release", "listKind": "ReleaseList", "plural": "releases",
                             "singular": "release", "shortNames": ["rel"], "categories": ["glideslope"]}
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}, "scale": {
        "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector"}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"] if "priority" not in c}
    assert columns == {
        "Version": ".spec.version", "Strategy": ".spec.strategy.type", "Phase": ".status.phase",
        "Step": ".status.stepDisplay", "Weight": ".status.weightDisplay", "Gates": ".status.gatesDisplay",
        "Age": ".metadata.creationTimestamp"}


def _nodes(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path."""
    if not isinstance(node, dict):
        return
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    if "items" in node:
        yield from _nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _nodes(node["additionalProperties"], f"{path}.*")


def test_schema_is_structural() -> None:
    for path, node in _nodes(openapi_schema()):
        assert not {"$ref", "anyOf", "allOf", "oneOf", "title", "$defs", "const"} & set(node), path
        assert "default" not in node or node["default"] is not None, path
        assert ("type" in node or node.get("x-kubernetes-int-or-string")
                or node.get("x-kubernetes-preserve-unknown-fields")), path
        assert not ("properties" in node and "additionalProperties" in node), path
        assert not node.get("uniqueItems"), path  # forbidden; list types say it


def test_embedded_objects_keep_unknown_fields() -> None:
    spec = openapi_schema()["properties"]["spec"]["properties"]
    template = spec["template"]["properties"]
    assert template["spec"]["x-kubernetes-preserve-unknown-fields"] is True
    assert template["metadata"]["x-kubernetes-preserve-unknown-fields"] is True
    job = spec["gates"]["items"]["properties"]["job"]["properties"]["template"]["properties"]
    assert job["spec"]["x-kubernetes-preserve-unknown-fields"] is True
    rolling = spec["strategy"]["properties"]["rolling"]["properties"]
    assert rolling["maxSurge"]["x-kubernetes-int-or-string"] is True
    assert rolling["maxUnavailable"]["x-kubernetes-int-or-string"] is True


def _rules() -> Iterator[tuple[str, dict[str, Any]]]:
    schema = openapi_schema()
    for path, node in _nodes(schema):
        for rule in node.get("x-kubernetes-validations", []):
            yield path, rule


def test_rules_compile_and_name_their_field() -> None:
    env = celpy.Environment()
    rules = list(_rules())
    assert len(rules) >= 20
    for path, rule in rules:
        env.compile(rule["rule"])
        if "messageExpression" in rule:
            env.compile(rule["messageExpression"])
        assert rule["message"].startswith(("spec.", "metadata.")), (path, rule["message"])
        assert rule.get("reason", "FieldValueInvalid") in {
            "FieldValueInvalid", "FieldValueRequired", "FieldValueForbidden", "FieldValueDuplicate"}


def test_selector_is_immutable() -> None:
    selector = openapi_schema()["properties"]["spec"]["properties"]["selector"]
    rule = {"rule": "self == oldSelf", "message": "spec.selector is immutable"}
    assert rule in selector["x-kubernetes-validations"]


def test_spec_lists_are_bounded() -> None:
    """CEL's cost estimate needs a bound on every list a rule may iterate."""
    spec = openapi_schema()["properties"]["spec"]
    for path, node in _nodes(spec):
        if node.get("type") == "array" and not path.endswith(".containers"):
            assert "maxItems" in node, path


def test_strings_read_by_rules_are_bounded() -> None:
    """Every string property of a node with rules has a maxLength (or is an enum/int-or-string)."""
    spec = openapi_schema()["properties"]["spec"]
    for path, node in _nodes(spec):
        if "x-kubernetes-validations" not in node:
            continue
        for name, sub in node.get("properties", {}).items():
            if sub.get("type") == "string" and sub.get("format") != "date-time":
                assert "maxLength" in sub, f"{path}.{name}"


@pytest.mark.parametrize(("schema", "expected"), [
    ({"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "X"}, {"type": "string"}),
    ({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^a$"}], "default": 0},
     {"x-kubernetes-int-or-string": True, "minimum": 0, "pattern": "^a$", "default": 0}),
    ({"type": "object", "additionalProperties": True},
     {"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
    ({"type": "object", "properties": {}, "additionalProperties": False}, {"type": "object"}),
    ({"$defs": {"A": {"type": "object", "x-kubernetes-validations": [{"rule": "a"}], "title": "A"}},
      "$ref": "#/$defs/A", "x-kubernetes-validations": [{"rule": "b"}], "description": "d"},
     {"type": "object", "description": "d", "x-kubernetes-validations": [{"rule": "a"}, {"rule": "b"}]}),
    ({"const": "ab", "type": "string"}, {"enum": ["ab"], "type": "string", "maxLength": 64}),
])
def test_structural_conversion(schema: dict[str, Any], expected: dict[str, Any]) -> None:
    assert structural(schema) == expected


@pytest.mark.parametrize("schema", [
    {"anyOf": [{"type": "integer"}, {"type": "boolean"}]},
    {"type": "integer", "exclusiveMinimum": 0},
    {"description": "no type"},
    {"$defs": {"A": {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}}}, "$ref": "#/$defs/A"},
])
def test_structural_conversion_refuses_what_kubernetes_cannot_take(schema: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"."):
        structural(schema)


def _undescribed(schema: dict[str, Any], path: str) -> list[str]:
    missing: list[str] = []
    for name, field in (schema.get("properties") or {}).items():
        here = f"{path}.{name}"
        if not field.get("description"):
            missing.append(here)
        missing += _undescribed(field, here)
        if isinstance(field.get("items"), dict):
            missing += _undescribed(field["items"], here + "[]")
        if isinstance(field.get("additionalProperties"), dict):
            missing += _undescribed(field["additionalProperties"], here + "{}")
    return missing


def test_every_field_is_explained() -> None:
    """`kubectl explain release.spec...` has something to say about every field: a field
    without an attribute docstring (or `description`) fails here. The API server refuses any
    schema of `metadata`, a description included, and explains it itself."""
    assert _undescribed(openapi_schema(), "release") == ["release.metadata"]
