"""The CRD's validation, evaluated without a cluster.

A small emulation of what the API server does with a structural schema: apply defaults, check
the schema keywords (through the pydantic models, which the schema is generated from), check
list-map and set uniqueness, and evaluate every `x-kubernetes-validations` rule with
cel-python. It reports errors the way the API server words them (`path: Required value`...), so
the catalogue of invalid manifests is checked here before any cluster exists; the e2e test
checks the same catalogue against the real API server.
"""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError
from pydantic import ValidationError

from glideslope.api import Release
from glideslope.api.crd import openapi_schema
from tests.e2e.invalid import CASES, Case, base

pytestmark = pytest.mark.unit

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))
SCHEMA = openapi_schema()
_ENV = celpy.Environment()
_PROGRAMS: dict[str, Any] = {}


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Kubernetes defaulting: fill absent properties that have a default, top down."""
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                apply_defaults(sub, value[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for item in value.values():
                apply_defaults(extra, item)
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            apply_defaults(schema["items"], item)
    return value


def _evaluate(rule: str, value: Any) -> Any:
    if rule not in _PROGRAMS:
        _PROGRAMS[rule] = _ENV.program(_ENV.compile(rule))
    return _PROGRAMS[rule].evaluate({"self": json_to_cel(value)})


def cel_errors(schema: dict[str, Any], value: Any, path: str) -> list[str]:
    """Errors from CEL rules and list uniqueness, worded as the API server words them."""
    errors: list[str] = []
    for rule in schema.get("x-kubernetes-validations", []):
        if "oldSelf" in rule["rule"]:
            continue  # transition rules only run on updates
        where = path + rule.get("fieldPath", "")
        try:
            ok = _evaluate(rule["rule"], value)
        except CELEvalError as exc:
            errors.append(f"{where}: Invalid value: error evaluating rule: {exc}")
            continue
        if not ok:
            message = rule["message"]
            if "messageExpression" in rule:
                with contextlib.suppress(CELEvalError):
                    message = str(_evaluate(rule["messageExpression"], value))
            if rule.get("reason") == "FieldValueRequired":
                errors.append(f"{where}: Required value: {message}")
            else:
                shown = ('"object"' if isinstance(value, dict) else '"array"' if isinstance(value, list)
                         else json.dumps(value))
                errors.append(f"{where}: Invalid value: {shown}: {message}")
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                errors += cel_errors(sub, value[name], f"{path}.{name}" if path else name)
    elif isinstance(value, list):
        seen: list[Any] = []
        for i, item in enumerate(value):
            list_type = schema.get("x-kubernetes-list-type")
            key = ({k: item.get(k) for k in schema["x-kubernetes-list-map-keys"]}
                   if list_type == "map" and isinstance(item, dict) else item)
            if list_type in ("map", "set") and key in seen:
                errors.append(f"{path}[{i}]: Duplicate value: {key}")
            seen.append(key)
            errors += cel_errors(schema["items"], item, f"{path}[{i}]")
    return errors


_PYDANTIC_WORDING = {
    "missing": "Required value",
    "enum": "Unsupported value",
    "too_long": "Too many",
}


def _json_path(data: Any, loc: tuple[int | str, ...]) -> str:
    """`spec.gates[1].window` from a pydantic location, dropping union branch tags."""
    path, node = "", data
    for part in loc:
        if isinstance(part, int) and isinstance(node, list) and part < len(node):
            path, node = f"{path}[{part}]", node[part]
        elif isinstance(part, str) and isinstance(node, dict):
            path, node = (f"{path}.{part}" if path else part), node.get(part)
    return path


def schema_errors(manifest: dict[str, Any]) -> list[str]:
    try:
        # Strict JSON mode, as the API server: "yes" is no boolean, "3" no integer.
        Release.model_validate_json(json.dumps(manifest), strict=True)
    except ValidationError as exc:
        return [f"{_json_path(manifest, err['loc'])}: {_PYDANTIC_WORDING.get(err['type'], 'Invalid value')}: "
                f"{err['msg']}" for err in exc.errors()]
    return []


def validate(manifest: dict[str, Any]) -> list[str]:
    """All errors the API server would report for creating `manifest` (as far as emulated)."""
    doc = apply_defaults(SCHEMA, copy.deepcopy(manifest))
    return schema_errors(doc) + cel_errors(SCHEMA, doc, "")


def test_base_manifest_is_valid() -> None:
    assert validate(base()) == []


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_pass_every_rule(path: Path) -> None:
    assert validate(yaml.safe_load(path.read_text())) == []


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_invalid_manifest_is_rejected_naming_the_field(case: Case) -> None:
    errors = validate(case.manifest())
    assert errors, f"{case.id}: accepted"
    assert any(case.expected in e for e in errors), f"{case.id}: {case.expected!r} not in {errors}"


@pytest.mark.parametrize("routing", [{"verify": {}}, {"gatewayAPI": {"httpRoute": "web"}, "verify": {"tolerance": 0}},
                                     {"istio": {"virtualService": "web", "routes": ["primary"]}}])
def test_verify_alone_measures_the_replica_ratio_and_goes_with_any_router(routing: dict[str, Any]) -> None:
    manifest = base()
    manifest["spec"]["strategy"]["canary"]["trafficRouting"] = routing
    assert validate(manifest) == []


def test_defaults_fill_nested_objects() -> None:
    doc = apply_defaults(SCHEMA, base())
    spec = doc["spec"]
    assert spec["rollback"] == {"automatic": True}
    assert spec["paused"] is False
    trigger = spec["analysis"]["triggers"][0]
    assert (trigger["failureLimit"], trigger["onNoData"]) == (3, "Inconclusive")
    assert spec["gates"][2]["stage"] == "preDeploy"


@pytest.mark.parametrize(("headers_from", "expected"), [
    ({"name": "api"}, "spec.gates[3].webhook.headersFrom.keys: Required value"),
    ({"name": "api", "keys": []}, "spec.gates[3].webhook.headersFrom.keys: Invalid value"),
    ({"name": "api", "keys": [f"X-{i}" for i in range(17)]}, "spec.gates[3].webhook.headersFrom.keys: Too many"),
    ({"name": "api", "keys": ["Bad Header"]}, "spec.gates[3].webhook.headersFrom.keys[0]: Invalid value"),
    ({"name": "api", "keys": ["X-Ok", "X:Colon"]}, "spec.gates[3].webhook.headersFrom.keys[1]: Invalid value"),
    ({"name": "api", "keys": ["-dash-first"]}, "spec.gates[3].webhook.headersFrom.keys[0]: Invalid value"),
    ({"name": "api", "keys": ["Authorization", "Authorization"]},
     "spec.gates[3].webhook.headersFrom.keys[1]: Duplicate value"),
])
def test_headers_from_names_its_keys(headers_from: dict[str, Any], expected: str) -> None:
    manifest = base()
    manifest["spec"]["gates"][3]["webhook"]["headersFrom"] = headers_from
    errors = validate(manifest)
    assert any(expected in e for e in errors), f"{expected!r} not in {errors}"


def test_headers_from_with_keys_is_valid() -> None:
    manifest = base()
    manifest["spec"]["gates"][3]["webhook"]["headersFrom"] = {
        "name": "change-api-token", "keys": ["Authorization", "X-Tenant_ID", "x.trace"]}
    assert validate(manifest) == []
    gate = Release.model_validate(manifest).spec.gates[3].webhook
    assert gate is not None and gate.headers_from is not None
    assert gate.headers_from.keys == ["Authorization", "X-Tenant_ID", "x.trace"]


# The CRD refuses what its CEL sees cheaply in a condition: calls whose cost has no bound, and
# the characters on which the operator's CEL lexer takes exponential time. The operator checks
# the rest (tests/unit/test_core_conditions.py).
_UNBOUNDED_CALL = "must not call map, filter, all, exists, exists_one or matches"
_UNSAFE_CHARACTER = "must not contain a backslash or a carriage return"


@pytest.mark.parametrize("condition", [
    "result > 0.001",
    "result >= 0.5 && result < 2.0",
    "result in [0.0, 1.0] || double(1) > result",
    "result > 0.0 // all is well when errors exist",  # the names as words, not calls
    "result > 0.0 // mapping(",  # an identifier that only ends in a macro's name
    "result < 1.0\n&& result > 0.0",
])
def test_condition_rules_accept_ordinary_conditions(condition: str) -> None:
    manifest = base()
    manifest["spec"]["analysis"]["triggers"][0]["failureCondition"] = condition
    manifest["spec"]["gates"][2]["metric"]["successCondition"] = condition
    assert validate(manifest) == []


@pytest.mark.parametrize(("condition", "expected"), [
    ("size([0, 0].map(a, [0, 0].map(b, 0))) > 0 || result > 0.0", _UNBOUNDED_CALL),
    ("[1, 2].filter(x, x > 1) == [] && result > 0.0", _UNBOUNDED_CALL),
    ("[1, 2].all(x, x > 0)", _UNBOUNDED_CALL),
    ("[1, 2].exists(x, x > 0)", _UNBOUNDED_CALL),
    ("[1, 2] . exists_one (x, x > 0)", _UNBOUNDED_CALL),
    ("[1, 2].map // a comment\n  (x, x) == [] || result > 0.0", _UNBOUNDED_CALL),
    ("'aaaaaaaaaaaaaaaaaaaaaaaaaaaa!'.matches('^(a+)+$') || result > 0.0", _UNBOUNDED_CALL),
    ("matches('a', 'a') || result > 0.0", _UNBOUNDED_CALL),
    ("'\\\\\\\\\\\\\\\\' == ''", _UNSAFE_CHARACTER),
    ("result > 0.0 ||\r\nresult < 1.0", _UNSAFE_CHARACTER),
])
def test_condition_rules_refuse_unbounded_calls_naming_the_field(condition: str, expected: str) -> None:
    manifest = base()
    manifest["spec"]["analysis"]["triggers"][0]["failureCondition"] = condition
    manifest["spec"]["gates"][2]["metric"]["successCondition"] = condition
    errors = validate(manifest)
    for field in ("spec.analysis.triggers[0].failureCondition", "spec.gates[2].metric.successCondition"):
        assert any(e.startswith(f"{field}: Invalid value") and expected in e for e in errors), (field, errors)
