"""The catalog database: servers and channels, in one SQLite file (the talk's D1) or in a
PostgreSQL database that several hosts share (ACCORD_CATALOG_URL).

Servers and channels change rarely and are read often, so one shared relational database
suits them; messages change all the time and live in per-channel actors instead.

Several processes may open the same catalog (the app, a notebook, a test). With SQLite, WAL
mode lets readers run beside one writer, writers take the lock up front (BEGIN IMMEDIATE) and
wait for it up to a timeout, and every commit is fsync'ed (synchronous=FULL) before the API
answers. PostgreSQL does all of this as a server; what differs is in accord_app/catalog/dialects.py.
"""

import re
import sqlite3
import threading
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TypeVar

import psycopg

from accord_app.api.schemas import Channel, Server

# BUSY_TIMEOUT_SECONDS and connect (SQLite's) are the catalog's too: chapter 02 uses them.
from accord_app.catalog.dialects import BUSY_TIMEOUT_SECONDS as BUSY_TIMEOUT_SECONDS
from accord_app.catalog.dialects import (
    Connection,
    NoAnswer,
    describe,
    dialect_for,
    dialect_of,
    open_connection,
)
from accord_app.catalog.dialects import connect as connect

# Connections to PostgreSQL kept open between calls, at most.
IDLE_CONNECTIONS = 8
# Connections to PostgreSQL in use at once, at most, and how long a call waits for one: calls
# held up by a slow server must not take every thread the web server runs endpoints on. A
# call's worst case, this wait, a connection (2 s) and a statement (2 s), stays below the
# cluster's router's 5 s, so the client gets the catalog's 503, not the router's 504.
MAX_CONNECTIONS = 16
POOL_TIMEOUT_SECONDS = 0.5
_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
AnyConnection = TypeVar("AnyConnection", bound=Connection)


class CatalogError(RuntimeError):
    """The catalog cannot be used; the message names it and says what to do."""


class CatalogUnavailable(CatalogError):
    """The catalog's database server cannot be reached, or dropped the connection."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """The package's numbered SQL files (0001_name.sql, ...), in order."""
    migrations = []
    for entry in resources.files("accord_app.catalog").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            migrations.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text()))
    return sorted(migrations, key=lambda migration: migration.version)


def split_statements(script: str) -> list[str]:
    """Cut a SQL script into statements, using SQLite's own idea of where one ends.

    sqlite3's executescript() would be shorter, but it commits first, and each migration must
    run inside the same transaction as the record that says it ran.
    """
    statements, pending = [], ""
    pieces = script.split(";")
    for index, piece in enumerate(pieces):
        pending += piece if index == len(pieces) - 1 else piece + ";"
        # A ";" inside a string or a comment does not end a statement: SQLite tells us.
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    leftover = _COMMENTS.sub("", pending).strip()
    if leftover:
        raise ValueError(f"the SQL script ends inside a statement: {leftover[:80]!r}")
    return statements


@contextmanager
def write_transaction(conn: AnyConnection) -> Iterator[AnyConnection]:
    """BEGIN ... COMMIT, or ROLLBACK if the block raises: BEGIN IMMEDIATE on SQLite, which
    takes the write lock at once (see accord_app/catalog/dialects.py)."""
    conn.execute(dialect_of(conn).begin)
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def apply_migrations(conn: Connection, migrations: list[Migration]) -> list[int]:
    """Apply the migrations not yet recorded; return their versions. Safe to call again."""
    dialect = dialect_of(conn)
    with write_transaction(conn):
        if dialect.lock_migrations is not None:
            conn.execute(dialect.lock_migrations)
        conn.execute(
            dialect.migration(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                " applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
            )
        )
        done = {version for (version,) in conn.execute("SELECT version FROM schema_migrations")}
        applied = []
        for migration in migrations:
            if migration.version in done:
                continue
            for statement in split_statements(migration.sql):
                conn.execute(dialect.migration(statement))
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
                (migration.version, migration.name),
            )
            applied.append(migration.version)
    return applied


class Catalog:
    """Servers and channels. Each call takes a connection of its own for its duration.

    With SQLite a connection per call costs a file open (tens of microseconds) and needs no
    locking between the threads FastAPI runs sync endpoints on. Opening one to PostgreSQL costs
    milliseconds, so the catalog keeps up to IDLE_CONNECTIONS open between calls (a small pool:
    a busy production service would use a real one, such as psycopg_pool).
    """

    def __init__(self, location: Path | str) -> None:
        """`location`: the SQLite file, or the postgresql:// URL of a PostgreSQL database."""
        self.location = location
        self.dialect = dialect_for(location)
        self._idle: list[Connection] = []
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        # The kept connections are closed when the catalog is collected, or at exit.
        weakref.finalize(self, _close_all, self._idle)

    def close(self) -> None:
        """Close the connections kept open; the catalog can still be used."""
        _close_all(self._idle)

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        pooled = self.dialect.reuse_connections
        if pooled and not self._slots.acquire(timeout=POOL_TIMEOUT_SECONDS):
            raise CatalogUnavailable(
                f"{describe(self.location)} is slow to answer: all {MAX_CONNECTIONS} of the"
                f" catalog's connections were busy for {POOL_TIMEOUT_SECONDS:g} s"
            )
        try:
            conn = self._take()
            try:
                yield conn
            except BaseException:
                conn.close()  # it may be broken, or hold a transaction
                raise
            self._give_back(conn)
        except self.dialect.unreachable as error:
            raise CatalogUnavailable(f"{describe(self.location)} cannot be reached: {error}") from (
                error
            )
        finally:
            if pooled:
                self._slots.release()

    def _take(self) -> Connection:
        while True:
            try:
                conn = self._idle.pop()  # atomic: two threads never take the same one
            except IndexError:
                return open_connection(self.location)
            try:
                # A kept connection may have died with its server process (a restart, say).
                conn.execute("SELECT 1")
                return conn
            except self.dialect.unreachable as error:
                conn.close()
                if isinstance(error, NoAnswer):
                    raise  # the server is there but silent: the next one would wait as long

    def _give_back(self, conn: Connection) -> None:
        keep = self.dialect.reuse_connections and len(self._idle) < IDLE_CONNECTIONS
        if keep and not conn.in_transaction:
            self._idle.append(conn)
        else:
            conn.close()

    def migrate(self, actors_dir: Path | None = None) -> list[int]:
        """Bring the catalog up to date; CatalogError if it cannot be the catalog of
        `actors_dir`, or cannot be reached."""
        if isinstance(self.location, Path):
            self._refuse_a_truncated_file(self.location, actors_dir)
        try:
            with self.connection() as conn:
                return apply_migrations(conn, load_migrations())
        except (sqlite3.DatabaseError, psycopg.DatabaseError) as error:
            raise CatalogError(
                f"{describe(self.location)} cannot be opened as Accord's catalog ({error})."
                " Is it a catalog at all? Restore it from a backup, or point ACCORD_DATA_DIR"
                " (or ACCORD_CATALOG_URL) elsewhere."
            ) from error

    @staticmethod
    def _refuse_a_truncated_file(path: Path, actors_dir: Path | None) -> None:
        """An empty (0-byte) file beside actors that hold messages means the catalog was lost or
        truncated: starting afresh would hide every server and channel, so it is refused.
        (A brand-new file is empty for a moment too, hence the look at the actors.)"""
        path.parent.mkdir(parents=True, exist_ok=True)
        if _is_empty(path) and actors_dir is not None and any(actors_dir.glob("*/??/??/*")):
            raise CatalogError(
                f"{path} is empty (0 bytes), yet {actors_dir} holds actors' data: the"
                " catalog of servers and channels was lost or truncated. Restore it from a"
                " backup; Accord will not start over with an empty catalog beside them."
            )

    def create_server(self, name: str) -> Server:
        server = Server(id=str(uuid.uuid4()), name=name)
        with self.connection() as conn, write_transaction(conn):
            conn.execute("INSERT INTO servers (id, name) VALUES (?, ?)", (server.id, server.name))
        return server

    def list_servers(self) -> list[Server]:
        with self.connection() as conn:
            rows = conn.execute("SELECT id, name FROM servers ORDER BY rowid").fetchall()
        return [Server(id=id_, name=name) for id_, name in rows]

    def get_server(self, server_id: str) -> Server | None:
        with self.connection() as conn:
            row = conn.execute("SELECT id, name FROM servers WHERE id = ?", (server_id,)).fetchone()
        return Server(id=row[0], name=row[1]) if row else None

    def create_channel(self, server_id: str, name: str) -> Channel | None:
        """The new channel, or None when the server does not exist."""
        channel = Channel(id=str(uuid.uuid4()), name=name, server_id=server_id)
        with self.connection() as conn, write_transaction(conn):
            if conn.execute("SELECT 1 FROM servers WHERE id = ?", (server_id,)).fetchone() is None:
                return None
            conn.execute(
                "INSERT INTO channels (id, server_id, name) VALUES (?, ?, ?)",
                (channel.id, channel.server_id, channel.name),
            )
        return channel

    def list_channels(self, server_id: str) -> list[Channel] | None:
        """The server's channels, oldest first, or None when the server does not exist."""
        with self.connection() as conn:
            if conn.execute("SELECT 1 FROM servers WHERE id = ?", (server_id,)).fetchone() is None:
                return None
            rows = conn.execute(
                "SELECT id, name FROM channels WHERE server_id = ? ORDER BY rowid", (server_id,)
            ).fetchall()
        return [Channel(id=id_, name=name, server_id=server_id) for id_, name in rows]

    def count_channels(self, server_id: str) -> int:
        """How many channels the server has (0 if it does not exist)."""
        with self.connection() as conn:
            (count,) = conn.execute(
                "SELECT count(*) FROM channels WHERE server_id = ?", (server_id,)
            ).fetchone()
        return int(count)

    def get_channel(self, server_id: str, channel_id: str) -> Channel | None:
        with self.connection() as conn:
            row = conn.execute(
                "SELECT name FROM channels WHERE id = ? AND server_id = ?", (channel_id, server_id)
            ).fetchone()
        return Channel(id=channel_id, name=row[0], server_id=server_id) if row else None


def _is_empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except FileNotFoundError:
        return False


def _close_all(connections: list[Connection]) -> None:
    while connections:
        connections.pop().close()
