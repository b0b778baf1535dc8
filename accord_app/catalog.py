"""The catalog database: servers and channels in one SQLite file (the talk's D1).

Servers and channels change rarely and are read often, so one shared relational database
suits them; messages change all the time and live in per-channel actors instead.

Several processes may open the same file (the app, a notebook, a test): WAL mode lets readers
run beside one writer, writers take the lock up front (BEGIN IMMEDIATE) and wait for it up to a
timeout, and every commit is fsync'ed (synchronous=FULL) before the API answers.
"""

import re
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from accord_app.types import Channel, Server

# How long a writer waits for another process's write lock before giving up.
BUSY_TIMEOUT_SECONDS = 10.0
_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)


class CatalogError(RuntimeError):
    """The catalog file cannot be used; the message names it and says what to do."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """The package's numbered SQL files (0001_name.sql, ...), in order."""
    migrations = []
    for entry in resources.files("accord_app").joinpath("migrations").iterdir():
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


def connect(path: Path) -> sqlite3.Connection:
    """Open the catalog with the settings every connection needs."""
    # isolation_level=None: no hidden transactions; we say BEGIN and COMMIT ourselves.
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    _enable_wal(conn)
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL (it stays so). On a brand-new file two processes may race to do
    it, and this pragma does not wait for the lock like other statements: retry it."""
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK if the block raises.

    IMMEDIATE takes the write lock at once. A plain BEGIN would take it at the first write, and
    two processes that both read first could deadlock on the upgrade.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def apply_migrations(conn: sqlite3.Connection, migrations: list[Migration]) -> list[int]:
    """Apply the migrations not yet recorded; return their versions. Safe to call again."""
    with write_transaction(conn):
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
        )
        done = {version for (version,) in conn.execute("SELECT version FROM schema_migrations")}
        applied = []
        for migration in migrations:
            if migration.version in done:
                continue
            for statement in split_statements(migration.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
                (migration.version, migration.name),
            )
            applied.append(migration.version)
    return applied


class Catalog:
    """Servers and channels. Each call opens its own short-lived connection.

    A connection per call costs a file open (tens of microseconds) and needs no locking between
    the threads FastAPI runs sync endpoints on. A busy production service would keep a pool.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        conn = connect(self.path)
        try:
            yield conn
        finally:
            conn.close()

    def migrate(self, actors_dir: Path | None = None) -> list[int]:
        """Bring the file up to date; CatalogError if it cannot be the catalog of `actors_dir`.

        An empty (0-byte) file beside actors that hold messages means the catalog was lost or
        truncated: starting afresh would hide every server and channel, so it is refused.
        (A brand-new file is empty for a moment too, hence the look at the actors.)"""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._is_empty() and actors_dir is not None and any(actors_dir.glob("*/??/??/*")):
            raise CatalogError(
                f"{self.path} is empty (0 bytes), yet {actors_dir} holds actors' data: the"
                " catalog of servers and channels was lost or truncated. Restore it from a"
                " backup; Accord will not start over with an empty catalog beside them."
            )
        try:
            with self.connection() as conn:
                return apply_migrations(conn, load_migrations())
        except sqlite3.DatabaseError as error:
            raise CatalogError(
                f"{self.path} cannot be opened as Accord's catalog ({error}). Is it a catalog"
                " at all? Restore it from a backup, or point ACCORD_DATA_DIR elsewhere."
            ) from error

    def _is_empty(self) -> bool:
        try:
            return self.path.stat().st_size == 0
        except FileNotFoundError:
            return False

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

    def get_channel(self, server_id: str, channel_id: str) -> Channel | None:
        with self.connection() as conn:
            row = conn.execute(
                "SELECT name FROM channels WHERE id = ? AND server_id = ?", (channel_id, server_id)
            ).fetchone()
        return Channel(id=channel_id, name=row[0], server_id=server_id) if row else None
