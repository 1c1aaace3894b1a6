"""`kubectl release` as a user types it: kubectl finds the plugin on PATH."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.e2e.helpers import REPO, Cluster, wait_until
from tests.e2e.operator_fixture import (  # noqa: F401
    Operator,
    events,
    operator_fixture,
    release,
    snapshot,
    status,
    wait_phase,
)

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent


def kubectl_release(sandbox: Cluster, *args: str, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
    # kubectl hands a plugin no flags of its own: the kubeconfig travels in $KUBECONFIG.
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", KUBECONFIG=str(kubeconfig or sandbox.kubeconfig))
    return subprocess.run([sandbox.kubectl_bin, "release", *args],
                          capture_output=True, text=True, env=env, timeout=60)


def annotations(sandbox: Cluster, namespace: str, name: str) -> dict[str, str]:
    meta = sandbox.get_json("release", name, "-n", namespace)["metadata"]
    return dict(meta.get("annotations", {}))


def test_list_status_and_commands(sandbox: Cluster, namespace: str) -> None:
    sandbox.kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "canary.yaml"))
    name = yaml.safe_load((REPO / "examples" / "canary.yaml").read_text())["metadata"]["name"]

    listed = kubectl_release(sandbox, "list", "-n", namespace)
    assert listed.returncode == 0, listed.stderr
    assert name in listed.stdout and "Canary" in listed.stdout

    status = kubectl_release(sandbox, "status", name, "-n", namespace)
    assert status.returncode == 0, status.stderr
    assert f"{namespace}/{name}" in status.stdout and "2.5.0" in status.stdout

    me = sandbox.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout.strip()
    for args, key, value in [
        (["promote"], "glideslope.dev/promote", "step"),
        (["promote", "--full"], "glideslope.dev/promote", "full"),
        (["abort", "--reason", "bad latency"], "glideslope.dev/abort", "bad latency"),
        # Signed with the caller's name as the API server knows it (--as would impersonate).
        (["approve", "--gate", "change-approved"], "glideslope.dev/approved-by", me),
    ]:
        res = kubectl_release(sandbox, *args[:1], name, *args[1:], "-n", namespace)
        assert res.returncode == 0, res.stderr
        assert annotations(sandbox, namespace, name)[key] == value
    # Commands never touch spec: a GitOps tool sees no drift.
    assert sandbox.get_json("release", name, "-n", namespace)["metadata"]["generation"] == 1


def test_missing_release_and_missing_permission_are_clear(sandbox: Cluster, namespace: str, tmp_path: Path) -> None:
    missing = kubectl_release(sandbox, "status", "nope", "-n", namespace)
    assert missing.returncode == 1
    assert "not found" in missing.stderr and "Traceback" not in missing.stderr

    # An account with no RBAC at all.
    sandbox.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    nobody = sandbox.kubeconfig_for("nobody", namespace, tmp_path / "nobody.kubeconfig")
    denied = kubectl_release(sandbox, "list", "-n", namespace, kubeconfig=nobody)
    assert denied.returncode == 1
    assert "forbidden" in denied.stderr and "Traceback" not in denied.stderr
    for args in (["notes", "nope"], ["pause", "nope"], ["resume", "nope"]):
        missing = kubectl_release(sandbox, *args, "-n", namespace)
        assert missing.returncode == 1 and "not found" in missing.stderr, missing.stderr
        denied = kubectl_release(sandbox, *args, "-n", namespace, kubeconfig=nobody)
        assert denied.returncode == 1 and "forbidden" in denied.stderr and "Traceback" not in denied.stderr

    # May read Releases but not ConfigMaps: the notes say which object is forbidden.
    sandbox.kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "canary.yaml"))
    name = yaml.safe_load((REPO / "examples" / "canary.yaml").read_text())["metadata"]["name"]
    sandbox.kubectl("create", "serviceaccount", "reader", "-n", namespace)
    sandbox.kubectl("create", "role", "reader", "-n", namespace, "--verb=get,list",
                    "--resource=releases.glideslope.dev")
    sandbox.kubectl("create", "rolebinding", "reader", "-n", namespace, "--role=reader",
                    f"--serviceaccount={namespace}:reader")
    reader = sandbox.kubeconfig_for("reader", namespace, tmp_path / "reader.kubeconfig")
    partly = kubectl_release(sandbox, "notes", name, "-n", namespace, kubeconfig=reader)
    assert partly.returncode == 1 and f"ConfigMap {name}-record" in partly.stderr and "forbidden" in partly.stderr


def test_live_view_follows_a_rollout_to_its_end(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    import io

    from kubernetes import config
    from rich.console import Console

    from glideslope.cli.plugin import follow

    canary = {"type": "Canary", "canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "2s"}}]}}
    sandbox.apply(release("live", "1", canary, replicas=2), namespace)
    wait_phase(sandbox, namespace, "live", "Succeeded", version="1")
    config.load_kube_config(config_file=str(sandbox.kubeconfig))
    sandbox.apply(release("live", "2", canary, replicas=2), namespace)
    out = io.StringIO()
    phase = follow(namespace, "live", Console(file=out, width=160), until_final=True, timeout=90)
    assert phase == "Succeeded"
    text = out.getvalue()
    assert "setWeight 50" in text and "revisions" in text and "Started" in text


def test_every_command_drives_a_rollout(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    """approve, pause, resume, promote, undo, retry, promote --full, abort, then history and notes,
    each as a person types it, each obeyed by the operator."""
    def run(*args: str) -> str:
        res = kubectl_release(sandbox, *args[:1], "drive", *args[1:], "-n", namespace)
        assert res.returncode == 0, res.stderr
        return res.stdout

    steps = {"type": "Canary", "canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "1h"}}]}}
    gate = [{"name": "change-approved", "stage": "preDeploy", "approval": {}}]
    sandbox.apply(release("drive", "1", steps, replicas=2), namespace)
    wait_phase(sandbox, namespace, "drive", "Succeeded", version="1")
    sandbox.apply(release("drive", "2", steps, replicas=2, gates=gate, releaseNotes="- two"), namespace)
    wait_phase(sandbox, namespace, "drive", "Gated", version="2")

    run("approve", "--gate", "change-approved")
    wait_until(lambda: status(sandbox, namespace, "drive").get("currentStep") == 2, 60, "step 2 (the 1h pause)")
    run("pause", "--reason", "db migration")
    paused = wait_phase(sandbox, namespace, "drive", "Paused", version="2")
    assert "db migration" in paused["message"]
    assert "glideslope.dev/pause" not in annotations(sandbox, namespace, "drive")  # consumed
    run("resume")
    wait_phase(sandbox, namespace, "drive", "Progressing", version="2")
    run("promote")
    wait_phase(sandbox, namespace, "drive", "Succeeded", version="2")

    run("undo")
    undone = wait_phase(sandbox, namespace, "drive", "RolledBack", version="2")
    assert undone["stableVersion"] == "1"
    run("retry")
    wait_until(lambda: status(sandbox, namespace, "drive").get("currentStep") == 2, 60, "step 2 again")
    run("promote", "--full")
    assert wait_phase(sandbox, namespace, "drive", "Succeeded", version="2")["stableVersion"] == "2"

    sandbox.apply(release("drive", "3", steps, replicas=2), namespace)
    wait_until(lambda: status(sandbox, namespace, "drive").get("currentStep") == 2, 60, "3 at step 2")
    run("abort", "--reason", "bad latency")
    wait_phase(sandbox, namespace, "drive", "RolledBack", version="3")

    history = run("history")
    assert history.count("RolledBack") == 2 and "abort: bad latency" in history
    notes = run("notes", "--revision", "2")
    timeline = notes.split("## Timeline", 1)[1].split("\n## ", 1)[0]
    for reason in ("GatePassed", "Paused", "Resumed", "Promoted", "Undo", "RolledBack", "Retried", "Succeeded"):
        assert f"| {reason} |" in timeline.replace("**", ""), (reason, notes)
    me = sandbox.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout.strip()
    assert "| change-approved | preDeploy | Passed |" in notes and me in notes
    assert "- two" in notes
    assert "abort: bad latency" in run("notes")


def test_restart_renews_every_pod_and_serving_never_drops(sandbox: Cluster, namespace: str,
                                                          operator: Operator) -> None:
    steps = {"type": "Canary", "canary": {"steps": [{"setWeight": 50}]}}
    sandbox.apply(release("renew", "1", steps, replicas=3), namespace)
    done = wait_phase(sandbox, namespace, "renew", "Succeeded", version="1")

    def pods() -> set[str]:
        items = sandbox.get_json("pods", "-n", namespace, "-l", "glideslope.dev/release=renew")["items"]
        return {p["metadata"]["name"] for p in items if not p["metadata"].get("deletionTimestamp")}

    before = pods()
    assert len(before) == 3
    res = kubectl_release(sandbox, "restart", "renew", "-n", namespace)
    assert res.returncode == 0, res.stderr
    fewest = 3

    def renewed() -> bool:
        nonlocal fewest
        _, revisions = snapshot(sandbox, namespace, "renew")
        fewest = min(fewest, revisions[done["stableRevision"]]["ready"])
        now = pods()
        return len(now) == 3 and not now & before and revisions[done["stableRevision"]]["ready"] == 3

    wait_until(renewed, 60, "three new pods of the same revision")
    assert fewest == 3  # a new pod is Ready before an old one goes
    assert "glideslope.dev/restart" not in annotations(sandbox, namespace, "renew")
    after = status(sandbox, namespace, "renew")
    assert after["phase"] == "Succeeded" and after["stableRevision"] == done["stableRevision"]
    assert "Restarted" in events(sandbox, namespace)


def test_krew_installs_the_plugin_from_its_manifest(sandbox: Cluster, namespace: str, tmp_path: Path) -> None:
    """`kubectl krew install` of plugins/release.yaml with the archive `make krew` builds; the
    plugin's first run installs the client from the wheel in it, and it works on the cluster."""
    from glideslope.sandbox import krew
    from glideslope.sandbox.build import ensure_krew

    archive, sha256 = krew.build(tmp_path / "dist")
    manifest = tmp_path / "release.yaml"
    manifest.write_text(krew.manifest(sha256))
    root = tmp_path / "krew"
    env = {**os.environ, "KREW_ROOT": str(root), "KUBECONFIG": str(sandbox.kubeconfig),
           "KUBECTL_RELEASE_HOME": str(tmp_path / "client"),
           "KUBECTL_RELEASE_PYTHON": str(Path(sys.base_prefix) / "bin" / "python3"),
           # krew's bin first, and not the venv's: the plugin found must be the one krew installed.
           "PATH": os.pathsep.join([str(root / "bin"), str(Path(sandbox.kubectl_bin).parent), "/usr/bin", "/bin"])}
    installed = subprocess.run([str(ensure_krew()), "install", f"--manifest={manifest}", f"--archive={archive}"],
                               capture_output=True, text=True, env=env, timeout=120)
    assert installed.returncode == 0, installed.stderr
    assert "Installed plugin: release" in installed.stdout + installed.stderr

    listed = subprocess.run([sandbox.kubectl_bin, "release", "list", "-n", namespace], capture_output=True,
                            text=True, env=env, timeout=300)
    assert listed.returncode == 0, listed.stderr
    assert f"No releases in namespace {namespace}." in listed.stdout
    assert "first run" in listed.stderr and (tmp_path / "client" / krew.version() / ".installed").exists()
    again = subprocess.run([sandbox.kubectl_bin, "release", "version"], capture_output=True, text=True, env=env,
                           timeout=60)
    assert again.returncode == 0 and again.stdout.strip() == f"kubectl-release {krew.version()}", again
    assert "first run" not in again.stderr


def test_a_pipeline_waits_on_a_rollout(sandbox: Cluster, namespace: str, operator: Operator) -> None:
    """`status --timeout` exits 0 on Succeeded, 1 on RolledBack or Failed, 2 on timeout; `-o json`
    and `-o yaml` give the objects as the API server has them."""
    steps = {"type": "Canary", "canary": {"steps": [{"setWeight": 25}, {"pause": {}}]}}
    sandbox.apply(release("ship", "1", steps, replicas=2), namespace)
    done = kubectl_release(sandbox, "status", "ship", "--timeout", "50s", "-n", namespace)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Succeeded 1" in done.stdout

    sandbox.apply(release("ship", "2", steps, replicas=2), namespace)
    waiting = kubectl_release(sandbox, "status", "ship", "--timeout", "3s", "-n", namespace)
    assert waiting.returncode == 2, waiting.stdout + waiting.stderr
    assert "after 3s" in waiting.stdout
    kubectl_release(sandbox, "abort", "ship", "--reason", "pipeline test", "-n", namespace)
    rolled_back = kubectl_release(sandbox, "status", "ship", "--timeout", "50s", "-n", namespace)
    assert rolled_back.returncode == 1, rolled_back.stdout + rolled_back.stderr

    listed = json.loads(kubectl_release(sandbox, "list", "-n", namespace, "-o", "json").stdout)
    assert [i["metadata"]["name"] for i in listed["items"]] == ["ship"]
    body = yaml.safe_load(kubectl_release(sandbox, "status", "ship", "-n", namespace, "-o", "yaml").stdout)
    assert body["status"]["phase"] == "RolledBack"
    history = json.loads(kubectl_release(sandbox, "history", "ship", "-n", namespace, "-o", "json").stdout)
    assert [h["outcome"] for h in history] == ["Succeeded", "RolledBack"]
    assert kubectl_release(sandbox, "version").stdout.startswith("kubectl-release ")
