"""Small helpers for the processes a cluster starts: how one ended, its log's tail, stopping."""

import contextlib
import signal
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
