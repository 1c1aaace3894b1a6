"""The CRD upgrade path the README gives. Helm installs `crds/` once and never upgrades it, so
`helm upgrade` alone leaves an older CRD in place, which refuses a manifest that uses what only
the new one has; the README's command (apply the chart's CRD server-side) lands the new schema, and a
Release keeps, and is rolled out with, what only that schema has.

It replaces the cluster-wide CRD for a while, so `make test-faults` runs it alone."""

from __future__ import annotations

import copy
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from glideslope.sandbox.build import ensure_helm
from tests.e2e.helpers import REPO, Cluster, wait_until
from tests.e2e.operator_fixture import Operator, operator_fixture, release, release_finalizers, status, wait_phase

pytestmark = pytest.mark.faults
_ = operator_fixture

CHART = REPO / "charts" / "glideslope"
CHART_CRD = CHART / "crds" / "glideslope.dev_releases.yaml"
NEW_SPEC_FIELD, NEW_STATUS_FIELD = "releaseNotes", "stepStarts"
CANARY = {"type": "Canary", "canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "1s"}}]}}


def helm(*args: str) -> str:
    res = subprocess.run([str(ensure_helm()), *args], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


def older_crd() -> dict[str, Any]:
    """The chart's CRD as an older version shipped it: without a spec and a status field."""
    crd: dict[str, Any] = copy.deepcopy(yaml.safe_load(CHART_CRD.read_text()))
    props = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    del props["spec"]["properties"][NEW_SPEC_FIELD]
    del props["status"]["properties"][NEW_STATUS_FIELD]
    return crd


def live_fields(sandbox: Cluster) -> tuple[set[str], set[str]]:
    crd = sandbox.get_json("crd", "releases.glideslope.dev")
    props = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    return set(props["spec"]["properties"]), set(props["status"]["properties"])


def readme_upgrade_command() -> list[str]:
    """The `kubectl apply` the README says to run before `helm upgrade`, as written there."""
    found = re.search(r"before `helm upgrade`, apply the new CRD\s*\(`(kubectl apply [^`]+)`",
                      (REPO / "README.md").read_text())
    assert found, "the README no longer gives the CRD upgrade command"
    return [str(REPO / arg) if arg.startswith("charts/") else arg for arg in found.group(1).split()[1:]]


def test_helm_leaves_the_crd_and_the_readme_command_upgrades_it(sandbox: Cluster, namespace: str,
                                                                 operator: Operator, tmp_path: Path) -> None:
    install_ns = f"{namespace}-crd"[:63]
    helm_release = f"up{uuid.uuid4().hex[:6]}"
    kube = ["--kubeconfig", str(sandbox.kubeconfig)]
    # The sandbox's own install holds the shipped ClusterAnalysisTemplates.
    chart_args = [str(CHART), "--namespace", install_ns, "--set", "replicas=0",
                  "--set", "analysisTemplates.enabled=false", "--set", f"watchNamespaces={{{namespace}}}", *kube]
    try:
        # What a cluster has after installing an older chart: its CRD, applied by Helm.
        sandbox.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=helm", "-f", "-",
                        input=yaml.safe_dump(older_crd()))
        wait_until(lambda: NEW_SPEC_FIELD not in live_fields(sandbox)[0], 30, "the older CRD")
        helm("install", helm_release, *chart_args, "--create-namespace")
        helm("upgrade", helm_release, *chart_args)
        spec_fields, status_fields = live_fields(sandbox)
        assert NEW_SPEC_FIELD not in spec_fields and NEW_STATUS_FIELD not in status_fields  # Helm left it

        sandbox.apply(release("shop", "1", CANARY, replicas=2), namespace)
        wait_phase(sandbox, namespace, "shop", "Succeeded", version="1", timeout=60)
        refused = sandbox.kubectl("apply", "-n", namespace, "-f", "-", check=False, input=yaml.safe_dump(
            release("shop", "2", CANARY, replicas=2, releaseNotes="- two")))
        assert refused.returncode != 0 and "unknown field" in refused.stderr, refused.stderr[-300:]
        assert NEW_SPEC_FIELD in refused.stderr[-300:]

        res = sandbox.kubectl(*readme_upgrade_command(), check=False)
        assert res.returncode == 0, f"the README's CRD upgrade fails: {res.stderr}"
        wait_until(lambda: NEW_SPEC_FIELD in live_fields(sandbox)[0], 30, "the chart's CRD")
        live = sandbox.get_json("crd", "releases.glideslope.dev")["spec"]["versions"]
        assert live[0]["schema"] == yaml.safe_load(CHART_CRD.read_text())["spec"]["versions"][0]["schema"]
        helm("upgrade", helm_release, *chart_args)

        sandbox.apply(release("shop", "2", CANARY, replicas=2, releaseNotes="- two"), namespace)
        assert sandbox.get_json("release", "shop", "-n", namespace)["spec"][NEW_SPEC_FIELD] == "- two"
        wait_phase(sandbox, namespace, "shop", "Succeeded", version="2", timeout=60)
        assert status(sandbox, namespace, "shop").get(NEW_STATUS_FIELD), "the operator's new status field"
    finally:
        release_finalizers(sandbox, namespace)
        sandbox.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=glideslope-sandbox",
                        "-f", str(CHART_CRD))
        subprocess.run([str(ensure_helm()), "uninstall", helm_release, "--namespace", install_ns, *kube],
                       capture_output=True, timeout=120)
        sandbox.kubectl("delete", "namespace", install_ns, "--wait=false", check=False)
