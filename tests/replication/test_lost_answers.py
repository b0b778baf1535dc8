"""An append whose answer comes too late is not a fence: the only owner of an actor, on a NATS
server that stalls for a moment, keeps its actor and every acknowledged write, once each."""

import asyncio
from pathlib import Path

import pytest
from replica_tools import Notes, replicated_runtime

from accord_app.actors.natslog import ATTEMPT_SECONDS
from accord_app.cluster.nats import NatsCluster

pytestmark = pytest.mark.anyio


async def test_a_lone_owner_whose_appends_time_out_is_not_fenced(tmp_path: Path) -> None:
    # One server, a stream of one replica: the case where JetStream checks the expected
    # sequence before the message id, so a retried append is refused rather than deduplicated.
    with NatsCluster(tmp_path / "nats", servers=1) as cluster:
        async with replicated_runtime(cluster, tmp_path / "host-1", "1") as runtime:
            notes = runtime.namespace("notes", Notes)
            actor_id = notes.id_from_name("a")
            stub = notes.get(actor_id)
            assert await stub.record(1) == 1  # activated: epoch 1 opened
            replica = notes.host(actor_id.hex).replica
            assert replica is not None
            # Stalled for two attempts: the first append reaches the server's socket, which
            # stores it once it runs again, and its retries expect the sequence before it.
            cluster.pause(1)
            try:
                writing = asyncio.ensure_future(stub.record(2))
                await asyncio.sleep(ATTEMPT_SECONDS * 2.4)
            finally:
                cluster.resume(1)
            assert await writing == 1  # acknowledged, by the same epoch
            assert await stub.record(3) == 1
            assert notes.host(actor_id.hex).replica is replica
            assert not replica.fenced and replica.activity.fences == 0
            assert await stub.seen() == [1, 2, 3]
        # Another host, rebuilt from the log alone: each write once, none lost.
        async with replicated_runtime(cluster, tmp_path / "host-2", "2") as other:
            notes = other.namespace("notes", Notes)
            assert await notes.get(notes.id_from_name("a")).seen() == [1, 2, 3]
