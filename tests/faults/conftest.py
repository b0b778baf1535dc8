"""Fixtures for the fault tests: the app on loopback with chosen settings. The disks that fill
up or turn read-only come from tests/conftest.py."""

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from fault_tools import GENEROUS

from accord_app import Settings, create_app
from accord_app.app import uvicorn_options
from accord_app.lab.server import BackgroundServer
from accord_app.settings import WebSocketPath


class Running:
    """One app on loopback, with a client, a WebSocket URL helper and what it logged."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.server = BackgroundServer(self.app, **uvicorn_options(settings)).start()
        self.http = httpx.Client(base_url=self.server.url, timeout=10, trust_env=False)

    def channel(self, name: str = "general") -> str:
        server = self.http.post("/api/servers", json={"name": f"Server of {name}"})
        server_id = server.json()["id"]
        channel = self.http.post(f"/api/servers/{server_id}/channels", json={"name": name})
        return f"/api/servers/{server_id}/channels/{channel.json()['id']}"

    def ws_url(self, path: str, username: str = "ada") -> str:
        return f"{self.server.ws_url}{path}/connect?username={username}"

    def close(self) -> None:
        self.http.close()
        self.server.stop()


@pytest.fixture(params=[path.value for path in WebSocketPath])
def start(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """start(**settings) -> a Running app on a fresh data folder (or the one given), on each
    WebSocket path."""
    started: list[Running] = []
    path = WebSocketPath(request.param)

    def make(**overrides: Any) -> Running:
        folder = tmp_path / f"data{len(started)}"
        base = Settings(data_dir=folder, chat_limits=GENEROUS, websocket=path)
        running = Running(replace(base, **overrides))
        started.append(running)
        return running

    yield make
    for running in started:
        running.close()
