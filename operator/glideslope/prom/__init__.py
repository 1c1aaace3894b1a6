"""Metric providers: the narrow `MetricProvider` interface and its Prometheus implementation."""

from glideslope.prom.prometheus import PrometheusAuth, PrometheusProvider
from glideslope.prom.provider import MetricProvider

__all__ = ["MetricProvider", "PrometheusAuth", "PrometheusProvider"]
