"""Two operator replicas, one Lease: exactly one acts, and the survivor finishes after the
leader is killed, or cut off from the API server."""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.helpers import REPO, Cluster, Relay, stop_process, wait_until
from tests.e2e.operator_fixture import release, release_finalizers, status, wait_phase
from tests.faults.timeline import Timeline, check_one_clean_rollout, release_events

pytestmark = pytest.mark.e2e

STARTUP = 60.0
"""Seconds a replica may take to start."""
LEASE_NAMESPACE = "glideslope-system"
LEASE_SECONDS = "3"
CANARY = {"type": "Canary", "canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "4s"}},
                                                  {"setWeight": 75}, {"pause": {"duration": "2s"}}]}}


class Replica:
    def __init__(self, sandbox: Cluster, namespace: str, lease: str, log: Path,
                 lease_seconds: str = LEASE_SECONDS, kubeconfig: Path | None = None) -> None:
        self.log = log
        env = {**os.environ, "KUBECONFIG": str(kubeconfig or sandbox.operator_kubeconfig)}
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

    def when(self, words: str) -> str:
        """The timestamp of the first log line saying `words` (ISO 8601, UTC: they sort)."""
        return next(str(line["timestamp"]) for line in self.lines() if words in str(line.get("event", "")))

    def stop(self) -> None:
        stop_process(self.proc)


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

    def start(label: str, lease_seconds: str = LEASE_SECONDS, kubeconfig: Path | None = None) -> Replica:
        started.append(Replica(sandbox, namespace, lease, tmp_path / f"{label}.log", lease_seconds, kubeconfig))
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


def relayed_kubeconfig(source: Path, port: int, path: Path) -> Path:
    """A copy of the operator's kubeconfig whose server is the relay. TLS is kept: the API
    server's certificate names 127.0.0.1 (checked in the test), where the relay listens."""
    config = yaml.safe_load(source.read_text())
    for entry in config["clusters"]:
        entry["cluster"]["server"] = f"https://127.0.0.1:{port}"
    path.write_text(yaml.safe_dump(config))
    return path


def api_server(sandbox: Cluster) -> tuple[str, int]:
    config = yaml.safe_load(sandbox.operator_kubeconfig.read_text())
    url = urllib.parse.urlsplit(config["clusters"][0]["cluster"]["server"])
    return url.hostname or "127.0.0.1", url.port or 443


def serves_for(target: tuple[str, int], ca: Path, name: str) -> bool:
    """The API server's certificate is valid for `name` (verified against the cluster's CA)."""
    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = True
    try:
        with socket.create_connection(target, timeout=5) as raw, context.wrap_socket(raw, server_hostname=name):
            return True
    except ssl.SSLCertVerificationError:
        return False


RELAYED_STEPS: list[dict[str, Any]] = [
    {"setWeight": 25}, {"pause": {"duration": "4s"}}, {"setWeight": 50}, {"pause": {"duration": "3s"}},
    {"setWeight": 75}, {"pause": {"duration": "2s"}}]
RELAYED_CANARY = {"type": "Canary", "canary": {"steps": RELAYED_STEPS}}


def test_a_leader_cut_off_from_the_api_server_stops_and_the_standby_finishes(
        sandbox: Cluster, namespace: str, lease: str, replica: Callable[..., Replica], tmp_path: Path) -> None:
    target = api_server(sandbox)
    ca = Path(yaml.safe_load(sandbox.operator_kubeconfig.read_text())["clusters"][0]["cluster"]
              ["certificate-authority"])
    assert serves_for(target, ca, "127.0.0.1"), "the relay keeps TLS only if the certificate names 127.0.0.1"
    relay = Relay(target)
    try:
        first = replica("first", kubeconfig=relayed_kubeconfig(sandbox.operator_kubeconfig, relay.port,
                                                               tmp_path / "leader.kubeconfig"))
        # Generous: a replica's start (imports, login) is slow on a loaded machine, and is not what is tested.
        wait_until(lambda: holder(sandbox, lease) == first.identity, STARTUP, "the relayed replica leads")
        second = replica("second")
        wait_until(lambda: second.said("standing by"), STARTUP, "the second replica stands by")
        sandbox.apply(release("web", "1", RELAYED_CANARY, replicas=2), namespace)
        wait_phase(sandbox, namespace, "web", "Succeeded", version="1", timeout=60)

        timeline = Timeline(sandbox, namespace, "web")
        try:
            sandbox.apply(release("web", "2", RELAYED_CANARY, replicas=2), namespace)
            # Cut in the first pause: the leader has acted, and has steps left.
            wait_until(lambda: status(sandbox, namespace, "web").get("version") == "2"
                       and (status(sandbox, namespace, "web").get("currentStep") or 0) == 2, 30, "v2 at step 2")
            assert holder(sandbox, lease) == first.identity and not second.said("leading")
            seen = len(timeline.statuses)
            relay.cut()
            cut = time.monotonic()

            wait_until(lambda: holder(sandbox, lease) == second.identity, 20, "the second replica takes over",
                       interval=0.05)
            took_over = time.monotonic() - cut
            # Nothing of the cut-off leader reaches the API server: a status written now is the second's.
            wait_until(lambda: len(timeline.statuses) > seen, 20, "the second replica writes a status",
                       interval=0.05)
            acted = time.monotonic() - cut
            print(f"lease taken {took_over:.2f}s after the cut; first status written {acted:.2f}s after it")

            # The cut-off leader says it lost the lease, stops acting and exits.
            assert first.proc.wait(timeout=30) != 0
            assert first.said("lease not renewed within") and first.said("lost the lease"), first.log.read_text()
            # It stopped before the second replica led (one clock: both run on this machine).
            stopped, led = first.when("lost the lease: stopping the steppers"), second.when("leading:")
            print(f"the cut-off leader stopped at {stopped}, the second replica led at {led}")
            assert stopped < led
            wait_phase(sandbox, namespace, "web", "Succeeded", version="2", timeout=90)
            # Every step of v2 once, in order, none started twice; one Started and one Succeeded.
            wait_until(lambda: timeline.statuses and timeline.statuses[-1].get("phase") == "Succeeded", 10,
                       "the watch sees Succeeded")
            assert timeline.statuses[-1]["totalSteps"] >= len(RELAYED_STEPS)
            check_one_clean_rollout(timeline, sandbox, namespace, "web", "2", timeline.statuses[-1]["totalSteps"])
        finally:
            timeline.close()
        # And every Event (Started, each step's, Succeeded) recorded exactly once.
        counts = collections.Counter(release_events(sandbox, namespace, "web"))
        assert counts and all(n == 1 for n in counts.values()), counts
        assert second.proc.poll() is None, "the second replica died"
        print(f"--- the cut-off leader's last lines ---\n{first.log.read_text(errors='replace')[-3000:]}")
    finally:
        relay.cut()
