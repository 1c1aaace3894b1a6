"""The Release itself: its status, and command annotations once consumed."""

from __future__ import annotations

from typing import Any

from glideslope.api import GROUP, PLURAL, VERSION
from glideslope.kube.client import FIELD_MANAGER, Kube, conflict, not_found


def get(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    """The Release as stored now (kopf's copy may lag behind our own last status write)."""
    try:
        body: dict[str, Any] = kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except Exception as exc:
        if not_found(exc):
            return None
        raise
    return body


def patch_status(kube: Kube, namespace: str, name: str, patch: dict[str, Any], resource_version: str) -> bool:
    """Write status if the Release is still at `resource_version`; False if someone wrote first."""
    body = {"metadata": {"resourceVersion": resource_version}, "status": patch}
    try:
        kube.custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, name, body,
                                                          field_manager=FIELD_MANAGER)
    except Exception as exc:
        if conflict(exc):
            return False
        raise
    return True


def remove_annotations(kube: Kube, namespace: str, name: str, keys: tuple[str, ...]) -> str:
    """Consume command annotations; returns the new resourceVersion."""
    body = {"metadata": {"annotations": dict.fromkeys(keys)}}
    result = kube.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, body,
                                                        field_manager=FIELD_MANAGER)
    version: str = result["metadata"]["resourceVersion"]
    return version
