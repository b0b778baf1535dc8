"""The runtime's side of one actor id: `ActorHost`, and the events and outputs it handles.

Per actor id there is one `ActorHost`, which outlives the actor instance: it owns the mailbox,
the output gate, the sockets and the commit in flight. The instance (the Actor object and its
open database) is built on the first event and dropped when the actor hibernates. A host with
no instance, no sockets and nothing queued is dropped too, so a hibernated actor costs no memory
at all. One runtime keeps at most one host, hence one instance, per id; a multi-process
deployment must route each id to one process (Cloudflare checks this globally).

The rules (turn order, held outputs, group commits and what a failed one implies) are the
sans-I/O classes of `gates`; this module does the waiting, the threads and the sockets around
them.
"""

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, Protocol

from accord_app.actors import ids
from accord_app.actors.actor import Actor, ActorContext
from accord_app.actors.alarms import AlarmScheduler
from accord_app.actors.errors import (
    ActorError,
    ActorOverloaded,
    ActorReset,
    CommitFailed,
    Fenced,
    RuntimeClosed,
    StorageError,
    TurnCancelled,
    is_disk_full,
    storage_unavailable,
)
from accord_app.actors.events import Activity, ActorEvent, EventKind, Observers, Traffic
from accord_app.actors.gates import CommitCycle, Mailbox, OutputGate
from accord_app.actors.replica import ActorReplica, database_bytes, set_marker
from accord_app.actors.replication import ReplicaLog, Snapshot, Statement
from accord_app.actors.sockets import (
    CLOSE_TRY_AGAIN_LATER,
    DirectTransport,
    HibernatableWebSocket,
    Transport,
    TransportClosed,
)
from accord_app.actors.storage import Storage

logger = logging.getLogger(__name__)
# Printed when a restore takes effect: the instance gives way to one rebuilt from the log.
RESTORE_HANDOVER = "actor {}… restarts from the restored state, as asked (expected, not an error)"
# How long a socket gets to close politely when the runtime shuts down.
SHUTDOWN_CLOSE_SECONDS = 1.0
# An actor with a queue gives the event loop a turn after this many of its own (see _drain).
TURNS_PER_YIELD = 8
# An actor fenced by a newer owner closes its sockets with 1012 ("service restart"): the
# clients reconnect, through the router, to the new owner.
CLOSE_MOVED = 1012

CommitMode = Literal["grouped", "per_turn"]


class HostServices(Protocol):
    """What a host needs from the namespace that keeps it (`runtime.Namespace` is the one).
    This is the whole of the host's view of the runtime: this module imports nothing of it."""

    @property
    def name(self) -> str: ...

    @property
    def actor_class(self) -> type[Actor]: ...

    # Who watches the actors (runtime.observe), and the name an id was made from, if known.
    @property
    def observers(self) -> Observers: ...

    def name_of(self, actor_hex: str) -> str | None: ...

    @property
    def traffic(self) -> Traffic: ...

    @property
    def activity(self) -> Activity: ...

    # The runtime's settings and its worker threads (opening, fsyncing, closing databases).
    @property
    def max_queue(self) -> int: ...

    @property
    def idle_timeout(self) -> float: ...

    @property
    def commit_mode(self) -> CommitMode: ...

    @property
    def fsync(self) -> Callable[[Path], None]: ...

    @property
    def executor(self) -> Executor: ...

    @property
    def scheduler(self) -> AlarmScheduler: ...

    # The replicated log, if any, and this process's name in the epochs it opens.
    @property
    def replication(self) -> ReplicaLog | None: ...

    @property
    def replica_name(self) -> str: ...

    def storage_path(self, actor_hex: str) -> Path: ...

    async def make_room_for(self, host: "ActorHost") -> None: ...

    def close_in_background(
        self, actor_hex: str, storage: Storage, after: asyncio.Future[Any] | None = None
    ) -> None: ...

    def forget(self, host: "ActorHost") -> None: ...

    def log_failure(self, actor_hex: str, what: str) -> None: ...


@dataclass(slots=True)
class Event:
    """One unit of work for an actor's turn."""

    action: Callable[[Actor], Awaitable[Any]]
    reply: "asyncio.Future[Any] | None" = None  # resolved through the output gate
    turn_done: "asyncio.Future[None] | None" = None  # resolved when the turn ends, not gated
    message: "tuple[HibernatableWebSocket, str | bytes] | None" = None  # from a socket


class Reply:
    """A turn's result on its way to the caller, held by the output gate until durable."""

    __slots__ = ("error", "future", "value")

    def __init__(self, future: "asyncio.Future[Any]", value: Any, error: BaseException | None):
        self.future, self.value, self.error = future, value, error

    def release(self) -> None:
        if self.future.done():  # the caller gave up (cancelled)
            return
        if self.error is not None:
            self.future.set_exception(self.error)
        else:
            self.future.set_result(self.value)

    def drop(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


class Refusal:
    """Stands behind the writes of a socket message's turn in the output gate: released (and
    forgotten) when they are durable, dropped (and the client told) if they are lost."""

    __slots__ = ("data", "host", "ws")

    def __init__(self, host: "ActorHost", ws: HibernatableWebSocket, data: str | bytes):
        self.host, self.ws, self.data = host, ws, data

    def release(self) -> None:
        """The message's writes are durable: nothing to say."""

    def drop(self, error: BaseException) -> None:
        self.host.refuse(self.ws, self.data, error)


class Frame:
    """A WebSocket frame (or close) held by the output gate, for one socket or, when a
    broadcast sends the same frame to several in a row, for all of them: one output, not one
    per member."""

    __slots__ = ("data", "sockets", "traffic")

    def __init__(
        self, ws: HibernatableWebSocket, data: str | bytes | TransportClosed, traffic: Traffic
    ):
        self.sockets, self.data, self.traffic = [ws], data, traffic

    def release(self) -> None:
        data = self.data
        for ws in self.sockets:
            ws.deliver(data)
        if not isinstance(data, TransportClosed):
            self.traffic.sent(data, len(self.sockets))

    def drop(self, error: BaseException) -> None:
        """Lost with the failed commit, as in Durable Objects."""


class ActorHost:
    """The runtime's side of one actor id. Runs turns, commits, hibernation and sockets."""

    __slots__ = (
        "_commit_in_flight",
        "_drainer",
        "_idle_timer",
        "_last_active",
        "auto_response",
        "blockers",
        "commits",
        "gate",
        "id",
        "instance",
        "last_commit_seconds",
        "mailbox",
        "namespace",
        "replica",
        "sockets",
        "storage",
        "timers",
        "turns",
    )

    def __init__(self, namespace: HostServices, actor_id: ids.ActorId) -> None:
        self.namespace = namespace
        self.id = actor_id
        self.mailbox: Mailbox[Event] = Mailbox(namespace.max_queue)
        self.gate: OutputGate[Reply | Frame | Refusal] = OutputGate()
        self.commits = CommitCycle()
        self.instance: Actor | None = None
        self.storage: Storage | None = None
        self.replica: ActorReplica | None = None  # this copy's session on the replicated log
        self.sockets: list[HibernatableWebSocket] = []
        self.auto_response: tuple[str, str] | None = None
        self.blockers: list[Callable[[], Awaitable[object]]] = []
        self.timers: set[asyncio.TimerHandle] = set()  # the instance's call_later, pending
        self._drainer: asyncio.Task[None] | None = None
        self._commit_in_flight: asyncio.Task[None] | None = None  # while commits.in_flight
        self._idle_timer: asyncio.TimerHandle | None = None
        self._last_active = 0.0
        self.turns = 0  # since this host was made (it is dropped when its actor hibernates)
        self.last_commit_seconds: float | None = None  # the last commit's fsync

    @property
    def last_active(self) -> float:
        return self._last_active

    @property
    def quiet(self) -> bool:
        """Nothing queued, running, committing or held: safe to hibernate."""
        return (
            self.mailbox.idle
            and not self.gate.busy
            and not self.commits.in_flight
            and not self.timers
        )

    def emit(
        self,
        kind: EventKind,
        seconds: float | None = None,
        count: int | None = None,
        writes: int | None = None,
    ) -> None:
        """Tell the observers that want `kind` (nobody wants it: nothing is built)."""
        namespace = self.namespace
        if kind in namespace.observers.kinds:
            namespace.observers.emit(
                ActorEvent(
                    kind,
                    namespace.actor_class.__name__,
                    self.id.hex,
                    namespace.name_of(self.id.hex),
                    time.time(),
                    seconds,
                    count,
                    writes,
                    namespace.name,
                )
            )

    # -- events and turns ----------------------------------------------------------------

    def push(self, event: Event, *, bounded: bool = True) -> None:
        try:
            self.mailbox.push(event, bounded=bounded)
        except ActorOverloaded:
            self.emit(EventKind.OVERLOADED, count=len(self.mailbox))
            raise
        if self._drainer is None:
            self._drainer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        turns = 0
        stopping = False
        try:
            while True:
                if self._commit_in_flight is not None and not self.commits.may_start_turn:
                    await asyncio.shield(self._commit_in_flight)
                if (event := self.mailbox.start_turn()) is None:
                    break
                started = time.perf_counter()
                try:
                    await self._run_turn(event)
                finally:
                    self.mailbox.finish_turn()
                seconds = time.perf_counter() - started
                self.turns += 1
                self.namespace.activity.turns.add(seconds)
                self.emit(EventKind.TURN, seconds, count=len(self.mailbox))
                if self.gate.should_commit():
                    self._start_commit()
                # Let the event loop run every few turns: finished commits release their
                # answers, sockets are read, other actors take their turns. A turn that never
                # awaits anything (pure computation) would otherwise hold the loop until this
                # actor's whole queue is empty, and every answer would wait for the last turn.
                # Not after every turn: the turns run meanwhile join the next group commit,
                # which measured 1.4x the messages per second of a busy channel
                # (benchmarks/fanout.py). A time budget instead (1 ms) measured less.
                turns += 1
                if turns % TURNS_PER_YIELD == 0:
                    await asyncio.sleep(0)
        except (KeyboardInterrupt, SystemExit):
            stopping = True
            raise
        finally:
            self._drainer = None
            if len(self.mailbox) and not stopping:
                # Cancelled with events waiting: a fresh drainer takes them (no lost wake-up).
                self._drainer = asyncio.get_running_loop().create_task(self._drain())
            else:
                self._note_activity()

    async def _run_turn(self, event: Event) -> None:
        value: Any = None
        error: BaseException | None = None
        escaping: BaseException | None = None  # re-raised once the turn is settled
        self.gate.turn_started()
        if self.storage is not None:
            self.storage.turn_open = True
        try:
            if self.replica is not None and (self.replica.fenced or self.replica.ending):
                # A newer owner, or a restore asked for: this copy's state is not the log's.
                self._close_sockets(CLOSE_MOVED, "restarting elsewhere or restored")
                self._reset(Fenced(f"actor {self.id.hex[:12]}…: this copy's epoch has ended"))
            constructing = self.instance is None
            if constructing:
                waking = time.perf_counter()
                await self.namespace.make_room_for(self)
                await self._open_storage()
            actor = self._instance()
            await self._run_blockers()
            if constructing:
                self.emit(EventKind.WOKE, time.perf_counter() - waking)
            if constructing and self.storage is not None:
                # What the constructor and blockers wrote (a schema, say) stands on its own:
                # the event failing must not roll it back under the instance's feet.
                self.storage.end_turn(succeeded=True)
            value = await event.action(actor)
            await self._run_blockers()
        except Exception as exc:  # the turn fails alone; the caller gets the exception
            error = exc
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # this task is being stopped
                escaping = exc
            # Else the actor's own code met a cancellation: a failed turn like any other. The
            # caller gets an ActorError: a CancelledError would look like its own cancellation.
            error = TurnCancelled(
                f"the turn of actor {self.id.hex[:12]}… was cancelled: its writes were rolled"
                " back and its frames dropped"
            )
        except BaseException as exc:  # KeyboardInterrupt, SystemExit: settle, then re-raise
            escaping = exc
            error = TurnCancelled(f"the turn of actor {self.id.hex[:12]}… was interrupted: {exc!r}")
        self._settle_turn(event, value, error)
        if self.replica is not None and self.replica.ending:
            # A restore was asked for: it takes effect at the next activation, now.
            self._close_sockets(CLOSE_MOVED, "restored to an earlier state")
            self._reset(Fenced(RESTORE_HANDOVER.format(self.id.hex[:12])), expected=True)
        if escaping is not None:
            raise escaping
        if self.namespace.commit_mode == "per_turn" and self.gate.should_commit():
            self._start_commit()
            if self._commit_in_flight is not None:
                await asyncio.shield(self._commit_in_flight)  # the next turn waits for this fsync
            # The turn ends with its commit; if that failed, its reply was dropped with it.
            if (failure := self.commits.turn_ended()) is not None:
                self._reset(failure)

    def _settle_turn(self, event: Event, value: Any, error: BaseException | None) -> None:
        """End the turn whatever it ended with: its writes kept or undone, its outputs released
        or dropped, its caller answered, its socket free to deliver the next message."""
        try:
            if self.storage is not None:
                self.storage.turn_open = False  # writes from now on are refused
                try:
                    self.storage.end_turn(succeeded=error is None)
                except Exception as exc:  # the connection cannot end the turn: start afresh
                    error = error or exc
                    self._reset(exc)
            if (failure := self.commits.turn_ended()) is not None:  # a commit failed meanwhile
                error = CommitFailed(str(failure))
                self._reset(error)
            released, dropped = self.gate.turn_ended(succeeded=error is None)
            for output in released:
                output.release()
            for output in dropped:
                assert error is not None, "only a failed turn drops its outputs"
                output.drop(error)
        finally:
            if event.turn_done is not None and not event.turn_done.done():
                event.turn_done.set_result(None)
        if event.message is not None:
            ws, data = event.message
            refusal = Refusal(self, ws, data)
            if error is not None:
                refusal.drop(error)
            else:
                self.gate.send(refusal)  # held until its writes are durable, if it made any
        if event.reply is not None:
            reply = Reply(event.reply, value, error)
            if self.gate.send(reply):
                reply.release()

    async def _open_storage(self) -> None:
        """Open (or create) the actor's database in a worker thread: creating one fsyncs the
        file and its folders, which would hold every other actor's turns on the loop."""
        if self.storage is not None:
            return
        namespace = self.namespace
        path = namespace.storage_path(self.id.hex)
        loop = asyncio.get_running_loop()
        log = namespace.replication
        replica = None
        if log is not None:
            key = f"{self.id.namespace}.{self.id.hex}"
            replica = ActorReplica(log, key, namespace.replica_name, self.fence, namespace.activity)
        opening = partial(
            Storage, path, on_first_write=self.gate.wrote, fsync=namespace.fsync, replica=replica
        )
        try:
            if replica is None:
                self.storage = await loop.run_in_executor(namespace.executor, opening)
            else:
                self.storage = await replica.activate(
                    path, opening, partial(loop.run_in_executor, namespace.executor)
                )
                self.replica = replica
                await self._schedule_replicated_alarm(self.storage)
        except StorageError as error:
            self.namespace.log_failure(self.id.hex, f"cannot start: {error}")
            raise
        except (OSError, sqlite3.Error) as error:
            unavailable = storage_unavailable(path, error)
            self.namespace.log_failure(self.id.hex, f"cannot start: {unavailable}")
            raise unavailable from error

    def _instance(self) -> Actor:
        if self.instance is None:
            try:
                self.instance = self.namespace.actor_class(ActorContext(self))
            except BaseException as error:
                self._reset(error)
                raise
        return self.instance

    def call_later(self, delay: float, callback: Callable[[], Awaitable[object]]) -> None:
        """ActorContext.call_later: when due, queue `callback()` as a turn (past the queue
        bound, like a close: the instance counts on it), if the instance that asked still
        lives."""
        owner = self.instance

        def due() -> None:
            self.timers.discard(handle)

            async def action(actor: Actor) -> None:
                if actor is owner:  # else reset since: its state is gone, and so is the work
                    await callback()

            with contextlib.suppress(RuntimeClosed):
                self.push(Event(action), bounded=False)

        handle = asyncio.get_running_loop().call_later(delay, due)
        self.timers.add(handle)

    def _cancel_timers(self) -> None:
        for handle in self.timers:
            handle.cancel()
        self.timers.clear()

    def refuse(self, ws: HibernatableWebSocket, data: str | bytes, error: BaseException) -> None:
        """Tell the client of `ws` (through the actor class) that its message came to nothing."""
        if ws.closing or not isinstance(error, Exception):
            return
        try:
            self.namespace.actor_class.websocket_refused(ws, data, error)
        except Exception:
            logger.exception("websocket_refused of %s failed", self.namespace.actor_class.__name__)

    async def _run_blockers(self) -> None:
        while self.blockers:
            initialise = self.blockers.pop(0)
            try:
                await initialise()
            except BaseException as error:
                self._reset(error)
                raise

    # -- group commit and the output gate ----------------------------------------------

    def _start_commit(self) -> None:
        assert self.storage is not None
        self.gate.commit_started()
        storage, replica = self.storage, self.replica
        number = 0
        try:
            if replica is not None and storage.journal:
                # The batch's number goes into its own transaction: the local file then says
                # which entry of the log it holds (see replica.py).
                number = replica.next_batch()
                set_marker(storage, replica.epoch, number)
            alarm_update = storage.commit()
        except Exception as error:
            self._commit_failed(error)
            return
        statements = storage.take_batch()
        checkpoint = self.commits.commit_started()
        batch = (self.gate.committing or 0) - self.gate.durable, storage.take_writes()
        self._commit_in_flight = asyncio.get_running_loop().create_task(
            self._finish_commit(storage, alarm_update, checkpoint, batch, statements, number)
        )

    async def _finish_commit(
        self,
        storage: Storage,
        alarm_update: tuple[bool, float | None],
        checkpoint: bool,
        batch: tuple[int, int],
        statements: list[Statement],
        number: int,
    ) -> None:
        """`batch`: the turns that wrote and the writes they made, for the tallies. The local
        fsync and, when replicated, the append of `statements` (batch `number`) to the log,
        side by side: the batch's outputs wait for both."""
        loop = asyncio.get_running_loop()
        executor = self.namespace.executor
        try:
            local = loop.run_in_executor(
                executor, self._make_durable, storage, alarm_update, checkpoint
            )
            if statements and self.replica is not None:
                wal_is_large, seconds = await self._durable_and_appended(
                    local, statements, number, alarm_update
                )
            else:
                wal_is_large, seconds = await local
        except BaseException as error:
            # Whatever ended it, the batch's callers are answered and the actor reset: not
            # only Exceptions but a CancelledError raised inside the log's client (a future of
            # its own that it cancelled, not this task's cancellation) too, which would end
            # this task with every held output waiting for ever and no commit started again.
            self._commit_in_flight = None
            self._commit_failed(error)
            task = asyncio.current_task()
            if not isinstance(error, Exception | asyncio.CancelledError) or (
                task is not None and task.cancelling()
            ):
                raise  # KeyboardInterrupt, SystemExit, or this task itself being stopped
            return
        self._commit_in_flight = None
        self.last_commit_seconds = seconds
        activity = self.namespace.activity
        activity.fsync_seconds.add(seconds)
        activity.commit_turns.add(batch[0])
        activity.commit_writes.add(batch[1])
        self.emit(EventKind.COMMIT, seconds, count=batch[0], writes=batch[1])
        self.commits.commit_succeeded(wal_is_large)
        try:
            for output in self.gate.commit_succeeded():
                output.release()
            self._snapshot_if_due(storage)
            if alarm_update[0]:
                self.namespace.scheduler.poke()
        finally:
            # The turns written meanwhile wait for the next commit: it starts whatever the
            # above met, or their callers (closed-loop ones send nothing more) wait for ever.
            if self.gate.should_commit() and not self.mailbox.turn_running:
                self._start_commit()
            else:
                self._note_activity()

    async def _durable_and_appended(
        self,
        local: "asyncio.Future[tuple[bool, float]]",
        batch: list[Statement],
        number: int,
        alarm_update: tuple[bool, float | None],
    ) -> tuple[bool, float]:
        """Both the local fsync and the log's majority, each running to its end (the file
        must not be closed under a running fsync); a fence wins over any other failure. A
        changed alarm is recorded beside the log too, for another host to fire if this one
        dies first."""
        replica = self.replica
        assert replica is not None
        waits: list[Awaitable[Any]] = [local, replica.append_batch(batch, number)]
        if alarm_update[0]:
            waits.append(replica.log.set_alarm(replica.key, alarm_update[1]))
        results = await asyncio.gather(*waits, return_exceptions=True)
        failures = [result for result in results if isinstance(result, BaseException)]
        if failures:
            raise next((f for f in failures if isinstance(f, Fenced)), failures[0])
        durable = results[0]
        assert isinstance(durable, tuple)
        return durable

    def _make_durable(
        self, storage: Storage, alarm_update: tuple[bool, float | None], checkpoint: bool
    ) -> tuple[bool, float]:
        """Worker thread: lower the alarm index, fsync the actor's -wal, then settle the index.
        Returns whether the -wal asks for a checkpoint, and how long making it durable took."""
        index = self.namespace.scheduler.index
        changed, at = alarm_update
        if changed and at is not None:
            index.lower(self.id.hex, at)
        started = time.perf_counter()
        wal_is_large = storage.make_durable(checkpoint)
        seconds = time.perf_counter() - started
        if changed:
            index.settle(self.id.hex, at)
        return wal_is_large, seconds

    def _commit_failed(self, error: BaseException) -> None:
        folder = self.namespace.storage_path(self.id.hex).parent
        why = f"the disk is full ({error})" if is_disk_full(error, folder) else str(error)
        why = why or repr(error)  # CancelledError() and the like say nothing by themselves
        self.namespace.log_failure(self.id.hex, f"commit failed, resetting it: {why}")
        # No answer is not a no: the -wal may reach the file when it is closed, and an append
        # that timed out may be kept by the log. Only a fence (below) is a certain refusal.
        failure: ActorError = CommitFailed(
            f"writes of actor {self.id.hex[:12]}… were not confirmed durable, so they may or may"
            f" not be stored (retry with the same idempotency key to find out): {why}"
        )
        if isinstance(error, Fenced):
            failure = error
            self._close_sockets(CLOSE_MOVED, "moved to another host")
        for output in self.gate.commit_failed():
            output.drop(failure)
        self.namespace.activity.commits_failed += 1
        self.emit(EventKind.COMMIT_FAILED)
        if self.commits.commit_failed(error, turn_running=self.mailbox.turn_running):
            self._reset(error)  # else the running turn ends first, then drops its reply
        # The idle timer may have come while the commit was in flight, and left it to whoever
        # kept the actor busy to arm it again: without this, a failed commit kept it in memory.
        self._note_activity()

    def _reset(self, cause: BaseException, expected: bool = False) -> None:
        """Throw the instance away, rolling back what is not committed. Queued events stay and
        will meet a fresh instance built from disk. `expected`: asked for, not a failure."""
        if expected:
            logger.warning("%s", cause)
        else:
            self.namespace.log_failure(self.id.hex, f"reset: {cause!r}")
        self.emit(EventKind.RESET)
        self.blockers.clear()
        self._cancel_timers()
        self.instance = None
        self._end_replica()
        storage, self.storage = self.storage, None
        lost = ActorReset(
            f"actor {self.id.hex[:12]}… was reset before these writes were durable: {cause!r}"
        )
        for output in self.gate.reset_uncommitted():
            output.drop(lost)
        if storage is None:
            return
        # Undo what no commit covers now, on the loop (a rollback touches no disk); close in a
        # worker thread, since closing checkpoints and fsyncs (and a hung disk would freeze
        # the loop), once the commit in flight, if any, is durable.
        with contextlib.suppress(Exception):
            storage.roll_back()
        self.namespace.close_in_background(self.id.hex, storage, after=self._commit_in_flight)

    # -- the replicated log --------------------------------------------------------------------

    def fence(self, error: Fenced) -> None:
        """A newer owner opened an epoch (seen while idle, on the log's subject): the clients
        move, and the instance goes. A commit in flight or a running turn meets the fence on
        its own append and settles there."""
        self.namespace.log_failure(self.id.hex, str(error))
        self._close_sockets(CLOSE_MOVED, "moved to another host")
        if self.mailbox.turn_running or self.commits.in_flight or self.instance is None:
            return
        self._reset(error)
        self._note_activity()

    def hand_over(self, why: str) -> None:
        """Step this copy down so the key's own host takes it by its next epoch."""
        replica = self.replica
        if replica is not None and not replica.fenced:
            self.fence(replica.step_down(why))

    def _close_sockets(self, code: int, reason: str) -> None:
        """Close every socket without running a handler: this copy may not write any more."""
        sockets, self.sockets = self.sockets, []
        for ws in sockets:
            if not ws.closing:
                ws.closing = True
                ws.deliver(TransportClosed(code, reason))

    def _snapshot_if_due(self, storage: Storage) -> None:
        """Between turns, with nothing written since the last commit, the file is exactly the
        log's state as of this copy's last append: a snapshot of it bounds later replays.
        (serialize() runs on the loop: no turn may use the connection meanwhile.)"""
        replica = self.replica
        # Not once a restore is asked for: the last entry is the restore, and a snapshot as
        # of it would hide from a rebuild the restore the next epoch carries out.
        if replica is None or replica.ending or storage.connection.in_transaction:
            return
        if not replica.snapshot_due(database_bytes(storage)):
            return
        replica.save_snapshot(Snapshot(replica.last_seq, storage.connection.serialize()))

    def _end_replica(self) -> None:
        replica, self.replica = self.replica, None
        if replica is not None:
            # Its watch runs until the close does, and would take the next session's epoch
            # for a newer owner's: it is over already.
            replica.ended = True
            asyncio.get_running_loop().create_task(replica.close())

    async def _schedule_replicated_alarm(self, storage: Storage) -> None:
        """An alarm set on another host came with the log: this host's index must know it."""
        at = storage.get_alarm()
        if at is None:
            return
        index = self.namespace.scheduler.index

        def point() -> None:
            index.lower(self.id.hex, at)
            index.settle(self.id.hex, at)

        await asyncio.get_running_loop().run_in_executor(self.namespace.executor, point)
        self.namespace.scheduler.poke()

    # -- hibernation -------------------------------------------------------------------------

    def _note_activity(self) -> None:
        loop = asyncio.get_running_loop()
        self._last_active = loop.time()
        if self._idle_timer is None:
            self._idle_timer = loop.call_later(self.namespace.idle_timeout, self._on_idle_timer)

    def _on_idle_timer(self) -> None:
        self._idle_timer = None
        if not self.quiet:
            return  # whatever keeps it busy calls _note_activity when it is done
        loop = asyncio.get_running_loop()
        remaining = self._last_active + self.namespace.idle_timeout - loop.time()
        if remaining > 0:
            self._idle_timer = loop.call_later(remaining, self._on_idle_timer)
            return
        self.hibernate()

    def hibernate(self, evicted: bool = False) -> None:
        """Drop the instance and close its database (`evicted`: early, to make room)."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self._cancel_timers()  # only shutting down drops pending ones: an idle actor has none
        if self.instance is not None:
            self.emit(EventKind.EVICTED if evicted else EventKind.HIBERNATED)
        storage, self.storage, self.instance = self.storage, None, None
        self._end_replica()
        if storage is not None:
            self.namespace.close_in_background(self.id.hex, storage)
        if not self.sockets:
            self.namespace.forget(self)

    # -- sockets -------------------------------------------------------------------------------

    def accept_websocket(self, transport: Transport, tags: Sequence[str]) -> HibernatableWebSocket:
        ws = HibernatableWebSocket(transport, tags, self._send_frame)
        self.sockets.append(ws)
        self.emit(EventKind.SOCKET_OPENED, count=len(self.sockets))
        if isinstance(transport, DirectTransport):  # it calls us: no task per socket
            transport.listen(partial(self._frame_received, ws), partial(self._peer_closed, ws))
        else:
            ws.receiver = asyncio.get_running_loop().create_task(self._receive_loop(ws))
        return ws

    def _send_frame(self, ws: HibernatableWebSocket, data: str | bytes | TransportClosed) -> None:
        if isinstance(data, TransportClosed):
            if ws in self.sockets:
                self.sockets.remove(ws)
                self.emit(EventKind.SOCKET_CLOSED, count=len(self.sockets))
        elif isinstance(held := self.gate.last_held(), Frame) and held.data is data:
            held.sockets.append(ws)  # the same frame to the next member: released together
            return
        frame = Frame(ws, data, self.namespace.traffic)
        if self.gate.send(frame):
            frame.release()

    async def _receive_loop(self, ws: HibernatableWebSocket) -> None:
        """Owned by the runtime, not the instance: it keeps running while the actor sleeps."""
        while True:
            try:
                data = await ws.transport.receive()
            except TransportClosed as closed:
                self._peer_closed(ws, closed)
                return
            except Exception as error:
                self._socket_ended(ws, "websocket_error", error)
                with contextlib.suppress(Exception):
                    await ws.transport.close(1011, "receive failed")
                return
            turn_done = self._frame_received(ws, data)
            if turn_done is not None:
                await turn_done  # one message per socket at a time: backpressure on the client

    def _frame_received(
        self, ws: HibernatableWebSocket, data: str | bytes
    ) -> "asyncio.Future[None] | None":
        """A message from the peer becomes a turn; the future is done when the turn is."""
        if ws.closing:
            return None  # the actor closed it; wait for the peer's close, nothing more to deliver
        traffic = self.namespace.traffic
        traffic.received(data)
        if self.auto_response is not None and data == self.auto_response[0]:
            # Not gated, as in Cloudflare: a fixed answer reveals no state. Not free either:
            # answered only if the actor's class lets the frame pay.
            if self.namespace.actor_class.websocket_auto_response_paid(ws):
                ws.deliver(self.auto_response[1])
                traffic.sent(self.auto_response[1])
            return None
        turn_done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            self.push(_handler_event("websocket_message", ws, data, turn_done=turn_done))
        except ActorOverloaded:
            ws.deliver(TransportClosed(CLOSE_TRY_AGAIN_LATER, "actor overloaded"))
            self._socket_ended(ws, "websocket_close", CLOSE_TRY_AGAIN_LATER, "actor overloaded")
            return None
        except RuntimeClosed:
            return None
        return turn_done

    def _peer_closed(self, ws: HibernatableWebSocket, closed: TransportClosed) -> None:
        self._socket_ended(ws, "websocket_close", closed.code, closed.reason)

    def _socket_ended(self, ws: HibernatableWebSocket, handler: str, *args: Any) -> None:
        """Queue the close (or error) handler, waking the actor if needed: no ghost members."""
        if ws in self.sockets:
            self.sockets.remove(ws)
            self.emit(EventKind.SOCKET_CLOSED, count=len(self.sockets))
        if ws.closing:
            return
        ws.closing = True
        with contextlib.suppress(RuntimeClosed):
            self.push(_handler_event(handler, ws, *args), bounded=False)

    # -- alarms ------------------------------------------------------------------------------

    async def alarm_turn(self, actor: Actor) -> None:
        storage = actor.storage
        retries = self.namespace.scheduler.retries
        due = storage.get_alarm()
        if due is None or due > time.time():
            storage.point_alarm_index_at(due)  # the index woke us early: just correct it
            return
        self.emit(EventKind.ALARM)
        storage.delete_alarm()  # before the handler, so an alarm it sets is kept
        try:
            await actor.alarm()
        except Exception as error:
            storage.end_turn(succeeded=False)  # undo the handler's writes; the alarm is back
            for output in self.gate.discard_turn():  # and send none of its frames
                output.drop(error)
            retry_at = retries.failed(self.id.hex, time.time())
            if retry_at is None:
                logger.error("alarm of actor %s failed, giving up: %r", self.id.hex, error)
                storage.delete_alarm()
            else:
                logger.warning("alarm of actor %s failed, retrying: %r", self.id.hex, error)
                storage.point_alarm_index_at(retry_at)
            return
        retries.succeeded(self.id.hex)

    # -- shutdown ------------------------------------------------------------------------------

    async def shut_down(self) -> None:
        self._cancel_timers()
        sockets, self.sockets = list(self.sockets), []
        for ws in sockets:
            if ws.receiver is not None:
                ws.receiver.cancel()
            elif isinstance(ws.transport, DirectTransport):
                ws.transport.stop_listening()
        # Until neither runs (a commit's end may start the next one). Not a finished task: one
        # that ended without clearing its slot would have this loop spin for ever.
        while busy := [t for t in (self._drainer, self._commit_in_flight) if t and not t.done()]:
            await asyncio.gather(*busy, return_exceptions=True)
        # In parallel, and briefly: a peer that stopped reading would hold a polite close
        # forever, so it is dropped instead.
        await asyncio.gather(*(_close_or_abort(ws.transport) for ws in sockets))
        replica = self.replica
        self.hibernate()
        if replica is not None:  # before the runtime's owner closes the log under it
            await replica.close()


async def _close_or_abort(transport: Transport) -> None:
    try:
        await asyncio.wait_for(
            transport.close(1001, "server shutting down"), SHUTDOWN_CLOSE_SECONDS
        )
    except Exception:
        transport.abort(1001, "server shutting down")


def _handler_event(
    handler: str, *args: Any, turn_done: "asyncio.Future[None] | None" = None
) -> Event:
    """An event for a WebSocket handler. It has no caller to receive an exception: the turn
    still rolls back, the error is logged and the socket stays open."""

    async def action(actor: Actor) -> None:
        try:
            await getattr(actor, handler)(*args)
        except Exception:
            logger.exception("%s of actor %s failed", handler, actor.ctx.id.hex)
            raise

    message = (args[0], args[1]) if handler == "websocket_message" else None
    return Event(action, None, turn_done, message)
