"""Fixtures shared by every test: settings on a temporary data dir, the app in-process and
behind a real uvicorn on loopback, a PostgreSQL for the catalog, a headless Chromium for the
browser tests, and disks that fill up or turn read-only (root only: skipped with the reason
elsewhere, failed in CI).

Nothing here is autouse: a test gets only what it asks for.
"""

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from privileges import need_root
from psycopg import sql

from accord_app import Settings, create_app
from accord_app.catalog.pgserver import PostgresServer
from accord_app.lab.server import BackgroundServer
from accord_app.settings import WebSocketPath

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
# Seconds a single HTTP call from a test may take before it counts as hung.
HTTP_TIMEOUT = 10.0
# The chat, frontend and fault suites run on both WebSocket paths (ACCORD_WS).
WEBSOCKET_PATHS = [path.value for path in WebSocketPath]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def kernel_temp_folder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """TMPDIR for the Jupyter kernels this test starts, and the servers they start: each run of
    a chapter makes a fresh data folder there, which would pile up in /tmp run after run. Not
    under pytest's own folder, which keeps to root alone: run as root, chapter 08's PostgreSQL
    runs as a user of its own, who must pass through every folder above its data."""
    folder = Path(tempfile.mkdtemp(prefix="accord-kernels-"))
    folder.chmod(0o755)
    monkeypatch.setenv("TMPDIR", str(folder))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One kit-managed PostgreSQL for the whole run (it starts in about a second); each test
    that needs it takes a fresh catalog on it (see new_catalog_url)."""
    # Not under pytest's own temporary folder: run as root, the server's user must pass
    # through every folder above its data, and pytest keeps its folder to root alone.
    folder = Path(tempfile.mkdtemp(prefix="accord-tests-postgres-"))
    server = PostgresServer(folder)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def new_catalog_url(postgres: PostgresServer) -> Iterator[Callable[[], str]]:
    """new_catalog_url(): the URL of a fresh, empty catalog on the run's PostgreSQL, a schema
    of its own (made in a millisecond; a database of its own takes 100 ms, and its DROP forces
    a checkpoint). All are dropped at teardown."""
    schemas: list[str] = []
    admin = psycopg.connect(postgres.url, autocommit=True)

    def create() -> str:
        schemas.append(f"test_{uuid.uuid4().hex[:16]}")
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schemas[-1])))
        # Connections to this URL find and create tables in that schema alone.
        return f"{postgres.url}?options=-csearch_path%3D{schemas[-1]}"

    try:
        yield create
        for schema in schemas:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    finally:
        admin.close()


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings whose catalog lives in this test's own temporary folder; in a fresh PostgreSQL
    database instead for a test marked
    @pytest.mark.parametrize("settings", ["sqlite", "postgresql"], indirect=True)
    (and so for the fixtures built on this one: app, client, live_server...)."""
    catalog = getattr(request, "param", "sqlite")
    url = request.getfixturevalue("new_catalog_url")() if catalog == "postgresql" else None
    return Settings(host="127.0.0.1", port=0, data_dir=tmp_path / "data", catalog_url=url)


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An async client that calls the app in-process (no socket)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", timeout=HTTP_TIMEOUT
    ) as http:
        yield http


@dataclass(frozen=True)
class LiveServer:
    """The app served by uvicorn on 127.0.0.1, and a sync client pointed at it."""

    server: BackgroundServer
    http: httpx.Client

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port


@pytest.fixture
def live_server(app: FastAPI) -> Iterator[LiveServer]:
    """The app behind a real uvicorn on a free loopback port, stopped at teardown."""
    # trust_env=False: a proxy set in the environment must never see loopback traffic.
    with (
        BackgroundServer(app) as server,
        httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT, trust_env=False) as http,
    ):
        yield LiveServer(server=server, http=http)


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    """The system Chromium; skipped locally when missing, a failure on CI."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install it with `apt-get install -y chromium`"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture
def browser(chromium_path: Path) -> Iterator[Any]:
    """A headless Chromium driven by Playwright's sync API, closed at teardown."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(chromium_path), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


class SmallDisk:
    """A 4 MiB tmpfs: a disk that fills up."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fill(self) -> Path:
        """Fill it up; the file to delete to free it again."""
        filler = self.path / "filler"
        with filler.open("wb") as file:
            try:
                while True:
                    file.write(b"\0" * 65536)
                    file.flush()
            except OSError:
                pass
        return filler


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    need_root("mount a small tmpfs")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    try:
        yield SmallDisk(mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def remountable() -> Iterator[Callable[[Path], Callable[[bool], None]]]:
    """mount(folder): a small tmpfs on `folder`, and a function that makes it read-only (True)
    or writable again (False). Linux refuses to make a mount read-only while a file on it is
    open for writing, so the folder must be one whose files are closed by then."""
    need_root("mount and remount a tmpfs")
    mounted: list[Path] = []

    def mount(folder: Path) -> Callable[[bool], None]:
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)], check=True)
        mounted.append(folder)

        def read_only(on: bool) -> None:
            mode = "ro" if on else "rw"
            subprocess.run(["mount", "-o", f"remount,{mode}", str(folder)], check=True)

        return read_only

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)
