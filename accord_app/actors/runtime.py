"""The runtime: namespaces of actors and stubs to call them.

    class Counter(Actor):
        async def increment(self, by: int = 1) -> int:
            value = (self.storage.get("count") or 0) + by
            self.storage.put("count", value)
            return value

    runtime = Runtime(data_dir)
    counters = runtime.namespace("counters", Counter)
    await counters.get(counters.id_from_name("a")).increment()  # returns once durable
    await runtime.close()

Each actor id of a namespace has an `ActorHost` (module `host`) while it is awake, has sockets
or has work queued: it runs the turns, the commits, hibernation and the sockets. The host asks
its namespace for what it needs through `host.HostServices`, which `Namespace` satisfies; the
`Actor` base class and its `ActorContext` live in `actor`.
"""

import asyncio
import contextlib
import inspect
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from accord_app.actors import ids
from accord_app.actors.actor import Actor
from accord_app.actors.alarms import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_RETRY_BASE_SECONDS,
    AlarmIndex,
    AlarmRetries,
    AlarmScheduler,
)
from accord_app.actors.errors import (
    ActorOverloaded,
    InvalidActorId,
    InvalidName,
    RuntimeClosed,
    UnknownMethod,
)
from accord_app.actors.events import EVERY_KIND, Activity, EventKind, Observer, Observers, Traffic
from accord_app.actors.files import open_files_limit
from accord_app.actors.host import ActorHost, CommitMode, Event
from accord_app.actors.replication import ReplicaLog
from accord_app.actors.storage import Storage, fsync_path

__all__ = [
    "ActorInfo",
    "CommitMode",
    "Namespace",
    "Runtime",
    "Stub",
    "default_max_live",
]

logger = logging.getLogger(__name__)
# A failing actor's log lines: one per this many seconds at most.
FAILURE_LOG_SECONDS = 60.0

_NAMESPACE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
# Names remembered per namespace (id_from_name), for observers and list_actors: a bound on memory.
MAX_NAMES_KEPT = 65536
# With a replicated log: how often each namespace reads the log's alarm records, and how long
# past due an alarm must be before this process fires it for a host that did not (died).
ALARM_SWEEP_SECONDS = 1.0
ALARM_OVERDUE_SECONDS = 2.0
_HANDLERS = frozenset({"alarm", "websocket_message", "websocket_close", "websocket_error"})
A = TypeVar("A", bound=Actor)


@dataclass(frozen=True)
class ActorInfo:
    """One actor of a namespace, as `Namespace.list_actors()` reports it."""

    id: str
    live: bool  # an instance is in memory; False: hibernated (only its storage file exists)
    storage_bytes: int
    queue_length: int  # the mailbox's depth: events waiting for a turn
    websockets: int
    name: str | None = None  # the name its id was made from, if this process made it
    turns: int = 0  # turns run since this process last held it in memory
    last_commit_seconds: float | None = None  # how long its last commit's fsync took

    @property
    def awake(self) -> bool:
        return self.live


class Stub(Generic[A]):
    """`await stub.method(*args)` runs `method` inside the actor, in its own turn, and returns
    its result once the writes made before the result are durable.

    The call is queued when `stub.method(...)` is called, before the `await`, so calls made in
    order through a stub arrive in that order. Arguments and results are passed by reference,
    in-process; across processes they would have to be serialised (Cloudflare copies them).
    """

    __slots__ = ("_namespace", "id")

    def __init__(self, namespace: "Namespace[A]", actor_id: ids.ActorId) -> None:
        self._namespace = namespace
        self.id = actor_id

    def __getattr__(self, name: str) -> Callable[..., "asyncio.Future[Any]"]:
        namespace, actor_hex = self._namespace, self.id.hex
        if name not in namespace.rpc_methods:
            raise UnknownMethod(
                f"{namespace.actor_class.__name__} has no public async method {name!r}"
                f" (callable: {', '.join(sorted(namespace.rpc_methods)) or 'none'})"
            )

        def call(*args: Any, **kwargs: Any) -> "asyncio.Future[Any]":
            return namespace.call(actor_hex, name, args, kwargs)

        return call

    def __repr__(self) -> str:
        return f"<Stub {self._namespace.name}/{self.id.hex[:12]}…>"


class Namespace(Generic[A]):
    """All actors of one class: ids, stubs, alarms and introspection."""

    def __init__(self, runtime: "Runtime", name: str, actor_class: type[A]) -> None:
        if not _NAMESPACE_NAME.fullmatch(name):
            raise InvalidName(
                f"namespace name {name!r}: use 1-64 of a-z, 0-9, _ and -, starting with a letter"
                " or digit (it becomes a folder name)"
            )
        self.runtime = runtime
        self.name = name
        self.actor_class = actor_class
        self.directory = runtime.data_dir / name
        self.rpc_methods = frozenset(
            method
            for method, function in inspect.getmembers(actor_class, inspect.iscoroutinefunction)
            if not method.startswith("_") and method not in _HANDLERS
        )
        self.alarm_index = AlarmIndex(self.directory / runtime.alarm_index_name)
        self.scheduler = AlarmScheduler(
            self.alarm_index,
            self._deliver_alarm,
            AlarmRetries(runtime.alarm_retry_base, runtime.alarm_max_retries),
        )
        self._hosts: dict[str, ActorHost] = {}
        self._closing: dict[str, asyncio.Future[None]] = {}  # databases being closed, by actor
        self._failures_logged: dict[str, float] = {}  # actor -> when its last failure was logged
        self._names: dict[str, str] = {}  # actor -> the name its id was made from
        self.traffic = Traffic()  # frames and bytes through this namespace's sockets
        self.activity = Activity()  # its turns and commits, tallied
        self._started = False
        self._sweep: asyncio.Task[None] | None = None
        self._overdue: set[asyncio.Task[None]] = set()
        with contextlib.suppress(RuntimeError):  # no running loop yet: start on first call
            self._start()

    def _start(self) -> None:
        if not self._started:
            self.scheduler.start()
            log = self.runtime.replication
            if log is not None:
                self._sweep = asyncio.get_running_loop().create_task(self._sweep_alarms(log))
            self._started = True

    async def _sweep_alarms(self, log: ReplicaLog) -> None:
        """Fire the alarms the log says are overdue, of actors not awake here: their host died
        before it fired them (a live host fires its own on time and updates the record). At
        least once: the activation here fences any other copy."""
        while True:
            await asyncio.sleep(ALARM_SWEEP_SECONDS)
            try:
                due = await log.alarms(self.name)
            except Exception as error:  # the log is down: the next sweep tries again
                logger.warning("alarm sweep of %s failed: %r", self.name, error)
                continue
            now = time.time()
            for key, at in due.items():
                actor_hex = key.removeprefix(f"{self.name}.")
                if at + ALARM_OVERDUE_SECONDS <= now and actor_hex not in self._hosts:
                    self._overdue.add(asyncio.get_running_loop().create_task(self._fire(actor_hex)))

    async def _fire(self, actor_hex: str) -> None:
        try:
            await self._deliver_alarm(actor_hex)
        except Exception as error:
            logger.warning("overdue alarm of %s failed: %r", actor_hex, error)
        finally:
            self._overdue = {task for task in self._overdue if not task.done()}

    # -- ids and stubs ---------------------------------------------------------------------

    def id_from_name(self, name: str) -> ids.ActorId:
        actor_id = ids.id_from_name(self.name, name)
        if actor_id.hex not in self._names:
            if len(self._names) >= MAX_NAMES_KEPT:
                del self._names[next(iter(self._names))]  # the oldest
            self._names[actor_id.hex] = name
        return actor_id

    def name_of(self, actor_hex: str) -> str | None:
        """The name `actor_hex` was made from by id_from_name in this process, if it was."""
        return self._names.get(actor_hex)

    def new_unique_id(self) -> ids.ActorId:
        return ids.new_unique_id(self.name)

    def id_from_string(self, text: str) -> ids.ActorId:
        return ids.id_from_string(self.name, text)

    def get(self, actor_id: ids.ActorId | str) -> Stub[A]:
        if isinstance(actor_id, str):
            actor_id = self.id_from_string(actor_id)
        elif actor_id.namespace != self.name:
            raise InvalidActorId(
                f"actor id {actor_id.hex[:12]}… belongs to namespace {actor_id.namespace!r},"
                f" not {self.name!r}"
            )
        return Stub(self, actor_id)

    def hand_over(self, actor_id: ids.ActorId, why: str) -> None:
        """With replication: end this process's epoch of the actor, if it is active here, so
        its sockets close with 1012 and reconnect to the host the router now picks."""
        host = self._hosts.get(actor_id.hex)
        if host is not None:
            host.hand_over(why)

    def storage_path(self, actor_hex: str) -> Path:
        """Two folder levels of 256 each keep a million actors at ~15 files per folder."""
        return self.directory / actor_hex[:2] / actor_hex[2:4] / f"{actor_hex}.sqlite3"

    # -- hosts and events -------------------------------------------------------------------

    def host(self, actor_hex: str) -> ActorHost:
        host = self._hosts.get(actor_hex)
        if host is None:
            self.runtime.check_open()
            host = self._hosts[actor_hex] = ActorHost(self, ids.ActorId(self.name, actor_hex))
        return host

    def close_in_background(
        self, actor_hex: str, storage: Storage, after: "asyncio.Future[Any] | None" = None
    ) -> None:
        """Close an actor's database in a worker thread (closing fsyncs), once `after` is done."""
        loop = asyncio.get_running_loop()

        async def close() -> None:
            if after is not None:
                await asyncio.gather(after, return_exceptions=True)
            await loop.run_in_executor(self.runtime.executor, storage.close)

        closing = loop.create_task(close())
        self._closing[actor_hex] = closing
        closing.add_done_callback(lambda _: self._closing.pop(actor_hex, None))

    async def wait_until_closed(self, actor_hex: str) -> None:
        """The database is opened EXCLUSIVE: a wake-up waits for the last close to finish."""
        closing = self._closing.get(actor_hex)
        if closing is not None:
            await asyncio.gather(closing, return_exceptions=True)

    async def make_room_for(self, host: ActorHost) -> None:
        """Before `host` wakes: its database's last close is over, and the runtime has room."""
        await self.wait_until_closed(host.id.hex)
        await self.runtime.make_room(for_host=host)

    # -- the runtime's settings, as its hosts read them (host.HostServices) ------------------

    @property
    def max_queue(self) -> int:
        return self.runtime.max_queue

    @property
    def idle_timeout(self) -> float:
        return self.runtime.idle_timeout

    @property
    def commit_mode(self) -> CommitMode:
        return self.runtime.commit_mode

    @property
    def fsync(self) -> Callable[[Path], None]:
        return self.runtime.fsync

    @property
    def executor(self) -> Executor:
        return self.runtime.executor

    @property
    def replication(self) -> ReplicaLog | None:
        return self.runtime.replication

    @property
    def replica_name(self) -> str:
        return self.runtime.replica_name

    @property
    def observers(self) -> Observers:
        return self.runtime.observers

    def log_failure(self, actor_hex: str, what: str) -> None:
        """Log an actor's failure, at most once per FAILURE_LOG_SECONDS for each actor: a full
        disk fails every message, and a log line per message would fill it faster."""
        now = time.monotonic()
        if now - self._failures_logged.get(actor_hex, -FAILURE_LOG_SECONDS) < FAILURE_LOG_SECONDS:
            logger.debug("actor %s: %s", actor_hex, what)
            return
        self._failures_logged[actor_hex] = now
        logger.error(
            "actor %s of %s: %s (its next failures within %g s are not logged)",
            actor_hex[:12],
            self.name,
            what,
            FAILURE_LOG_SECONDS,
        )

    def forget(self, host: ActorHost) -> None:
        if self._hosts.get(host.id.hex) is host:
            del self._hosts[host.id.hex]

    def call(
        self, actor_hex: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> "asyncio.Future[Any]":
        self.runtime.check_open()
        self._start()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def action(actor: Actor) -> Awaitable[Any]:
            return getattr(actor, method)(*args, **kwargs)  # type: ignore[no-any-return]

        self.host(actor_hex).push(Event(action, future))
        return future

    async def _deliver_alarm(self, actor_hex: str) -> None:
        """Queue the alarm turn (past the queue bound: one per actor) and wait until durable."""
        host = self.host(actor_hex)
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        host.push(Event(host.alarm_turn, done), bounded=False)
        await done

    # -- introspection ------------------------------------------------------------------------

    def list_actors(self) -> list[ActorInfo]:
        """Every actor with storage (hibernated ones are read from disk) or in memory."""
        found: dict[str, ActorInfo] = {}
        for path in self.directory.glob("??/??/*.sqlite3"):
            actor_hex = path.name.removesuffix(".sqlite3")
            found[actor_hex] = ActorInfo(
                actor_hex, False, _storage_bytes(path), 0, 0, self._names.get(actor_hex)
            )
        for actor_hex, host in self._hosts.items():
            found[actor_hex] = ActorInfo(
                actor_hex,
                host.instance is not None,
                _storage_bytes(self.storage_path(actor_hex)),
                len(host.mailbox),
                len(host.sockets),
                self._names.get(actor_hex),
                host.turns,
                host.last_commit_seconds,
            )
        return sorted(found.values(), key=lambda info: info.id)

    @property
    def live_count(self) -> int:
        return sum(1 for host in self._hosts.values() if host.instance is not None)

    def awake_hosts(self) -> list[ActorHost]:
        return [host for host in self._hosts.values() if host.instance is not None]

    def hosts(self) -> list[ActorHost]:
        """The actors this process holds: awake, or asleep with sockets or queued work."""
        return list(self._hosts.values())

    def closing_futures(self) -> list["asyncio.Future[None]"]:
        return list(self._closing.values())

    async def close(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            await asyncio.gather(self._sweep, *self._overdue, return_exceptions=True)
        await self.scheduler.close()
        for host in list(self._hosts.values()):
            await host.shut_down()
        await asyncio.gather(*self._closing.values(), return_exceptions=True)
        self.alarm_index.close()


def default_max_live() -> int:
    """A quarter of the open files this process may have, at two files per awake actor."""
    return max(16, open_files_limit() // 8)


def _storage_bytes(path: Path) -> int:
    total = 0
    for part in (path, path.with_name(path.name + "-wal")):
        with contextlib.suppress(FileNotFoundError):
            total += part.stat().st_size
    return total


class Runtime:
    """Hosts namespaces of actors in this process, with their storage under `data_dir`.

    idle_timeout: seconds with nothing in flight before an actor hibernates (Cloudflare: ~10 s).
    max_queue: events waiting per actor before callers get ActorOverloaded.
    commit_mode: "grouped" shares each fsync among all turns that wrote meanwhile;
        "per_turn" commits and fsyncs after every writing turn before the next one starts
        (the baseline the benchmark compares against).
    alarm_retry_base, alarm_max_retries: backoff of a failing alarm() (2 s, 4 s, ... 6 times).
    fsync: how a file is made durable; tests inject slow or failing ones.
    max_live: how many actors may be awake at once (each holds two open files). When one more
        must wake, the least recently active idle one hibernates, as Cloudflare evicts
        objects; if none is idle, the new work is refused (ActorOverloaded). The default
        leaves three quarters of the process's file descriptors to sockets and the rest.
    replication: a replicated log (natslog.NatsLog, connected) that every actor's batches are
        appended to before they are acknowledged; the local files are then only its
        materialised state (see replica.py). None: local SQLite alone, the default.
    replica_name: this process's name in the epochs it opens on the log (a host's number).
    alarm_index_name: the file, in each namespace's folder, that lists when to wake whom.
        Processes that share a data folder (the cluster's workers) each keep their own, so an
        alarm fires in the process that set it, which is the one that hosts the actor.
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        idle_timeout: float = 10.0,
        max_queue: int = 1000,
        commit_mode: CommitMode = "grouped",
        alarm_retry_base: float = DEFAULT_RETRY_BASE_SECONDS,
        alarm_max_retries: int = DEFAULT_MAX_RETRIES,
        fsync: Callable[[Path], None] = fsync_path,
        worker_threads: int = 8,
        alarm_index_name: str = "alarms.sqlite3",
        max_live: int | None = None,
        replication: ReplicaLog | None = None,
        replica_name: str = "local",
    ) -> None:
        if commit_mode not in ("grouped", "per_turn"):
            raise ValueError(f"commit_mode is 'grouped' or 'per_turn', not {commit_mode!r}")
        self.data_dir = Path(data_dir)
        self.idle_timeout = idle_timeout
        self.max_queue = max_queue
        self.commit_mode = commit_mode
        self.alarm_retry_base = alarm_retry_base
        self.alarm_max_retries = alarm_max_retries
        self.fsync = fsync
        self.alarm_index_name = alarm_index_name
        self.max_live = max_live or default_max_live()
        self.replication = replication
        self.replica_name = replica_name
        # fsyncs of different actors run in parallel; each actor has at most one in flight.
        self.executor = ThreadPoolExecutor(worker_threads, thread_name_prefix="accord-commit")
        self._namespaces: dict[str, Namespace[Any]] = {}
        self._closed = False
        self.observers = Observers()

    def observe(
        self, callback: Observer, kinds: Iterable[EventKind] = EVERY_KIND
    ) -> Callable[[], None]:
        """Call `callback(event)` on the loop for every ActorEvent (module `events`) of this
        runtime of one of `kinds` (default: all); returns the function that stops it. Keep it
        quick: it runs inside turns. Turns and commits are tallied anyway (Namespace.activity):
        leave them out of `kinds` unless each one is needed."""
        return self.observers.add(callback, kinds)

    @property
    def namespaces(self) -> list["Namespace[Any]"]:
        return list(self._namespaces.values())

    def namespace(self, name: str, actor_class: type[A]) -> Namespace[A]:
        """The namespace `name` of `actor_class` (created on first use)."""
        self.check_open()
        existing = self._namespaces.get(name)
        if existing is not None:
            if existing.actor_class is not actor_class:
                raise InvalidName(
                    f"namespace {name!r} already hosts {existing.actor_class.__name__}"
                )
            return existing
        namespace = Namespace(self, name, actor_class)
        self._namespaces[name] = namespace
        return namespace

    async def make_room(self, for_host: "ActorHost") -> None:
        """Before `for_host` wakes: if max_live actors are awake (or still closing their files),
        hibernate the least recently active idle one and wait for its files to close; refuse
        (ActorOverloaded) if every awake actor is busy."""
        while True:
            awake = [host for ns in self._namespaces.values() for host in ns.awake_hosts()]
            closing = [f for ns in self._namespaces.values() for f in ns.closing_futures()]
            if len(awake) + len(closing) < self.max_live:
                return
            if closing:
                await asyncio.wait(closing, return_when=asyncio.FIRST_COMPLETED)
                continue
            idle = [host for host in awake if host.quiet and host is not for_host]
            if not idle:
                raise ActorOverloaded(
                    f"{self.max_live} actors are awake and busy: no room to wake another now"
                )
            min(idle, key=lambda host: host.last_active).hibernate(evicted=True)

    def check_open(self) -> None:
        if self._closed:
            raise RuntimeClosed("the actor runtime is closed")

    async def close(self) -> None:
        """Finish queued events and commits, hibernate every actor, close every file."""
        if self._closed:
            return
        self._closed = True
        for namespace in self._namespaces.values():
            await namespace.close()
        self.executor.shutdown(wait=True)
