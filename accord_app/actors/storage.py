"""One SQLite database per actor: a SQL API, a key-value API, explicit transactions, the alarm,
and the primitives the runtime uses to group commits.

Storage calls are synchronous, like Durable Objects' SQL API: the database is a local file, a
call takes microseconds, and an `await` would only invite interleaving.

How a commit is made durable. SQLite's `synchronous=FULL` commit in WAL mode is two steps:
append the transaction's pages to the -wal file, then fsync it. We run the two apart: COMMIT
runs on the event loop with `synchronous=OFF` (an append to the OS page cache, microseconds) and
`make_durable()` fsyncs the -wal file in a worker thread. While that fsync is in flight the next
turns already write into a new transaction, which the next fsync covers: a group commit. With
`synchronous=FULL` the COMMIT itself would hold the connection for the whole fsync and no turn
could run meanwhile. The durability is the same: nothing is acknowledged before its fsync.

Checkpoints (copying the -wal back into the database file) are the other place SQLite syncs,
so we switch off the automatic ones and run them with `synchronous=FULL`, in the commit's
worker thread, once the -wal has grown past 16 MiB.
"""

import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, overload

from accord_app.actors.errors import StorageBusy, StorageDamaged, StorageError
from accord_app.actors.replication import Bookmarks, Statement
from accord_app.actors.sqlguard import Kind, StatementAudit, first_keyword, non_deterministic

# Durable Objects' limit for one multi-key get/put/delete.
MAX_KEYS_PER_CALL = 128
CHECKPOINT_AFTER_WAL_BYTES = 16 * 1024 * 1024
# Once restarted, the -wal file is cut back to this size, so its size tells how much is in it.
WAL_SIZE_LIMIT_BYTES = 4 * 1024 * 1024
SCHEMA_VERSION = 1
_SCHEMA = [
    # WITHOUT ROWID: the key is the primary index, one B-tree instead of two.
    "CREATE TABLE _accord_kv (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE _accord_alarm (only_row INTEGER PRIMARY KEY CHECK (only_row = 0), at REAL)",
]
_INTERNAL_TABLE_PREFIXES = ("_accord_", "sqlite_")
# How many query texts an awake actor remembers the kind of (see Storage.classify).
MAX_CLASSIFIED = 256


def fsync_path(path: Path) -> None:
    """fsync a file by name: flushes its pages written through any descriptor. Opened for
    writing: Windows refuses to flush a read-only descriptor (POSIX systems take either)."""
    fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_directory(path: Path) -> None:
    """fsync a folder, so the names of files created in it survive a power cut. Where the OS
    cannot open a folder (Windows: no O_DIRECTORY), there is nothing to do: its file system
    journals names itself."""
    directory_flag = getattr(os, "O_DIRECTORY", None)
    if directory_flag is None:
        return
    fd = os.open(path, os.O_RDONLY | directory_flag)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create(path: Path) -> None:
    """Create an actor's database whole: built under another name, made durable, then renamed
    into place. So a file at `path` is never empty unless something damaged it. (This fsync is
    not a commit's: the `fsync` given to Storage, which tests count, covers commits only.)"""
    building = path.with_name(path.name + ".new")
    building.unlink(missing_ok=True)  # left by a crash in the middle of a creation
    connection = sqlite3.connect(building, isolation_level=None)
    try:
        connection.execute("BEGIN")
        for statement in _SCHEMA:
            connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.execute("COMMIT")
    finally:
        connection.close()
    fsync_path(building)
    building.replace(path)
    # The new name, and the folders that may be new too (two levels, see Namespace).
    for folder in (path.parent, path.parent.parent, path.parent.parent.parent):
        fsync_directory(folder)


def _has_data(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


def to_epoch_seconds(when: float | datetime) -> float:
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise ValueError("pass an aware datetime (with tzinfo), or epoch seconds")
        return when.timestamp()
    return float(when)


def _encode(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        # Durable Objects accept anything structured clone can copy; we store JSON so the files
        # stay readable with any SQLite tool. Tuples come back as lists, dict keys as strings.
        raise StorageError(f"storage values must be JSON-serialisable: {error}") from error


def _check_keys(keys: list[str]) -> None:
    if len(keys) > MAX_KEYS_PER_CALL:
        raise StorageError(f"at most {MAX_KEYS_PER_CALL} keys per call, got {len(keys)}")
    for key in keys:
        if not isinstance(key, str):
            raise StorageError(f"storage keys are strings, got {type(key).__name__}")


def _prefix_end(prefix: str) -> str | None:
    """The smallest string above every string starting with `prefix` (None: no such string).

    Code-point order is UTF-8 byte order, which is how SQLite compares TEXT, so bumping the last
    character gives a bound the primary-key index can use.
    """
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            bumped = last + 1 if not 0xD7FF <= last < 0xE000 else 0xE000  # skip surrogates
            return prefix[:-1] + chr(bumped)
        prefix = prefix[:-1]
    return None


class SqlApi:
    """`storage.sql.execute(query, *params)`: rows as sqlite3.Row (index by position or name)."""

    def __init__(self, storage: "Storage") -> None:
        self._storage = storage

    def execute(self, query: str, *params: Any) -> list[sqlite3.Row]:
        # Transaction control belongs to the runtime (one savepoint per turn): a stray COMMIT
        # would break the group commit. Durable Objects refuse these statements too.
        storage = self._storage
        if storage.classify(query, params) is not Kind.WRITE:
            return storage.connection.execute(query, params).fetchall()
        if storage.journal is not None:
            refusal = non_deterministic(storage.functions_of(query), query, params)
            if refusal is not None:
                raise StorageError(refusal)
        storage.prepare_write()
        return storage.write(query, params).fetchall()


class Storage:
    """An actor's database. The runtime ends every turn with `end_turn()` and makes groups of
    turns durable with `commit()` (loop thread) then `make_durable()` (worker thread)."""

    def __init__(
        self,
        path: Path,
        on_first_write: Callable[[], object] = lambda: None,
        fsync: Callable[[Path], None] = fsync_path,
        replica: Bookmarks | None = None,
    ) -> None:
        self.path = path
        self.wal_path = path.with_name(path.name + "-wal")
        self._on_first_write = on_first_write
        self._fsync = fsync
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            _create(path)
        elif path.stat().st_size == 0 and not _has_data(self.wal_path):
            # Never left so by Accord (files are created whole, see _create): it was truncated.
            # Starting it afresh would number its messages from 1 again, so refuse.
            raise StorageDamaged(
                f"{path} is empty (0 bytes): this actor's data was truncated or lost. Restore"
                " the file from a backup; Accord will not start the actor afresh over it."
            )
        # check_same_thread=False: checkpoints and close() run in a worker thread while the
        # loop leaves the connection alone. timeout=0: a file that another process holds is
        # reported at once, not waited for on the event loop (which would freeze every actor).
        self.connection = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=0
        )
        self.connection.row_factory = sqlite3.Row
        # EXCLUSIVE: this connection is the only one, for as long as the actor is awake. SQLite
        # then keeps the WAL index in memory instead of a -shm file (one file fewer to create on
        # every wake-up), and a second process opening the same actor fails with "database is
        # locked": a local guard of the one-instance rule that Cloudflare enforces globally.
        self.connection.execute("PRAGMA locking_mode = EXCLUSIVE")
        try:
            self.connection.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as error:
            self.connection.close()
            if "locked" in str(error):
                raise StorageBusy(
                    f"{path} is held by another process: is a second Accord using this data folder?"
                ) from None
            raise
        self.connection.execute("PRAGMA synchronous = OFF")  # make_durable() does the fsync
        self.connection.execute("PRAGMA wal_autocheckpoint = 0")  # make_durable() checkpoints
        self.connection.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}")
        version = self.connection.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            self.connection.close()
            raise StorageDamaged(f"{path} is not an Accord actor's file (schema version {version})")
        self._turn_savepoint = False
        self._transaction_depth = 0
        self._turn_writes = 0  # writes of the running turn
        self._kept_writes = 0  # writes of the turns that ended well since the last commit
        self._alarm: float | None = None
        self._alarm_loaded = False
        self._alarm_for_index: float | None = None
        self._alarm_index_stale = False
        self.sql = SqlApi(self)
        self._kinds: dict[str, tuple[Kind, frozenset[str]]] = {}
        # With a replicated log: the writes of the group's transaction not yet committed, as
        # statements to run again elsewhere (None: not replicated), and where the turn's and
        # the blocks' savepoints began in it, to forget what they roll back.
        self.replica = replica
        self.journal: list[Statement] | None = None if replica is None else []
        self._committed: list[Statement] = []
        self._turn_mark = 0
        self._directories_synced = False
        # The runtime writes only inside a turn, and says so here: a write outside one (from a
        # task the actor started) would be committed by no one. Standalone use writes freely.
        self.turn_open = True

    def classify(self, query: str, params: Any) -> Kind:
        """Read or write, as SQLite compiles `query`; StorageError for what actors may not run.

        Each query text is compiled once under an authorizer, with EXPLAIN (compiled, never
        run), and its kind remembered. Setting the authorizer makes SQLite recompile its cached
        statements, so the probe is seen afresh; it is removed before the statement runs, so
        the runtime's own SAVEPOINT and COMMIT never meet it. (An authorizer left in place
        would not do: a user's "COMMIT" that hit the cache of the runtime's own would never be
        shown to it.)"""
        known = self._kinds.get(query)
        if known is not None:
            return known[0]
        audit = StatementAudit()
        self.connection.set_authorizer(audit)
        try:
            self.connection.execute("EXPLAIN " + query, params).close()
        except sqlite3.DatabaseError:
            if audit.refusal is not None:
                raise StorageError(audit.refusal) from None
            if first_keyword(query) != "EXPLAIN":
                raise  # the statement's own error: no such table, a syntax error, ...
            audit.seen = True  # "EXPLAIN EXPLAIN" does not compile; an EXPLAIN only reads
        finally:
            self.connection.set_authorizer(None)
        if len(self._kinds) >= MAX_CLASSIFIED:
            self._kinds.pop(next(iter(self._kinds)))
        self._kinds[query] = (audit.kind, frozenset(audit.functions))
        return audit.kind

    def functions_of(self, query: str) -> frozenset[str]:
        """The SQL functions a classified query calls."""
        return self._kinds[query][1]

    def write(self, query: str, params: Any = ()) -> sqlite3.Cursor:
        """Run a write (the turn's savepoint is open), and journal it when replicated: only
        once it succeeded, since a failed statement leaves nothing behind."""
        cursor = self.connection.execute(query, params)
        if self.journal is not None:
            self.journal.append((query, list(params)))
        return cursor

    # -- turns and commits (used by the runtime) -------------------------------------------

    def prepare_write(self) -> None:
        """Open this turn's savepoint before its first write, inside the group's transaction."""
        if self._turn_savepoint:
            self._turn_writes += 1
            return
        if not self.turn_open:
            raise StorageError(
                "a write outside a turn: the turn that started this code has ended, and nothing"
                " would commit the write. Write inside a turn: call the actor through its stub"
                " (namespace.get(id).method(...)), which runs the method as a turn of its own."
            )
        if not self.connection.in_transaction:
            self.connection.execute("BEGIN")
        self.connection.execute("SAVEPOINT turn")
        self._turn_savepoint = True
        self._turn_mark = len(self.journal or ())
        self._turn_writes = 1
        self._on_first_write()

    def end_turn(self, succeeded: bool) -> None:
        """Keep the turn's writes in the group's transaction, or undo only this turn's."""
        self._transaction_depth = 0
        writes, self._turn_writes = self._turn_writes, 0
        if not self._turn_savepoint:
            return
        self._turn_savepoint = False
        if succeeded:
            self._kept_writes += writes
        else:
            self.connection.execute("ROLLBACK TO turn")
            self._forget_rolled_back_alarm()
            if self.journal is not None:
                del self.journal[self._turn_mark :]
        self.connection.execute("RELEASE turn")

    def commit(self) -> tuple[bool, float | None]:
        """COMMIT the group's transaction (no fsync yet); returns the alarm index update it
        carries: (update needed, alarm time)."""
        if self.connection.in_transaction:
            self.connection.execute("COMMIT")
        if self.journal is not None:
            self._committed, self.journal = self.journal, []
        update = (self._alarm_index_stale, self._alarm_for_index)
        self._alarm_index_stale = False
        return update

    def take_batch(self) -> list[Statement]:
        """The statements of the last commit, for the replicated log (once)."""
        batch, self._committed = self._committed, []
        return batch

    def take_writes(self) -> int:
        """How many writes the turns kept since the last call (a commit's batch, counted)."""
        writes, self._kept_writes = self._kept_writes, 0
        return writes

    def make_durable(self, checkpoint: bool = False) -> bool:
        """fsync what COMMIT appended; runs in a worker thread while the loop runs more turns.
        With `checkpoint`, also copy the -wal into the database file (see `checkpoint()`).
        Returns whether the -wal has grown enough to ask for a checkpoint next time."""
        self._fsync(self.wal_path)
        if not self._directories_synced:
            # The -wal is created anew on each wake-up: its name must be on disk as well, or a
            # power cut could lose an acked write. (A new actor's file and folders were made
            # durable when it was created, see _create.)
            fsync_directory(self.path.parent)
            self._directories_synced = True
        if checkpoint:
            self.checkpoint()
        try:
            return self.wal_path.stat().st_size > CHECKPOINT_AFTER_WAL_BYTES
        except FileNotFoundError:
            return False

    def checkpoint(self) -> None:
        """Copy the -wal into the database file, with fsyncs. Worker thread, turns on hold.

        SQLite writes the -wal from its beginning again only if a transaction begins after a
        checkpoint that left nothing behind. Turns follow each other without a gap, so the
        runtime holds the next turn until this returns. A checkpoint copies each page once,
        and with 16 MiB of -wal between them the pause is short and rare.
        """
        self.connection.execute("PRAGMA synchronous = FULL")  # fsync the -wal, then the database
        try:
            self.connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            self.connection.execute("PRAGMA synchronous = OFF")

    def roll_back(self) -> None:
        """Undo everything not yet committed (the turns after the commit in flight)."""
        self._turn_savepoint = False
        self._transaction_depth = 0
        if self.journal is not None:
            self.journal.clear()
        if self.connection.in_transaction:
            self.connection.execute("ROLLBACK")

    def close(self) -> None:
        """Roll back anything not committed and close. May run in a worker thread.

        Closing the last connection checkpoints and deletes the -wal; `synchronous=FULL` first
        makes that checkpoint fsync the database file before the -wal goes away.
        """
        if self.connection.in_transaction:
            self.connection.execute("ROLLBACK")
        self.connection.execute("PRAGMA synchronous = FULL")
        self.connection.close()

    # -- key-value API ---------------------------------------------------------------------

    @overload
    def get(self, key: str) -> Any: ...
    @overload
    def get(self, key: list[str]) -> dict[str, Any]: ...
    def get(self, key: str | list[str]) -> Any:
        """One key's value (None if absent), or a dict of the listed keys that exist."""
        if isinstance(key, list):
            _check_keys(key)
            marks = ",".join("?" * len(key))
            rows = self.connection.execute(
                f"SELECT key, value FROM _accord_kv WHERE key IN ({marks}) ORDER BY key", key
            )
            return {k: json.loads(v) for k, v in rows}
        _check_keys([key])
        row = self.connection.execute("SELECT value FROM _accord_kv WHERE key = ?", (key,))
        found = row.fetchone()
        return None if found is None else json.loads(found[0])

    @overload
    def put(self, key: str, value: Any) -> None: ...
    @overload
    def put(self, key: dict[str, Any]) -> None: ...
    def put(self, key: str | dict[str, Any], value: Any = None) -> None:
        """Store one value, or every entry of a dict (at most 128)."""
        entries = key if isinstance(key, dict) else {key: value}
        _check_keys(list(entries))
        encoded = [(k, _encode(v)) for k, v in entries.items()]
        self.prepare_write()
        for entry in encoded:
            self.write(
                "INSERT INTO _accord_kv (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                entry,
            )

    @overload
    def delete(self, key: str) -> bool: ...
    @overload
    def delete(self, key: list[str]) -> int: ...
    def delete(self, key: str | list[str]) -> bool | int:
        """Delete one key (True if it existed) or several (how many existed)."""
        keys = key if isinstance(key, list) else [key]
        _check_keys(keys)
        self.prepare_write()
        deleted = 0
        for one in keys:
            deleted += self.write("DELETE FROM _accord_kv WHERE key = ?", (one,)).rowcount
        return deleted if isinstance(key, list) else deleted > 0

    def list(
        self,
        *,
        prefix: str | None = None,
        start: str | None = None,
        end: str | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> dict[str, Any]:
        """Entries in key order (`start` inclusive, `end` exclusive), like Durable Objects'."""
        conditions, params = [], []
        if prefix:
            conditions.append("key >= ?")
            params.append(prefix)
            upper = _prefix_end(prefix)
            if upper is not None:
                conditions.append("key < ?")
                params.append(upper)
        if start is not None:
            conditions.append("key >= ?")
            params.append(start)
        if end is not None:
            conditions.append("key < ?")
            params.append(end)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        order = "DESC" if reverse else "ASC"
        query = f"SELECT key, value FROM _accord_kv {where} ORDER BY key {order} LIMIT ?"
        rows = self.connection.execute(query, (*params, -1 if limit is None else limit))
        return {k: json.loads(v) for k, v in rows}

    def delete_all(self) -> None:
        """Delete every key and every table of the actor. The alarm stays (delete_alarm())."""
        self.prepare_write()
        self.write("DELETE FROM _accord_kv")
        tables = self.connection.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table'"
        ).fetchall()
        for (name,) in tables:
            if not name.startswith(_INTERNAL_TABLE_PREFIXES):
                self.write(f'DROP TABLE "{name}"')

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A block whose writes roll back if it raises, while the rest of the turn carries on."""
        self.prepare_write()
        name = f"block{self._transaction_depth}"
        self._transaction_depth += 1
        self.connection.execute(f"SAVEPOINT {name}")
        mark = len(self.journal or ())
        try:
            yield
        except BaseException:
            self.connection.execute(f"ROLLBACK TO {name}")
            self._forget_rolled_back_alarm()
            if self.journal is not None:
                del self.journal[mark:]
            raise
        finally:
            self.connection.execute(f"RELEASE {name}")
            self._transaction_depth -= 1

    # -- the alarm ---------------------------------------------------------------------------

    def get_alarm(self) -> float | None:
        """The alarm's time in epoch seconds, or None."""
        if not self._alarm_loaded:
            row = self.connection.execute("SELECT at FROM _accord_alarm").fetchone()
            self._alarm = None if row is None else row[0]
            self._alarm_loaded = True
        return self._alarm

    def set_alarm(self, when: float | datetime) -> None:
        """Ask for `alarm()` to run at (or soon after) `when`; replaces any earlier alarm."""
        at = to_epoch_seconds(when)
        self.prepare_write()
        self.write(
            "INSERT INTO _accord_alarm (only_row, at) VALUES (0, ?)"
            " ON CONFLICT (only_row) DO UPDATE SET at = excluded.at",
            (at,),
        )
        self._alarm, self._alarm_loaded = at, True
        self.point_alarm_index_at(at)

    def delete_alarm(self) -> None:
        self.prepare_write()
        self.write("DELETE FROM _accord_alarm")
        self._alarm, self._alarm_loaded = None, True
        self.point_alarm_index_at(None)

    def _forget_rolled_back_alarm(self) -> None:
        self._alarm_loaded = False
        if self._alarm_index_stale:
            self._alarm_for_index = self.get_alarm()

    def point_alarm_index_at(self, at: float | None) -> None:
        """What the namespace's alarm index should say once the next commit is durable (the
        runtime's retry backoff points it past the stored, overdue time)."""
        self.prepare_write()  # the index changes only with a commit, after the actor's own data
        self._alarm_for_index, self._alarm_index_stale = at, True

    # -- point-in-time recovery (with a replicated log) ---------------------------------------

    def _bookmarks(self) -> Bookmarks:
        if self.replica is None:
            raise StorageError(
                "point-in-time recovery reads the replicated log, and this runtime has none:"
                " start it with a replicated log (ACCORD_REPLICATION=nats://...)"
            )
        return self.replica

    async def get_current_bookmark(self) -> str:
        """A bookmark for the state as of the last durable write."""
        return await self._bookmarks().current_bookmark()

    async def get_bookmark_for_time(self, when: float | datetime) -> str:
        """A bookmark for the state at `when` (epoch seconds or an aware datetime), within the
        retention window."""
        return await self._bookmarks().bookmark_for_time(to_epoch_seconds(when))

    async def on_next_session_restore_bookmark(self, bookmark: str) -> str:
        """Restore the state of `bookmark` when the actor next starts (after a restart or a
        move: see ActorContext.abort); returns a bookmark that undoes the restore."""
        return await self._bookmarks().restore_on_next_session(bookmark)
