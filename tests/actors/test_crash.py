"""SIGKILL a process that acks durable writes, again and again: no acked write may be lost,
and the database must stay intact."""

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


def run_and_kill(data_dir: Path, run: int, rng: random.Random) -> list[str]:
    """Start the writer, let it ack for a random while, SIGKILL it; the keys it acked."""
    command = [sys.executable, str(WRITER), str(data_dir), str(run)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stderr is not None
        stdout, stderr = process.stdout, process.stderr
        first = stdout.readline()  # the first ack: the writer is up
        assert first, stderr.read().decode()
        chunks = [first]
        reader = threading.Thread(target=lambda: chunks.append(stdout.read()))
        reader.start()
        time.sleep(rng.uniform(0.0, 0.8))
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        reader.join(10)
    assert process.returncode == -signal.SIGKILL
    text = b"".join(chunks).decode()
    complete = text[: text.rfind("\n") + 1]  # a line cut by the kill was never acked
    return complete.split()


def test_acked_writes_survive_sigkill(tmp_path: Path) -> None:
    rng = random.Random()
    acked: list[str] = []
    for run in range(KILLS):
        acked += run_and_kill(tmp_path, run, rng)
    actor = id_from_name("crash", "victim").hex
    path = tmp_path / "crash" / actor[:2] / actor[2:4] / f"{actor}.sqlite3"
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {key for (key,) in connection.execute("SELECT key FROM _accord_kv")}
    finally:
        connection.close()
    lost = [key for key in acked if key not in stored]
    assert len(acked) > 1000, "the writer acked suspiciously little"
    assert lost == [], f"{len(lost)} acked writes lost, e.g. {lost[:5]}"
