"""The README's load test, as written: `make cluster` with its default settings (limits per
address on) in one terminal, the headless `make locust` in another, on the default port 8787.
The commands are read from README.md, so the test runs what a person types."""

import fcntl
import os
import re
import shlex
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from test_make import make, wait_for

from accord_app.cluster.supervisor import port_taken
from accord_app.settings import PROJECT_DIR

SECTION = "## Load tests: one actor or many"
# Tests that need the default port take this lock first (pytest-xdist runs two at once).
PORT_LOCK = Path(tempfile.gettempdir()) / "accord-port-8787.lock"
URL = "http://127.0.0.1:8787"
# 30 s of load, plus Locust's start and stop.
LOCUST_SECONDS = 90.0


def readme_commands() -> list[list[str]]:
    """The `make` lines of the section's first code block, as words, without their comments."""
    text = (PROJECT_DIR / "README.md").read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the load-test section has no sh block"
    lines = [shlex.split(line, comments=True) for line in block.group(1).splitlines()]
    return [words for words in lines if words[:1] == ["make"]]


def the_command(target: str, *, headless: bool = False) -> list[str]:
    """The README's `make target` line; with headless, the one whose arguments say so."""
    found = [
        words
        for words in readme_commands()
        if words[1] == target and headless == any("--headless" in word for word in words)
    ]
    assert len(found) == 1, f"one `make {target}` line in the README, not {found}"
    return found[0]


@contextmanager
def default_port() -> Iterator[None]:
    with PORT_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        assert not port_taken("127.0.0.1", 8787), "something else listens on 8787: stop it"
        yield


def test_the_readme_load_test_runs_as_written_without_a_failure(tmp_path: Path) -> None:
    cluster, locust = the_command("cluster"), the_command("locust", headless=True)
    assert cluster == ["make", "cluster"]  # the default settings
    assert "--run-time 30s" in " ".join(locust)
    # A fresh clone's state: no data folder yet (the cluster's default is ./data).
    env = {"ACCORD_DATA_DIR": str(tmp_path / "data")}
    with default_port(), make(*cluster[1:], env=env):
        wait_for(f"{URL}/api")
        done = subprocess.run(
            locust, cwd=PROJECT_DIR, env={**os.environ, **env}, capture_output=True, text=True,
            timeout=LOCUST_SECONDS, check=False,
        )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    # Locust's last table: every request type, and the total, with its failures.
    totals = re.findall(r"^\s+Aggregated\s+(\d+)\s+(\d+)\(", output, re.MULTILINE)
    assert totals, output[-4000:]
    requests, failures = map(int, totals[-1])
    assert failures == 0, output[-4000:]
    # 40 members at 20, 50 and 100 messages/s for 8 s each (2 720 acks and deliveries): the
    # last step ran, where 40 members from one address would be refused.
    assert requests > 2000, output[-4000:]
