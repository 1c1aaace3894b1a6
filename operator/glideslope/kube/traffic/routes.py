"""What the routers share about routes beyond weights (header and mirror steps); each router
imports this module, never another router (`.importlinter`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from glideslope.api import Release
from glideslope.core.model import HeaderCondition, Routes, StepKind

NO_ROUTES = Routes()

ROUTE_STEPS = {StepKind.HEADER_ROUTE: "setHeaderRoute", StepKind.MIRROR_ROUTE: "setMirrorRoute"}
"""The canary steps beyond weights, and their names in the spec."""


def unsupported(release: Release, supports: frozenset[StepKind], router: str) -> str | None:
    """The first canary step the router cannot carry out, named, or None."""
    canary = release.spec.strategy.canary
    for i, step in enumerate(canary.steps if canary else ()):
        for kind, value in ((StepKind.HEADER_ROUTE, step.set_header_route),
                            (StepKind.MIRROR_ROUTE, step.set_mirror_route)):
            if value is not None and kind not in supports:
                return f"spec.strategy.canary.steps[{i}].{ROUTE_STEPS[kind]}: not supported by {router}"
    return None


WRITTEN_ANNOTATION = "glideslope.dev/header-routes"
"""On an HTTPRoute or VirtualService: the names of the rules (routes) the operator wrote for
header routes, so that it removes those and never one of the same name that its author wrote."""


def header_route_names(release: Release) -> frozenset[str]:
    """The names of every header route of the plan."""
    canary = release.spec.strategy.canary
    return frozenset(s.set_header_route.name for s in (canary.steps if canary else ()) if s.set_header_route)


def written(obj: Mapping[str, Any]) -> frozenset[str]:
    """The header routes the operator wrote on a route object (`WRITTEN_ANNOTATION`)."""
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(WRITTEN_ANNOTATION) or ""
    return frozenset(n for n in raw.split(",") if n)


def written_patch(routes: Routes) -> dict[str, Any]:
    """The metadata patch recording which header routes are written (None removes the annotation)."""
    names = ",".join(h.name for h in routes.headers)
    return {"annotations": {WRITTEN_ANNOTATION: names or None}}


def clash(release: Release, existing: list[str], what: str, rule: str = "a rule") -> str | None:
    """A header route of the plan named like a rule (an Istio http route) its author wrote, or None."""
    canary = release.spec.strategy.canary
    for i, step in enumerate(canary.steps if canary else ()):
        if step.set_header_route and step.set_header_route.name in existing:
            return (f"spec.strategy.canary.steps[{i}].setHeaderRoute.name: {what} already has {rule} named "
                    f"{step.set_header_route.name}; choose another name")
    return None


def as_regex(condition: HeaderCondition) -> str:
    """A header condition as an RE2 regex over the whole value (for routers without prefixes)."""
    if condition.kind == "regex":
        return condition.value
    literal = re.escape(condition.value)
    return f"{literal}.*" if condition.kind == "prefix" else literal
