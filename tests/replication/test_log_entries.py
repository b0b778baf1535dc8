"""The replicated log's entries without any server: encoding, bookmarks, and which batches
rebuild a state when restores are in the log (replication.py is sans-I/O)."""

import pytest

from accord_app.actors.errors import BookmarkError
from accord_app.actors.replication import (
    Entry,
    bookmark,
    decode_entry,
    encode_entry,
    parse_bookmark,
    replay_plan,
)


def batch(seq: int, number: int) -> Entry:
    return Entry(seq, "batch", 1, number, statements=[("INSERT INTO t VALUES (?)", [number])])


def epoch(seq: int, number: int) -> Entry:
    return Entry(seq, "epoch", number, 0, host="h")


def restore(seq: int, target: int) -> Entry:
    return Entry(seq, "restore", 1, 0, target=target)


def test_an_entry_survives_encoding_with_every_sqlite_value() -> None:
    params = [None, 7, 2.5, "text", b"\x00\xffbytes"]
    entry = Entry(0, "batch", 3, 9, statements=[("INSERT INTO t VALUES (?, ?, ?, ?, ?)", params)])
    data, headers = encode_entry(entry)
    back = decode_entry(42, 1.5, headers, data)
    assert (back.seq, back.kind, back.epoch, back.batch, back.time) == (42, "batch", 3, 9, 1.5)
    assert back.statements == entry.statements and back.size == len(data)


def test_bookmarks_sort_as_strings_in_log_order() -> None:
    seqs = [0, 9, 10, 99, 100, 12345678901]
    marks = [bookmark(seq) for seq in seqs]
    assert sorted(marks) == marks and [parse_bookmark(m) for m in marks] == seqs
    for bad in ["9", "x" * 20, "-" + "1" * 19, 12]:
        with pytest.raises(BookmarkError):
            parse_bookmark(bad)  # type: ignore[arg-type]


def state_of(log: list[Entry], point: int, snapshots: dict[int, list[int]]) -> list[int]:
    """The rows of the state as of entry `point` (at the log's end, a restore pending there
    carried out), the way an activation finds it: from the newest snapshot at or before the
    state wanted, the entries after it; if they carried out a restore, the same for its
    target."""
    rows: list[int] = []
    carry_out = point == log[-1].seq
    while True:
        start = max((seq for seq in snapshots if seq <= point), default=0)
        replay = replay_plan([entry for entry in log if start < entry.seq <= point])
        restored, batches = replay.restored, replay.batches
        if carry_out and replay.pending is not None:
            restored, batches = replay.pending, []
        carry_out = False
        rows = [entry.batch for entry in batches] + rows
        if restored is None:
            return snapshots.get(start, []) + rows
        point = restored


def test_a_restore_takes_effect_at_the_next_epoch_and_later_batches_build_on_it() -> None:
    log = [epoch(1, 1), batch(2, 1), batch(3, 2), batch(4, 3), restore(5, 3), batch(6, 4)]
    # Pending at the end: the activation about to open the next epoch carries it out.
    assert state_of(log, 6, {}) == [1, 2]
    # As of an entry after the restore, before any epoch: not carried out, the batches go on.
    assert state_of(log, 6, {}) == [1, 2] and state_of([*log, epoch(7, 2)], 6, {}) == [1, 2, 3, 4]
    log += [epoch(7, 2), batch(8, 5)]
    assert state_of(log, 8, {}) == [1, 2, 5]
    # Undo: back to the state before the restore (entry 6 was the last one then).
    log += [restore(9, 6), epoch(10, 3)]
    assert state_of(log, 10, {}) == [1, 2, 3, 4]
    assert replay_plan(log[-2:]).restored == 6 and replay_plan(log[-2:]).batches == []


def test_a_restore_starts_from_the_snapshot_before_its_target() -> None:
    """Snapshots (the rows as of their sequence) bound what a restore reads: the entries
    after the snapshot before the restored state, whichever snapshot came later."""
    log = [epoch(1, 1), batch(2, 1), batch(3, 2), batch(4, 3), batch(5, 4)]
    log += [restore(6, 3), epoch(7, 2), batch(8, 5), restore(9, 8), epoch(10, 3)]
    whole = state_of(log, 10, {})
    assert whole == [1, 2, 5]
    # Snapshots at 3 (before the target) and at 7 (after the first restore, carried out).
    snapshots = {3: [1, 2], 7: [1, 2]}
    assert state_of(log, 10, snapshots) == whole
    # Back before every snapshot: from the beginning. Back to a snapshot itself: just it.
    assert state_of([*log, restore(11, 2), epoch(12, 4)], 12, snapshots) == [1]
    assert state_of([*log, restore(11, 7), epoch(12, 4)], 12, snapshots) == [1, 2]
    # A snapshot's rows are taken as they are: a wrong one shows (the check can fail).
    assert state_of(log, 10, {7: [9]}) == [9, 5]
