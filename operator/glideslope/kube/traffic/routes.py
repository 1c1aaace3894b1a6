"""What the routers share about routes beyond weights (header and mirror steps); each router
imports this module, never another router (`.importlinter`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from glideslope.api import Release
from glideslope.core.model import HeaderCondition, Routes, StepKind
from glideslope.core.services import routed
from glideslope.kube import services

NO_ROUTES = Routes()
MAX_SERVICE_NAME = 63
"""A Service's name is a DNS label."""

ROUTE_STEPS = {StepKind.HEADER_ROUTE: "setHeaderRoute", StepKind.MIRROR_ROUTE: "setMirrorRoute"}
"""The canary steps beyond weights, and their names in the spec."""


def unsupported(release: Release, supports: frozenset[StepKind], router: str, *,
                weighs_baseline: bool = True) -> str | None:
    """The judge's baseline if the router cannot give it a share of its own, or the first canary
    step it cannot carry out, named; or None."""
    judge = release.spec.analysis.judge
    if judge is not None and judge.baseline and not weighs_baseline:
        return (f"spec.analysis.judge.baseline: not supported by {router}, which cannot give the baseline a share "
                "of traffic of its own beside the canary's; set it false (the candidate is then compared with "
                "the stable revision's own pods)")
    names = services.names(release)
    if judge is not None and judge.baseline and names is not None and routed(release.spec):
        control = services.baseline_name(names[0])
        if len(control) > MAX_SERVICE_NAME:
            return (f"spec.service.name: the judge's baseline Service {control} would be longer than "
                    f"{MAX_SERVICE_NAME} characters; shorten the stable Service's name")
        if control == names[1]:
            return f"spec.service.previewName: {control} is the judge's baseline Service's name; choose another"
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


BASELINE_ANNOTATION = "glideslope.dev/baseline-backend"
"""On an HTTPRoute or VirtualService: the judge's baseline Service the operator sends traffic to
there, so that it removes that reference when the baseline goes, and never touches one of the
same name that the route's author wrote."""


def baseline_written(obj: Mapping[str, Any]) -> str | None:
    """The baseline Service the operator named on a route object (`BASELINE_ANNOTATION`), or None."""
    found = ((obj.get("metadata") or {}).get("annotations") or {}).get(BASELINE_ANNOTATION)
    return str(found) if found else None


def written_patch(routes: Routes, baseline: str | None = None) -> dict[str, Any]:
    """The metadata patch recording which header routes are written, and the baseline Service
    named (None removes an annotation)."""
    names = ",".join(h.name for h in routes.headers)
    return {"annotations": {WRITTEN_ANNOTATION: names or None, BASELINE_ANNOTATION: baseline}}


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
