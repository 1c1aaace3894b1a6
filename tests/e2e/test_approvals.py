"""Approvals that cannot be forged, on the sandbox: the chart's ValidatingAdmissionPolicy
(deploy/admission-policy.yaml, which `glideslope sandbox up` installs) admits
`glideslope.dev/approve` only with `glideslope.dev/approved-by` set to the writer's own user
name, and only from one of the gate's `approval.approvers`. The admin kubeconfig impersonates
the people (`kubectl --as`); a Role lets them write Releases in the test's namespace, so that
what refuses them is the policy, not RBAC.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import Cluster, wait_until
from tests.e2e.operator_fixture import Operator, operator_fixture, release, status, wait_phase  # noqa: F401

pytestmark = pytest.mark.e2e

CANARY = {"type": "Canary", "canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "1s"}}]}}
PEOPLE = ("alice", "bob", "mallory")
BIN = Path(sys.executable).parent


def gated(name: str, version: str, approvers: dict[str, list[str]] | None, **spec: Any) -> dict[str, Any]:
    approval = {} if approvers is None else {"approvers": approvers}
    return release(name, version, CANARY, replicas=2, gates=[{"name": "prod", "approval": approval}], **spec)


def let_people_write_releases(sandbox: Cluster, namespace: str) -> None:
    sandbox.apply([
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "release-writers"},
         "rules": [{"apiGroups": ["glideslope.dev"], "resources": ["releases"],
                    "verbs": ["get", "list", "watch", "create", "update", "patch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "release-writers"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "release-writers"},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": p} for p in PEOPLE]},
    ], namespace)


def annotate_as(sandbox: Cluster, namespace: str, name: str, who: list[str], *pairs: str,
                ) -> subprocess.CompletedProcess[str]:
    """`kubectl annotate` as another person (`who`: kubectl's --as/--as-group flags)."""
    return sandbox.kubectl("annotate", "--overwrite", "release", name, "-n", namespace, *who, *pairs, check=False)


def approve_pairs(gate: str, by: str | None) -> list[str]:
    return [f"glideslope.dev/approve={gate}", *([f"glideslope.dev/approved-by={by}"] if by else [])]


def annotations(sandbox: Cluster, namespace: str, name: str) -> dict[str, str]:
    meta = sandbox.get_json("release", name, "-n", namespace)["metadata"]
    return dict(meta.get("annotations") or {})


def gate_status(st: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = next(g for g in st.get("gates", []) if g["name"] == "prod")
    return found


def refused(res: subprocess.CompletedProcess[str], *words: str) -> None:
    assert res.returncode != 0, res.stdout
    assert "ValidatingAdmissionPolicy" in res.stderr and "denied request" in res.stderr, res.stderr
    for word in words:
        assert word in res.stderr, (word, res.stderr)


def test_only_an_approver_signing_with_their_own_name_passes_the_gate(
        sandbox: Cluster, namespace: str, operator: Operator) -> None:
    let_people_write_releases(sandbox, namespace)
    sandbox.apply(gated("web", "1", {"users": ["alice"]}), namespace)
    wait_phase(sandbox, namespace, "web", "Gated", version="1")

    # Not an approver, though signing honestly.
    refused(annotate_as(sandbox, namespace, "web", ["--as", "mallory"], *approve_pairs("prod", "mallory")),
            "approval of gate prod refused", "mallory is not among its approvers")
    # An approver signing with another's name, or with none.
    refused(annotate_as(sandbox, namespace, "web", ["--as", "alice"], *approve_pairs("prod", "bob")),
            "approval of gate prod refused", "must be your own user name alice, not bob")
    refused(annotate_as(sandbox, namespace, "web", ["--as", "alice"], *approve_pairs("prod", None)),
            "approval of gate prod refused", "alice, and it is not set")
    # The admin is no exception to the name.
    refused(annotate_as(sandbox, namespace, "web", [], *approve_pairs("prod", "alice")),
            "approval of gate prod refused", "not alice")
    assert "glideslope.dev/approve" not in annotations(sandbox, namespace, "web")
    assert gate_status(status(sandbox, namespace, "web"))["state"] == "Pending"

    ok = annotate_as(sandbox, namespace, "web", ["--as", "alice"], *approve_pairs("prod", "alice"))
    assert ok.returncode == 0, ok.stderr
    st = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")
    passed = gate_status(st)
    assert (passed["state"], passed["approvedBy"], passed["message"]) == ("Passed", "alice", "approved by alice")
    # The operator's removal of the annotations was admitted.
    wait_until(lambda: not {"glideslope.dev/approve", "glideslope.dev/approved-by"}
               & set(annotations(sandbox, namespace, "web")), 30, "the approval annotations removed")


def test_a_group_of_approvers_and_writes_that_leave_an_approval_alone(sandbox: Cluster, namespace: str) -> None:
    """No operator here: an admitted approval stays on the Release while others write it."""
    let_people_write_releases(sandbox, namespace)
    sandbox.apply(gated("web", "1", {"groups": ["release-managers"]}), namespace)

    refused(annotate_as(sandbox, namespace, "web", ["--as", "bob"], *approve_pairs("prod", "bob")),
            "approval of gate prod refused", "bob is not among its approvers")
    member = ["--as", "bob", "--as-group", "release-managers"]
    ok = annotate_as(sandbox, namespace, "web", member, *approve_pairs("prod", "bob"))
    assert ok.returncode == 0, ok.stderr

    # Writes that leave the approval as it is pass, whoever makes them: a label, a spec change
    # (as an autoscaler or a person), kubectl apply of the manifest (as GitOps does).
    for args in (["label", "release", "web", "team=shop"],
                 ["patch", "release", "web", "--type=merge", "-p", '{"spec":{"replicas":3}}']):
        res = sandbox.kubectl(*args, "-n", namespace, "--as", "mallory", check=False)
        assert res.returncode == 0, res.stderr
    sandbox.apply(gated("web", "1", {"groups": ["release-managers"]}), namespace)
    # Changing who signed is approving again, so it is checked.
    refused(annotate_as(sandbox, namespace, "web", ["--as", "mallory"], "glideslope.dev/approved-by=mallory"),
            "approval of gate prod refused", "mallory is not among its approvers")
    assert annotations(sandbox, namespace, "web")["glideslope.dev/approved-by"] == "bob"

    # Widening the approvers and approving in one write: the approvers before it still count.
    widened = gated("web", "1", {"groups": ["release-managers"], "users": ["mallory"]})
    widened["metadata"]["annotations"] = {"glideslope.dev/approve": "prod", "glideslope.dev/approved-by": "mallory"}
    res = sandbox.kubectl("apply", "-n", namespace, "--as", "mallory", "-f", "-", input=_json(widened), check=False)
    refused(res, "approval of gate prod refused", "mallory is not among its approvers")

    # The operator's removal: a JSON patch that tests and removes both annotations.
    removal = json.dumps([op for key, value in (("approve", "prod"), ("approved-by", "bob"))
                          for path in [f"/metadata/annotations/glideslope.dev~1{key}"]
                          for op in ({"op": "test", "path": path, "value": value}, {"op": "remove", "path": path})])
    res = sandbox.kubectl("patch", "release", "web", "-n", namespace, "--type=json", "-p", removal,
                          as_operator=True, check=False)
    assert res.returncode == 0, res.stderr

    # Creating a Release that carries an approval is approving.
    preset = gated("other", "1", {"users": ["alice"]})
    preset["metadata"]["annotations"] = {"glideslope.dev/approve": "prod", "glideslope.dev/approved-by": "alice"}
    res = sandbox.kubectl("create", "-n", namespace, "--as", "mallory", "-f", "-", input=_json(preset), check=False)
    refused(res, "approval of gate prod refused", "mallory, not alice")
    res = sandbox.kubectl("create", "-n", namespace, "--as", "alice", "-f", "-", input=_json(preset), check=False)
    assert res.returncode == 0, res.stderr
    # A Release without one is not looked at.
    res = sandbox.kubectl("create", "-n", namespace, "--as", "mallory", "-f", "-",
                          input=_json(gated("plain", "1", {"users": ["alice"]})), check=False)
    assert res.returncode == 0, res.stderr


def _json(body: dict[str, Any]) -> str:
    return json.dumps(body)


def kubectl_release(sandbox: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", KUBECONFIG=str(sandbox.kubeconfig))
    return subprocess.run([sandbox.kubectl_bin, "release", *args], capture_output=True, text=True, env=env,
                          timeout=60)


def test_kubectl_release_approve_signs_as_the_caller(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    let_people_write_releases(sandbox, namespace)
    sandbox.apply(gated("web", "1", {"users": ["alice"]}), namespace)
    wait_phase(sandbox, namespace, "web", "Gated", version="1")

    denied = kubectl_release(sandbox, "approve", "web", "--gate", "prod", "-n", namespace, "--as", "mallory")
    assert denied.returncode == 1 and "Traceback" not in denied.stderr, denied.stderr
    assert "approval of gate prod refused: mallory is not among its approvers" in denied.stderr

    ok = kubectl_release(sandbox, "approve", "web", "--gate", "prod", "-n", namespace, "--as", "alice")
    assert ok.returncode == 0, ok.stderr
    assert "glideslope.dev/approved-by=alice" in ok.stdout
    st = wait_phase(sandbox, namespace, "web", "Succeeded", version="1")
    assert (gate_status(st)["state"], gate_status(st)["approvedBy"]) == ("Passed", "alice")

    # Without --as, the kubeconfig's own user signs, as the API server names it.
    sandbox.apply(gated("web", "2", None), namespace)
    wait_phase(sandbox, namespace, "web", "Gated", version="2")
    whoami = sandbox.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout.strip()
    ok = kubectl_release(sandbox, "approve", "web", "--gate", "prod", "-n", namespace)
    assert ok.returncode == 0, ok.stderr
    st = wait_phase(sandbox, namespace, "web", "Succeeded", version="2")
    assert gate_status(st)["approvedBy"] == whoami
