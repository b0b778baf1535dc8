"""Every probe the chapters grade with passes the reference app, with nothing off.

The chapters run these probes against attendees' code; if one failed the finished app, an
attendee could never get it green. (The wrong answers they must catch are in
tests/test_checks_bite.py.)
"""

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from accord_app import Settings, create_app
from accord_app.app import uvicorn_options
from accord_app.chat.ratelimit import ChatLimits
from accord_app.chat.sharding import Sharding
from accord_app.lab import Report, serve
from accord_app.lab.chat_probes import probe_broadcast, probe_history, probe_presence, probe_resume
from accord_app.lab.probes import (
    probe_api_root,
    probe_channels,
    probe_servers,
    probe_shared_counter,
)
from accord_app.lab.server import BackgroundServer, stop_all

pytestmark = pytest.mark.anyio


def passed(report: Report) -> bool:
    assert report.outcomes, "the probe looked at nothing"
    return not report.failures


@pytest.fixture
def reference(tmp_path: Path) -> Iterator[BackgroundServer]:
    with BackgroundServer(create_app(Settings(data_dir=tmp_path))) as server:
        yield server


def test_the_http_probes_pass_the_reference_app(reference: BackgroundServer) -> None:
    report = Report("reference")
    with httpx.Client(base_url=reference.url) as client:
        probe_api_root(client, report)
        [server_id, _] = probe_servers(client, report)
        probe_channels(client, report, server_id)
    assert passed(report), report.render()


def counter_app(db_path: Path, statement: str) -> FastAPI:
    app = FastAPI()

    @app.post("/visit")
    def visit() -> dict[str, int]:
        with sqlite3.connect(db_path, timeout=10) as conn:
            *_, value = [row[0] for row in conn.execute(statement)]
        conn.close()
        return {"visits": value}

    return app


@pytest.mark.parametrize(
    ("statement", "right"),
    [
        ("UPDATE counter SET value = value + 1 RETURNING value", True),
        # A read, then a write computed from it (two statements in one): two visits can read
        # the same value.
        ("SELECT value FROM counter UNION ALL SELECT value + 1 FROM counter", False),
    ],
)
def test_the_shared_counter_probe_tells_one_statement_from_a_read_then_write(
    tmp_path: Path, statement: str, right: bool
) -> None:
    db_path = tmp_path / "counter.sqlite3"
    with sqlite3.connect(db_path) as conn:
        conn.execute("CREATE TABLE counter (value INTEGER NOT NULL)")
        conn.execute("INSERT INTO counter (value) VALUES (0)")
    conn.close()
    servers = [serve(counter_app(db_path, statement), f"counter-{n}") for n in range(2)]
    report = Report("counter")
    try:
        probe_shared_counter([server.url for server in servers], db_path, report)
    finally:
        stop_all()
    assert passed(report) is right, report.render()


@pytest.mark.parametrize("mode", list(Sharding))
async def test_the_channel_probes_pass_the_reference_app(tmp_path: Path, mode: Sharding) -> None:
    # Generous limits: the probes open many sockets from one address in a moment.
    limits = ChatLimits(client_connects_per_second=1000, client_connect_burst=1000)
    settings = Settings(data_dir=tmp_path / "data", sharding=mode, chat_limits=limits)

    def start() -> BackgroundServer:
        return serve(create_app(settings), "reference", **uvicorn_options(settings))

    report = Report(f"reference, sharding by {mode.value}")
    try:
        await probe_broadcast(start(), report, restart=start)
        server = start()
        await probe_history(server, report)
        await probe_resume(server, report)
        await probe_presence(server, report, lists_for_everyone=False)
    finally:
        stop_all()
    assert passed(report), report.render()
