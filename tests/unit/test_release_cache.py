"""The Release cache: what a tick reads instead of a GET, and why it never goes backwards."""

from __future__ import annotations

from typing import Any

import pytest

from glideslope.kube.releases import ReleaseCache

pytestmark = pytest.mark.unit


def body(version: str, step: int, *, spec: str = "v1") -> dict[str, Any]:
    return {"apiVersion": "glideslope.dev/v1alpha1", "kind": "Release",
            "metadata": {"name": "web", "namespace": "ns", "resourceVersion": version,
                         "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"version": spec}, "status": {"currentStep": step}}


def test_unknown_until_seen_and_without_managed_fields() -> None:
    cache = ReleaseCache()
    assert cache.get(("ns", "web")) is None
    cache.seen(body("1", 1))
    got = cache.get(("ns", "web"))
    assert got is not None and got["status"] == {"currentStep": 1}
    assert "managedFields" not in got["metadata"]
    got["status"]["currentStep"] = 9  # a copy: the tick may change what it reads
    assert cache.get(("ns", "web"))["status"] == {"currentStep": 1}  # type: ignore[index]


def test_a_body_older_than_the_one_held_is_never_taken() -> None:
    cache = ReleaseCache()
    cache.seen(body("1", 1))
    cache.wrote(body("3", 2))
    cache.seen(body("2", 1))  # a watch event from before the write (kopf's finalizer, say)
    assert cache.get(("ns", "web"))["status"] == {"currentStep": 2}  # type: ignore[index]
    cache.seen(body("4", 2, spec="v2"))  # someone edits the spec; kopf never showed "3"
    assert cache.get(("ns", "web"))["spec"] == {"version": "v2"}  # type: ignore[index]


def test_opaque_versions_wait_for_the_operators_own_write() -> None:
    cache = ReleaseCache()
    cache.wrote(body("c", 2))
    cache.seen(body("b", 1))
    assert cache.get(("ns", "web"))["status"] == {"currentStep": 2}  # type: ignore[index]
    cache.seen(body("c", 2))
    cache.seen(body("d", 3))
    assert cache.get(("ns", "web"))["status"] == {"currentStep": 3}  # type: ignore[index]
    cache.AWAIT_SECONDS = 0.0
    cache.wrote(body("e", 4))
    cache.seen(body("f", 5))  # "e" never seen (kopf coalesced it): taken once the wait is over
    assert cache.get(("ns", "web"))["status"] == {"currentStep": 5}  # type: ignore[index]


def test_forget_reads_afresh() -> None:
    cache = ReleaseCache()
    cache.wrote(body("3", 2))
    cache.forget(("ns", "web"))
    assert cache.get(("ns", "web")) is None
    cache.seen(body("2", 1))
    assert cache.get(("ns", "web"))["status"] == {"currentStep": 1}  # type: ignore[index]
