"""Fixtures for end-to-end tests: a real control plane (the sandbox, or a cluster you name).

The environment decides which cluster: `KUBECONFIG`, `GLIDESLOPE_OPERATOR_KUBECONFIG` and
`GLIDESLOPE_PROMETHEUS_URL`, as `glideslope sandbox up` writes them to `.sandbox/env`. When
they are not set, `.sandbox/env` (or `$GLIDESLOPE_SANDBOX_DIR/env`) is read. With neither,
e2e tests fail: they are never skipped silently.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.helpers import Cluster, cluster_from_environment, wait_until


@pytest.fixture(scope="session")
def sandbox() -> Cluster:
    cluster = cluster_from_environment()
    res = cluster.kubectl("get", "--raw", "/readyz", check=False)
    if res.returncode != 0:
        pytest.fail(f"the cluster in {cluster.kubeconfig} is not reachable: {res.stderr}")
    return cluster


@pytest.fixture
def namespace(sandbox: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, so e2e tests run in parallel on one cluster."""
    base = request.node.name.lower().replace("_", "-")
    name = "".join(c for c in base if c.isalnum() or c == "-")[:40].strip("-")
    name = create_namespace(sandbox, name)
    yield name
    sandbox.kubectl("delete", "namespace", name, "--wait=false", check=False)


def create_namespace(sandbox: Cluster, prefix: str) -> str:
    """A fresh namespace named `prefix-xxxxx`, labelled as the tests', ready for pods."""
    name = f"{prefix}-{uuid.uuid4().hex[:5]}"
    sandbox.kubectl("create", "namespace", name)
    sandbox.kubectl("label", "namespace", name, "glideslope.dev/e2e=true")
    # Pods are refused until the namespace's default ServiceAccount exists.
    wait_until(lambda: sandbox.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0,
               timeout=30, what=f"ServiceAccount default in {name}")
    return name
