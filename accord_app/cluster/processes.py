"""Small helpers for the processes a cluster starts: free ports, log tails, stopping."""

import contextlib
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

LOG_TAIL_LINES = 15


@dataclass(frozen=True)
class Exited:
    """A process that ended on its own (a crash, a kill -9)."""

    name: str  # "worker 2", "proxy" or "catalog"
    pid: int
    returncode: int | None  # None: not our child (the catalog's PostgreSQL), so unknown
    log: Path

    def describe(self) -> str:
        if self.returncode is None:
            return f"{self.name} (pid {self.pid}) stopped"
        if self.returncode < 0:
            with contextlib.suppress(ValueError):
                how = f"was killed by {signal.Signals(-self.returncode).name}"
                return f"{self.name} (pid {self.pid}) {how}"
        return f"{self.name} (pid {self.pid}) exited with code {self.returncode}"


def free_port(host: str) -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def port_taken(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR as servers bind: a port left in TIME_WAIT by our own last run is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
        return False


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def terminate(processes: list["subprocess.Popen[bytes]"], timeout: float) -> None:
    """SIGTERM (graceful for uvicorn and Caddy) to all at once, then SIGKILL to stragglers."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
