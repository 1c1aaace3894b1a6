"""The base model of the Release API and helpers to attach Kubernetes schema extensions.

Every API model derives from `ApiModel`: snake_case in Python, camelCase on the wire, and
attribute docstrings become the CRD's field descriptions (what `kubectl explain` shows).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, JsonValue
from pydantic.alias_generators import to_camel

JsonDict = dict[str, JsonValue]


class ApiModel(BaseModel):
    """Base of every spec and status model."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        use_attribute_docstrings=True,
        # The API server prunes unknown fields before we see them; ignoring extras keeps an
        # older operator working against a newer CRD.
        extra="ignore",
        validate_assignment=True,
    )

    def to_dict(self) -> dict[str, Any]:
        """The wire form: camelCase keys, JSON types, no null fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Self:
        """Parse the wire form; accepts any Mapping (kopf passes read-only views)."""
        return cls.model_validate(plain(data or {}))


def plain(value: Any) -> Any:
    """A deep copy of `value` made of dicts and lists only (kopf bodies are Mapping views)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def cel(
    rule: str,
    message: str,
    *,
    field_path: str | None = None,
    reason: str | None = None,
    message_expression: str | None = None,
) -> JsonDict:
    """One `x-kubernetes-validations` entry. `message` must name the field it is about."""
    entry: JsonDict = {"rule": rule, "message": message}
    if field_path is not None:
        entry["fieldPath"] = field_path
    if reason is not None:
        entry["reason"] = reason
    if message_expression is not None:
        entry["messageExpression"] = message_expression
    return entry


def rules(*entries: JsonDict, **extensions: JsonValue) -> JsonDict:
    """A `json_schema_extra` with CEL rules and other schema keys (`x_kubernetes_list_type=...`).

    Keyword names use underscores for dashes so they can be Python identifiers.
    """
    extra: JsonDict = {key.replace("_", "-") if key.startswith("x_") else key: value
                       for key, value in extensions.items()}
    if entries:
        extra["x-kubernetes-validations"] = list(entries)
    return extra
