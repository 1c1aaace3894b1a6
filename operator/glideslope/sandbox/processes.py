"""Start, find and stop the sandbox's background processes, each tracked by its pid file."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Managed:
    """One background process of the sandbox: its pid file and log live in the sandbox dir."""

    name: str
    pid_file: Path
    log_file: Path

    def pid(self) -> int | None:
        """The pid, if the process we started is still alive; stale pid files are ignored."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        if not _alive(pid):
            return None
        # A reused pid belongs to someone else: only trust it if its start marker matches.
        try:
            marker = self.pid_file.read_text().split()[1]
        except IndexError:
            return None
        return pid if _start_time(pid) == marker else None

    def start(self, argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd,
                # Its own session: it outlives the CLI and a terminal's Ctrl-C.
                start_new_session=True,
            )
        self.pid_file.write_text(f"{proc.pid} {_start_time(proc.pid)}\n")
        return proc.pid

    def stop(self, timeout: float = 15.0) -> bool:
        """Stop the process by its pid (TERM, then KILL). True if one was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes; reap it if it is our child.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def _start_time(pid: int) -> str:
    """The kernel's start time of a process: with the pid, it names the process uniquely."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


class Exited(RuntimeError):
    """A process we wait for has died: waiting longer is pointless."""


def wait_for(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.25,
             log_file: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exited:
            raise
        except Exception:  # any other failure of a probe means "not ready yet"
            pass
        if time.monotonic() > deadline:
            hint = f"; see {log_file}" if log_file else ""
            raise TimeoutError(f"{what} not ready after {timeout:.0f}s{hint}")
        time.sleep(interval)
