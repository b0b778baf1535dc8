"""SIGKILL a process that acks durable writes, again and again: no acked write may be lost,
and the database must stay intact.

The moments of the kills are random; the test prints their seed, and ACCORD_CRASH_SEED=N
replays a run's kills (the writer's own pace still varies a little)."""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from accord_app.actors.ids import id_from_name

WRITER = Path(__file__).with_name("crash_writer.py")
KILLS = 12


def kill_delays(seed: int) -> list[float]:
    """Seconds each run acks before its SIGKILL."""
    rng = random.Random(seed)
    return [rng.uniform(0.0, 0.8) for _ in range(KILLS)]


def run_and_kill(data_dir: Path, run: int, delay: float) -> list[str]:
    """Start the writer, let it ack for `delay` seconds, SIGKILL it; the keys it acked."""
    command = [sys.executable, str(WRITER), str(data_dir), str(run)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stderr is not None
        stdout, stderr = process.stdout, process.stderr
        first = stdout.readline()  # the first ack: the writer is up
        assert first, stderr.read().decode()
        chunks = [first]
        reader = threading.Thread(target=lambda: chunks.append(stdout.read()))
        reader.start()
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        reader.join(10)
    assert process.returncode == -signal.SIGKILL
    text = b"".join(chunks).decode()
    complete = text[: text.rfind("\n") + 1]  # a line cut by the kill was never acked
    return complete.split()


def test_kill_moments_replay_from_their_seed() -> None:
    assert kill_delays(7) == kill_delays(7) != kill_delays(8)
    assert all(0 <= delay <= 0.8 for delay in kill_delays(7))


def test_acked_writes_survive_sigkill(tmp_path: Path) -> None:
    seed = int(os.environ.get("ACCORD_CRASH_SEED") or random.randrange(2**32))
    print(f"kill moments: ACCORD_CRASH_SEED={seed}")
    acked: list[str] = []
    for run, delay in enumerate(kill_delays(seed)):
        acked += run_and_kill(tmp_path, run, delay)
    actor = id_from_name("crash", "victim").hex
    path = tmp_path / "crash" / actor[:2] / actor[2:4] / f"{actor}.sqlite3"
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {key for (key,) in connection.execute("SELECT key FROM _accord_kv")}
    finally:
        connection.close()
    lost = [key for key in acked if key not in stored]
    assert len(acked) > 1000, f"the writer acked suspiciously little (seed {seed})"
    assert lost == [], f"{len(lost)} acked writes lost, e.g. {lost[:5]} (seed {seed})"
