"""Generate the Release CRD from the pydantic models.

`python -m glideslope.api.crd` prints it; `crds/glideslope.dev_releases.yaml` is its checked-in
output. The models' JSON schema is rewritten into a *structural* OpenAPI v3 schema, the form
Kubernetes requires: every `$ref` inlined, `Optional` unions collapsed, int|str unions turned
into `x-kubernetes-int-or-string`, open objects into `x-kubernetes-preserve-unknown-fields`,
and keywords Kubernetes does not accept dropped or refused.
"""

from __future__ import annotations

import copy
import sys
from typing import Any

import yaml

from glideslope.api.base import ApiModel, cel
from glideslope.api.release import CRD_NAME, GROUP, KIND, PLURAL, SHORT_NAMES, SINGULAR, VERSION
from glideslope.api.spec import ReleaseSpec
from glideslope.api.status import ReleaseStatus
from glideslope.api.templates import PLURALS, SINGULARS, TEMPLATE_SHORT_NAMES, AnalysisTemplateSpec
from glideslope.api.types import TemplateKind

Schema = dict[str, Any]

# Keywords a structural schema may carry (apiextensions.k8s.io/v1 JSONSchemaProps, minus those
# we never emit). Anything else in the pydantic output is a bug in the models: fail loudly.
_ALLOWED = frozenset({
    "type", "format", "description", "properties", "required", "items", "additionalProperties",
    "enum", "default", "minimum", "maximum", "minLength", "maxLength", "pattern", "minItems",
    "maxItems", "minProperties", "maxProperties", "nullable",
    "x-kubernetes-validations", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
    "x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string", "x-kubernetes-map-type",
})
# Documentation-only keywords that pydantic emits and Kubernetes does not know.
_DROPPED = frozenset({"title", "examples", "$defs", "readOnly", "writeOnly", "deprecated"})
# Value validations that may sit beside x-kubernetes-int-or-string: the API server applies
# each only to values of its type (pattern to strings, minimum to integers).
_INT_OR_STRING_KEYS = frozenset({"minimum", "maximum", "minLength", "maxLength", "pattern"})


def structural(schema: Schema) -> Schema:
    """A structural Kubernetes schema from a pydantic JSON schema (with its `$defs`)."""
    defs: dict[str, Schema] = schema.get("$defs", {})
    return _convert(_inline(schema, defs, ()), "")


def _inline(node: Any, defs: dict[str, Schema], seen: tuple[str, ...]) -> Any:
    """Replace every `$ref` by a copy of its definition, merged with the keys beside it."""
    if isinstance(node, list):
        return [_inline(item, defs, seen) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _inline(value, defs, seen) for key, value in node.items() if key != "$defs"}
    ref = out.pop("$ref", None)
    if ref is None:
        return out
    name = ref.rsplit("/", 1)[-1]
    if name in seen:
        raise ValueError(f"recursive model {name}: a structural schema cannot express it")
    target: Schema = _inline(copy.deepcopy(defs[name]), defs, (*seen, name))
    # Rules of the model come first, then the rules attached to the field that uses it.
    rules = target.get("x-kubernetes-validations", []) + out.pop("x-kubernetes-validations", [])
    merged = {**target, **out}
    if rules:
        merged["x-kubernetes-validations"] = rules
    return merged


def _convert(node: Schema, path: str) -> Schema:
    node = {k: v for k, v in node.items() if k not in _DROPPED}
    if "default" in node and node["default"] is None:
        del node["default"]
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if "anyOf" in node:
        node = _collapse_any_of(node, path)
    unknown = set(node) - _ALLOWED
    if unknown:
        raise ValueError(f"{path or '<root>'}: keywords not in a structural schema: {sorted(unknown)}")

    if node.get("type") == "string" and "enum" in node and "maxLength" not in node:
        # CEL's cost estimate reads maxLength, not enums. Generous, so that a wrong value is
        # told the supported values rather than "too long".
        node["maxLength"] = max(64, *(len(v) for v in node["enum"]))
    if "properties" in node:
        node["properties"] = {name: _convert(sub, f"{path}.{name}")
                              for name, sub in node["properties"].items()}
        if not node["properties"]:
            del node["properties"]
    if "items" in node:
        node["items"] = _convert(node["items"], f"{path}[]")
    extra = node.get("additionalProperties")
    if extra is True or extra == {}:
        # An open object (extra="allow", dict[str, Any]): keep what users write.
        del node["additionalProperties"]
        node["x-kubernetes-preserve-unknown-fields"] = True
    elif extra is False:
        del node["additionalProperties"]  # Kubernetes prunes unknown fields anyway.
    elif isinstance(extra, dict):
        node["additionalProperties"] = _convert(extra, f"{path}.*")
    if "type" not in node and not (node.get("x-kubernetes-int-or-string")
                                   or node.get("x-kubernetes-preserve-unknown-fields")):
        raise ValueError(f"{path or '<root>'}: no type; a structural schema needs one")
    return node


def _collapse_any_of(node: Schema, path: str) -> Schema:
    """`X | None` becomes X; `int | str` becomes x-kubernetes-int-or-string."""
    branches = [b for b in node.pop("anyOf") if b.get("type") != "null"]
    if len(branches) == 1:
        # The branch gives the type; the field's own keys (description, default) win.
        return {**{k: v for k, v in branches[0].items() if k not in _DROPPED}, **node}
    types = sorted(b.get("type", "?") for b in branches)
    if types != ["integer", "string"]:
        raise ValueError(f"{path}: union of {types} cannot be expressed in a structural schema")
    out: Schema = {**node, "x-kubernetes-int-or-string": True}
    for branch in branches:
        for key, value in branch.items():
            if key in _INT_OR_STRING_KEYS:
                out[key] = value
            elif key not in _DROPPED and key != "type":
                raise ValueError(f"{path}: {key} in an int-or-string branch is not supported")
    return out


def _model_schema(model: type[ApiModel]) -> Schema:
    return structural(model.model_json_schema(by_alias=True, mode="validation"))


def openapi_schema() -> Schema:
    """The `openAPIV3Schema` of the Release CRD."""
    spec = _model_schema(ReleaseSpec)
    status = _model_schema(ReleaseStatus)
    return {
        "type": "object",
        "description": "A Release declares an application's desired revision (a pod template and a"
                       " version label) and how it must reach production: a strategy, gates,"
                       " rollback triggers, a validation window and notifications.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "glideslope.dev/v1alpha1"},
            "kind": {"type": "string", "description": "Release"},
            # The API server owns metadata's schema: not even a description may be given.
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
        "x-kubernetes-validations": [
            # The name is a label value on every pod (glideslope.dev/release). No fieldPath:
            # the API server refuses one into metadata, whose schema it owns.
            cel("!has(self.metadata.name) || self.metadata.name.size() <= 63",
                "metadata.name must be at most 63 characters: it is a label value on the pods"),
            # The Services default to the Release's name: it must then make valid Service names.
            cel("!has(self.spec.service) || has(self.spec.service.name) || !has(self.metadata.name)"
                " || !self.metadata.name.contains('.')",
                "spec.service.name is required when metadata.name contains a dot: the Service is named "
                "after the Release by default, and a Service name cannot contain one",
                field_path=".spec.service", reason="FieldValueRequired"),
            cel("!has(self.spec.service) || has(self.spec.service.name) || has(self.spec.service.previewName)"
                " || !has(self.metadata.name) || self.metadata.name.size() <= 55",
                "spec.service.previewName is required when metadata.name is longer than 55 characters: "
                "the default preview Service <name>-preview would be longer than 63",
                field_path=".spec.service", reason="FieldValueRequired"),
        ],
    }


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Version", "type": "string", "jsonPath": ".spec.version"},
    {"name": "Strategy", "type": "string", "jsonPath": ".spec.strategy.type"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Step", "type": "string", "jsonPath": ".status.stepDisplay"},
    {"name": "Weight", "type": "string", "jsonPath": ".status.weightDisplay"},
    {"name": "Gates", "type": "string", "jsonPath": ".status.gatesDisplay"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Revision", "type": "string", "jsonPath": ".status.revision", "priority": 1},
    {"name": "Stable", "type": "string", "jsonPath": ".status.stableVersion", "priority": 1},
    {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
]


def render_crd() -> dict[str, Any]:
    """The Release CustomResourceDefinition (apiextensions.k8s.io/v1) as a dict."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {"app.kubernetes.io/name": "glideslope", "app.kubernetes.io/part-of": "glideslope"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": ["glideslope"],
            },
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": openapi_schema()},
                "subresources": {
                    "status": {},
                    "scale": {
                        "specReplicasPath": ".spec.replicas",
                        "statusReplicasPath": ".status.replicas",
                        "labelSelectorPath": ".status.selector",
                    },
                },
                "additionalPrinterColumns": PRINTER_COLUMNS,
                # `kubectl get rel --field-selector status.phase=Failed`
                "selectableFields": [{"jsonPath": ".spec.strategy.type"}, {"jsonPath": ".status.phase"}],
            }],
        },
    }


_TEMPLATE_DESCRIPTIONS = {
    TemplateKind.ANALYSIS_TEMPLATE: "An AnalysisTemplate holds rollback triggers with named args, defined once"
                                    " and used by the Releases of its namespace (spec.analysis.templates).",
    TemplateKind.CLUSTER_ANALYSIS_TEMPLATE: "A ClusterAnalysisTemplate holds rollback triggers with named args,"
                                            " defined once by a platform team and used by Releases in any"
                                            " namespace (spec.analysis.templates, kind ClusterAnalysisTemplate).",
}


def template_schema(kind: TemplateKind) -> Schema:
    """The `openAPIV3Schema` of an analysis template CRD (both kinds hold the same spec)."""
    return {
        "type": "object",
        "description": _TEMPLATE_DESCRIPTIONS[kind],
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "glideslope.dev/v1alpha1"},
            "kind": {"type": "string", "description": kind.value},
            "metadata": {"type": "object"},
            "spec": _model_schema(AnalysisTemplateSpec),
        },
    }


def render_template_crd(kind: TemplateKind) -> dict[str, Any]:
    """The CustomResourceDefinition of `AnalysisTemplate` or `ClusterAnalysisTemplate`."""
    plural = PLURALS[kind]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "glideslope", "app.kubernetes.io/part-of": "glideslope"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced" if kind == TemplateKind.ANALYSIS_TEMPLATE else "Cluster",
            "names": {
                "kind": kind.value,
                "listKind": f"{kind.value}List",
                "plural": plural,
                "singular": SINGULARS[kind],
                "shortNames": list(TEMPLATE_SHORT_NAMES[kind]),
                "categories": ["glideslope"],
            },
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": template_schema(kind)},
                "additionalPrinterColumns": [
                    {"name": "Triggers", "type": "string", "jsonPath": ".spec.triggers[*].name"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
            }],
        },
    }


CRD_FILES: dict[str, TemplateKind | None] = {
    "glideslope.dev_releases.yaml": None,
    "glideslope.dev_analysistemplates.yaml": TemplateKind.ANALYSIS_TEMPLATE,
    "glideslope.dev_clusteranalysistemplates.yaml": TemplateKind.CLUSTER_ANALYSIS_TEMPLATE,
}
"""Each CRD's file under `crds/` (and the chart's copy), and the kind it defines (None: Release)."""


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings, so descriptions read well in the file."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)

HEADER = "# Generated by `python -m glideslope.api.crd` from glideslope/api: do not edit.\n"


def render_crd_yaml(kind: TemplateKind | None = None) -> str:
    """A CRD as YAML, exactly as checked in under `crds/`: the Release's, or a template kind's."""
    crd = render_crd() if kind is None else render_template_crd(kind)
    body = yaml.dump(crd, Dumper=_Dumper, sort_keys=True, width=100, allow_unicode=True)
    return HEADER + "---\n" + body


def main() -> None:
    kind = TemplateKind(sys.argv[1]) if len(sys.argv) > 1 else None
    sys.stdout.write(render_crd_yaml(kind))


if __name__ == "__main__":
    main()
