"""The sandbox stops exactly what it started, by pid, and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from glideslope.sandbox.processes import Exited, Managed, wait_for

pytestmark = pytest.mark.unit


def test_start_then_stop_by_pid(tmp_path: Path) -> None:
    proc = Managed("sleeper", tmp_path / "pids" / "sleeper.pid", tmp_path / "logs" / "sleeper.log")
    pid = proc.start([sys.executable, "-c", "import time; print('hello', flush=True); time.sleep(60)"])
    assert proc.pid() == pid
    wait_for("log line", lambda: "hello" in proc.log_file.read_text(), timeout=10)
    assert proc.stop() is True
    assert proc.pid() is None
    assert not proc.pid_file.exists()
    assert proc.stop() is False  # idempotent


def test_a_reused_pid_is_not_ours(tmp_path: Path) -> None:
    # Another live process (this test) under a pid file whose start marker does not match.
    pid_file = tmp_path / "x.pid"
    pid_file.write_text(f"{os.getpid()} 1\n")
    proc = Managed("x", pid_file, tmp_path / "x.log")
    assert proc.pid() is None
    assert proc.stop() is False
    assert os.getpid()  # still here: stop never signalled it


def test_stop_kills_a_process_that_ignores_term(tmp_path: Path) -> None:
    proc = Managed("stubborn", tmp_path / "s.pid", tmp_path / "s.log")
    code = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)")
    proc.start([sys.executable, "-c", code])
    wait_for("ready", lambda: "ready" in proc.log_file.read_text(), timeout=10)
    assert proc.stop(timeout=0.5) is True
    assert proc.pid() is None


def test_wait_for_gives_up_on_exited() -> None:
    def check() -> bool:
        raise Exited("gone")

    with pytest.raises(Exited):
        wait_for("x", check, timeout=5)
    with pytest.raises(TimeoutError, match="never not ready after"):
        wait_for("never", lambda: False, timeout=0.3, interval=0.05)


def test_pki_and_kubeconfig(tmp_path: Path) -> None:
    from glideslope.sandbox.pki import ensure_pki, kubeconfig

    pki = ensure_pki(tmp_path / "pki")
    first = pki.token("admin")
    assert ensure_pki(tmp_path / "pki").token("admin") == first  # made once, then reused
    out = subprocess.run(["openssl", "x509", "-in", str(pki.server_cert), "-noout", "-text"],
                         capture_output=True, text=True, check=True).stdout
    assert "IP Address:127.0.0.1" in out and "DNS:kubernetes.default.svc" in out
    text = kubeconfig("https://127.0.0.1:1", pki.ca_cert, "admin", first)
    assert f"token: {first}" in text and "current-context: sandbox" in text
