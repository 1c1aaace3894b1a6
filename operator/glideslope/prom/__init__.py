"""Metric providers: the narrow `MetricProvider` interface, one module per implementation:
Prometheus (`prometheus`) and any endpoint answering JSON (`web`)."""

from glideslope.prom.prometheus import PrometheusAuth, PrometheusProvider
from glideslope.prom.provider import MetricProvider
from glideslope.prom.web import WebProvider

__all__ = ["MetricProvider", "PrometheusAuth", "PrometheusProvider", "WebProvider"]
