"""The Release CRD on a real API server: examples are accepted, bad manifests rejected with
the offending field named, and the subresources, columns and defaults work as declared.

Objects are created only in fresh namespaces; data checks read the API server's response to
the very request, so an operator running in the cluster cannot race them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from glideslope.api import CRD_NAME, ReleaseStatus, parse_release, parse_status
from glideslope.api.crd import render_crd
from tests.e2e.helpers import Cluster
from tests.e2e.invalid import CASES, Case, base

pytestmark = pytest.mark.e2e

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


@pytest.fixture(scope="module")
def dry_run_namespace(sandbox: Cluster) -> Iterator[str]:
    """One namespace for server-side dry runs: they store nothing, so they can share it."""
    name = f"crd-validation-{uuid.uuid4().hex[:6]}"
    sandbox.kubectl("create", "namespace", name)
    yield name
    sandbox.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_installed_crd_is_established_and_current(sandbox: Cluster) -> None:
    crd = json.loads(sandbox.kubectl("get", "crd", CRD_NAME, "-o", "json").stdout)
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions.get("Established") == "True", conditions
    assert conditions.get("NamesAccepted") == "True", conditions
    assert "NonStructuralSchema" not in conditions, conditions
    served = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert served == render_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"], (
        "the cluster's CRD differs from glideslope.api: reinstall crds/")


@pytest.mark.parametrize("server_side", [False, True], ids=["client-side-apply", "server-side-apply"])
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_is_accepted(sandbox: Cluster, dry_run_namespace: str, path: Path, server_side: bool) -> None:
    args = ["apply", "--dry-run=server", "--validate=strict", "-n", dry_run_namespace, "-f", str(path)]
    if server_side:
        args.insert(1, "--server-side")
    res = sandbox.kubectl(*args, check=False)
    assert res.returncode == 0, res.stderr
    assert "Warning" not in res.stderr, res.stderr


def test_examples_apply_together(sandbox: Cluster, namespace: str) -> None:
    """As the README has it: `kubectl apply -f examples/` gives one Release per file."""
    sandbox.kubectl("apply", "--validate=strict", "-n", namespace, "-f", str(EXAMPLES[0].parent))
    names = sandbox.kubectl("get", "releases", "-n", namespace, "-o", "name").stdout.split()
    expected = {yaml.safe_load(p.read_text())["metadata"]["name"] for p in EXAMPLES}
    assert {n.split("/", 1)[1] for n in names} == expected and len(expected) == len(EXAMPLES)


def test_base_manifest_is_accepted(sandbox: Cluster, dry_run_namespace: str) -> None:
    res = _create(sandbox, dry_run_namespace, base(), dry_run=True)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_invalid_manifest_is_rejected(sandbox: Cluster, dry_run_namespace: str, case: Case) -> None:
    res = _create(sandbox, dry_run_namespace, case.manifest(), dry_run=True)
    assert res.returncode != 0, f"{case.id}: accepted"
    assert case.expected in res.stderr, f"{case.id}: {case.expected!r} not in:\n{res.stderr}"


@pytest.mark.parametrize("condition", [
    "size([0, 0].map(a, [0, 0].map(b, 0))) > 0 || result > 0.0",
    "'aaaaaaaaaaaaaaaaaaaaaaaaaaaa!'.matches('^(a+)+$') || result > 0.0",
], ids=["map", "matches"])
def test_condition_with_unbounded_call_is_refused_by_apply(sandbox: Cluster, dry_run_namespace: str,
                                                          condition: str) -> None:
    """The API server's own CEL refuses comprehension macros and `matches` in a condition (their
    cost has no bound), naming the field; the operator never sees the Release."""
    manifest = base()
    manifest["spec"]["analysis"]["triggers"][0]["failureCondition"] = condition
    res = sandbox.kubectl("apply", "--dry-run=server", "--validate=strict", "-n", dry_run_namespace, "-f", "-",
                          input=json.dumps(manifest), check=False)
    assert res.returncode != 0, "accepted"
    assert "spec.analysis.triggers[0].failureCondition" in res.stderr, res.stderr
    assert "must not call map, filter, all, exists, exists_one or matches" in res.stderr, res.stderr


def test_selector_is_immutable(sandbox: Cluster, namespace: str) -> None:
    _create(sandbox, namespace, base(), check=True)
    change = {"spec": {"selector": {"matchLabels": {"app": "other"}},
                       "template": {"metadata": {"labels": {"app": "other"}}}}}
    res = sandbox.kubectl("patch", "release", "checkout", "-n", namespace, "--type=merge",
                          "-p", json.dumps(change), check=False)
    assert res.returncode != 0
    assert "spec.selector" in res.stderr and "immutable" in res.stderr, res.stderr
    # Other fields stay mutable.
    sandbox.kubectl("patch", "release", "checkout", "-n", namespace, "--type=merge",
                    "-p", json.dumps({"spec": {"version": "2.6.0"}}))


def test_server_defaults_and_the_models_agree(sandbox: Cluster, namespace: str) -> None:
    manifest = yaml.safe_load((EXAMPLES[0].parent / "canary.yaml").read_text())
    created = json.loads(_create(sandbox, namespace, manifest, check=True, output="json").stdout)
    spec = created["spec"]
    assert spec["paused"] is False and spec["rollback"] == {"automatic": True}
    trigger = spec["analysis"]["triggers"][0]
    assert trigger["onNoData"] == "Inconclusive" and trigger["failureLimit"] == 3
    # What the server stores, the models read; and they fill the same defaults.
    release = parse_release(created)
    assert release.metadata.namespace == namespace and release.metadata.generation == 1
    assert release.spec.analysis.initial_delay == spec["analysis"]["initialDelay"] == "0s"


def test_status_round_trips_through_the_api_server(sandbox: Cluster, namespace: str) -> None:
    from tests.unit.test_api_models import full_status

    _create(sandbox, namespace, base(), check=True)
    status = full_status()
    patched = _patch_status(sandbox, namespace, "checkout", status)
    # Nothing pruned, nothing refused: the status schema takes all the model writes.
    assert patched["status"] == status.to_dict()
    assert parse_status(patched["status"]) == status


def test_columns_scale_and_field_selectors(sandbox: Cluster, namespace: str) -> None:
    _create(sandbox, namespace, base(), check=True)
    _patch_status(sandbox, namespace, "checkout", ReleaseStatus.model_validate(
        {"phase": "Progressing", "stepDisplay": "3/5", "weight": 10, "gatesDisplay": "2/3",
         "replicas": 4, "selector": "app=checkout"}))
    table = sandbox.kubectl("get", "rel", "checkout", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "VERSION", "STRATEGY", "PHASE", "STEP", "WEIGHT", "GATES", "AGE"]
    assert table[1].split()[:3] == ["checkout", "2.5.0", "Canary"]
    wide = sandbox.kubectl("get", "releases.glideslope.dev", "-n", namespace, "-o", "wide").stdout
    assert wide.split()[8:11] == ["REVISION", "STABLE", "MESSAGE"]

    sandbox.kubectl("scale", "release", "checkout", "-n", namespace, "--replicas=2")
    assert sandbox.kubectl("get", "rel", "checkout", "-n", namespace,
                           "-o", "jsonpath={.spec.replicas}").stdout == "2"

    names = sandbox.kubectl("get", "rel", "-n", namespace, "-o", "name",
                            "--field-selector", "spec.strategy.type=Canary").stdout.split()
    assert names == ["release.glideslope.dev/checkout"]
    # The category also holds the analysis templates (ClusterAnalysisTemplates are the chart's, cluster-wide).
    listed = sandbox.kubectl("get", "glideslope", "-n", namespace, "-o", "name").stdout.split()
    assert [n for n in listed if n.startswith("release.")] == names


def _create(sandbox: Cluster, namespace: str, manifest: dict[str, Any], *, dry_run: bool = False,
            check: bool = False, output: str = "name") -> Any:
    args = ["create", "--validate=strict", "-n", namespace, "-o", output, "-f", "-"]
    if dry_run:
        args.insert(1, "--dry-run=server")
    return sandbox.kubectl(*args, input=json.dumps(manifest), check=check)


def _patch_status(sandbox: Cluster, namespace: str, name: str, status: ReleaseStatus) -> dict[str, Any]:
    res = sandbox.kubectl("patch", "release", name, "-n", namespace, "--subresource=status", "--type=merge",
                          "-p", json.dumps({"status": status.to_dict()}), "-o", "json")
    result: dict[str, Any] = json.loads(res.stdout)
    return result
