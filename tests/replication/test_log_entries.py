"""The replicated log's entries without any server: encoding, bookmarks, and which batches
rebuild a state when restores are in the log (replication.py is sans-I/O)."""

import pytest

from accord_app.actors.errors import BookmarkError
from accord_app.actors.replication import (
    Entry,
    batches_to_apply,
    bookmark,
    decode_entry,
    encode_entry,
    parse_bookmark,
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


def test_a_restore_takes_effect_at_the_next_epoch_and_later_batches_build_on_it() -> None:
    log = [epoch(1, 1), batch(2, 1), batch(3, 2), batch(4, 3), restore(5, 3), batch(6, 4)]
    # Pending at the end: the activation about to open the next epoch carries it out.
    assert [e.seq for e in batches_to_apply(log) or []] == [2, 3]
    log += [epoch(7, 2), batch(8, 5)]
    assert [e.seq for e in batches_to_apply(log) or []] == [2, 3, 8]
    # Undo: back to the state before the restore (entry 6 was the last one then).
    log += [restore(9, 6), epoch(10, 3)]
    assert [e.seq for e in batches_to_apply(log) or []] == [2, 3, 4, 6]


def test_a_restore_before_the_snapshot_needs_the_whole_log() -> None:
    after_snapshot = [batch(11, 6), restore(12, 5), epoch(13, 2)]
    assert batches_to_apply(after_snapshot, base=10) is None
    assert [e.seq for e in batches_to_apply([batch(11, 6)], base=10) or []] == [11]
    # Back to the snapshot itself: the snapshot's state, nothing on top.
    assert batches_to_apply([batch(11, 6), restore(12, 10), epoch(13, 2)], base=10) == []
