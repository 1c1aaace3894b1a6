"""`glideslope selftest`: what the chart's `helm test` hook checks, from inside the cluster with
the hook's own ServiceAccount: the Release CRD is Established and serves this operator's version,
and the operator's Deployment has all its replicas Ready (none at all is not Ready)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kubernetes

from glideslope.api import GROUP, PLURAL, VERSION
from glideslope.kube.client import connect, not_found


def problems(namespace: str, deployment: str) -> list[str]:
    """What is wrong, one line each; empty: the installation is ready."""
    kube = connect()
    extensions = kubernetes.client.ApiextensionsV1Api(kube.api)
    found: list[str] = []
    crd_name = f"{PLURAL}.{GROUP}"
    crd = _read(lambda: extensions.read_custom_resource_definition(crd_name), f"CRD {crd_name}", found)
    if crd is not None:
        conditions = {c.type: c for c in (crd.status.conditions or [])} if crd.status else {}
        established = conditions.get("Established")
        if established is None or established.status != "True":
            found.append(f"CRD {crd_name} is not Established"
                         + (f": {established.message}" if established and established.message else ""))
        if not any(v.name == VERSION and v.served for v in crd.spec.versions):
            found.append(f"CRD {crd_name} does not serve {VERSION}: apply this chart's crds/ (Helm never upgrades"
                         " them)")
    dep = _read(lambda: kube.apps.read_namespaced_deployment(deployment, namespace),
                f"Deployment {namespace}/{deployment}", found)
    if dep is not None:
        wanted, ready = dep.spec.replicas or 0, (dep.status.ready_replicas if dep.status else 0) or 0
        if wanted == 0:
            found.append(f"Deployment {namespace}/{deployment} has 0 replicas: no operator runs")
        elif ready < wanted:
            found.append(f"Deployment {namespace}/{deployment}: {ready} of {wanted} replicas Ready")
    return found


def _read(call: Callable[[], Any], what: str, found: list[str]) -> Any:
    try:
        return call()
    except Exception as exc:
        status = getattr(exc, "status", None)
        found.append(f"{what} is missing" if not_found(exc) else
                     f"{what}: cannot read it ({status or type(exc).__name__}): check the test's RBAC")
        return None
