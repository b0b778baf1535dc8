"""`python -m accord_app.cluster ARGS...` as a person runs it, for the tests of the command
line: started, read until it says it is ready, and stopped (as Ctrl-C or SIGTERM does) at the
end if the test has not stopped it itself."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

READY = "Ctrl-C stops everything"
Process = subprocess.Popen[str]


@contextmanager
def ready_cluster(
    *args: str, timeout: float = 90
) -> Iterator[tuple["subprocess.Popen[str]", list[str]]]:
    """The process once it printed READY, and the lines it printed up to there."""
    process = subprocess.Popen(
        [sys.executable, "-m", "accord_app.cluster", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    seen: list[str] = []
    try:
        deadline = time.monotonic() + timeout
        while not any(READY in line for line in seen):
            assert time.monotonic() < deadline and process.poll() is None, seen
            seen.append(process.stdout.readline())
        yield process, seen
    finally:
        if process.poll() is None:  # SIGTERM stops it as Ctrl-C does: its children too
            process.terminate()
            try:
                process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
        process.stdout.close()
