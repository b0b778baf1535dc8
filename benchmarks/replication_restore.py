"""Restore time against the log's length, for benchmarks/replication.py: how long an actor
takes to answer once its file must be rebuilt from the replicated log (a new host), and after
a restore to a bookmark (`on_next_session_restore_bookmark`: the next activation replays),
with the log's snapshots and without them."""

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from replica_tools import Notes
from replication_report import median

from accord_app.actors import Runtime, Stub
from accord_app.actors.natslog import SNAPSHOT_EVERY_BATCHES, SNAPSHOT_EVERY_BYTES, NatsLog
from accord_app.actors.replication import Snapshot
from accord_app.cluster.nats import NatsCluster

# Reading thousands of entries on a busy machine: well past the default deadline of 3 s.
READ_TIMEOUT = 20.0


class WithoutSnapshots(NatsLog):
    """The log as if it never kept snapshots: a rebuild replays every batch from the first."""

    async def snapshots(self, key: str) -> list[int]:
        return []

    async def load_snapshot(self, key: str, seq: int) -> Snapshot | None:
        return None

    async def save_snapshot(self, key: str, snapshot: Snapshot) -> None:
        return None


@asynccontextmanager
async def actor_on(
    cluster: NatsCluster,
    folder: Path,
    host: str,
    name: str,
    snapshots: bool,
    snapshot_every: tuple[int, int],
) -> AsyncIterator[Stub[Notes]]:
    """Actor `name` on a runtime of its own, as host `host` with its folder."""
    log_type = NatsLog if snapshots else WithoutSnapshots
    log = log_type(cluster.urls, timeout=READ_TIMEOUT, snapshot_every=snapshot_every)
    await log.connect()
    runtime = Runtime(folder, replication=log, replica_name=host)
    try:
        notes = runtime.namespace("notes", Notes)
        yield notes.get(notes.id_from_name(name))
    finally:
        await runtime.close()
        await log.close()


async def timed_first_answer(stub: Stub[Notes]) -> tuple[float, dict[str, Any]]:
    """The seconds to the first answer of an activation, and how it got its state."""
    started = time.perf_counter()
    state = await stub.replica_state()
    return time.perf_counter() - started, state


async def restore_times(
    folder: Path,
    lengths: Sequence[int],
    repeats: int,
    snapshot_every: tuple[int, int] = (SNAPSHOT_EVERY_BATCHES, SNAPSHOT_EVERY_BYTES),
) -> list[dict[str, Any]]:
    found = []
    async with NatsCluster(folder / "nats", servers=3) as cluster:
        for length in lengths:
            name = f"log-{length}"
            async with actor_on(
                cluster, folder / "writer", "writer", name, True, snapshot_every
            ) as stub:
                for number in range(length):  # one call at a time: one batch each
                    await stub.add(number)
            print(f"  wrote {length:,} batches", flush=True)
            for snapshots in (True, False):
                rebuilds, restores, calls, state = [], [], [], {}
                for repeat in range(repeats):
                    host = f"{'on' if snapshots else 'off'}-{length}-{repeat}"
                    async with actor_on(
                        cluster, folder / host, host, name, snapshots, snapshot_every
                    ) as stub:
                        seconds, state = await timed_first_answer(stub)
                        rebuilds.append(seconds)
                        started = time.perf_counter()
                        await stub.restore(await stub.bookmark())
                        asked = time.perf_counter()
                        await stub.replica_state()  # the next activation, restored
                        restores.append(time.perf_counter() - started)
                        calls.append(asked - started)
                found.append(
                    {
                        "batches": length,
                        "snapshots": snapshots,
                        "rebuild_s": rebuilds,
                        "restore_s": restores,
                        "restore_call_s": calls,  # of which the restore call itself
                        "replayed": int(state.get("replayed") or 0),
                        "read_bytes": int(state.get("read_bytes") or 0),
                    }
                )
                print(
                    f"  {length:,} batches, snapshots {'on' if snapshots else 'off'}:"
                    f" rebuild {median(rebuilds) * 1000:.0f} ms,"
                    f" restore {median(restores) * 1000:.0f} ms",
                    flush=True,
                )
    return found
