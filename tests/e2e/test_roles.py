"""Releases in the built-in roles: a person bound to `edit` in a namespace manages its Releases,
one bound to `view` reads them and nothing more (the chart's aggregated ClusterRoles, shipped
in deploy/rbac.yaml)."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import Cluster

pytestmark = pytest.mark.e2e


def can(sandbox: Cluster, user: str, verb: str, resource: str, namespace: str, subresource: str = "") -> bool:
    more = ("--subresource", subresource) if subresource else ()
    res = sandbox.kubectl("auth", "can-i", verb, resource, *more, "--as", user, "-n", namespace, check=False)
    return res.stdout.strip() == "yes"


def test_edit_manages_and_view_reads_releases(sandbox: Cluster, namespace: str) -> None:
    for user, role in (("erin", "edit"), ("victor", "view")):
        sandbox.kubectl("create", "rolebinding", f"{user}-{role}", f"--clusterrole={role}", f"--user={user}",
                        "-n", namespace)
    for verb in ("create", "patch", "delete", "get", "list", "watch"):
        assert can(sandbox, "erin", verb, "releases.glideslope.dev", namespace), verb
    assert can(sandbox, "erin", "patch", "releases.glideslope.dev", namespace, subresource="scale")
    for verb in ("get", "list", "watch"):
        assert can(sandbox, "victor", verb, "releases.glideslope.dev", namespace), verb
    for verb in ("create", "patch", "delete"):
        assert not can(sandbox, "victor", verb, "releases.glideslope.dev", namespace), verb
    # Only in the namespace they are bound in, and never the status, which the operator writes.
    assert not can(sandbox, "erin", "get", "releases.glideslope.dev", "default")
    assert not can(sandbox, "erin", "patch", "releases.glideslope.dev", namespace, subresource="status")
