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
