"""What happens to actors, as events anyone in the process may watch: `runtime.observe(callback)`;
and the frames through their sockets, counted (`Traffic`).

The runtime emits an `ActorEvent` when an actor wakes, runs a turn, commits, hibernates, is
evicted, takes or loses a socket; the metrics (accord_app/observe/) count them and the inspector
shows them. Sans-I/O and synchronous: a callback runs on the event loop, inside the runtime's
own code, so it must be quick and must not block; one that raises is logged and kept.

Nobody listening costs a set lookup per event: the runtime asks `observers.kinds` before it
builds one at all. What happens on every turn and commit is also tallied without any event
(`Activity`, and `Traffic` for every frame), which is what the metrics read.
"""

import logging
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

logger = logging.getLogger(__name__)


class EventKind(StrEnum):
    WOKE = "woke"  # an instance was built (seconds: from the first event to ready)
    HIBERNATED = "hibernated"  # idle long enough: instance dropped, database closed
    EVICTED = "evicted"  # hibernated early to make room for another actor (max_live)
    TURN = "turn"  # a turn ended (seconds: its duration; count: events still queued)
    COMMIT = "commit"  # a group commit is durable (seconds: its fsync; count: turns; writes)
    COMMIT_FAILED = "commit_failed"  # its writes were lost; the actor was reset
    RESET = "reset"  # the instance was thrown away after an error
    ALARM = "alarm"  # an alarm turn is starting
    OVERLOADED = "overloaded"  # an event was refused: the mailbox was full (count: its depth)
    SOCKET_OPENED = "socket_opened"  # count: the actor's sockets now
    SOCKET_CLOSED = "socket_closed"  # count: the actor's sockets now


@dataclass(frozen=True, slots=True)
class ActorEvent:
    kind: EventKind
    actor_class: str
    actor_id: str  # 64 hex digits
    name: str | None  # the name its id was made from, if this process made it
    at: float  # time.time()
    seconds: float | None = None
    count: int | None = None
    writes: int | None = None  # COMMIT: the writes (puts, deletes, SQL writes) it made durable
    namespace: str = ""


Observer = Callable[[ActorEvent], None]
EVERY_KIND = frozenset(EventKind)


class Observers:
    """The callbacks watching one runtime, each for the kinds of event it asked for (a turn's
    event is built only if someone wants turns). Adding or removing one builds new tuples, so an
    emit under way is never disturbed by a callback that removes itself."""

    __slots__ = ("_callbacks", "active", "kinds")

    def __init__(self) -> None:
        self._callbacks: tuple[tuple[Observer, frozenset[EventKind]], ...] = ()
        self.kinds: frozenset[EventKind] = frozenset()  # what someone listens to: read first
        self.active = False  # anyone listening at all

    def add(
        self, callback: Observer, kinds: Iterable[EventKind] = EVERY_KIND
    ) -> Callable[[], None]:
        """Start calling `callback` with every event of `kinds`; returns what stops it."""
        entry = (callback, frozenset(kinds))
        self._update((*self._callbacks, entry))

        def remove() -> None:
            self._update(tuple(found for found in self._callbacks if found is not entry))

        return remove

    def _update(self, callbacks: tuple[tuple[Observer, frozenset[EventKind]], ...]) -> None:
        self._callbacks = callbacks
        self.kinds = frozenset().union(*(kinds for _, kinds in callbacks))
        self.active = bool(callbacks)

    def emit(self, event: ActorEvent) -> None:
        for callback, kinds in self._callbacks:
            if event.kind in kinds:
                try:
                    callback(event)
                except Exception:
                    logger.exception("an observer of the actor runtime failed on %s", event.kind)


class Traffic:
    """The frames and bytes through one namespace's sockets. Plain integers, added to on every
    frame (a broadcast adds once for all its members): far cheaper than an event per frame.
    Bytes are the frames' payloads, UTF-8 for text, without WebSocket headers."""

    __slots__ = ("bytes_in", "bytes_out", "frames_in", "frames_out")

    def __init__(self) -> None:
        self.frames_in = self.bytes_in = self.frames_out = self.bytes_out = 0

    def received(self, data: str | bytes) -> None:
        self.frames_in += 1
        self.bytes_in += payload_bytes(data)

    def sent(self, data: str | bytes, copies: int = 1) -> None:
        self.frames_out += copies
        self.bytes_out += copies * payload_bytes(data)


def payload_bytes(data: str | bytes) -> int:
    if isinstance(data, bytes) or data.isascii():  # isascii is a flag check, not a scan
        return len(data)
    return len(data.encode())


# Bounds of the tallies' buckets. Seconds: a turn takes microseconds to milliseconds; an fsync,
# tens of microseconds (a cache) to hundreds of milliseconds (a busy disk). A group commit
# makes one turn's writes durable when quiet, hundreds when busy.
TURN_SECONDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
FSYNC_SECONDS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
BATCH_SIZES = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0)


class Distribution:
    """How many values fell at or under each bound (the last slot: above them all), their
    count and sum: a histogram's numbers, kept with one bisect and two additions per value."""

    __slots__ = ("bounds", "buckets", "count", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)
        self.count = 0
        self.sum = 0.0

    def add(self, value: float) -> None:
        self.buckets[bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value


class Activity:
    """One namespace's turns and group commits, tallied on every one of them (an event per
    turn would cost more than the turn's bookkeeping): the metrics read them when scraped."""

    __slots__ = (
        "append_seconds",
        "appends_failed",
        "commit_turns",
        "commit_writes",
        "commits_failed",
        "epochs_opened",
        "fences",
        "fsync_seconds",
        "turns",
    )

    def __init__(self) -> None:
        self.turns = Distribution(TURN_SECONDS)  # each turn's duration
        self.commit_turns = Distribution(BATCH_SIZES)  # turns that wrote, per commit
        self.commit_writes = Distribution(BATCH_SIZES)  # writes, per commit
        self.fsync_seconds = Distribution(FSYNC_SECONDS)  # one per durable commit
        self.commits_failed = 0
        # With a replicated log: each batch's append until a majority had it, the appends
        # that got no answer, the epochs this process opened and its copies fenced.
        self.append_seconds = Distribution(FSYNC_SECONDS)
        self.appends_failed = 0
        self.epochs_opened = 0
        self.fences = 0
