"""The catalog on a PostgreSQL server that stops answering (SIGSTOP: frozen, its sockets still
open): each request gets a 503 within the catalog's deadlines, never a hang, and `GET /api`
answers at once meanwhile. Then the server thaws and the same app serves again. The run's own
PostgreSQL is frozen for a few seconds, and thawed whatever happens."""

import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from accord_app import Settings, create_app
from accord_app.app import uvicorn_options
from accord_app.catalog.dialects import CONNECT_TIMEOUT_SECONDS, STATEMENT_TIMEOUT_SECONDS
from accord_app.catalog.pgserver import PostgresServer
from accord_app.catalog.store import POOL_TIMEOUT_SECONDS
from accord_app.lab.server import BackgroundServer

# The longest a catalog call may take: a wait for a connection, then a kept connection's check
# or a new one, then one statement.
DEADLINE = POOL_TIMEOUT_SECONDS + max(CONNECT_TIMEOUT_SECONDS, STATEMENT_TIMEOUT_SECONDS) * 2
# More requests at once than the web server has threads for sync endpoints (40).
CONCURRENT = 60


def server_processes(server: PostgresServer) -> list[int]:
    """The postmaster and every process it started (the sessions' backends among them)."""
    postmaster = int((server.pgdata / "postmaster.pid").read_text().split()[0])
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == postmaster:
                children.append(int(entry.name))
    return [postmaster, *children]


def freeze(server: PostgresServer) -> None:
    for pid in server_processes(server):
        os.kill(pid, signal.SIGSTOP)


def thaw(server: PostgresServer) -> None:
    for pid in server_processes(server):
        os.kill(pid, signal.SIGCONT)


def test_a_frozen_catalog_answers_503_in_time_and_api_never_waits(
    postgres: PostgresServer, new_catalog_url: Callable[[], str], tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, catalog_url=new_catalog_url())
    with (
        BackgroundServer(create_app(settings), **uvicorn_options(settings)) as server,
        httpx.Client(base_url=server.url, timeout=30, trust_env=False) as http,
        ThreadPoolExecutor(CONCURRENT) as pool,
    ):
        # Connections kept open between calls, then frozen under them.
        list(pool.map(lambda _: http.get("/api/servers").raise_for_status(), range(20)))
        freeze(postgres)
        try:

            def timed(_: int) -> tuple[float, httpx.Response]:
                started = time.monotonic()
                response = http.get("/api/servers")
                return time.monotonic() - started, response

            pending = [pool.submit(timed, n) for n in range(CONCURRENT - 1)]
            time.sleep(0.5)  # they are all waiting on the catalog now
            started = time.monotonic()
            assert http.get("/api").status_code == 200
            api_seconds = time.monotonic() - started
            answers = [future.result() for future in pending]
        finally:
            thaw(postgres)
        assert api_seconds < 0.5, api_seconds
        slowest = max(seconds for seconds, _ in answers)
        assert slowest < DEADLINE + 1, slowest
        for _, response in answers:
            assert response.status_code == 503, response.text
            assert response.json()["code"] == "storage_unavailable"
        assert http.get("/api/servers").status_code == 200  # thawed: served again
