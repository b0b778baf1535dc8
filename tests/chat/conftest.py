"""Fixtures for the channel tests: the real app behind uvicorn on 127.0.0.1, in every sharding
mode, and small helpers to talk to it with the `websockets` client and httpx.

Every fixture that starts a server is parametrized over the three sharding modes and the two
WebSocket paths (fast and ASGI), so each test that uses one runs six times.
"""

import asyncio
import json
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect

from accord_app import Settings, create_app
from accord_app.actors.runtime import ActorInfo
from accord_app.app import uvicorn_options
from accord_app.chat.ratelimit import ChatLimits
from accord_app.chat.sharding import Sharding
from accord_app.lab.loadtest import ADMIN_HEADERS, LAB_ADMIN_TOKEN
from accord_app.lab.server import BackgroundServer
from accord_app.settings import WebSocketPath

MODES = [mode.value for mode in Sharding]
# Each sharding mode on each WebSocket path: "channel-fast", "channel-asgi", ...
SERVERS = [f"{mode}-{path.value}" for path in WebSocketPath for mode in MODES]
# Limits no test reaches unless it means to.
NO_LIMITS = ChatLimits(
    messages_per_second=100_000,
    burst=100_000,
    client_messages_per_second=100_000,
    client_burst=100_000,
    client_connections=100_000,
    client_connects_per_second=100_000,
    client_connect_burst=100_000,
)
RECV_TIMEOUT = 5.0  # seconds a test waits for one frame before it counts as lost
HTTP_TIMEOUT = 10.0


@dataclass(frozen=True)
class ChannelRef:
    server_id: str
    channel_id: str

    @property
    def path(self) -> str:
        return f"/api/servers/{self.server_id}/channels/{self.channel_id}"


@dataclass
class Chat:
    """The app served on loopback, with a sync HTTP client (its server runs in another thread,
    so calling it from an async test only blocks the test's loop for a moment)."""

    server: BackgroundServer
    app: FastAPI
    http: httpx.Client
    mode: str

    def create_server(self, name: str = "Workshop") -> str:
        response = self.http.post("/api/servers", json={"name": name})
        assert response.status_code == 201, response.text
        server_id: str = response.json()["id"]
        return server_id

    def create_channel(self, server_id: str | None = None, name: str = "general") -> ChannelRef:
        server_id = server_id or self.create_server()
        response = self.http.post(f"/api/servers/{server_id}/channels", json={"name": name})
        assert response.status_code == 201, response.text
        return ChannelRef(server_id, response.json()["id"])

    @staticmethod
    def ref(server_id: str, channel_id: str) -> ChannelRef:
        return ChannelRef(server_id, channel_id)

    def history(self, channel: ChannelRef, **params: Any) -> list[dict[str, Any]]:
        response = self.http.get(f"{channel.path}/messages", params=params)
        assert response.status_code == 200, response.text
        rows: list[dict[str, Any]] = response.json()
        return rows

    def ws_uri(self, channel: ChannelRef, username: str | None, **params: Any) -> str:
        query = {"username": username} if username is not None else {}
        query.update({key: str(value) for key, value in params.items()})
        return f"{self.server.ws_url}{channel.path}/connect?{urlencode(query)}"

    def connect(self, channel: ChannelRef, username: str | None, **params: Any) -> connect:
        return Wire.connect(self.ws_uri(channel, username, **params))

    def live_count(self) -> int:
        return retry_on_race(lambda: self.app.state.channels.live_count)

    def actors(self) -> list[ActorInfo]:
        return retry_on_race(self.app.state.channels.list_actors)

    async def wait_hibernated(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self.live_count() != 0:
            assert time.monotonic() < deadline, f"{self.live_count()} actors still live"
            await asyncio.sleep(0.02)


def retry_on_race(read: Callable[[], Any]) -> Any:
    """Read the runtime's dicts from the test thread; the server thread may change them
    under us ("dictionary changed size during iteration"), so try again."""
    for _ in range(50):
        try:
            return read()
        except RuntimeError:
            time.sleep(0.001)
    return read()


# What each test socket knows of its channel's members, from the frames Wire.recv_json read.
_VIEWS: "weakref.WeakKeyDictionary[ClientConnection, set[str]]" = weakref.WeakKeyDictionary()


class Wire:
    """Client-side helpers for the channel socket, handed to tests by the `wire` fixture
    (test modules cannot import conftest reliably)."""

    RECV_TIMEOUT = RECV_TIMEOUT

    @staticmethod
    def connect(uri: str, **options: Any) -> connect:
        # No compression: frames on the wire are as large as the test wrote them; no env proxy.
        settings: dict[str, Any] = {"compression": None, "proxy": None, "open_timeout": 5}
        return connect(uri, **(settings | options))

    @staticmethod
    async def recv_json(ws: ClientConnection, timeout: float = RECV_TIMEOUT) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            data = await ws.recv()
        assert isinstance(data, str), f"expected a text frame, got {data!r}"
        frame: dict[str, Any] = json.loads(data)
        if frame["type"] == "presence":
            _VIEWS[ws] = set(frame["members"])
        elif frame["type"] == "presence_diff":
            view = _VIEWS.setdefault(ws, set())
            view.update(frame["joins"])
            view.difference_update(frame["leaves"])
        return frame

    @staticmethod
    async def recv_frames(
        ws: ClientConnection, count: int, timeout: float = RECV_TIMEOUT
    ) -> list[dict[str, Any]]:
        return [await Wire.recv_json(ws, timeout) for _ in range(count)]

    @staticmethod
    async def members(ws: ClientConnection, *names: str) -> None:
        """Read presence frames (the list, then presence_diff frames) until `ws` sees exactly
        `names` present. Any other frame fails."""
        while _VIEWS.get(ws) != set(names):
            frame = await Wire.recv_json(ws)
            assert frame["type"] in ("presence", "presence_diff"), frame

    @staticmethod
    async def send_and_confirm(
        ws: ClientConnection, text: str | bytes, timeout: float = RECV_TIMEOUT
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Send a message and return its (ack, message) frames, which must be the next two."""
        await ws.send(text)
        frames = await Wire.recv_frames(ws, 2, timeout)
        by_type = {frame["type"]: frame for frame in frames}
        assert sorted(by_type) == ["ack", "message"], frames
        return by_type["ack"], by_type["message"]


@pytest.fixture
def wire() -> type[Wire]:
    return Wire


@dataclass
class ServerFactory:
    tmp_path: Path

    def __call__(self, variant: str, **settings: Any) -> Iterator[Chat]:
        """`variant` is one of SERVERS: a sharding mode and a WebSocket path."""
        mode, path = variant.split("-")
        settings = {"chat_limits": NO_LIMITS, "admin_token": LAB_ADMIN_TOKEN} | settings
        chosen = Settings(
            data_dir=self.tmp_path / f"data-{variant}",
            sharding=Sharding(mode),
            websocket=WebSocketPath(path),
            **settings,
        )
        app = create_app(chosen)
        with (
            BackgroundServer(app, **uvicorn_options(chosen)) as server,
            httpx.Client(
                base_url=server.url, headers=ADMIN_HEADERS, timeout=HTTP_TIMEOUT, trust_env=False
            ) as http,
        ):
            yield Chat(server=server, app=app, http=http, mode=mode)


@pytest.fixture(scope="module", params=SERVERS)
def chat(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Chat]:
    """The app on loopback with limits no test reaches, in each sharding mode. Shared by a
    module's tests (each test makes its own channels): a server per test costs ~0.3 s."""
    yield from ServerFactory(tmp_path_factory.mktemp("chat"))(request.param)


@pytest.fixture(params=[path.value for path in WebSocketPath])
def channel_chat(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Chat]:
    """One actor per channel, on each WebSocket path: for tests whose subject is one channel."""
    yield from ServerFactory(tmp_path)(f"channel-{request.param}")


@pytest.fixture(params=SERVERS)
def rate_limited_chat(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Chat]:
    """One message a second per connection, bursts of three."""
    limits = ChatLimits(messages_per_second=1, burst=3)
    yield from ServerFactory(tmp_path)(request.param, chat_limits=limits)


@pytest.fixture(params=SERVERS)
def sleepy_chat(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Chat]:
    """Actors hibernate after 0.2 s without work."""
    yield from ServerFactory(tmp_path)(request.param, idle_timeout=0.2)


@pytest.fixture
def chat_without_admin_token(tmp_path: Path) -> Iterator[Chat]:
    """A server started without ACCORD_ADMIN_TOKEN (one variant: the refusal is HTTP's)."""
    yield from ServerFactory(tmp_path)("channel-fast", admin_token=None)
