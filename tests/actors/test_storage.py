"""Per-actor storage on its own, without the runtime: KV, SQL, transactions, alarm."""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from accord_app.actors import StorageError
from accord_app.actors.storage import Storage


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    opened = Storage(tmp_path / "ab" / "cd" / "actor.sqlite3")
    yield opened
    opened.close()


def commit(storage: Storage) -> None:
    storage.end_turn(succeeded=True)
    storage.commit()
    storage.make_durable()


def test_kv_single_and_many(storage: Storage) -> None:
    assert storage.get("missing") is None
    storage.put("a", {"n": 1, "tags": ["x"]})
    storage.put({"b": 2, "c": None, "d": "text"})
    assert storage.get("a") == {"n": 1, "tags": ["x"]}
    assert storage.get(["d", "b", "zzz"]) == {"b": 2, "d": "text"}
    assert storage.delete("a") is True
    assert storage.delete("a") is False
    assert storage.delete(["b", "c", "nope"]) == 2
    assert storage.list() == {"d": "text"}


def test_kv_list_is_sorted_by_bytes_with_ranges(storage: Storage) -> None:
    keys = ["b", "a", "ab", "abc", "B", "é", "a\U0010ffff", "ac"]
    storage.put({key: index for index, key in enumerate(keys)})
    assert list(storage.list()) == sorted(keys, key=str.encode)
    assert list(storage.list(prefix="a")) == ["a", "ab", "abc", "ac", "a\U0010ffff"]
    assert list(storage.list(prefix="ab")) == ["ab", "abc"]
    assert list(storage.list(start="ab", end="b")) == ["ab", "abc", "ac", "a\U0010ffff"]
    assert list(storage.list(limit=2, reverse=True)) == ["é", "b"]


def test_kv_limits_and_values(storage: Storage) -> None:
    with pytest.raises(StorageError, match="at most 128 keys"):
        storage.get([str(n) for n in range(129)])
    with pytest.raises(StorageError, match="JSON-serialisable"):
        storage.put("bad", {1, 2})
    with pytest.raises(StorageError, match="strings"):
        storage.put({1: "x"})  # type: ignore[dict-item]


def test_sql_api_and_refused_transaction_statements(storage: Storage) -> None:
    storage.sql.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, body TEXT)")
    storage.sql.execute("INSERT INTO messages (body) VALUES (?), (?)", "hi", "there")
    rows = storage.sql.execute("SELECT id, body FROM messages ORDER BY id")
    assert [tuple(row) for row in rows] == [(1, "hi"), (2, "there")]
    assert rows[1]["body"] == "there"
    with pytest.raises(StorageError, match="managed by the runtime"):
        storage.sql.execute("commit")


@pytest.fixture
def counted(tmp_path: Path) -> Iterator[tuple[Storage, list[int]]]:
    """A storage that records each turn's first write (the runtime shuts its gate there)."""
    writes: list[int] = []
    opened = Storage(tmp_path / "counted.sqlite3", on_first_write=lambda: writes.append(1))
    yield opened, writes
    opened.close()


@pytest.mark.parametrize(
    "statement",
    ["/* x */ COMMIT", "-- note\nCOMMIT", "  end", "/**/ROLLBACK", "SAVEPOINT x",
     "/* */ RELEASE turn", "ROLLBACK TO turn", "BEGIN IMMEDIATE"],
)  # fmt: skip
def test_transaction_control_is_refused_however_it_is_spelled(
    storage: Storage, statement: str
) -> None:
    storage.put("a", 1)
    with pytest.raises(StorageError, match="managed by the runtime"):
        storage.sql.execute(statement)
    storage.end_turn(succeeded=False)  # the turn's savepoint is intact: it rolls back
    assert storage.get("a") is None


def test_a_cached_commit_of_the_runtime_is_no_back_door(storage: Storage) -> None:
    storage.put("a", 1)
    commit(storage)  # the runtime's own COMMIT is now in the statement cache
    storage.put("b", 2)
    with pytest.raises(StorageError, match="managed by the runtime"):
        storage.sql.execute("COMMIT")


@pytest.mark.parametrize(
    "statement",
    ["PRAGMA journal_mode = DELETE", "PRAGMA user_version = 7", "PRAGMA synchronous = FULL",
     "ATTACH ':memory:' AS other"],
)  # fmt: skip
def test_what_would_undo_the_runtimes_file_keeping_is_refused(
    storage: Storage, statement: str
) -> None:
    with pytest.raises(StorageError, match=r"runtime|its own database"):
        storage.sql.execute(statement)


def test_reads_are_reads_and_writes_are_writes_however_spelled(
    counted: tuple[Storage, list[int]],
) -> None:
    storage, writes = counted
    storage.sql.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER)")
    storage.end_turn(succeeded=True)
    assert writes == [1]
    reads = {
        "WITH x AS (SELECT 1 AS n) SELECT n FROM x": [(1,)],
        "/* first */ SELECT count(*) FROM t": [(0,)],
        "PRAGMA user_version": [(1,)],
        "EXPLAIN QUERY PLAN SELECT * FROM t": None,
    }
    for query, expected in reads.items():
        rows = [tuple(row) for row in storage.sql.execute(query)]
        assert expected is None or rows == expected, query
        assert [tuple(row)[1] for row in storage.sql.execute("PRAGMA table_info(t)")] == ["id", "n"]
    storage.end_turn(succeeded=True)
    assert writes == [1], "a read was taken for a write"
    writing = [
        "WITH v AS (SELECT 5) INSERT INTO t (n) SELECT * FROM v",
        "INSERT INTO t (n) VALUES (6) RETURNING id",
        "INSERT INTO t (n) VALUES (6) RETURNING id",  # again: its kind now comes from the cache
        "-- hi\nDELETE FROM t",
    ]
    for query in writing:
        storage.sql.execute(query)
        storage.end_turn(succeeded=True)
    assert writes == [1] * 5, "each turn's write was seen, the cached query's too"


def test_failed_turn_rolls_back_only_its_own_writes(storage: Storage) -> None:
    storage.put("kept", 1)
    storage.end_turn(succeeded=True)  # a first turn, not yet committed
    storage.put("kept", 2)
    storage.put("lost", True)
    storage.end_turn(succeeded=False)
    commit(storage)
    assert storage.list() == {"kept": 1}


def test_transaction_block_rolls_back_when_it_raises(storage: Storage) -> None:
    storage.put("a", 1)
    with pytest.raises(ZeroDivisionError), storage.transaction():
        storage.put("a", 2)
        storage.put("b", 2)
        1 / 0  # noqa: B018
    with storage.transaction():
        storage.put("c", 3)
    commit(storage)
    assert storage.list() == {"a": 1, "c": 3}


def test_delete_all_removes_keys_and_tables_but_not_the_alarm(storage: Storage) -> None:
    storage.put("a", 1)
    storage.sql.execute("CREATE TABLE t (x)")
    storage.set_alarm(datetime(2030, 1, 1, tzinfo=UTC))
    storage.delete_all()
    assert storage.list() == {}
    assert storage.sql.execute("SELECT name FROM sqlite_schema WHERE name = 't'") == []
    assert storage.get_alarm() == datetime(2030, 1, 1, tzinfo=UTC).timestamp()


def test_writes_and_alarm_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "actor.sqlite3"
    first = Storage(path)
    first.put("k", "v")
    first.set_alarm(1234.5)
    commit(first)
    first.close()
    second = Storage(path)
    assert second.get("k") == "v" and second.get_alarm() == 1234.5
    second.delete_alarm()
    commit(second)
    assert second.get_alarm() is None
    second.close()


def test_naive_datetime_alarm_is_refused(storage: Storage) -> None:
    with pytest.raises(ValueError, match="aware datetime"):
        storage.set_alarm(datetime(2030, 1, 1))
