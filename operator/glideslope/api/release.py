"""The `Release` resource as a whole, its identity in the API, and parse helpers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ConfigDict, Field, ValidationError

from glideslope.api.base import ApiModel, plain
from glideslope.api.spec import ReleaseSpec
from glideslope.api.status import ReleaseStatus
from glideslope.api.types import Timestamp

GROUP = "glideslope.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "Release"
PLURAL = "releases"
SINGULAR = "release"
SHORT_NAMES = ("rel",)
CRD_NAME = f"{PLURAL}.{GROUP}"


class ObjectMeta(ApiModel):
    """The metadata fields the operator reads; the rest is kept as it came."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: Timestamp | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Release(ApiModel):
    """A Release: one application's desired revision and how it must reach production."""

    api_version: str = API_VERSION
    kind: str = KIND
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ReleaseSpec
    status: ReleaseStatus = Field(default_factory=ReleaseStatus)


def parse_release(body: Mapping[str, Any]) -> Release:
    """A Release from a body as kopf or the API returns it (raises pydantic.ValidationError)."""
    return Release.model_validate(plain(body))


def field_problems(exc: ValidationError) -> list[str]:
    """pydantic's errors as `spec.a.b[0].c: message`, in the API's field names (the models
    validate by alias)."""
    problems = []
    for err in exc.errors():
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        problems.append(f"{path or '(the object)'}: {err['msg']}")
    return problems


def parse_spec(spec: Mapping[str, Any]) -> ReleaseSpec:
    """`spec` of a Release (raises pydantic.ValidationError)."""
    return ReleaseSpec.model_validate(plain(spec))


def parse_status(status: Mapping[str, Any] | None) -> ReleaseStatus:
    """`status` of a Release; absent or empty gives an empty status."""
    return ReleaseStatus.model_validate(plain(status or {}))


def status_patch(status: ReleaseStatus, previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A JSON merge patch that turns `previous` (the status as stored) into `status`.

    Fields `status` no longer has are sent as null, which a merge patch reads as "delete", and
    so are the keys a map field (`obeyedCommands`) no longer has: a merge patch merges maps.
    Lists are replaced whole, so top-level fields and maps are all that need care.
    """
    patch: dict[str, Any] = status.to_dict()
    for key, old in (previous or {}).items():
        new = patch.setdefault(key, None)
        if isinstance(new, dict) and isinstance(old, Mapping):
            patch[key] = {**dict.fromkeys(old), **new}
    return patch
