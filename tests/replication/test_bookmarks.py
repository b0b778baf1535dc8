"""Point-in-time recovery on the replicated log, as Durable Objects offer it: bookmarks that
sort as strings, one for any time within the retention window, and a restore at the next
activation that returns a bookmark undoing it."""

import random
import time
from pathlib import Path

import pytest
from replica_tools import notes_on

from accord_app.actors.errors import BookmarkError
from accord_app.actors.replica import SNAPSHOT_FLOOR_BYTES
from accord_app.cluster.nats import NatsCluster

pytestmark = pytest.mark.anyio
WRITES = 120
RESTORES = 100
# A snapshot after every 10 batches: a restore reads the snapshot before its target and the
# entries after it, not the whole log (which each restore and undo lengthens).
EVERY = 10


async def test_bookmarks_restore_recorded_states_and_undo(
    nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    chooser = random.Random(9)
    async with notes_on(nats_cluster, tmp_path / "host-1", "1", snapshot_every=EVERY) as stub:
        recorded: list[tuple[str, float, str]] = []  # bookmark, a time after it, content hash
        for number in range(1, WRITES + 1):
            await stub.add(number, f"note {number}")
            if chooser.random() < 0.3:
                await stub.run("DELETE FROM notes WHERE id = ?", chooser.randint(1, number))
            recorded.append((await stub.bookmark(), time.time(), await stub.content_hash()))
        marks = [mark for mark, _, _ in recorded]
        assert sorted(marks) == marks  # as strings, in time order
        assert len(set(marks)) == len(marks)

        for mark, at, expected in chooser.sample(recorded, RESTORES):
            before = await stub.content_hash()
            # Either way to name the moment: the bookmark itself, or a time after it.
            chosen = mark if chooser.random() < 0.5 else await stub.bookmark_for_time(at)
            undo = await stub.restore(chosen)
            assert await stub.content_hash() == expected  # the next activation is restored
            replica = await stub.replica_state()
            assert replica["rebuilt"] and int(replica["replayed"]) <= 2 * EVERY, replica  # type: ignore[call-overload]
            await stub.restore(undo)
            assert await stub.content_hash() == before  # and the undo brings back the later
            replica = await stub.replica_state()
            assert replica["rebuilt"] and int(replica["replayed"]) <= 2 * EVERY, replica  # type: ignore[call-overload]
        # One host, no other owner: no copy was ever fenced (the watch of a session a restore
        # ended may still see the next session's epoch, and must not take it for a newer
        # owner's).
        assert (await stub.replica_state())["fences"] == 0
        # Writes after a restore build on the restored state.
        await stub.restore(recorded[2][0])
        restored = await stub.numbers()
        assert await stub.content_hash() == recorded[2][2]
        await stub.add(1000)
        assert await stub.numbers() == [*restored, 1000]


async def test_bookmarks_outside_the_window_or_malformed_are_refused(
    nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    async with notes_on(nats_cluster, tmp_path / "host-1", "1") as stub:
        await stub.add(1)
        month_ago = time.time() - 31 * 24 * 3600
        with pytest.raises(BookmarkError, match="older than the log keeps bookmarks"):
            await stub.bookmark_for_time(month_ago)
        with pytest.raises(BookmarkError, match="is not a bookmark"):
            await stub.restore("12")  # a number, not a bookmark's 20 digits
        with pytest.raises(BookmarkError, match="not one of this actor's"):
            await stub.restore("9" * 20)


async def test_snapshots_bound_the_replay_and_restores_reach_past_them(
    nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    every = 5
    async with notes_on(nats_cluster, tmp_path / "host-1", "1", snapshot_every=every) as stub:
        await stub.add(0)
        early = (await stub.bookmark(), await stub.content_hash())
        for number in range(1, 31):  # 30 batches: a snapshot after every 5
            await stub.add(number)
        expected = await stub.content_hash()
    async with notes_on(nats_cluster, tmp_path / "host-2", "2", snapshot_every=every) as stub:
        assert await stub.content_hash() == expected
        replica = await stub.replica_state()
        assert replica["rebuilt"] and replica["replayed"] <= every + 1, replica
        # A bookmark older than the snapshot: replayed from the beginning, that is the one
        # batch of the schema and note 0.
        await stub.restore(early[0])
        assert await stub.content_hash() == early[1]
        assert (await stub.replica_state())["replayed"] == 1


async def test_a_rebuild_reads_about_twice_the_database_at_most(
    nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    """The same note rewritten 300 times: 300 batches of ~2 KB in the log for a database of a
    few pages. With the default snapshot settings, the next host reads a snapshot and the
    batches after it: at most about twice the database (its floor of 16 KiB)."""
    body = "x" * 2000
    async with notes_on(nats_cluster, tmp_path / "host-1", "1") as stub:
        await stub.add(1, body)
        for number in range(300):
            await stub.run("UPDATE notes SET body = ? WHERE id = 1", f"{number}{body}")
    async with notes_on(nats_cluster, tmp_path / "host-2", "2") as stub:
        replica = await stub.replica_state()
        size = await stub.database_bytes()
        bound = 2 * max(size, SNAPSHOT_FLOOR_BYTES) + 4096  # + the batch that crossed it
        assert replica["rebuilt"], replica
        assert 0 < int(replica["read_bytes"]) <= bound, (replica, size)  # type: ignore[call-overload]
        print(f"rebuild read {replica['read_bytes']} bytes for a {size}-byte database")
