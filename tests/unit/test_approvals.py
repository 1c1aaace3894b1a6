"""Approvals that cannot be forged, without a cluster: the operator's own check of
`approval.approvers`, and `kubectl release approve` signing with the caller's identity (a
SelfSubjectReview) and impersonating as kubectl's `--as`/`--as-group` do, against a fake API
server on loopback. The admission policy itself is tested on the sandbox (tests/e2e/test_approvals.py).
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from pydantic import ValidationError
from rich.console import Console

from glideslope.api import GateState, Phase, parse_spec
from glideslope.cli.plugin import PluginError, command_annotations, parser, run
from glideslope.core.gates import approval
from glideslope.core.model import APPROVE, APPROVED_BY
from tests.unit.fakes import CANARY, make_spec, with_image
from tests.unit.test_core_gates import GatedRun, gated

pytestmark = pytest.mark.unit


def approval_gate(approvers: dict[str, Any] | None) -> Any:
    body: dict[str, Any] = {"name": "prod", "approval": {} if approvers is None else {"approvers": approvers}}
    return gated([body]).gates[0]


# --- the API ---------------------------------------------------------------------------------


def test_approvers_are_bounded_and_not_empty() -> None:
    spec = make_spec(CANARY).to_dict()
    ok = parse_spec({**spec, "gates": [{"name": "prod", "approval": {"approvers": {"users": ["alice"]}}}]})
    assert ok.gates[0].approval is not None and ok.gates[0].approval.approvers is not None
    for approvers in ({"users": []}, {"groups": []}, {"users": ["x" * 513]}, {"users": [f"u{i}" for i in range(33)]}):
        with pytest.raises(ValidationError):
            parse_spec({**spec, "gates": [{"name": "prod", "approval": {"approvers": approvers}}]})


# --- the operator's check --------------------------------------------------------------------


def test_refusal_checks_users_only_when_no_groups_are_named() -> None:
    alice_only = approval_gate({"users": ["alice"]})
    assert approval.refusal(alice_only, "alice") is None
    refused = approval.refusal(alice_only, "mallory")
    assert refused is not None and "gate prod" in refused and "'mallory'" in refused and "alice" in refused
    unsigned = approval.refusal(alice_only, None)
    assert unsigned is not None and "no glideslope.dev/approved-by" in unsigned
    # Groups are known only to the API server: its admission policy decides.
    assert approval.refusal(approval_gate({"users": ["alice"], "groups": ["sre"]}), "mallory") is None
    assert approval.refusal(approval_gate({"groups": ["sre"]}), "mallory") is None
    assert approval.refusal(approval_gate(None), "anyone") is None


def test_an_approval_by_someone_not_among_the_approvers_is_ignored_with_an_event() -> None:
    gates = [{"name": "prod", "stage": "preDeploy", "approval": {"approvers": {"users": ["alice"]}}}]
    run = GatedRun(gated(gates))
    run.tick({APPROVE: "prod", APPROVED_BY: "alice"})
    run.until(Phase.SUCCEEDED, limit=400)
    run.deploy(with_image(run.spec, "app:2"))
    run.tick()
    assert run.status.phase == Phase.GATED

    decision = run.tick({APPROVE: "prod", APPROVED_BY: "mallory"})
    assert set(decision.consumed) == {APPROVE, APPROVED_BY}, "a refused approval is consumed all the same"
    for _ in range(3):
        run.tick()
    assert run.status.phase == Phase.GATED and run.state("prod") == GateState.PENDING
    ignored = [e for e in run.cluster.events if e.reason == "CommandIgnored"]
    assert ignored and "'mallory' is not among its approvers (alice)" in ignored[-1].message
    assert ignored[-1].warning

    run.tick({APPROVE: "prod", APPROVED_BY: "alice"})
    run.until(Phase.SUCCEEDED, limit=400)
    gate = next(g for g in run.status.gates if g.name == "prod")
    assert (gate.state, gate.approved_by, gate.message) == (GateState.PASSED, "alice", "approved by alice")


# --- the plugin ------------------------------------------------------------------------------


def test_as_and_as_group_are_kubectls_flags_anywhere_on_the_line() -> None:
    after = parser().parse_args(["approve", "web", "--gate", "prod", "--as", "alice",
                                 "--as-group", "sre", "--as-group", "ops"])
    assert (after.as_user, after.as_groups) == ("alice", ["sre", "ops"])
    before = parser().parse_args(["--as", "bob", "list"])
    assert (before.as_user, before.as_groups) == ("bob", None)


def test_approve_is_signed_by_the_given_identity_only() -> None:
    args = parser().parse_args(["approve", "web", "--gate", "prod"])
    assert command_annotations(args, "alice") == {"glideslope.dev/approve": "prod",
                                                  "glideslope.dev/approved-by": "alice"}
    with pytest.raises(PluginError):
        command_annotations(args, None)


@dataclass
class FakeApiServer:
    """Answers SelfSubjectReviews (as the impersonated user, if any) and the Release `web` in
    namespace `shop`; records every request's impersonation headers and the patches."""

    refuse: str | None = None
    requests: list[tuple[str, str, list[str], list[str]]] = field(default_factory=list)
    patches: list[dict[str, Any]] = field(default_factory=list)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self) -> tuple[list[str], list[str]]:
                users = self.headers.get_all("Impersonate-User") or []
                groups = self.headers.get_all("Impersonate-Group") or []
                fake.requests.append((self.command, self.path, users, groups))
                length = int(self.headers.get("Content-Length") or 0)
                self.body = json.loads(self.rfile.read(length) or b"null")
                return users, groups

            def do_POST(self) -> None:
                users, groups = self._record()
                assert self.path == "/apis/authentication.k8s.io/v1/selfsubjectreviews"
                self._answer(201, {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
                                   "status": {"userInfo": {"username": users[0] if users else "kube-admin",
                                                           "groups": [*groups, "system:authenticated"]}}})

            def do_GET(self) -> None:
                self._record()
                self._answer(200, {"apiVersion": "glideslope.dev/v1alpha1", "kind": "Release",
                                   "metadata": {"name": "web", "namespace": "shop"}})

            def do_PATCH(self) -> None:
                self._record()
                if fake.refuse:
                    self._answer(403, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                       "reason": "Forbidden", "code": 403, "message": fake.refuse})
                    return
                fake.patches.append(self.body)
                self._answer(200, {"metadata": {"name": "web", "namespace": "shop"}})

        return Handler


@pytest.fixture
def fake_api(tmp_path: Path) -> Iterator[tuple[FakeApiServer, Path]]:
    fake = FakeApiServer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
        "users": [{"name": "me", "user": {"token": "t"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "me", "namespace": "shop"}}],
    }))
    saved = client.Configuration.get_default_copy()
    try:
        yield fake, kubeconfig
    finally:
        client.Configuration.set_default(saved)
        server.shutdown()
        server.server_close()


def approve(kubeconfig: Path, *flags: str) -> str:
    out = io.StringIO()
    assert run(["approve", "web", "--gate", "prod", "--kubeconfig", str(kubeconfig), *flags],
               Console(file=out, width=400)) == 0
    return out.getvalue()


def test_approve_signs_with_the_name_the_api_server_gives(fake_api: tuple[FakeApiServer, Path]) -> None:
    fake, kubeconfig = fake_api
    approve(kubeconfig)
    assert fake.patches == [{"metadata": {"annotations": {"glideslope.dev/approve": "prod",
                                                          "glideslope.dev/approved-by": "kube-admin"}}}]
    assert all(users == [] and groups == [] for _, _, users, groups in fake.requests), fake.requests


def test_approve_as_impersonates_on_every_request(fake_api: tuple[FakeApiServer, Path]) -> None:
    fake, kubeconfig = fake_api
    printed = approve(kubeconfig, "--as", "alice", "--as-group", "sre", "--as-group", "ops")
    assert "approved-by=alice" in printed
    assert fake.patches[0]["metadata"]["annotations"]["glideslope.dev/approved-by"] == "alice"
    methods = [method for method, *_ in fake.requests]
    assert methods == ["POST", "GET", "PATCH"], methods
    for _, path, users, groups in fake.requests:
        # One header line per group: the API server reads "sre,ops" as a single group.
        assert (users, groups) == (["alice"], ["sre", "ops"]), path


def test_as_group_without_as_is_refused(fake_api: tuple[FakeApiServer, Path]) -> None:
    fake, kubeconfig = fake_api
    with pytest.raises(PluginError, match="--as-group needs --as"):
        approve(kubeconfig, "--as-group", "sre")
    assert fake.requests == []


def test_a_refusal_by_the_admission_policy_is_shown_as_the_api_server_words_it(
        fake_api: tuple[FakeApiServer, Path]) -> None:
    fake, kubeconfig = fake_api
    fake.refuse = ("releases.glideslope.dev \"web\" is forbidden: ValidatingAdmissionPolicy 'glideslope-approvals' "
                   "with binding 'glideslope-approvals' denied request: approval of gate prod refused: mallory "
                   "is not among its approvers (spec.gates[].approval.approvers)")
    with pytest.raises(PluginError) as refused:
        approve(kubeconfig, "--as", "mallory")
    assert "refused by the API server" in str(refused.value)
    assert "approval of gate prod refused: mallory is not among its approvers" in str(refused.value)
