"""The input and output gates as plain bookkeeping: no asyncio, no sockets, no SQLite.

Like python-websockets' sans-I/O protocol objects, these classes only answer "what may happen
next?"; `host.py` does the waiting and the I/O. That keeps the rules testable in
microseconds and readable in one screen.

- `Mailbox` is the input gate. An actor runs one event at a time, in arrival order, and a
  turn never interleaves with another, even across an `await`. Durable Objects are looser
  (other events may run while a turn awaits something other than storage); we chose the
  stricter turn-based model of Orleans and Dapr: it costs some throughput for actors that await
  slow I/O, and removes a whole class of races from attendees' code.
- `OutputGate` holds what a turn sends out (an RPC result, a WebSocket frame) until every write
  made before it is durable, and plans group commits: one commit in flight at a time, and
  everything written meanwhile goes into the next one.
- `CommitCycle` follows the commit in flight: whether turns must wait for it (a checkpoint),
  and whether its failure means resetting the actor now or once the running turn ends.
"""

import enum
from collections import deque
from collections.abc import Sequence
from typing import Generic, TypeVar

from accord_app.actors.errors import ActorOverloaded

Event = TypeVar("Event")
Output = TypeVar("Output")


class InvalidTransition(RuntimeError):
    """An event that cannot happen in the current state: the code driving a sans-I/O class
    has a bug (the actor's code cannot cause this)."""


class Mailbox(Generic[Event]):
    """A bounded FIFO of waiting events plus the "a turn is running" flag."""

    def __init__(self, max_queue: int) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self.max_queue = max_queue
        # None while empty: an empty deque still holds a 760-byte block, and a hibernated actor
        # with open WebSockets keeps its mailbox.
        self._waiting: deque[Event] | None = None
        self.turn_running = False

    def __len__(self) -> int:
        return len(self._waiting) if self._waiting else 0

    @property
    def idle(self) -> bool:
        return not self.turn_running and not self._waiting

    def push(self, event: Event, *, bounded: bool = True) -> None:
        """Queue an event, or raise ActorOverloaded when the queue is full.

        `bounded=False` is for events that must never be lost, such as a WebSocket's close:
        refusing it would leave a ghost member that no handler ever removes.
        """
        if bounded and len(self) >= self.max_queue:
            raise ActorOverloaded(
                f"the actor has {len(self)} events waiting (max_queue={self.max_queue});"
                " shed load or shard it over more actors"
            )
        if self._waiting is None:
            self._waiting = deque()
        self._waiting.append(event)

    def start_turn(self) -> Event | None:
        """The next event to run, or None if a turn is running or nothing waits."""
        if self.turn_running or not self._waiting:
            return None
        self.turn_running = True
        event = self._waiting.popleft()
        if not self._waiting:
            self._waiting = None
        return event

    def finish_turn(self) -> None:
        self.turn_running = False


class OutputGate(Generic[Output]):
    """Write sequence numbers, held outputs and the group-commit plan of one actor.

    Each turn that writes takes the next sequence number (`wrote`). An output records the
    newest sequence number at the moment it is sent and is released once a commit covering that
    number is durable. A commit covers every write made before it started, so while one commit
    is in flight the following turns pile up into the next commit, which is how many turns
    share one fsync.
    """

    def __init__(self) -> None:
        self.written = 0  # sequence number of the newest write
        self.durable = 0  # every write up to this number is on disk
        self.committing: int | None = None  # the commit in flight covers writes up to this
        self._held: deque[tuple[int, Output]] | None = None  # None while empty, as in Mailbox
        # A turn is all-or-nothing for its outputs too: what it sends waits here until it
        # ends, then goes through the gate if it succeeded, or is dropped if it failed.
        self.in_turn = False
        self._turn: list[Output] | None = None  # None while empty

    @property
    def uncommitted(self) -> bool:
        """Writes that no commit, finished or in flight, covers yet."""
        return self.written > (self.committing if self.committing is not None else self.durable)

    @property
    def busy(self) -> bool:
        """A commit in flight, writes waiting for one, or outputs held."""
        return self.committing is not None or self.written > self.durable or bool(self._held)

    def __len__(self) -> int:
        return len(self._held) if self._held else 0

    def wrote(self) -> int:
        self.written += 1
        return self.written

    def turn_started(self) -> None:
        self.in_turn = True

    def turn_ended(self, succeeded: bool) -> tuple[Sequence[Output], Sequence[Output]]:
        """The running turn's outputs: (to release now, dropped). If it succeeded they go
        through the gate as if sent at its end, held behind its writes; if it failed, every
        one is dropped, like its writes. (Empty tuples, not new lists: this runs every turn.)"""
        self.in_turn = False
        outputs, self._turn = self._turn, None
        if outputs is None:
            return (), ()
        if not succeeded:
            return (), outputs
        if self.written <= self.durable:
            return outputs, ()
        if self._held is None:
            self._held = deque()
        number = self.written
        self._held.extend([(number, output) for output in outputs])
        return (), ()

    def discard_turn(self) -> list[Output]:
        """Drop what the running turn sent so far (its handler failed and the turn goes on)."""
        outputs, self._turn = self._turn or [], None
        return outputs

    def send(self, output: Output) -> bool:
        """True: release `output` now (no write before it is pending). False: it is held,
        until its writes are durable or, during a turn, until the turn ends."""
        if self.in_turn:
            if self._turn is None:
                self._turn = []
            self._turn.append(output)
            return False
        if self.written <= self.durable:
            return True
        if self._held is None:
            self._held = deque()
        self._held.append((self.written, output))
        return False

    def last_held(self) -> Output | None:
        """The newest held output, if no write came after it: one sent now would be released
        with it, so the two may travel as one (a broadcast's frames, see ActorHost)."""
        if self.in_turn:
            return self._turn[-1] if self._turn else None
        if self._held and self._held[-1][0] == self.written:
            return self._held[-1][1]
        return None

    def should_commit(self) -> bool:
        """Start a commit now? Only one is in flight at a time; the next one waits for it."""
        return self.committing is None and self.uncommitted

    def commit_started(self) -> int:
        assert self.should_commit(), "a commit is in flight or there is nothing to commit"
        self.committing = self.written
        return self.committing

    def commit_succeeded(self) -> list[Output]:
        """The commit in flight is durable: the outputs it unblocks, in the order they were sent."""
        assert self.committing is not None, "no commit in flight"
        self.durable, self.committing = self.committing, None
        released = []
        while self._held and self._held[0][0] <= self.durable:
            released.append(self._held.popleft()[1])
        if not self._held:
            self._held = None
        return released

    def reset_uncommitted(self) -> list[Output]:
        """The actor was reset: writes that no commit covers were rolled back. Drop the outputs
        that waited for them; those of a commit in flight stay and are released by it."""
        kept = self.committing if self.committing is not None else self.durable
        dropped = [output for number, output in self._held or () if number > kept]
        if self._held:
            self._held = deque(item for item in self._held if item[0] <= kept) or None
        self.written = kept
        return dropped

    def commit_failed(self) -> list[Output]:
        """The commit failed: every held output is dropped, and the writes are forgotten (the
        caller resets the actor, rolling back what was not durable)."""
        dropped = [output for _, output in self._held or ()]
        self._held = None
        self.committing = None
        self.written = self.durable
        return dropped


class CommitPhase(enum.Enum):
    IDLE = "idle"  # no commit in flight
    COMMITTING = "committing"  # a commit's fsync runs in a worker thread; turns go on
    CHECKPOINTING = "checkpointing"  # the same, with a checkpoint of the -wal: turns wait
    BROKEN = "broken"  # a commit failed while a turn ran: reset the actor once that turn ends


class CommitCycle:
    """One actor's commit in flight, and what it implies for the turns and the instance.

        IDLE ── commit_started ──▶ COMMITTING, or CHECKPOINTING when a checkpoint is due
        COMMITTING, CHECKPOINTING ── commit_succeeded ──▶ IDLE
        IDLE, COMMITTING, CHECKPOINTING ── commit_failed ──▶ IDLE (reset now), or
                                                             BROKEN (a turn is running)
        BROKEN ── turn_ended ──▶ IDLE (reset now)

    A commit is two steps: COMMIT on the event loop, then the fsync in a worker thread. It is
    started once COMMIT has run, so a COMMIT that fails does so from IDLE. Any other event
    raises InvalidTransition. The output gate keeps the counts (what is written, what is
    durable); this keeps the rest, so the host holds only the task that awaits the fsync.
    """

    __slots__ = ("checkpoint_due", "failure", "phase")

    def __init__(self) -> None:
        self.phase = CommitPhase.IDLE
        self.checkpoint_due = False  # the -wal has grown large: the next commit checkpoints it
        self.failure: BaseException | None = None  # BROKEN: what to reset the actor for

    @property
    def in_flight(self) -> bool:
        return self.phase in (CommitPhase.COMMITTING, CommitPhase.CHECKPOINTING)

    @property
    def may_start_turn(self) -> bool:
        """Not during a checkpoint: it runs on the actor's connection in a worker thread, and
        SQLite writes the -wal from its beginning again only if the next transaction begins
        after it (see Storage.checkpoint). Not while BROKEN: the reset comes first."""
        return self.phase in (CommitPhase.IDLE, CommitPhase.COMMITTING)

    def commit_started(self) -> bool:
        """COMMIT ran; the fsync goes to a worker thread. True: it checkpoints too, so the
        next turn must wait for it."""
        self._expect("commit_started", CommitPhase.IDLE)
        checkpoint, self.checkpoint_due = self.checkpoint_due, False
        self.phase = CommitPhase.CHECKPOINTING if checkpoint else CommitPhase.COMMITTING
        return checkpoint

    def commit_succeeded(self, wal_is_large: bool) -> None:
        """The fsync is done. `wal_is_large`: the next commit checkpoints."""
        self._expect("commit_succeeded", CommitPhase.COMMITTING, CommitPhase.CHECKPOINTING)
        self.phase = CommitPhase.IDLE
        self.checkpoint_due = wal_is_large

    def commit_failed(self, error: BaseException, *, turn_running: bool) -> bool:
        """COMMIT or the fsync failed. Whether the writes reached the disk is unknown, so the
        actor is reset: its connection is thrown away and the next instance reads what the
        disk holds. True: reset it now. False: a running turn is using the instance and
        keeps it until it ends; `turn_ended` then returns `error`."""
        self._expect(
            "commit_failed", CommitPhase.IDLE, CommitPhase.COMMITTING, CommitPhase.CHECKPOINTING
        )
        if turn_running:
            self.phase, self.failure = CommitPhase.BROKEN, error
            return False
        self.phase = CommitPhase.IDLE
        return True

    def turn_ended(self) -> BaseException | None:
        """The running turn has finished with the instance: the error to reset the actor for
        now, if a commit failed meanwhile (BROKEN), else None."""
        if self.phase is not CommitPhase.BROKEN:
            return None
        failure, self.failure = self.failure, None
        self.phase = CommitPhase.IDLE
        return failure

    def _expect(self, event: str, *phases: CommitPhase) -> None:
        if self.phase not in phases:
            allowed = ", ".join(phase.name for phase in phases)
            raise InvalidTransition(
                f"CommitCycle.{event}() while {self.phase.name}: it happens only in {allowed}"
            )
