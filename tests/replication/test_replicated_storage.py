"""Actors whose writes go to a real 3-server NATS JetStream log before they are acknowledged:
rebuilt elsewhere from the log, fenced by a newer epoch, refusing what would not replay."""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from replica_tools import ALARM_FIRED, LOG_TIMEOUT, Notes, notes_on, replicated_runtime

from accord_app.actors import CommitFailed, Namespace, StorageError, StorageUnavailable
from accord_app.actors.errors import Fenced
from accord_app.actors.natslog import STREAM, NatsLog
from accord_app.actors.sockets import MemoryTransport, TransportClosed
from accord_app.cluster.nats import NatsCluster

pytestmark = pytest.mark.anyio


async def entries_of(cluster: NatsCluster, key: str) -> list[str]:
    log = NatsLog(cluster.urls, timeout=LOG_TIMEOUT)
    await log.connect()
    try:
        return [entry.describe() for entry in await log.read(key, 0)]
    finally:
        await log.close()


async def stream_leader(cluster: NatsCluster) -> tuple[int, list[int]]:
    """The number of the server leading the actors' stream, and the others'."""
    log = NatsLog(cluster.urls, timeout=LOG_TIMEOUT)
    await log.connect()
    try:
        info = await log.js.stream_info(STREAM)
    finally:
        await log.close()
    assert info.cluster is not None and info.cluster.leader is not None
    leader = int(info.cluster.leader.removeprefix("n"))
    return leader, [n for n in range(1, cluster.servers + 1) if n != leader]


async def test_an_acked_batch_is_on_the_log_and_rebuilds_elsewhere(
    nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    async with replicated_runtime(nats_cluster, tmp_path / "host-1", "1") as one:
        notes = one.namespace("notes", Notes)
        stub = notes.get(notes.id_from_name("a"))
        # Sent together, these turns share group commits: fewer batches than notes.
        await asyncio.gather(*(stub.add(n, f"note {n}") for n in range(1, 51)))
        expected = await stub.content_hash()
        key = f"notes.{notes.id_from_name('a').hex}"
        described = await entries_of(nats_cluster, key)
        assert described[0] == "epoch 1 opened by host 1"
        batches = [d for d in described if d.startswith("batch")]
        assert 1 <= len(batches) < 50
    # Another host, with an empty folder: the actor is rebuilt from the log alone.
    async with replicated_runtime(nats_cluster, tmp_path / "host-2", "2") as two:
        notes = two.namespace("notes", Notes)
        stub = notes.get(notes.id_from_name("a"))
        assert await stub.content_hash() == expected
        host = notes.host(notes.id_from_name("a").hex)
        assert host.replica is not None and host.replica.rebuilt and host.replica.epoch == 2
    # After host 1's entries (and before any of host 2's batches: its schema, run again).
    assert (await entries_of(nats_cluster, key))[len(described)] == "epoch 2 opened by host 2"


async def test_the_same_host_keeps_its_file_when_it_holds_the_last_entry(
    nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    async with replicated_runtime(nats_cluster, tmp_path / "host-1", "1", idle_timeout=0.1) as rt:
        notes = rt.namespace("notes", Notes)
        actor_id = notes.id_from_name("a")
        await notes.get(actor_id).add(1)
        host = notes.host(actor_id.hex)
        while host.instance is not None:  # hibernates after 0.1 s
            await asyncio.sleep(0.05)
        await notes.get(actor_id).add(2)
        host = notes.host(actor_id.hex)
        assert host.replica is not None and not host.replica.rebuilt and host.replica.epoch == 2
        assert await notes.get(actor_id).numbers() == [1, 2]


@asynccontextmanager
async def two_hosts(
    cluster: NatsCluster, folder: Path
) -> AsyncIterator[tuple[Namespace[Notes], Namespace[Notes]]]:
    """The notes of host 1 (the old owner) and host 2 (the new one), each with its folder."""
    async with (
        replicated_runtime(cluster, folder / "host-1", "1") as one,
        replicated_runtime(cluster, folder / "host-2", "2") as two,
    ):
        yield one.namespace("notes", Notes), two.namespace("notes", Notes)


async def test_an_owner_that_missed_the_new_epoch_is_refused_by_the_log(
    nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    async with two_hosts(nats_cluster, tmp_path) as (old, new):
        actor_id = old.id_from_name("a")
        await old.get(actor_id).add(1)
        stale = old.host(actor_id.hex).replica
        assert stale is not None
        await stale.close()  # cut off from the subject, as a partitioned host would be
        await new.get(actor_id).add(2)  # host 2 opens epoch 2
        assert not stale.fenced  # it heard nothing...
        with pytest.raises(Fenced, match="its append was refused"):  # ...but the log refuses
            await stale.append_batch([("INSERT INTO notes (id, body) VALUES (3, '')", [])], 9)
        assert stale.fenced
        assert await new.get(actor_id).numbers() == [1, 2]


async def test_an_idle_owner_hears_of_the_new_epoch_and_moves_its_clients(
    nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    async with two_hosts(nats_cluster, tmp_path) as (old, new):
        actor_id = old.id_from_name("a")
        member = MemoryTransport()
        await old.get(actor_id).attach(member)
        old_host = old.host(actor_id.hex)
        await new.get(actor_id).add(2)  # host 2 opens epoch 2; host 1 is idle
        with pytest.raises(TransportClosed) as closed:
            await asyncio.wait_for(member.client_receive(), 5)
        assert closed.value.code == 1012  # "moved": the client reconnects elsewhere
        assert old_host.instance is None and old_host.sockets == []


async def test_writes_need_a_majority_and_resume_when_it_returns(
    nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    async with notes_on(nats_cluster, tmp_path / "host-1", "1") as stub:
        await stub.add(1)
        # One of three down: writes go on. (A follower: the leader's death costs an election,
        # which the failover tests measure.)
        leader, followers = await stream_leader(nats_cluster)
        nats_cluster.kill(followers[0])
        await stub.add(2)
        nats_cluster.kill(leader)  # two of three down: no write is acknowledged
        for number in (3, 4):
            started = time.monotonic()
            with pytest.raises((CommitFailed, StorageUnavailable)):
                await stub.add(number)
            assert time.monotonic() - started < 3 * LOG_TIMEOUT + 2  # an answer, not a hang
        nats_cluster.restart(leader)
        deadline = time.monotonic() + 20
        while True:
            try:
                await stub.add(5)
                break
            except (CommitFailed, StorageUnavailable):
                assert time.monotonic() < deadline, "writes did not resume with a majority"
        numbers = await stub.numbers()
        assert numbers[:2] == [1, 2] and numbers[-1] == 5
        # 3 and 4 were never acknowledged; one may still have reached the log (an answer that
        # was lost is not a refusal), but nothing acknowledged is missing.


async def test_non_deterministic_sql_is_refused_with_a_way_out(
    nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    async with notes_on(nats_cluster, tmp_path / "host-1", "1") as stub:
        for query, params in [
            ("INSERT INTO notes (id, body) VALUES (1, random())", ()),
            ("INSERT INTO notes (id, body) VALUES (1, datetime('now'))", ()),
            ("INSERT INTO notes (id, body) VALUES (1, CURRENT_TIMESTAMP)", ()),
            ("INSERT INTO notes (id, body) VALUES (1, date())", ()),
            ("INSERT INTO notes (id, body) VALUES (1, strftime('%s', ?))", ("now",)),
            ("UPDATE notes SET body = hex(randomblob(4))", ()),
        ]:
            with pytest.raises(StorageError, match="pass it as a parameter"):
                await stub.run(query, *params)
        # The same functions on values given as parameters replay alike: allowed.
        await stub.run("INSERT INTO notes (id, body) VALUES (1, datetime(?, 'unixepoch'))", 0)
        assert await stub.numbers() == [1]


async def test_an_overdue_alarm_of_a_dead_host_fires_with_nobody_calling(
    nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    async with notes_on(nats_cluster, tmp_path / "host-1", "1") as stub:
        await stub.set_alarm_in(0.5)
    # Host 1 is gone before its alarm was due. Host 2 only runs the namespace: its sweep reads
    # the log's alarm records and fires the overdue one, which clears the record.
    async with replicated_runtime(nats_cluster, tmp_path / "host-2", "2") as runtime:
        notes = runtime.namespace("notes", Notes)
        log = runtime.replication
        assert log is not None
        assert await log.alarms("notes"), "the alarm was not recorded beside the log"
        deadline = time.monotonic() + 15
        while await log.alarms("notes"):
            assert time.monotonic() < deadline, "the overdue alarm did not fire on host 2"
            await asyncio.sleep(0.2)
        assert ALARM_FIRED in await notes.get(notes.id_from_name("a")).seen()
