"""What happens to actors, as events anyone in the process may watch: `runtime.observe(callback)`.

The runtime emits an `ActorEvent` when an actor wakes, runs a turn, commits, hibernates, is
evicted, takes or loses a socket; the metrics (accord_app/observe/) count them and the inspector
shows them. Sans-I/O and synchronous: a callback runs on the event loop, inside the runtime's
own code, so it must be quick and must not block; one that raises is logged and kept.

Nobody listening costs one attribute read per event: the runtime asks `observers.active`
before it builds an event at all.
"""

import logging
from collections.abc import Callable
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


class Observers:
    """The callbacks watching one runtime. Adding or removing one builds a new tuple, so an
    emit that is under way is never disturbed by a callback that removes itself."""

    __slots__ = ("_callbacks", "active")

    def __init__(self) -> None:
        self._callbacks: tuple[Observer, ...] = ()
        self.active = False  # anyone listening: read by the runtime before building an event

    def add(self, callback: Observer) -> Callable[[], None]:
        """Start calling `callback` with every event; returns the function that stops it."""
        self._callbacks = (*self._callbacks, callback)
        self.active = True

        def remove() -> None:
            callbacks = list(self._callbacks)
            if callback in callbacks:
                callbacks.remove(callback)
            self._callbacks = tuple(callbacks)
            self.active = bool(callbacks)

        return remove

    def emit(self, event: ActorEvent) -> None:
        for callback in self._callbacks:
            try:
                callback(event)
            except Exception:
                logger.exception("an observer of the actor runtime failed on %s", event.kind)
