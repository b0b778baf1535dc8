"""Fixtures for the frontend's browser tests: the app behind a real uvicorn on loopback (which a
test can restart on the same port), a Python chat client, and pages whose every request is
checked to stay on the machine.

The `browser` fixture (a headless /usr/bin/chromium) comes from tests/conftest.py.
"""

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from accord_app import Settings, create_app
from accord_app.app import uvicorn_options
from accord_app.chat.ratelimit import ChatLimits
from accord_app.lab.server import BackgroundServer
from accord_app.settings import WebSocketPath

# Milliseconds Playwright waits for an element or a navigation before the test fails.
PAGE_TIMEOUT_MS = 10_000
# Seconds a Python client waits for one frame or one HTTP answer.
CLIENT_TIMEOUT = 10.0
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
VIEWPORT = {"width": 1280, "height": 800}


class Accord:
    """The app on 127.0.0.1, started and stopped by the test, with helpers that use its API."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.server = BackgroundServer(create_app(settings), **uvicorn_options(settings)).start()
        self.http = httpx.Client(base_url=self.url, timeout=CLIENT_TIMEOUT, trust_env=False)

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.stop()

    def start_again(self) -> None:
        """A new app on the same port and data dir, as after a deploy or a crash."""
        app = create_app(self.settings)
        options = uvicorn_options(self.settings)
        self.server = BackgroundServer(app, port=self.server.port, **options).start()

    def close(self) -> None:
        self.http.close()
        self.server.stop()

    def create(self, server_name: str, *channel_names: str) -> tuple[str, list[str]]:
        """A server and its channels, made through the API: (server_id, [channel_id, ...])."""
        response = self.http.post("/api/servers", json={"name": server_name})
        response.raise_for_status()
        server_id: str = response.json()["id"]
        channel_ids = []
        for name in channel_names:
            response = self.http.post(f"/api/servers/{server_id}/channels", json={"name": name})
            response.raise_for_status()
            channel_ids.append(response.json()["id"])
        return server_id, channel_ids

    def page_url(self, server_id: str, channel_id: str) -> str:
        return f"{self.url}/#/servers/{server_id}/channels/{channel_id}"

    @contextmanager
    def chat(self, server_id: str, channel_id: str, username: str) -> Iterator["ChatClient"]:
        """A Python member of the channel, for the length of a `with` block."""
        path = f"/api/servers/{server_id}/channels/{channel_id}/connect"
        query = urlencode({"username": username})
        with connect(f"{self.server.ws_url}{path}?{query}") as ws:
            yield ChatClient(ws)

    def post(self, server_id: str, channel_id: str, username: str, texts: list[str]) -> None:
        with self.chat(server_id, channel_id, username) as client:
            for text in texts:
                client.send(text)


class ChatClient:
    """A Python member of a channel, speaking the same protocol as the page."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = [self.receive()]  # the "presence" frame

    def receive(self) -> dict[str, Any]:
        frame: dict[str, Any] = json.loads(self.ws.recv(timeout=CLIENT_TIMEOUT))
        return frame

    def send(self, text: str) -> dict[str, Any]:
        """Send a message and wait for its ack (frames seen meanwhile are kept)."""
        nonce = uuid.uuid4().hex
        self.ws.send(json.dumps({"type": "message", "message": text, "nonce": nonce}))
        while True:
            frame = self.receive()
            self.frames.append(frame)
            if frame["type"] == "ack" and frame.get("nonce") == nonce:
                return frame
            assert frame["type"] != "error", frame

    def typing(self) -> None:
        self.ws.send(json.dumps({"type": "typing"}))


@pytest.fixture(params=[path.value for path in WebSocketPath])
def make_accord(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """make_accord(**settings) starts the app, on each WebSocket path; each one is stopped at
    teardown."""
    started: list[Accord] = []
    path = WebSocketPath(request.param)

    def make(**overrides: Any) -> Accord:
        folder = tmp_path / f"data{len(started)}"
        settings = replace(Settings(data_dir=folder, websocket=path), **overrides)
        accord = Accord(settings)
        started.append(accord)
        return accord

    yield make
    for accord in started:
        accord.close()


@pytest.fixture
def accord(make_accord: Any) -> Accord:
    # Generous limits: a test that posts a few messages quickly is not testing the rate limit.
    return make_accord(
        chat_limits=ChatLimits(
            messages_per_second=100, burst=100, client_messages_per_second=400, client_burst=400
        )
    )


class Gatekeeper:
    """Routes every request of a browser context: loopback passes, the rest is aborted."""

    def __init__(self) -> None:
        self.allowed: list[str] = []
        self.blocked: list[str] = []

    def __call__(self, route: Any) -> None:
        url: str = route.request.url
        if urlsplit(url).hostname in LOCAL_HOSTS:
            self.allowed.append(url)
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()


class Pages:
    """Opens pages, each in its own browser context (its own localStorage: its own user), and
    records what must never happen: a request off the machine, a script error, a JS dialog."""

    def __init__(self, browser: Any) -> None:
        self.browser = browser
        self.contexts: list[Any] = []
        self.gate = Gatekeeper()
        self.errors: list[str] = []
        self.dialogs: list[str] = []

    def open(self, url: str, username: str | None = None) -> Any:
        """A page at `url`; with `username`, as a returning visitor who already chose it."""
        context = self.browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        context.route("**/*", self.gate)
        if username is not None:
            context.add_init_script(
                f"localStorage.setItem('accord.username', {json.dumps(username)})"
            )
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("dialog", self._on_dialog)
        page.goto(url)
        return page

    def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def assert_clean(self) -> None:
        assert self.gate.blocked == [], "the page asked for something off the machine"
        assert self.errors == [], "the page had uncaught errors"
        assert self.dialogs == [], "the page opened a JavaScript dialog"

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def pages(browser: Any) -> Iterator[Pages]:
    opened = Pages(browser)
    yield opened
    opened.close()
