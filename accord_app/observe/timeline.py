"""The inspector's timeline of one process: the runtime's events (accord_app/actors/events.py),
kept while someone watches.

The log listens to the runtime only while a page looks at it (each look renews a lease of
LEASE_SECONDS), so a process nobody inspects pays nothing. Rare events (woke, hibernated,
evicted, a failed commit, an alarm...) are kept one line each; commits, dozens a second under
load, are summed per actor until the next look: "12 commits, 340 turns, fsync up to 4.1 ms".
"""

import asyncio
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from accord_app.actors import ActorEvent, EventKind, Runtime
from accord_app.observe.survey import ChannelNames, Happening

# Seconds the log keeps listening after the last look.
LEASE_SECONDS = 5.0
# Lines kept for the next look: a page that looks twice a second never loses one.
MAX_LINES = 1000
# The timeline's words for the events it shows; turns and sockets show in the tiles instead.
SHOWN = {
    EventKind.WOKE: "woke",
    EventKind.HIBERNATED: "hibernated",
    EventKind.EVICTED: "evicted",
    EventKind.COMMIT_FAILED: "failed commit",
    EventKind.RESET: "reset",
    EventKind.ALARM: "alarm",
    EventKind.OVERLOADED: "overloaded",
}


@dataclass
class Commits:
    """One actor's commits since the last look."""

    first_at: float
    commits: int = 0
    turns: int = 0
    slowest: float = 0.0

    def describe(self) -> str:
        return (
            f"{plural(self.commits, 'commit')}, {plural(self.turns, 'turn')},"
            f" fsync up to {self.slowest * 1000:.1f} ms"
        )


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


@dataclass
class Timeline:
    """The lines of one process since it started listening, numbered: a reader asks for the
    ones after the last it saw (with the log's id: a restarted process starts again at 1)."""

    runtime: Runtime
    names: ChannelNames
    worker: int | None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    lines: deque[tuple[int, Happening]] = field(default_factory=lambda: deque(maxlen=MAX_LINES))
    last: int = 0
    commits: dict[str, Commits] = field(default_factory=dict)
    stop: Callable[[], None] | None = None
    looked: float = 0.0

    def renew(self) -> None:
        """A look: listen (again) for LEASE_SECONDS more."""
        self.looked = time.monotonic()
        if self.stop is None:
            self.stop = self.runtime.observe(self.on_event)
            asyncio.get_running_loop().call_later(LEASE_SECONDS, self.check_lease)

    def check_lease(self) -> None:
        left = self.looked + LEASE_SECONDS - time.monotonic()
        if left > 0:
            asyncio.get_running_loop().call_later(left, self.check_lease)
        elif self.stop is not None:
            self.stop()
            self.stop = None

    def on_event(self, event: ActorEvent) -> None:
        """Runs inside the runtime, on every event: quick, and only a dict update for most."""
        if event.kind is EventKind.COMMIT:
            summed = self.commits.get(event.actor_id)
            if summed is None:
                summed = self.commits[event.actor_id] = Commits(event.at)
            summed.commits += 1
            summed.turns += event.count or 0
            summed.slowest = max(summed.slowest, event.seconds or 0.0)
            return
        kind = SHOWN.get(event.kind)
        if kind is not None:
            detail = "" if event.count is None else f"{event.count} queued"
            self.add(Happening(kind, event.at, self.worker, event.actor_id, None, detail))

    def add(self, happening: Happening) -> None:
        self.last += 1
        self.lines.append((self.last, happening))

    def since(self, log_id: str | None, seen: int) -> list[Happening]:
        """The lines after `seen` (all of them if `log_id` is another log's), named; the
        reader saw up to `self.last` of `self.id` next."""
        for actor_id, summed in self.commits.items():
            self.add(
                Happening("commit", summed.first_at, self.worker, actor_id, None, summed.describe())
            )
        self.commits.clear()
        if log_id != self.id:
            seen = 0
        return [
            Happening(h.kind, h.at, h.worker, h.actor, self.names.name(h.actor), h.detail)
            if h.actor is not None
            else h
            for number, h in self.lines
            if number > seen
        ]
