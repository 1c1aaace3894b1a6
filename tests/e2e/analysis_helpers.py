"""Shared pieces of the analysis e2e tests: trigger queries over the simulator's traffic."""

from __future__ import annotations

from typing import Any

ERROR_RATE = (
    'sum(rate(http_requests_total{namespace="{{namespace}}",revision="{{revision}}",code="500"}[5s]))'
    ' / sum(rate(http_requests_total{namespace="{{namespace}}",revision="{{revision}}"}[5s]))')
"""The candidate's share of failed requests over the last 5 s (the simulator writes both codes
from the first request, so a healthy revision reads 0, not "no data")."""


def trigger(severity: str = "critical", *, query: str = ERROR_RATE, name: str = "error-rate",
            **extra: Any) -> dict[str, Any]:
    return {"name": name, "severity": severity, "query": query, "failureCondition": "result > 0.1", **extra}


def analysis(*triggers: dict[str, Any], address: str | None = None, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"interval": "1s", "triggers": list(triggers), **extra}
    if address is not None:
        spec["prometheus"] = {"address": address}
    return spec


def trigger_status(status: dict[str, Any], name: str = "error-rate") -> dict[str, Any]:
    return next((t for t in status.get("analysis") or [] if t["name"] == name), {})
