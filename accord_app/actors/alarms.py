"""Alarms: one per actor, durable, at-least-once, retried with exponential backoff.

The actor's own database holds its alarm, and that copy is authoritative. To find due alarms
after a restart without opening every actor's file, each namespace also keeps a small index
(`alarms.sqlite3`: actor id → time) that is allowed to be early but never late:

- before an actor's commit is fsynced, the index is lowered to the new time, durably;
- after the fsync, it is set to the exact time (or the row deleted);
- when the scheduler wakes an actor early (the index said so, the actor's alarm says later or
  none), the alarm turn just corrects the index.

A crash between the steps thus costs at most an early, harmless wake-up, never a lost alarm.
Cloudflare keeps a similar per-colo alarm index; its scheduler is distributed, ours is one task.
"""

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from accord_app.actors.errors import StorageDamaged

logger = logging.getLogger(__name__)

DEFAULT_RETRY_BASE_SECONDS = 2.0
DEFAULT_MAX_RETRIES = 6
# The scheduler re-reads the index at least this often, as a safety net for missed pokes.
POLL_SECONDS = 1.0
DUE_BATCH = 1000


class AlarmIndex:
    """The namespace's alarm index. Writes come from commit worker threads, reads from the loop."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # one writer connection, shared by the worker threads
        self._writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            self._writer.execute("PRAGMA journal_mode = WAL")
        except sqlite3.DatabaseError as error:
            self._writer.close()
            raise StorageDamaged(
                f"{path} is not an alarm index ({error}): move it aside to start; the alarms it"
                " held are then forgotten, and their actors must set them again"
            ) from error
        self._writer.execute("PRAGMA synchronous = FULL")
        self._writer.execute(
            "CREATE TABLE IF NOT EXISTS alarms (actor TEXT PRIMARY KEY, at REAL NOT NULL)"
            " WITHOUT ROWID"
        )
        self._writer.execute("CREATE INDEX IF NOT EXISTS alarms_by_time ON alarms (at)")
        self._reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def lower(self, actor: str, at: float) -> None:
        """Make sure the index wakes `actor` no later than `at`."""
        with self._lock:
            self._writer.execute(
                "INSERT INTO alarms (actor, at) VALUES (?, ?)"
                " ON CONFLICT (actor) DO UPDATE SET at = min(at, excluded.at)",
                (actor, at),
            )

    def settle(self, actor: str, at: float | None) -> None:
        """Record the actor's exact alarm time, or that it has none."""
        with self._lock:
            if at is None:
                self._writer.execute("DELETE FROM alarms WHERE actor = ?", (actor,))
            else:
                self._writer.execute(
                    "INSERT INTO alarms (actor, at) VALUES (?, ?)"
                    " ON CONFLICT (actor) DO UPDATE SET at = excluded.at",
                    (actor, at),
                )

    def due(self, now: float) -> list[str]:
        rows = self._reader.execute(
            "SELECT actor FROM alarms WHERE at <= ? ORDER BY at LIMIT ?", (now, DUE_BATCH)
        )
        return [actor for (actor,) in rows]

    def next_after(self, now: float) -> float | None:
        row = self._reader.execute("SELECT min(at) FROM alarms WHERE at > ?", (now,)).fetchone()
        return None if row[0] is None else float(row[0])

    def entries(self) -> dict[str, float]:
        return dict(self._reader.execute("SELECT actor, at FROM alarms").fetchall())

    def close(self) -> None:
        with self._lock:
            self._writer.close()
        self._reader.close()


class AlarmRetries:
    """Failure counts and backoff, with no clock of its own. Counts live in memory: a restart
    starts them over, which can only add attempts (at-least-once), never drop an alarm."""

    def __init__(
        self, base_delay: float = DEFAULT_RETRY_BASE_SECONDS, max_retries: int = DEFAULT_MAX_RETRIES
    ) -> None:
        self.base_delay = base_delay
        self.max_retries = max_retries
        self._failures: dict[str, int] = {}

    def failed(self, actor: str, now: float) -> float | None:
        """When to retry after this failure: base, 2·base, 4·base, ... or None to give up."""
        failures = self._failures.get(actor, 0) + 1
        if failures > self.max_retries:
            self._failures.pop(actor, None)
            return None
        self._failures[actor] = failures
        return now + self.base_delay * 2.0 ** (failures - 1)

    def succeeded(self, actor: str) -> None:
        self._failures.pop(actor, None)


class AlarmScheduler:
    """One task per namespace: reads the index, hands due alarms to `deliver`, one at a time
    per actor. `deliver(actor)` returns once the alarm turn's writes, including the index
    update, are durable."""

    def __init__(
        self,
        index: AlarmIndex,
        deliver: Callable[[str], Awaitable[None]],
        retries: AlarmRetries,
    ) -> None:
        self.index = index
        self.retries = retries
        self._deliver = deliver
        self._in_flight: set[str] = set()
        self._deliveries: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def poke(self) -> None:
        """The index may have changed: look again now rather than at the next poll."""
        self._wake.set()

    async def close(self) -> None:
        tasks = [*self._deliveries, *([self._task] if self._task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            now = time.time()
            for actor in self.index.due(now):
                if actor not in self._in_flight:
                    self._in_flight.add(actor)
                    task = asyncio.get_running_loop().create_task(self._deliver_one(actor))
                    self._deliveries.add(task)
                    task.add_done_callback(self._deliveries.discard)
            next_at = self.index.next_after(now)
            timeout = POLL_SECONDS if next_at is None else min(POLL_SECONDS, next_at - now)
            # asyncio.timeout, not wait_for: in 3.11 wait_for can swallow a cancellation that
            # races with the event being set, and close() would wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(timeout, 0.0)):
                    await self._wake.wait()

    async def _deliver_one(self, actor: str) -> None:
        try:
            await self._deliver(actor)
        except Exception as error:  # the alarm turn never became durable: it stays due
            logger.warning("alarm of actor %s not delivered, will retry: %s", actor, error)
            await asyncio.sleep(self.retries.base_delay)
        finally:
            self._in_flight.discard(actor)
            self.poke()
