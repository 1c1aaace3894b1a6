"""Whose an object is (kube/ownership.py): the Release's own by ownerReference, left serving by a
deleted Release of its name, or handed over by `glideslope.dev/adopt`; anything else is refused,
naming the object and how to hand it over."""

from __future__ import annotations

from typing import Any

import kubernetes
import pytest
from kubernetes.client import V1ObjectMeta, V1OwnerReference

from glideslope.api import Release
from glideslope.kube import ownership

pytestmark = pytest.mark.unit

RELEASE = Release.model_validate({
    "metadata": {"name": "web", "namespace": "shop", "uid": "u-web"},
    "spec": {"version": "1", "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [{"name": "a", "image": "web:1"}]}},
             "strategy": {"type": "Canary", "canary": {"steps": [{"setWeight": 10}]}}},
})


def owner(kind: str, name: str, uid: str, controller: bool = True) -> V1OwnerReference:
    return V1OwnerReference(api_version="v1", kind=kind, name=name, uid=uid, controller=controller)


def meta(labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
         owners: list[V1OwnerReference] | None = None) -> V1ObjectMeta:
    return V1ObjectMeta(name="web", namespace="shop", labels=labels, annotations=annotations,
                        owner_references=owners)


@pytest.mark.parametrize("found", [
    meta(labels={"glideslope.dev/release": "web"}, owners=[owner("Release", "web", "u-web")]),
    meta(owners=[owner("Release", "web", "u-web", controller=False)]),
    meta(labels={"glideslope.dev/release": "web"}),  # left serving by a deleted Release named web
    meta(annotations={"glideslope.dev/adopt": "web"}, owners=[owner("HelmThing", "x", "u-x", controller=False)]),
])
def test_the_releases_own(found: V1ObjectMeta) -> None:
    assert ownership.whose(RELEASE, "Service", found) is None


@pytest.mark.parametrize(("found", "why"), [
    (meta(), "not labelled glideslope.dev/release=web"),
    (meta(labels={"glideslope.dev/release": "api"}, owners=[owner("Release", "api", "u-api")]),
     "controlled by Release api"),
    # The label alone is not enough while another controller holds it.
    (meta(labels={"glideslope.dev/release": "web"}, owners=[owner("Release", "web", "u-old")]),
     "controlled by Release web"),
    (meta(annotations={"glideslope.dev/adopt": "api"}), "not labelled"),
])
def test_someone_elses(found: V1ObjectMeta, why: str) -> None:
    message = ownership.whose(RELEASE, "Service", found)
    assert message is not None and why in message
    assert message.startswith("Service shop/web exists and is not this Release's")
    assert "glideslope.dev/adopt=web" in message


def test_claim_reads_and_refuses() -> None:
    def read(name: str, namespace: str) -> Any:
        assert (name, namespace) == ("web", "shop")
        return type("Found", (), {"metadata": meta()})()

    with pytest.raises(ownership.NotOurs, match="Deployment shop/web exists"):
        ownership.claim(RELEASE, "Deployment", read, "web")


def test_claim_of_nothing_is_fine() -> None:
    def read(name: str, namespace: str) -> Any:
        raise kubernetes.client.ApiException(status=404)

    ownership.claim(RELEASE, "Service", read, "web")
