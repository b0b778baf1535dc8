"""Ctrl-C during a load test stops Locust too: its master and generators run in a session of
their own, which the terminal's SIGINT does not reach, so run_locust must stop them itself."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from accord_app.cluster.ports import free_port

# Nothing listens there: Locust starts, its members fail to connect, and the step runs on.
SCRIPT = """
import sys
from pathlib import Path
from accord_app.lab.loadtest import run_locust
run_locust(sys.argv[1], Path(sys.argv[2]), rates=[5], step_seconds=60, processes=2)
"""


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command_line = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:  # it ended meanwhile
            continue
        if text in command_line:
            found.append(int(entry.name))
    return found


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_ctrl_c_during_a_load_test_leaves_no_locust_behind(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    host = f"http://127.0.0.1:{free_port('127.0.0.1')}"
    runner = subprocess.Popen([sys.executable, "-c", SCRIPT, host, str(folder)])
    try:
        # This runner, the master and both generators carry the folder in their command lines.
        assert wait_for(lambda: len(processes_mentioning(str(folder))) >= 4, 60), (
            "Locust's master and generators never started"
        )
        runner.send_signal(signal.SIGINT)
        runner.wait(30)
        assert wait_for(lambda: not processes_mentioning(str(folder)), 10), (
            f"Locust still runs after Ctrl-C: {processes_mentioning(str(folder))}"
        )
    finally:
        runner.kill()
        for pid in processes_mentioning(str(folder)):
            os.kill(pid, signal.SIGKILL)
