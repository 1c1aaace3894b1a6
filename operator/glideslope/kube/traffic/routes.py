"""What the routers share about routes beyond weights (header and mirror steps); each router
imports this module, never another router (`.importlinter`)."""

from __future__ import annotations

import re

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


def header_route_names(release: Release) -> frozenset[str]:
    """The names of every header route of the plan: the rules or routes of these names are ours."""
    canary = release.spec.strategy.canary
    return frozenset(s.set_header_route.name for s in (canary.steps if canary else ()) if s.set_header_route)


def as_regex(condition: HeaderCondition) -> str:
    """A header condition as an RE2 regex over the whole value (for routers without prefixes)."""
    if condition.kind == "regex":
        return condition.value
    literal = re.escape(condition.value)
    return f"{literal}.*" if condition.kind == "prefix" else literal
