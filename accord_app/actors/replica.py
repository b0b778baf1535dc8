"""One activation of an actor on the replicated log: rebuild its state, open its epoch, append
its batches, watch for a newer owner, and answer its bookmarks.

    replica = ActorReplica(log, "channels.<hex>", host="2", on_fenced=...)
    storage = await replica.activate(path, run_in_thread)   # rebuilt and fenced in
    number = replica.next_batch()                           # before the batch's COMMIT
    await replica.append_batch(statements, number)          # acknowledged by a majority

Activation. The local file is trusted only if it holds exactly the log's last entry: the
marker row `_accord_replica` (epoch, batch), written in the same transaction as each batch,
equals the last entry's. Otherwise (a new host, a crash between COMMIT and the log's answer, a
restore) the file is deleted and rebuilt from the log. Then the activation appends "epoch E+1
opened by host H" expecting the last sequence it applied: if anyone appended meanwhile, the log
refuses, and the activation starts over from the new last entry.

Fencing. Each batch is appended expecting the sequence of the entry before it. Once another
host has opened a newer epoch, that expectation is stale and the log refuses: the old owner
learns it is fenced, and drops the batch's outputs. A subscription to the subject tells an
idle old owner as soon as the new epoch is appended.
"""

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Protocol, TypeVar

from accord_app.actors.errors import BookmarkError, Fenced, LogUnavailable
from accord_app.actors.events import Activity
from accord_app.actors.replication import (
    Entry,
    ReplicaLog,
    Snapshot,
    Statement,
    WrongLastSequence,
    bookmark,
    encode_entry,
    parse_bookmark,
    replay_plan,
)
from accord_app.actors.storage import Storage

logger = logging.getLogger(__name__)
T = TypeVar("T")


class RunInThread(Protocol):
    """Runs a blocking call (SQLite, files) in a worker thread: loop.run_in_executor."""

    def __call__(self, call: Callable[[], T], /) -> Awaitable[T]: ...


# An activation that keeps meeting newer entries (another host activating at the same time)
# gives up after this many tries, and the caller gets StorageUnavailable.
ACTIVATION_ATTEMPTS = 3
MARKER_TABLE = (
    "CREATE TABLE IF NOT EXISTS _accord_replica"
    " (only_row INTEGER PRIMARY KEY CHECK (only_row = 0), epoch INTEGER, batch INTEGER)"
)
SET_MARKER = (
    "INSERT INTO _accord_replica (only_row, epoch, batch) VALUES (0, ?, ?)"
    " ON CONFLICT (only_row) DO UPDATE SET epoch = excluded.epoch, batch = excluded.batch"
)


# Below this size an actor's batches since its snapshot do not call for a new one: small
# actors would otherwise keep a snapshot every batch or two.
SNAPSHOT_FLOOR_BYTES = 16 * 1024


def database_bytes(storage: Storage) -> int:
    """The actor's database, as a snapshot of it would weigh (pages in use)."""
    connection = storage.connection
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    free = connection.execute("PRAGMA freelist_count").fetchone()[0]
    return int(pages - free) * int(connection.execute("PRAGMA page_size").fetchone()[0])


def read_marker(storage: Storage) -> tuple[int, int] | None:
    storage.connection.execute(MARKER_TABLE)
    row = storage.connection.execute("SELECT epoch, batch FROM _accord_replica").fetchone()
    return None if row is None else (int(row[0]), int(row[1]))


def set_marker(storage: Storage, epoch: int, batch: int) -> None:
    """Inside the transaction being committed (or on its own): not journaled, not replayed."""
    storage.connection.execute(SET_MARKER, (epoch, batch))


def _start_from(path: Path, snapshot: Snapshot | None) -> None:
    """Replace the actor's file with the snapshot's (or with none at all: a new one). Written
    aside and renamed, so a crash never leaves half a file."""
    for stale in (path, path.with_name(path.name + "-wal")):
        stale.unlink(missing_ok=True)
    if snapshot is None:
        return
    aside = path.with_name(path.name + ".snapshot")
    aside.write_bytes(snapshot.data)
    with open(aside, "rb+") as written:
        os.fsync(written.fileno())
    aside.replace(path)


def apply(storage: Storage, batches: list[Entry]) -> None:
    """Run the batches' statements again, in one transaction (a worker thread)."""
    connection = storage.connection
    connection.execute("BEGIN")
    try:
        connection.execute(MARKER_TABLE)
        for entry in batches:
            for sql, params in entry.statements:
                connection.execute(sql, params)
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


class ActorReplica:
    """An actor's session on the log, from activation until it hibernates, resets or is
    fenced. Implements `replication.Bookmarks` for its storage."""

    def __init__(
        self,
        log: ReplicaLog,
        key: str,
        host: str,
        on_fenced: Callable[[Fenced], None],
        activity: Activity | None = None,
    ) -> None:
        self.log, self.key, self.host = log, key, host
        self.on_fenced = on_fenced
        self.activity = activity or Activity()  # the namespace's tallies, for the metrics
        # The log retries within its own deadline; this one is the last resort.
        self.timeout = log.timeout + 1.0
        self.epoch = 0
        self.batches = 0  # the number of the last batch appended
        self.last_seq = 0  # the sequence of the last entry this copy applied or appended
        self.fenced = False
        self.rebuilt = False  # this activation replayed the log (for tests and the lab)
        self.ending = False  # a restore was asked for: no more batches in this activation
        self.ended = False  # its host let go of it (reset, restored): nothing more to watch
        self.replayed = 0  # batches this activation applied from the log
        self.read_bytes = 0  # of snapshot and batches this activation read to rebuild
        self._since_snapshot = (0, 0)  # batches and bytes appended since the last snapshot
        self._saving: asyncio.Task[None] | None = None
        self._appending = asyncio.Lock()  # one append at a time: each expects the last
        self._stop_watching: Callable[[], Awaitable[None]] | None = None

    async def _within(self, what: str, call: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(call, self.timeout)
        except TimeoutError:
            raise LogUnavailable(
                f"the replicated log did not answer {what} within {self.timeout:g} s"
                " (is a majority of its servers up?): nothing was acknowledged"
            ) from None

    # -- activation ----------------------------------------------------------------------------

    async def activate(
        self, path: Path, open_storage: Callable[[], Storage], run: RunInThread
    ) -> Storage:
        """The actor's storage, rebuilt if needed, with this copy's epoch opened on the log."""
        opened: list[Storage] = []  # the open storage, closed again if activation fails
        try:
            for _ in range(ACTIVATION_ATTEMPTS):
                last = await self._within("for the actor's last entry", self.log.last(self.key))
                storage = await self._materialise(path, opened, open_storage, run, last)
                opening = Entry(
                    0,
                    "epoch",
                    (last.epoch if last else 0) + 1,
                    last.batch if last else 0,
                    host=self.host,
                )
                try:
                    seq, _ = await self._within(
                        "the new epoch",
                        self.log.append(self.key, opening, last.seq if last else 0),
                    )
                except WrongLastSequence:
                    continue  # someone appended since: read again
                self.epoch, self.batches, self.last_seq = opening.epoch, opening.batch, seq
                self.activity.epochs_opened += 1
                await run(partial(set_marker, storage, opening.epoch, opening.batch))
                if self.rebuilt and self.snapshot_due(await run(partial(database_bytes, storage))):
                    # The file is the state as of the new epoch (the restore it carried out,
                    # if any), with no turn running yet: keep it.
                    self.save_snapshot(Snapshot(seq, await run(storage.connection.serialize)))
                self._stop_watching = await self._within(
                    "a watch on the actor's subject", self.log.watch(self.key, self._seen)
                )
                return storage
            raise LogUnavailable(
                f"{self.key}: other hosts kept appending while this one activated it"
            )
        except BaseException:
            for storage in opened:
                await run(storage.close)
            raise

    async def _materialise(
        self,
        path: Path,
        opened: list[Storage],
        open_storage: Callable[[], Storage],
        run: RunInThread,
        last: Entry | None,
    ) -> Storage:
        """The storage as of `last`: the local file if it is exactly there, else rebuilt.
        `opened` holds the storage open at any moment (at most one)."""
        if not opened:
            opened.append(await run(open_storage))
        local = await run(partial(read_marker, opened[0]))
        if last is None and local is None:
            return opened[0]  # a new actor
        if last is not None and last.kind != "restore" and local == (last.epoch, last.batch):
            return opened[0]
        # Not the log's state: start from a snapshot (or an empty file) and replay the
        # batches after it; with a restore, those of the restored state.
        snapshot, batches, read = await self._rebuild_plan(last)
        await run(opened.pop().close)
        await run(partial(_start_from, path, snapshot))
        opened.append(await run(open_storage))
        await run(partial(apply, opened[0], batches))
        self.rebuilt, self.replayed = True, len(batches)
        size = sum(entry.size for entry in read)
        self.read_bytes = len(snapshot.data if snapshot else b"") + size
        # What this rebuild had to read counts towards a snapshot: once it keeps one (see
        # activate), the next rebuild to this state or a later one need not read it again.
        self._since_snapshot = (len(read), size)
        return opened[0]

    async def _rebuild_plan(
        self, last: Entry | None
    ) -> tuple[Snapshot | None, list[Entry], list[Entry]]:
        """The state as of `last` (a restore pending there carried out): the snapshot to start
        from (None: an empty file), the batches to apply on it, and the entries read."""
        kept = await self._within("the actor's snapshots", self.log.snapshots(self.key))
        while True:
            start, batches, read = await self._plan(last, kept)
            if start == 0:
                return None, batches, read
            snapshot = await self._within(
                "the actor's snapshot", self.log.load_snapshot(self.key, start)
            )
            if snapshot is not None:
                return snapshot, batches, read
            kept.remove(start)  # gone since the index was read (older than the retention)

    async def _plan(
        self, last: Entry | None, kept: list[int]
    ) -> tuple[int, list[Entry], list[Entry]]:
        """The sequence of the snapshot to start from (0: none), the batches to apply on it,
        and the entries read: from the newest snapshot at or before the state wanted, the
        entries up to it; if a restore was carried out among them, the same again for the
        restore's target (replication.replay_plan)."""
        if last is None:
            return 0, [], []
        point, carry_out = last.seq, True  # a restore pending at the end is carried out now
        batches: list[Entry] = []
        read: list[Entry] = []
        stretch: list[Entry] = []  # the entries after `base`, up to `top`, already read
        base, top = -1, -1
        while True:
            start = max((seq for seq in kept if seq <= point), default=0)
            if start != base or point > top:
                stretch = await self._within(
                    "the actor's log", self.log.read(self.key, start, point)
                )
                read.extend(stretch)
                base, top = start, point
            replay = replay_plan([entry for entry in stretch if entry.seq <= point])
            restored, applied = replay.restored, replay.batches
            if carry_out and replay.pending is not None:
                restored, applied = replay.pending, []
            carry_out = False
            batches = applied + batches
            if restored is None:
                return start, batches, read
            point = restored

    # -- snapshots -------------------------------------------------------------------------------

    def snapshot_due(self, database_bytes: int) -> bool:
        """After every N batches or M bytes of them, and once the batches since the last
        snapshot weigh as much as the database itself (at least SNAPSHOT_FLOOR_BYTES): a
        rebuild then reads at most about twice the database's size."""
        batches, size = self._since_snapshot
        every_batches, every_bytes = self.log.snapshot_every
        enough = max(database_bytes, SNAPSHOT_FLOOR_BYTES)
        return batches >= every_batches or size >= min(every_bytes, enough)

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keep `snapshot` in the background (one at a time); until it is kept, the replay
        just starts from the one before."""
        if self._saving is not None and not self._saving.done():
            return
        self._since_snapshot = (0, 0)
        self._saving = asyncio.get_running_loop().create_task(self._save(snapshot))

    async def _save(self, snapshot: Snapshot) -> None:
        try:
            await self._within("the snapshot", self.log.save_snapshot(self.key, snapshot))
        except Exception as error:  # the log is still whole: only a longer replay next time
            logger.warning("snapshot of %s at %d not kept: %r", self.key, snapshot.seq, error)

    # -- batches and fencing -------------------------------------------------------------------

    def next_batch(self) -> int:
        """The number of the batch about to be committed (its marker goes in its transaction)."""
        return self.batches + 1

    async def append_batch(self, statements: list[Statement], number: int) -> None:
        """Append one committed batch; returns once a majority has it. Raises Fenced if a newer
        epoch exists (or a restore ended this activation), LogUnavailable on no answer."""
        async with self._appending:
            if self.fenced or self.ending:
                raise Fenced(f"{self.key}: this copy's epoch {self.epoch} has ended")
            entry = Entry(0, "batch", self.epoch, number, statements=statements, host=self.host)
            started = time.perf_counter()
            try:
                seq, _ = await self._within(
                    "the batch", self.log.append(self.key, entry, self.last_seq)
                )
            except WrongLastSequence:
                raise self._fence("its append was refused: a newer epoch exists") from None
            except Exception:
                self.activity.appends_failed += 1
                raise
            self.activity.append_seconds.add(time.perf_counter() - started)
            self.last_seq, self.batches = seq, number
            batches, size = self._since_snapshot
            self._since_snapshot = (batches + 1, size + len(encode_entry(entry)[0]))

    def _seen(self, entry: Entry) -> None:
        """An entry appended to the subject: a newer epoch means another owner."""
        if entry.kind == "epoch" and entry.epoch > self.epoch and not (self.fenced or self.ended):
            self.on_fenced(self._fence(f"host {entry.host} opened epoch {entry.epoch}"))

    def step_down(self, why: str) -> Fenced:
        """End this epoch from this side (its key's own host is back): no more appends, the
        same as a fence by a newer epoch."""
        return self._fence(why)

    def _fence(self, why: str) -> Fenced:
        self.fenced = True
        self.activity.fences += 1
        return Fenced(f"{self.key}: epoch {self.epoch} of host {self.host} is fenced: {why}")

    async def close(self) -> None:
        """The session ends: a snapshot being kept is finished first, then the watch stops."""
        if self._saving is not None:
            await asyncio.gather(self._saving, return_exceptions=True)
        stop, self._stop_watching = self._stop_watching, None
        if stop is not None:
            with contextlib.suppress(Exception):
                await stop()

    # -- bookmarks (replication.Bookmarks) ---------------------------------------------------

    async def current_bookmark(self) -> str:
        return bookmark(self.last_seq)

    def _check_retention(self, at: float) -> None:
        oldest = time.time() - self.log.retention_seconds
        if at < oldest:
            days = self.log.retention_seconds / 86400
            raise BookmarkError(
                f"{at:.0f} is older than the log keeps bookmarks ({days:g} days): the oldest"
                f" time that can be restored is {oldest:.0f}"
            )

    async def bookmark_for_time(self, at: float) -> str:
        self._check_retention(at)
        return bookmark(await self._last_seq_at(at))

    async def _last_seq_at(self, at: float) -> int:
        """The sequence of the actor's last entry stored at `at` or before (0: none). The log's
        times grow with its sequences: a binary search, one request per probe (the actor's
        entries are spread among every actor's, in one stream)."""
        last = await self._within("the actor's last entry", self.log.last(self.key))
        if last is None or last.time <= at:
            return 0 if last is None else last.seq
        low, high = 0, last.seq  # the answer is `low` (an entry at or before `at`) or later,
        while high - low > 1:  # and before `high`
            middle = (low + high) // 2
            probe = await self._within("the actor's log", self.log.next_entry(self.key, middle))
            if probe is not None and probe.seq < high and probe.time <= at:
                low = probe.seq
            else:
                high = middle
        return low

    async def restore_on_next_session(self, target: str) -> str:
        seq = parse_bookmark(target)
        # The bookmark's entry itself (for 0, the beginning: the actor's first entry). None
        # is after this copy's last: it is the owner, the last entry is its own.
        found = None
        if seq <= self.last_seq:
            found = await self._within("the actor's log", self.log.next_entry(self.key, seq))
        if seq != 0 and (found is None or found.seq != seq):
            raise BookmarkError(f"bookmark {target} is not one of this actor's")
        if found is not None:
            self._check_retention(found.time)
        async with self._appending:
            if self.fenced:
                raise self._fence("a restore was asked of a copy that is no longer the owner")
            undo = bookmark(self.last_seq)
            entry = Entry(0, "restore", self.epoch, self.batches, host=self.host, target=seq)
            try:
                new_seq, _ = await self._within(
                    "the restore", self.log.append(self.key, entry, self.last_seq)
                )
            except WrongLastSequence:
                raise self._fence("its append was refused: a newer epoch exists") from None
            self.last_seq = new_seq
            self.ending = True
        return undo
