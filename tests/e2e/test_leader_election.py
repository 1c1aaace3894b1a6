"""Two operator replicas, one Lease: exactly one acts, and the survivor finishes after the
leader is killed."""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import REPO, Cluster, wait_until
from tests.e2e.operator_fixture import release, release_finalizers, status, wait_phase

pytestmark = pytest.mark.e2e

STARTUP = 60.0
"""Seconds a replica may take to start."""
LEASE_NAMESPACE = "glideslope-system"
LEASE_SECONDS = "3"
CANARY = {"type": "Canary", "canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "4s"}},
                                                  {"setWeight": 75}, {"pause": {"duration": "2s"}}]}}


class Replica:
    def __init__(self, sandbox: Cluster, namespace: str, lease: str, log: Path,
                 lease_seconds: str = LEASE_SECONDS) -> None:
        self.log = log
        env = {**os.environ, "KUBECONFIG": str(sandbox.operator_kubeconfig)}
        self.proc = subprocess.Popen(
            [str(REPO / ".venv/bin/glideslope"), "operator", "--namespace", namespace, "--metrics-port", "0",
             "--interval", "0.5", "--log-format", "json", "--leader-election-namespace", LEASE_NAMESPACE,
             "--leader-election-name", lease, "--leader-election-lease-seconds", lease_seconds],
            env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=REPO)
        self.identity = f"{socket.gethostname()}-{self.proc.pid}"

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def said(self, words: str) -> bool:
        return any(words in str(line.get("event", "")) for line in self.lines())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def lease(sandbox: Cluster, namespace: str) -> Iterator[str]:
    name = f"e2e-{namespace}"[:63]
    yield name
    sandbox.kubectl("delete", "lease", name, "-n", LEASE_NAMESPACE, "--ignore-not-found", check=False)
    release_finalizers(sandbox, namespace)


@pytest.fixture
def replica(sandbox: Cluster, namespace: str, lease: str,
            tmp_path: Path) -> Iterator[Callable[..., Replica]]:
    """Starts operator replicas on one Lease; all of them are stopped after the test."""
    started: list[Replica] = []

    def start(label: str, lease_seconds: str = LEASE_SECONDS) -> Replica:
        started.append(Replica(sandbox, namespace, lease, tmp_path / f"{label}.log", lease_seconds))
        return started[-1]

    yield start
    for r in started:
        r.stop()
        # pytest shows captured output of failed tests only.
        print(f"--- replica {r.log.name} ({r.identity}) ---\n{r.log.read_text(errors='replace')[-4000:]}")


def holder(sandbox: Cluster, lease: str) -> str | None:
    res = sandbox.kubectl("get", "lease", lease, "-n", LEASE_NAMESPACE, "-o", "json", check=False)
    if res.returncode != 0:
        return None
    value: str | None = json.loads(res.stdout)["spec"].get("holderIdentity")
    return value


def test_one_replica_acts_and_the_survivor_finishes(sandbox: Cluster, namespace: str, lease: str,
                                                    replica: Callable[..., Replica]) -> None:
    first = replica("first")
    # Generous: a replica's start (imports, login) is slow on a loaded machine, and is not what is tested.
    wait_until(lambda: holder(sandbox, lease) == first.identity, STARTUP, "the first replica leads")
    second = replica("second")
    wait_until(lambda: second.said("standing by"), STARTUP, "the second replica stands by")

    sandbox.apply(release("web", "1", CANARY, replicas=2), namespace)
    wait_phase(sandbox, namespace, "web", "Succeeded", version="1", timeout=60)
    sandbox.apply(release("web", "2", CANARY, replicas=2), namespace)
    wait_until(lambda: (status(sandbox, namespace, "web").get("currentStep") or 0) >= 1
               and status(sandbox, namespace, "web").get("version") == "2", 30, "v2 under way")
    assert holder(sandbox, lease) == first.identity
    assert not second.said("leading")

    first.proc.send_signal(signal.SIGKILL)  # a crash: the lease is not handed over
    first.proc.wait(timeout=10)
    wait_until(lambda: holder(sandbox, lease) == second.identity, 20, "the second replica takes over")
    wait_phase(sandbox, namespace, "web", "Succeeded", version="2", timeout=90)

    # No double action: each transition was announced once.
    reasons = collections.Counter(
        (e["reason"], e["message"]) for e in sandbox.get_json(
            "events", "-n", namespace, "--field-selector", "involvedObject.kind=Release")["items"])
    assert reasons and all(count == 1 for count in reasons.values()), reasons
    history = status(sandbox, namespace, "web")["history"]
    assert [h["outcome"] for h in history if h["version"] == "2"] == ["Succeeded"]


def test_a_clean_shutdown_hands_the_lease_over(sandbox: Cluster, lease: str,
                                               replica: Callable[..., Replica]) -> None:
    # A long lease, so a hand-over that waited for it to expire would show.
    first = replica("first", lease_seconds="30")
    # Generous: a replica's start (imports, login) is slow on a loaded machine, and is not what is tested.
    wait_until(lambda: holder(sandbox, lease) == first.identity, STARTUP, "the first replica leads")
    second = replica("second", lease_seconds="30")
    wait_until(lambda: second.said("standing by"), STARTUP, "the second replica stands by")
    first.stop()
    # Released on SIGTERM: the standby takes over well before the lease would expire.
    wait_until(lambda: holder(sandbox, lease) == second.identity, 15, "a hand-over before expiry")
