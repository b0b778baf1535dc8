"""Helpers for the replicated log's tests (and benchmarks/replication.py): actor runtimes that
append to a real NATS JetStream cluster, each with its own data folder as a host of its own
would have, the actor they write with, and a host writing in a process of its own (Writer)."""

import hashlib
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from accord_app.actors import Actor, ActorContext, Runtime, Stub
from accord_app.actors.natslog import NatsLog
from accord_app.actors.sockets import Transport
from accord_app.cluster.nats import NatsCluster

WRITER = Path(__file__).with_name("notes_writer.py")
WRITER_TIMEOUT = 30.0
# Short enough to keep the failure tests quick, long enough for a leader election on a busy box.
LOG_TIMEOUT = 2.0
# ACCORD_REPLICATION_TIMEOUT of the replicated chat cluster: short, so an outage answers quickly.
CLUSTER_LOG_TIMEOUT = "1.5"
ALARM_FIRED = -999  # what Notes' alarm records in `seen`


class Notes(Actor):
    """A table of numbered notes: what the tests write, replay and compare."""

    def __init__(self, ctx: ActorContext) -> None:
        super().__init__(ctx)
        self.storage.sql.execute(
            "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)"
        )
        # No key: a batch applied twice would show as a number seen twice.
        self.storage.sql.execute("CREATE TABLE IF NOT EXISTS seen (n INTEGER NOT NULL)")

    async def add(self, number: int, body: str = "") -> int:
        self.storage.sql.execute("INSERT INTO notes (id, body) VALUES (?, ?)", number, body)
        return number

    async def add_many(self, numbers: list[int]) -> None:
        for number in numbers:
            self.storage.sql.execute("INSERT INTO notes (id, body) VALUES (?, '')", number)

    async def attach(self, transport: Transport) -> None:
        """Take a client's socket, as a channel takes its members'."""
        self.ctx.accept_websocket(transport)

    async def record(self, number: int) -> int:
        """Note `number` as seen; the epoch of the copy that wrote it."""
        self.storage.sql.execute("INSERT INTO seen (n) VALUES (?)", number)
        return int(getattr(self.storage.replica, "epoch", 0))

    async def set_alarm_in(self, seconds: float) -> None:
        self.storage.set_alarm(time.time() + seconds)

    async def alarm(self) -> None:
        self.storage.sql.execute("INSERT INTO seen (n) VALUES (?)", ALARM_FIRED)

    async def seen(self) -> list[int]:
        return [row[0] for row in self.storage.sql.execute("SELECT n FROM seen ORDER BY rowid")]

    async def run(self, query: str, *params: object) -> None:
        self.storage.sql.execute(query, *params)

    async def numbers(self) -> list[int]:
        return [row[0] for row in self.storage.sql.execute("SELECT id FROM notes ORDER BY id")]

    async def content_hash(self) -> str:
        rows = self.storage.sql.execute("SELECT id, body FROM notes ORDER BY id")
        return hashlib.sha256(repr([tuple(row) for row in rows]).encode()).hexdigest()

    async def put(self, key: str, value: object) -> None:
        self.storage.put(key, value)

    async def get(self, key: str) -> object:
        return self.storage.get(key)

    async def database_bytes(self) -> int:
        rows = self.storage.sql.execute(
            "SELECT (SELECT page_count FROM pragma_page_count)"
            " * (SELECT page_size FROM pragma_page_size)"
        )
        return int(next(iter(rows))[0])

    async def replica_state(self) -> dict[str, object]:
        """How this activation got its state: rebuilt from the log, and from how many batches."""
        replica = self.storage.replica
        state = {
            name: getattr(replica, name, None) for name in ("rebuilt", "replayed", "read_bytes")
        }
        # The namespace's count of copies fenced (by a newer epoch, a refused append).
        return {**state, "fences": getattr(getattr(replica, "activity", None), "fences", None)}

    async def bookmark(self) -> str:
        return await self.storage.get_current_bookmark()

    async def bookmark_for_time(self, at: float) -> str:
        return await self.storage.get_bookmark_for_time(at)

    async def restore(self, bookmark: str) -> str:
        return await self.storage.on_next_session_restore_bookmark(bookmark)


@asynccontextmanager
async def replicated_runtime(
    cluster: NatsCluster, folder: Path, name: str, snapshot_every: int = 1000, **options: float
) -> AsyncIterator[Runtime]:
    """A runtime on `folder` whose actors append to the cluster's log, as host `name`, with a
    snapshot every `snapshot_every` batches."""
    log = NatsLog(
        cluster.urls,
        replicas=min(3, cluster.servers),
        timeout=LOG_TIMEOUT,
        snapshot_every=(snapshot_every, 1 << 30),
    )
    await log.connect()
    runtime = Runtime(folder, replication=log, replica_name=name, **options)  # type: ignore[arg-type]
    try:
        yield runtime
    finally:
        await runtime.close()
        await log.close()


@asynccontextmanager
async def notes_on(
    cluster: NatsCluster, folder: Path, name: str, snapshot_every: int = 1000
) -> AsyncIterator[Stub[Notes]]:
    """The stub of one Notes actor ("a") on a replicated runtime of its own."""
    async with replicated_runtime(cluster, folder, name, snapshot_every) as runtime:
        notes = runtime.namespace("notes", Notes)
        yield notes.get(notes.id_from_name("a"))


class Writer:
    """notes_writer.py in a process of its own: a host recording numbers in actor "a" until it
    is killed or fenced, its lines (`ack N EPOCH`, `fenced N`) collected by a thread."""

    def __init__(self, cluster: NatsCluster, folder: Path, name: str, first: int) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, str(WRITER), cluster.url, str(folder), name, str(first)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.strip())

    def acks(self) -> dict[int, int]:
        """Number -> epoch of every acknowledged number, so far."""
        pairs = (line.split()[1:] for line in list(self.lines) if line.startswith("ack "))
        return {int(number): int(epoch) for number, epoch in pairs}

    def fenced(self) -> bool:
        return any(line.startswith("fenced") for line in list(self.lines))

    def wait_for_acks(self, count: int) -> None:
        deadline = time.monotonic() + WRITER_TIMEOUT
        while len(self.acks()) < count:
            assert self.process.poll() is None, f"the writer exited: {self.lines[-5:]}"
            assert time.monotonic() < deadline, f"{len(self.acks())} acks only: {self.lines[-5:]}"
            time.sleep(0.01)

    def finish(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._reader.join(5)
        assert self.process.stdout is not None
        self.process.stdout.close()
