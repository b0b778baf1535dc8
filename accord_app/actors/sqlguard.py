"""What an actor's SQL statement does, as SQLite itself compiles it: a read, a write, or
something the runtime refuses (transaction control, other databases, pragmas that would change
how the file is kept).

Why not look at the text? A regex sees the spelling, not the statement: `/* x */ COMMIT` slips
past `^\\s*COMMIT`, and `WITH t AS (...) SELECT` looks like neither a SELECT nor a write. SQLite's
authorizer is called for every action a statement will take, whatever its spelling. It is
called while a statement is compiled, so the storage compiles each query once under it with
`EXPLAIN` (which compiles and runs nothing) and remembers the answer: see Storage.classify.
"""

import re
import sqlite3
from collections.abc import Sequence
from enum import Enum
from typing import Any


class Kind(Enum):
    READ = "read"
    WRITE = "write"


READ_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)
TRANSACTION_CONTROL = (
    "transaction statements are managed by the runtime: every turn is atomic;"
    " use `with storage.transaction():` for a block that must roll back on its own"
)
OTHER_DATABASES = "an actor's SQL reaches its own database only"
REFUSED = {
    sqlite3.SQLITE_TRANSACTION: TRANSACTION_CONTROL,
    sqlite3.SQLITE_SAVEPOINT: TRANSACTION_CONTROL,
    sqlite3.SQLITE_ATTACH: OTHER_DATABASES,
    sqlite3.SQLITE_DETACH: OTHER_DATABASES,
}
# Pragmas that only describe tables and indexes (they take a table's or index's name).
TABLE_PRAGMAS = frozenset(
    {"table_info", "table_xinfo", "index_list", "index_info", "index_xinfo", "foreign_key_list",
     "foreign_key_check", "integrity_check", "quick_check"}
)  # fmt: skip
# And pragmas an actor may read but not set: setting journal_mode, synchronous, user_version,
# locking_mode and the like would undo how the runtime keeps the file durable.
READ_PRAGMAS = TABLE_PRAGMAS | {
    "table_list", "user_version", "schema_version", "page_count", "page_size", "freelist_count",
    "data_version", "collation_list", "function_list", "module_list", "pragma_list",
    "compile_options",
}  # fmt: skip


# With a replicated log, a write is run again wherever the actor's state is rebuilt (another
# host, a restore): it must give the same result there. These functions answer differently on
# every call whatever their arguments...
NON_DETERMINISTIC = frozenset(
    {"random", "randomblob", "current_timestamp", "current_date", "current_time", "changes",
     "total_changes", "last_insert_rowid", "sqlite_version"}
)  # fmt: skip
# ...and these do when asked for 'now' (also their default: date() is today).
CLOCK_FUNCTIONS = frozenset({"date", "time", "datetime", "julianday", "unixepoch", "strftime"})
_NOW = re.compile(r"'now'|\b(date|time|datetime|julianday|unixepoch)\s*\(\s*\)", re.IGNORECASE)


class StatementAudit:
    """An sqlite3 authorizer for one compilation: what the statement would do."""

    def __init__(self) -> None:
        self.refusal: str | None = None
        self.seen = False
        self.writes = False
        self.functions: set[str] = set()

    def __call__(
        self,
        action: int,
        first: str | None,
        second: str | None,
        database: str | None,
        source: str | None,
    ) -> int:
        self.seen = True
        refusal = REFUSED.get(action)
        if action == sqlite3.SQLITE_PRAGMA and not (
            first in READ_PRAGMAS and (second is None or first in TABLE_PRAGMAS)
        ):
            refusal = f"PRAGMA {first} belongs to the runtime; actors may read table pragmas only"
        if refusal is not None:
            self.refusal = self.refusal or refusal
            return sqlite3.SQLITE_DENY
        if action not in READ_ACTIONS and action != sqlite3.SQLITE_PRAGMA:
            self.writes = True
        if action == sqlite3.SQLITE_FUNCTION and second is not None:
            self.functions.add(second.lower())
        return sqlite3.SQLITE_OK

    @property
    def kind(self) -> Kind:
        # VACUUM and REINDEX call the authorizer for nothing: count them as writes, to be safe.
        return Kind.WRITE if self.writes or not self.seen else Kind.READ


def non_deterministic(functions: frozenset[str], query: str, params: Sequence[Any]) -> str | None:
    """Why a write calling `functions` would not replay to the same state, or None."""
    found = sorted(functions & NON_DETERMINISTIC)
    if not found and functions & CLOCK_FUNCTIONS:
        asks_now = _NOW.search(query) or any(
            isinstance(param, str) and param.strip().lower() == "now" for param in params
        )
        found = sorted(functions & CLOCK_FUNCTIONS) if asks_now else []
    if not found:
        return None
    names = ", ".join(f"{name}()" for name in found)
    return (
        f"this write calls {names}, which gives another answer when the replicated log is"
        " replayed on another host: compute the value in Python and pass it as a parameter"
        " (e.g. `INSERT ... VALUES (?)` with time.time())"
    )


def first_keyword(query: str) -> str:
    """The first word of `query` after blanks and comments, in capitals."""
    rest = query
    while True:
        rest = rest.lstrip()
        if rest.startswith("--"):
            rest = rest.partition("\n")[2]
        elif rest.startswith("/*"):
            rest = rest.partition("*/")[2]
        else:
            break
    word = ""
    for character in rest:
        if not character.isalpha():
            break
        word += character
    return word.upper()
