"""Real processes on a real NATS cluster: a host killed with kill -9 while it writes, and a
host paused with SIGSTOP while another takes its actor over (the zombie). Another host then
rebuilds the actor from the log: every acknowledged number is there exactly once, and the
paused host never gets an acknowledgement once the new epoch is open."""

import os
import random
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from replica_tools import Writer, notes_on

from accord_app.cluster.nats import NatsCluster

pytestmark = pytest.mark.anyio
ROUNDS = 3


@contextmanager
def writing(cluster: NatsCluster, folder: Path, name: str, first: int) -> Iterator[Writer]:
    writer = Writer(cluster, folder, name, first)
    try:
        yield writer
    finally:
        writer.finish()


async def test_kill_9_of_the_owner_loses_no_acked_write(
    nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    chooser = random.Random(3)
    acked: dict[int, int] = {}
    failovers = []
    for round_number in range(ROUNDS):
        host = str(1 + round_number % 2)  # hosts 1 and 2 take turns, each with its folder
        first = round_number * 1_000_000
        with writing(nats_cluster, tmp_path / f"host-{host}", host, first) as writer:
            writer.wait_for_acks(chooser.randint(20, 200))
            os.kill(writer.process.pid, signal.SIGKILL)
            killed = time.perf_counter()
        acked.update(writer.acks())
        # Another host takes over at once: it rebuilds from the log and acknowledges.
        async with notes_on(nats_cluster, tmp_path / "host-3", "3") as stub:
            await stub.record(-1 - round_number)
            failovers.append(time.perf_counter() - killed)
            seen = await stub.seen()
    assert sorted(set(seen)) == sorted(seen), "a number was applied twice"
    missing = sorted(set(acked) - set(seen))
    assert not missing, f"acknowledged but lost: {missing[:10]}"
    assert len(acked) >= ROUNDS * 20
    print(f"kill -9 -> first ack on another host: {[f'{s * 1000:.0f} ms' for s in failovers]}")


async def test_a_paused_owner_gets_no_ack_once_a_new_epoch_is_open(
    nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    with writing(nats_cluster, tmp_path / "host-1", "1", 0) as zombie:
        zombie.wait_for_acks(50)
        zombie.process.send_signal(signal.SIGSTOP)
        # Host 2 opens a new epoch while host 1 sleeps with calls in flight.
        async with notes_on(nats_cluster, tmp_path / "host-2", "2") as stub:
            state_at_takeover = set(await stub.seen())
            new_epoch = await stub.record(-1)
            zombie.process.send_signal(signal.SIGCONT)
            deadline = time.monotonic() + 15
            while not any(line.startswith("fenced") for line in zombie.lines):
                assert time.monotonic() < deadline, f"not fenced: {zombie.lines[-5:]}"
                time.sleep(0.05)
            after = set(await stub.seen())
    # Every number the old epoch acknowledged was in the log before the new epoch opened.
    stale = {n for n, epoch in zombie.acks().items() if epoch < new_epoch}
    assert stale, "the zombie acknowledged nothing before its pause"
    assert stale - state_at_takeover == set(), "acks of the old epoch after the new one opened"
    assert stale <= after
