"""An actor's writes as an ordered log, without any I/O: what an entry is, how it is encoded,
how bookmarks are spelt, and which batches rebuild a state (restores included).

With replication on, each group commit of an actor becomes one entry on the actor's own
subject of a replicated log (accord_app/actors/natslog.py keeps it on NATS JetStream), and the
local SQLite file is only its materialised state. Three kinds of entry:

- batch: the write statements of one group commit, with their parameters, in order;
- epoch: "epoch E opened by host H", appended by every activation, expecting the sequence of
  the last entry it applied. A copy of the actor that appends later expecting an older one is
  refused by the log: that is the fence;
- restore: "at the next epoch, go back to the state of bookmark B" (point-in-time recovery).

The log itself (`ReplicaLog`) and the per-actor session (`accord_app/actors/replica.py`) do the
I/O; the storage sees only `Bookmarks`.
"""

import base64
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from accord_app.actors.errors import BookmarkError

# A write statement and its parameters, as the storage ran it.
Statement = tuple[str, list[Any]]
Kind = Literal["batch", "epoch", "restore"]
KIND_HEADER = "Accord-Kind"
EPOCH_HEADER = "Accord-Epoch"
BATCH_HEADER = "Accord-Batch"
# Cloudflare's default, and ours: bookmarks of the last 30 days can be restored.
DEFAULT_RETENTION_SECONDS = 30 * 24 * 3600.0
# Bookmarks are log sequences, zero-padded so that they sort as strings in time order.
BOOKMARK_DIGITS = 20


class Bookmarks(Protocol):
    """Point-in-time recovery, as the storage offers it (Durable Objects' API)."""

    async def current_bookmark(self) -> str: ...

    async def bookmark_for_time(self, at: float) -> str: ...

    async def restore_on_next_session(self, bookmark: str) -> str: ...


@dataclass(frozen=True)
class Entry:
    """One entry of an actor's log. `batch` counts the actor's batches up to this entry."""

    seq: int
    kind: Kind
    epoch: int
    batch: int
    time: float = 0.0  # when the log stored it (epoch seconds)
    statements: list[Statement] = field(default_factory=list)
    host: str = ""  # who wrote it (an epoch: who opened it)
    target: int = 0  # restore: the sequence to go back to
    size: int = 0  # bytes of its payload, as stored

    def describe(self) -> str:
        if self.kind == "epoch":
            return f"epoch {self.epoch} opened by host {self.host}"
        if self.kind == "restore":
            return f"restore to {bookmark(self.target)} at the next epoch"
        return f"batch {self.batch} of epoch {self.epoch} ({len(self.statements)} statements)"


@dataclass(frozen=True)
class Snapshot:
    """An actor's database file as of the entry `seq` of its log."""

    seq: int
    data: bytes


class WrongLastSequence(Exception):
    """The log refused an append: the subject's last sequence is not the expected one."""


class ReplicaLog(Protocol):
    """Where actors' entries are kept: one ordered subject per actor (`key`)."""

    @property
    def retention_seconds(self) -> float: ...

    @property
    def timeout(self) -> float:
        """How long an append or a read may wait for a majority before it gives up."""
        ...

    @property
    def snapshot_every(self) -> tuple[int, int]:
        """A snapshot is due after this many batches, or this many bytes of them."""
        ...

    async def snapshots(self, key: str) -> list[int]:
        """The sequences of `key`'s kept snapshots, in order (each is the state as of it)."""
        ...

    async def load_snapshot(self, key: str, seq: int) -> Snapshot | None:
        """The snapshot of `key` as of `seq` (None: not kept, or no longer)."""
        ...

    async def save_snapshot(self, key: str, snapshot: Snapshot) -> None: ...

    async def last(self, key: str) -> Entry | None: ...

    async def next_entry(self, key: str, seq: int) -> Entry | None:
        """`key`'s first entry at sequence `seq` or after (None: there is none)."""
        ...

    async def read(self, key: str, after: int, upto: int | None = None) -> list[Entry]:
        """`key`'s entries after sequence `after`, up to `upto` included (None: the last)."""
        ...

    async def append(self, key: str, entry: Entry, expected_last: int) -> tuple[int, float]:
        """Append `entry` (its seq and time are the log's to set) if the subject's last
        sequence is `expected_last` (0: empty): returns (seq, time). Raises
        WrongLastSequence, or LogUnavailable when no majority confirms in time."""
        ...

    async def set_alarm(self, key: str, at: float | None) -> None:
        """Keep, beside the log, when `key`'s alarm is due (None: no alarm): the record another
        host reads to fire the alarm of an actor whose host died (see Namespace's sweep)."""
        ...

    async def alarms(self, namespace: str) -> dict[str, float]:
        """Every actor of `namespace` with an alarm: its key -> when it is due."""
        ...

    async def watch(
        self, key: str, on_entry: Callable[[Entry], None]
    ) -> Callable[[], Awaitable[None]]:
        """Call `on_entry` for every entry appended to `key` from now on; returns the stop."""
        ...


def bookmark(seq: int) -> str:
    return f"{seq:0{BOOKMARK_DIGITS}d}"


def parse_bookmark(text: str) -> int:
    if not isinstance(text, str) or len(text) != BOOKMARK_DIGITS or not text.isdigit():
        raise BookmarkError(
            f"{text!r} is not a bookmark: bookmarks are {BOOKMARK_DIGITS} digits, as returned"
            " by get_current_bookmark() or get_bookmark_for_time()"
        )
    return int(text)


def _encode_value(value: Any) -> Any:
    # SQLite's values: None, int, float, str, bytes. JSON has no bytes: tag them.
    if isinstance(value, bytes | bytearray | memoryview):
        return {"b64": base64.b64encode(bytes(value)).decode()}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        return base64.b64decode(value["b64"])
    return value


def encode_entry(entry: Entry) -> tuple[bytes, dict[str, str]]:
    """An entry's payload and headers (the kind, epoch and batch, readable without the body)."""
    headers = {
        KIND_HEADER: entry.kind,
        EPOCH_HEADER: str(entry.epoch),
        BATCH_HEADER: str(entry.batch),
    }
    if entry.kind == "batch":
        body: Any = [[sql, [_encode_value(p) for p in params]] for sql, params in entry.statements]
    elif entry.kind == "epoch":
        body = {"host": entry.host}
    else:
        body = {"target": entry.target}
    return json.dumps(body, separators=(",", ":")).encode(), headers


def decode_entry(seq: int, at: float, headers: dict[str, str], data: bytes) -> Entry:
    kind = headers.get(KIND_HEADER)
    epoch, batch = int(headers.get(EPOCH_HEADER, 0)), int(headers.get(BATCH_HEADER, 0))
    body = json.loads(data or b"null")
    if kind == "batch":
        statements = [(sql, [_decode_value(p) for p in params]) for sql, params in body]
        return Entry(seq, "batch", epoch, batch, at, statements=statements, size=len(data))
    if kind == "epoch":
        return Entry(seq, "epoch", epoch, batch, at, host=str(body["host"]))
    if kind == "restore":
        return Entry(seq, "restore", epoch, batch, at, target=int(body["target"]))
    raise ValueError(f"entry {seq} of an actor's log is of no known kind ({kind!r})")


@dataclass(frozen=True)
class Replay:
    """What a stretch of the log does to the state it starts from (see `replay_plan`)."""

    batches: list[Entry]  # to apply, in order
    restored: int | None  # ...on the state as of this sequence, not the stretch's start
    pending: int | None  # a restore asked for and not carried out by the stretch's end


def replay_plan(stretch: Sequence[Entry]) -> Replay:
    """The batches that bring a known state (a snapshot's, or the empty one) to the state as
    of the stretch's last entry, `stretch` being every entry after the known state, in order.

    A restore takes effect at the next epoch: from that epoch on the state is that of the
    restore's target again (`restored`), and only the batches after it apply on top. So the
    state as of any entry is a snapshot plus batches, or a restore target's state plus
    batches: the caller follows `restored` back to an earlier state, which needs only the
    entries between it and the snapshot before it, never the whole log. A restore still
    `pending` at the end is carried out by the activation that reads it (about to open the
    next epoch), not by a state looked up as of an earlier entry."""
    batches: list[Entry] = []
    restored: int | None = None
    pending: int | None = None
    for entry in stretch:
        if entry.kind == "batch":
            batches.append(entry)
        elif entry.kind == "restore":
            pending = entry.target
        elif pending is not None:  # the first epoch after a restore carries it out
            batches, restored, pending = [], pending, None
    return Replay(batches, restored, pending)
