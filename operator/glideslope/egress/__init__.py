"""Egress: every request to an endpoint a tenant names (Prometheus, webhook gates,
notifications) goes through one asynchronous layer (`layer.Egress`), bounded by `http` and
allowed by the installer's `policy`."""

from glideslope.egress.http import EgressRefused, Refusal, Reply, where
from glideslope.egress.layer import PENDING, Egress, EgressObserver, Kind, Pending
from glideslope.egress.policy import DEFAULT_DENY, EgressPolicy

__all__ = [
    "DEFAULT_DENY",
    "PENDING",
    "Egress",
    "EgressObserver",
    "EgressPolicy",
    "EgressRefused",
    "Kind",
    "Pending",
    "Refusal",
    "Reply",
    "where",
]
