"""The catalog database, on SQLite and on PostgreSQL: migrations, durability settings,
restarts and several processes (two hosts sharing one PostgreSQL among them).

Tests that take the `location` fixture, or are marked with `both_catalogs`, run on each; the
PostgreSQL is the kit's own (accord_app/catalog/pgserver.py), one for the whole run, with a fresh
schema per test. Process tests run real interpreters (sys.executable): the workers below wait
on stdin after importing, so they all start writing at the same moment.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import errors as pg_errors

from accord_app import Settings, create_app
from accord_app.catalog.dialects import POSTGRESQL, numbered_placeholders
from accord_app.catalog.store import (
    BUSY_TIMEOUT_SECONDS,
    Catalog,
    CatalogError,
    CatalogUnavailable,
    Migration,
    apply_migrations,
    load_migrations,
    split_statements,
    write_transaction,
)
from accord_app.cluster.ports import free_port
from accord_app.lab.server import BackgroundServer

START_TIMEOUT = 20.0
# A bad setting must stop the app at once; one still running after this has started serving.
REFUSAL_TIMEOUT = 6.0
both_catalogs = pytest.mark.parametrize("settings", ["sqlite", "postgresql"], indirect=True)
# What each database raises for a statement that does not parse, and for a broken reference.
SYNTAX_ERROR = {"SQLite": sqlite3.OperationalError, "PostgreSQL": pg_errors.SyntaxError}
BROKEN_REFERENCE = {"SQLite": sqlite3.IntegrityError, "PostgreSQL": pg_errors.ForeignKeyViolation}


@pytest.fixture(params=["sqlite", "postgresql"])
def location(
    request: pytest.FixtureRequest, tmp_path: Path, new_catalog_url: Callable[[], str]
) -> Path | str:
    """Where a test's catalog goes: a SQLite file in a folder that does not exist yet, or a
    fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return tmp_path / "deep" / "er" / "catalog.sqlite3"
    return new_catalog_url()


def table_names(catalog: Catalog) -> set[str]:
    query = {
        "SQLite": "SELECT name FROM sqlite_master WHERE type = 'table'",
        "PostgreSQL": "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()",
    }[catalog.dialect.name]
    with catalog.connection() as conn:
        return {name for (name,) in conn.execute(query).fetchall()}


def migration_rows(catalog: Catalog) -> list[tuple[int, str]]:
    with catalog.connection() as conn:
        rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version")
        return [tuple(row) for row in rows.fetchall()]


def everything_recorded() -> list[tuple[int, str]]:
    return [(migration.version, migration.name) for migration in load_migrations()]


# --- migrations -----------------------------------------------------------------------------


def test_package_migrations_are_numbered_in_order() -> None:
    migrations = load_migrations()
    assert migrations, "no migrations found in the package"
    versions = [migration.version for migration in migrations]
    assert versions == sorted(set(versions))
    assert versions[0] == 1
    assert migrations[0].name == "servers_and_channels"
    assert all(migration.sql.strip() for migration in migrations)


def test_migrate_applies_once_and_records_it(location: Path | str) -> None:
    catalog = Catalog(location)
    expected = [migration.version for migration in load_migrations()]
    assert catalog.migrate() == expected
    assert catalog.migrate() == []
    assert Catalog(location).migrate() == []
    assert migration_rows(catalog) == everything_recorded()
    assert {"servers", "channels", "schema_migrations"} <= table_names(catalog)
    with catalog.connection() as conn:
        (applied_at,) = conn.execute("SELECT applied_at FROM schema_migrations").fetchone()
    assert isinstance(applied_at, str)
    assert applied_at.endswith("Z")
    assert applied_at[:2] == "20"
    assert len(applied_at) == len("2025-05-01T09:30:00.123Z")


@both_catalogs
def test_create_app_twice_migrates_once(settings: Settings) -> None:
    create_app(settings)
    create_app(settings)
    assert migration_rows(Catalog(settings.catalog_location)) == everything_recorded()


def test_new_migration_applies_on_top_and_only_once(location: Path | str) -> None:
    Catalog(location).migrate()
    extra = Migration(
        9000, "extra", "CREATE TABLE extra (x INTEGER);\nINSERT INTO extra VALUES (1);"
    )
    with Catalog(location).connection() as conn:
        assert apply_migrations(conn, [*load_migrations(), extra]) == [9000]
        assert apply_migrations(conn, [*load_migrations(), extra]) == []
        assert tuple(conn.execute("SELECT count(*) FROM extra").fetchone()) == (1,)
    assert migration_rows(Catalog(location))[-1] == (9000, "extra")


def test_failing_migration_leaves_nothing_behind(location: Path | str) -> None:
    catalog = Catalog(location)
    catalog.migrate()
    broken = Migration(9001, "broken", "CREATE TABLE half (x INTEGER);\nCREATE TABLE oops (;\n")
    with catalog.connection() as conn, pytest.raises(SYNTAX_ERROR[catalog.dialect.name]):
        apply_migrations(conn, [*load_migrations(), broken])
    assert "half" not in table_names(catalog)
    assert 9001 not in [version for version, _ in migration_rows(catalog)]
    # The catalog still works, and the version was not burnt.
    with catalog.connection() as conn:
        fixed = Migration(9001, "fixed", "CREATE TABLE half (x INTEGER);")
        assert apply_migrations(conn, [*load_migrations(), fixed]) == [9001]


# --- split_statements -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "statements"),
    [
        ("CREATE TABLE a (x);\n", ["CREATE TABLE a (x);"]),
        (
            "CREATE TABLE a (x);\n\nCREATE TABLE b (\n  y\n);\n",
            ["CREATE TABLE a (x);", "CREATE TABLE b (\n  y\n);"],
        ),
        ("-- only a comment\n\n", []),
        ("", []),
        (
            "-- a comment; with a semicolon\nCREATE TABLE a (x);\n-- trailing\n",
            ["-- a comment; with a semicolon\nCREATE TABLE a (x);"],
        ),
        ("INSERT INTO t VALUES ('a;\nb');\n", ["INSERT INTO t VALUES ('a;\nb');"]),
        (
            "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  INSERT INTO b VALUES (1);\nEND;\n",
            ["CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  INSERT INTO b VALUES (1);\nEND;"],
        ),
    ],
)
def test_split_statements(script: str, statements: list[str]) -> None:
    assert split_statements(script) == statements


def test_split_statements_splits_two_statements_on_one_line() -> None:
    # sqlite3 runs one statement per execute(): a line holding two must give two.
    assert split_statements("CREATE TABLE a (x); CREATE TABLE b (y);\n") == [
        "CREATE TABLE a (x);",
        "CREATE TABLE b (y);",
    ]


@pytest.mark.parametrize("script", ["CREATE TABLE a (x)", "CREATE TABLE a (x);\nCREATE TABLE b ("])
def test_split_statements_refuses_an_unfinished_script(script: str) -> None:
    with pytest.raises(ValueError, match="ends inside a statement"):
        split_statements(script)


def test_package_migrations_run_statement_by_statement() -> None:
    # execute() refuses a string holding two statements, so this proves the split is right.
    conn = sqlite3.connect(":memory:")
    try:
        for migration in load_migrations():
            statements = split_statements(migration.sql)
            assert statements
            for statement in statements:
                conn.execute(statement)
        assert {"servers", "channels"} <= {
            name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
    finally:
        conn.close()


# --- connection settings --------------------------------------------------------------------


def test_catalog_file_is_in_wal_mode(settings: Settings) -> None:
    create_app(settings)
    # journal_mode=WAL is stored in the file: a plain connection sees it too.
    raw = sqlite3.connect(settings.catalog_path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        raw.close()


def test_catalog_connections_are_durable_and_strict(settings: Settings) -> None:
    app = create_app(settings)
    catalog: Catalog = app.state.catalog
    with catalog.connection() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
        assert conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
        assert conn.execute("PRAGMA busy_timeout").fetchone() == (BUSY_TIMEOUT_SECONDS * 1000,)


def test_postgresql_connections_are_durable_whatever_the_url_says(
    new_catalog_url: Callable[[], str],
) -> None:
    # A URL whose sessions would answer before the disk has the commit.
    url = new_catalog_url() + "%20-csynchronous_commit%3Doff"
    with psycopg.connect(url) as raw:
        assert raw.execute("SHOW synchronous_commit").fetchone() == ("off",)
    with Catalog(url).connection() as conn:
        for setting in ["fsync", "synchronous_commit", "full_page_writes"]:
            assert tuple(conn.execute(f"SHOW {setting}").fetchone()) == ("on",), setting


@both_catalogs
def test_references_are_enforced(settings: Settings) -> None:
    catalog: Catalog = create_app(settings).state.catalog
    with catalog.connection() as conn, pytest.raises(BROKEN_REFERENCE[catalog.dialect.name]):
        conn.execute(
            "INSERT INTO channels (id, server_id, name) VALUES ('c', 'no-such-server', 'x')"
        )


def test_write_transaction_rolls_back_on_error(location: Path | str) -> None:
    catalog = Catalog(location)
    catalog.migrate()
    with catalog.connection() as conn:
        with pytest.raises(RuntimeError), write_transaction(conn):
            conn.execute("INSERT INTO servers (id, name) VALUES ('s', 'gone')")
            assert conn.in_transaction
            raise RuntimeError("boom")
        assert not conn.in_transaction
    assert catalog.list_servers() == []


def test_catalog_reads_its_own_writes(location: Path | str) -> None:
    catalog = Catalog(location)
    catalog.migrate()
    server = catalog.create_server("'); DROP TABLE servers; --")
    channel = catalog.create_channel(server.id, "general")
    assert channel is not None
    assert catalog.get_server(server.id) == server
    assert catalog.get_channel(server.id, channel.id) == channel
    assert catalog.get_channel(server.id, "nope") is None
    assert catalog.create_channel("no-such-server", "general") is None
    assert catalog.list_channels("no-such-server") is None
    assert catalog.list_servers() == [server]
    assert catalog.list_channels(server.id) == [channel]


def test_servers_and_channels_are_listed_oldest_first(location: Path | str) -> None:
    catalog = Catalog(location)
    catalog.migrate()
    # Names that sort the other way round, and ids in random order: only creation counts.
    servers = [catalog.create_server(f"{name} server") for name in "zyxwv"]
    channels = [catalog.create_channel(servers[0].id, f"{name} channel") for name in "zyxwv"]
    with catalog.connection() as conn:
        # PostgreSQL writes an updated row anew, after the others: without ORDER BY, the
        # oldest would now come last. (SQLite keeps rows in rowid order.)
        conn.execute("UPDATE servers SET name = name WHERE id = ?", (servers[0].id,))
        conn.execute("UPDATE channels SET name = name WHERE id = ?", (channels[0].id,))
    assert catalog.list_servers() == servers
    assert catalog.list_channels(servers[0].id) == channels


# --- PostgreSQL's translation of the catalog's SQL ------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SELECT 1", "SELECT 1"),
        ("INSERT INTO t (a, b) VALUES (?, ?)", "INSERT INTO t (a, b) VALUES ($1, $2)"),
        ("SELECT '?', \"a?\" FROM t WHERE x = ?", "SELECT '?', \"a?\" FROM t WHERE x = $1"),
        (
            "SELECT 'it''s ?' WHERE a = ? -- and ?\nAND b = ?",
            "SELECT 'it''s ?' WHERE a = $1 -- and ?\nAND b = $2",
        ),
        ("SELECT '%s %d', ? LIKE 'a%'", "SELECT '%s %d', $1 LIKE 'a%'"),
    ],
)
def test_placeholders_become_numbered_outside_quotes_and_comments(
    query: str, expected: str
) -> None:
    assert numbered_placeholders(query) == expected


def test_migrations_speak_postgresql_there() -> None:
    translated = POSTGRESQL.migration(
        "CREATE TABLE t (rowid INTEGER PRIMARY KEY, at TEXT NOT NULL DEFAULT"
        " (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
    )
    assert translated == (
        "CREATE TABLE t (rowid BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, at TEXT NOT"
        " NULL DEFAULT (to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')))"
    )
    with pytest.raises(ValueError, match="no PostgreSQL translation"):
        POSTGRESQL.migration("CREATE TABLE t (day TEXT DEFAULT (strftime('%Y', 'now')))")


def test_every_package_migration_translates_to_postgresql() -> None:
    for migration in load_migrations():
        for statement in split_statements(migration.sql):
            translated = POSTGRESQL.migration(statement)
            assert "INTEGER PRIMARY KEY" not in translated.upper(), translated


# --- an unreachable PostgreSQL --------------------------------------------------------------


def closed_port_url() -> str:
    return f"postgresql://accord:s3cret@127.0.0.1:{free_port()}/accord"


def test_an_unreachable_postgresql_is_a_clear_catalog_error() -> None:
    url = closed_port_url()
    with pytest.raises(CatalogError, match="cannot be reached") as error:
        Catalog(url).migrate()
    assert "s3cret" not in str(error.value)
    assert f"'accord' on 127.0.0.1:{url.rsplit(':', 1)[1].split('/')[0]}" in str(error.value)
    with pytest.raises(CatalogUnavailable):
        Catalog(url).list_servers()


# --- restarts -------------------------------------------------------------------------------


@both_catalogs
def test_a_new_app_on_the_same_data_dir_keeps_everything(settings: Settings) -> None:
    first = create_app(settings)
    with BackgroundServer(first) as server, httpx.Client(base_url=server.url, trust_env=False) as c:
        created = c.post("/api/servers", json={"name": "kept"}).json()
        channel = c.post(f"/api/servers/{created['id']}/channels", json={"name": "general"}).json()
    second = create_app(settings)
    with (
        BackgroundServer(second) as server,
        httpx.Client(base_url=server.url, trust_env=False) as c,
    ):
        assert c.get("/api/servers").json() == [created]
        assert c.get(f"/api/servers/{created['id']}/channels").json() == [channel]


# --- several processes ----------------------------------------------------------------------

# A SQLite file's path, or a PostgreSQL URL, as the catalog's location.
LOCATION = """
def location(text):
    return text if text.startswith("postgresql://") else Path(text)
"""

WRITER = (
    """
import sys
from pathlib import Path
from accord_app.catalog.store import Catalog
"""
    + LOCATION
    + """
catalog = Catalog(location(sys.argv[1]))
tag, count = sys.argv[2], int(sys.argv[3])
print("ready", flush=True)
sys.stdin.readline()
for i in range(count):
    server = catalog.create_server(f"{tag} server {i}")
    assert catalog.create_channel(server.id, f"{tag} channel {i}") is not None
print("done", flush=True)
"""
)

MIGRATOR = """
import json
import sys
from pathlib import Path
from accord_app import Settings, create_app
from accord_app.catalog.store import Catalog

print("ready", flush=True)
for line in sys.stdin:
    data_dir, _, url = line.strip().partition(" ")
    settings = Settings(data_dir=Path(data_dir), catalog_url=url or None)
    applied = Catalog(settings.catalog_location).migrate()
    create_app(settings)
    print(json.dumps(applied), flush=True)
"""


def child_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ACCORD_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator["Spawner"]:
    spawner = Spawner(tmp_path)
    try:
        yield spawner
    finally:
        spawner.kill_all()


class Spawner:
    """Starts Python processes for one test and makes sure none outlives it."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.processes: list[subprocess.Popen[str]] = []

    def script(self, code: str, *args: str) -> "subprocess.Popen[str]":
        process = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            cwd=self.cwd,
            env=child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.processes.append(process)
        return process

    def app(
        self, *args: str, env: dict[str, str] | None = None, name: str = "app"
    ) -> "subprocess.Popen[str]":
        """`python -m accord_app ARGS`, its output in files (a full pipe would block it)."""
        stdout = (self.cwd / f"{name}.out").open("w")
        stderr = (self.cwd / f"{name}.err").open("w")
        with stdout, stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "accord_app", *args],
                cwd=self.cwd,
                env={**child_env(), **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                text=True,
            )
        self.processes.append(process)
        return process

    def kill_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(10)
            for stream in (process.stdin, process.stdout, process.stderr):
                if stream is not None:
                    stream.close()


def expect_line(process: "subprocess.Popen[str]", expected: str | None = None) -> str:
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line or (expected is not None and line != expected):
        process.kill()
        _, err = process.communicate(timeout=10)
        pytest.fail(f"worker said {line!r}, expected {expected!r}; stderr:\n{err}")
    return line


def test_two_processes_writing_at_once_lose_nothing(location: Path | str, spawn: "Spawner") -> None:
    """On PostgreSQL, two hosts creating servers in the catalog they share."""
    count = 200
    Catalog(location).migrate()
    workers = [spawn.script(WRITER, str(location), tag, str(count)) for tag in ("red", "blue")]
    for worker in workers:
        expect_line(worker, "ready")
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    for worker in workers:
        expect_line(worker, "done")
        assert worker.wait(30) == 0

    catalog = Catalog(location)
    servers = catalog.list_servers()
    assert len(servers) == 2 * count
    assert len({server.id for server in servers}) == 2 * count
    for tag in ("red", "blue"):
        # Each writer's servers are all there, in the order it created them.
        names = [server.name for server in servers if server.name.startswith(f"{tag} ")]
        assert names == [f"{tag} server {i}" for i in range(count)]
    for server in servers:
        tag, _, number = server.name.split(" ")
        channels = catalog.list_channels(server.id)
        assert channels is not None
        assert [channel.name for channel in channels] == [f"{tag} channel {number}"]


@pytest.mark.parametrize("catalog", ["sqlite", "postgresql"])
def test_processes_migrating_a_fresh_catalog_at_once_apply_it_once(
    catalog: str, tmp_path: Path, spawn: "Spawner", request: pytest.FixtureRequest
) -> None:
    rounds, width = 5, 3
    workers = [spawn.script(MIGRATOR) for _ in range(width)]
    for worker in workers:
        expect_line(worker, "ready")
    everything = [migration.version for migration in load_migrations()]
    for round_number in range(rounds):
        data_dir = tmp_path / f"round-{round_number}" / "data"  # does not exist yet
        url = request.getfixturevalue("new_catalog_url")() if catalog == "postgresql" else ""
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write(f"{data_dir} {url}\n")
            worker.stdin.flush()
        results = sorted(json.loads(expect_line(worker)) for worker in workers)
        # Exactly one process applied the migrations; the others found them done.
        assert results == [[]] * (width - 1) + [everything], results
        location = url or data_dir / "catalog.sqlite3"
        assert migration_rows(Catalog(location)) == everything_recorded()
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.close()
        assert worker.wait(10) == 0


# --- python -m accord_app -------------------------------------------------------------------


def wait_until_serving(process: "subprocess.Popen[str]", url: str, logs: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    with httpx.Client(trust_env=False, timeout=2.0) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"the app exited with {process.returncode}:\n{read_logs(logs)}")
            try:
                if http.get(f"{url}/api").json() == {"api": True}:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    pytest.fail(f"the app did not answer on {url} within {START_TIMEOUT} s:\n{read_logs(logs)}")


def read_logs(prefix: Path) -> str:
    parts = [prefix.with_suffix(suffix) for suffix in (".out", ".err")]
    return "\n".join(part.read_text() for part in parts if part.exists())


def stop_with_sigterm(process: "subprocess.Popen[str]") -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(15)


def test_python_m_accord_app_serves_and_keeps_data_across_restarts(
    tmp_path: Path, spawn: Spawner
) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ("--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir))

    first = spawn.app(*args, name="first")
    wait_until_serving(first, url, tmp_path / "first")
    with httpx.Client(base_url=url, trust_env=False, timeout=10.0) as http:
        server = http.post("/api/servers", json={"name": "survivor"}).json()
        channel = http.post(f"/api/servers/{server['id']}/channels", json={"name": "general"})
        assert channel.status_code == 201
    assert stop_with_sigterm(first) in {0, -signal.SIGTERM}
    assert "Traceback" not in read_logs(tmp_path / "first")
    assert (data_dir / "catalog.sqlite3").exists()

    second = spawn.app(*args, name="second")
    wait_until_serving(second, url, tmp_path / "second")
    with httpx.Client(base_url=url, trust_env=False, timeout=10.0) as http:
        assert http.get("/api/servers").json() == [server]
        assert http.get(f"/api/servers/{server['id']}/channels").json() == [channel.json()]
    assert stop_with_sigterm(second) in {0, -signal.SIGTERM}


def test_python_m_accord_app_reads_accord_variables(tmp_path: Path, spawn: Spawner) -> None:
    data_dir = tmp_path / "from-env"
    port = free_port()
    env = {"ACCORD_HOST": "127.0.0.1", "ACCORD_PORT": str(port), "ACCORD_DATA_DIR": str(data_dir)}
    process = spawn.app(env=env)
    wait_until_serving(process, f"http://127.0.0.1:{port}", tmp_path / "app")
    assert (data_dir / "catalog.sqlite3").exists()
    assert f"127.0.0.1:{port}" in (tmp_path / "app.out").read_text()
    assert stop_with_sigterm(process) in {0, -signal.SIGTERM}


def test_flags_override_accord_variables(tmp_path: Path, spawn: Spawner) -> None:
    port = free_port()
    env = {"ACCORD_PORT": str(free_port()), "ACCORD_DATA_DIR": str(tmp_path / "env-dir")}
    process = spawn.app("--port", str(port), "--data-dir", str(tmp_path / "flag-dir"), env=env)
    wait_until_serving(process, f"http://127.0.0.1:{port}", tmp_path / "app")
    assert (tmp_path / "flag-dir" / "catalog.sqlite3").exists()
    assert not (tmp_path / "env-dir").exists()
    assert stop_with_sigterm(process) in {0, -signal.SIGTERM}


def run_app_expecting_failure(tmp_path: Path, *args: str, env: dict[str, str]) -> str:
    """Run `python -m accord_app` that must refuse to start; returns its stderr."""
    command = [sys.executable, "-m", "accord_app", "--data-dir", str(tmp_path / "data"), *args]
    try:
        result = subprocess.run(
            command,
            cwd=tmp_path,
            env={**child_env(), **env},
            capture_output=True,
            text=True,
            timeout=REFUSAL_TIMEOUT,
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(
            f"still running after {REFUSAL_TIMEOUT} s instead of refusing: {error.stdout!r}"
        )
    assert result.returncode != 0, result.stdout
    return result.stderr


@pytest.mark.parametrize("value", ["abc", "", "80.5", "nan", "inf"])
def test_bad_accord_port_is_refused_with_a_clear_message(tmp_path: Path, value: str) -> None:
    stderr = run_app_expecting_failure(tmp_path, env={"ACCORD_PORT": value})
    # The last line is what people read: it names the variable and the value.
    last_line = stderr.strip().splitlines()[-1]
    assert "ACCORD_PORT" in last_line, stderr
    assert value in last_line, stderr


@pytest.mark.parametrize("value", ["abc", "99999"])
def test_bad_accord_port_is_refused_without_a_traceback(tmp_path: Path, value: str) -> None:
    stderr = run_app_expecting_failure(tmp_path, env={"ACCORD_PORT": value})
    assert "ACCORD_PORT" in stderr
    assert "Traceback" not in stderr, stderr


def test_out_of_range_port_flag_is_refused(tmp_path: Path) -> None:
    # 70000 would wrap around to 4464 and serve there while announcing 70000.
    stderr = run_app_expecting_failure(tmp_path, "--port", "70000", env={})
    assert "port" in stderr.lower()
    assert "Traceback" not in stderr, stderr


def test_port_flag_wins_over_a_bad_accord_port(tmp_path: Path, spawn: Spawner) -> None:
    port = free_port()
    process = spawn.app(
        "--port", str(port), "--data-dir", str(tmp_path / "d"), env={"ACCORD_PORT": "abc"}
    )
    wait_until_serving(process, f"http://127.0.0.1:{port}", tmp_path / "app")
    assert stop_with_sigterm(process) in {0, -signal.SIGTERM}


def test_a_bad_catalog_url_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    stderr = run_app_expecting_failure(
        tmp_path, env={"ACCORD_CATALOG_URL": "mysql://root:s3cret@db/accord"}
    )
    last_line = stderr.strip().splitlines()[-1]
    assert "ACCORD_CATALOG_URL must be a PostgreSQL URL" in last_line, stderr
    assert "Traceback" not in stderr, stderr
    assert "s3cret" not in stderr, stderr


def test_an_unreachable_postgresql_stops_the_app_with_a_clear_message(tmp_path: Path) -> None:
    url = closed_port_url()
    stderr = run_app_expecting_failure(tmp_path, env={"ACCORD_CATALOG_URL": url})
    assert stderr.startswith("Accord did not start: the PostgreSQL database 'accord'"), stderr
    assert "cannot be reached" in stderr, stderr
    assert "Traceback" not in stderr, stderr
    assert "s3cret" not in stderr, stderr


def test_two_hosts_share_the_catalog_on_postgresql(
    tmp_path: Path, spawn: Spawner, new_catalog_url: Callable[[], str]
) -> None:
    """Two apps with data folders of their own (two hosts) on one PostgreSQL catalog."""
    env = {"ACCORD_CATALOG_URL": new_catalog_url()}
    hosts = []
    for name in ("lisbon", "porto"):
        port = free_port()
        args = ("--port", str(port), "--data-dir", str(tmp_path / name))
        hosts.append((spawn.app(*args, env=env, name=name), f"http://127.0.0.1:{port}", name))
    for process, url, name in hosts:
        wait_until_serving(process, url, tmp_path / name)
    created = []
    with httpx.Client(trust_env=False, timeout=10.0) as http:
        for i in range(3):
            for _, url, name in hosts:
                response = http.post(f"{url}/api/servers", json={"name": f"{name} {i}"})
                assert response.status_code == 201, response.text
                created.append(response.json())
        server_id = created[0]["id"]
        channel = http.post(
            f"{hosts[1][1]}/api/servers/{server_id}/channels", json={"name": "general"}
        ).json()
        for _, url, _ in hosts:
            # Each host lists what both created, oldest first.
            assert http.get(f"{url}/api/servers").json() == created
            assert http.get(f"{url}/api/servers/{server_id}/channels").json() == [channel]
    for process, _, name in hosts:
        assert stop_with_sigterm(process) in {0, -signal.SIGTERM}
        assert "catalog in the PostgreSQL database 'accord'" in read_logs(tmp_path / name)
        assert "Traceback" not in read_logs(tmp_path / name)
        assert not (tmp_path / name / "catalog.sqlite3").exists()


# --- PostgreSQL's connections, kept between calls -------------------------------------------


def backend_pid(catalog: Catalog) -> int:
    with catalog.connection() as conn:
        (pid,) = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert isinstance(pid, int)
    return pid


def test_postgresql_connections_are_kept_between_calls(new_catalog_url: Callable[[], str]) -> None:
    catalog = Catalog(new_catalog_url())
    catalog.migrate()
    first = backend_pid(catalog)
    catalog.create_server("Python Lisbon")
    assert backend_pid(catalog) == first
    with catalog.connection() as one, catalog.connection() as two:
        assert one is not two  # each call has a connection of its own
    catalog.close()
    assert backend_pid(catalog) != first


def test_a_kept_connection_whose_server_process_died_is_replaced(
    new_catalog_url: Callable[[], str],
) -> None:
    catalog = Catalog(new_catalog_url())
    catalog.migrate()
    server = catalog.create_server("Python Lisbon")
    with Catalog(catalog.location).connection() as other:
        # What a restart of PostgreSQL does to every connection.
        other.execute("SELECT pg_terminate_backend(?)", (backend_pid(catalog),))
    assert catalog.list_servers() == [server]


def test_a_connection_left_in_a_transaction_is_not_kept(
    new_catalog_url: Callable[[], str],
) -> None:
    catalog = Catalog(new_catalog_url())
    catalog.migrate()
    with catalog.connection() as conn:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO servers (id, name) VALUES ('s', 'never committed')")
    with catalog.connection() as conn:
        assert not conn.in_transaction
    assert catalog.list_servers() == []
