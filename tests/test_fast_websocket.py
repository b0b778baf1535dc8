"""What the fast WebSocket path promises beyond the chat suites (which run on both paths):
a burst to one socket leaves in fewer writes than frames, counted by the kernel; keepalive
pings drop a peer that went silent; uvicorn's shutdown closes sockets politely; fragmented
messages arrive whole. Real servers on loopback, each test on both paths for comparison."""

import base64
import inspect
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from uvicorn.config import Config
from uvicorn.protocols.http import h11_impl, httptools_impl
from uvicorn.server import Server, ServerState
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from accord_app import Settings, create_app
from accord_app.app import uvicorn_options
from accord_app.lab.server import BackgroundServer
from accord_app.lab.write_counts import frames_until, replay_writes
from accord_app.settings import WebSocketPath
from accord_app.web import fast_websocket
from accord_app.web.fast_websocket import FrameCache

PATHS = list(WebSocketPath)
BURST = 200  # frames sent to one socket in one turn of its actor
TIMEOUT = 10.0
PRIVATE_MEMBERS = ["parser_exc", "close_rcvd", "close_sent", "_value2member_map_"]


def channel_path(http: httpx.Client) -> str:
    server_id = http.post("/api/servers", json={"name": "Burst"}).json()["id"]
    channel = http.post(f"/api/servers/{server_id}/channels", json={"name": "general"})
    return f"/api/servers/{server_id}/channels/{channel.json()['id']}"


@pytest.mark.parametrize("path", PATHS)
def test_a_burst_to_one_socket_leaves_in_fewer_writes_than_frames(
    tmp_path: Path, path: WebSocketPath
) -> None:
    burst = replay_writes(path.value, BURST, tmp_path)  # the kernel's count, in its process
    assert burst.frames == BURST + 2  # presence, the messages, resumed
    if path is WebSocketPath.FAST:
        # The upgrade's answer, the burst in one write or a few, a log line or two.
        assert burst.writes < BURST / 10, burst
    else:
        assert burst.writes >= BURST, f"the ASGI path writes each frame: {burst}"


@pytest.fixture(params=PATHS)
def pinging_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The app with keepalive pings every 0.2 s, unanswered ones dropped after 0.3 s."""
    settings = Settings(data_dir=tmp_path, websocket=request.param)
    options = uvicorn_options(settings) | {"ws_ping_interval": 0.2, "ws_ping_timeout": 0.3}
    with BackgroundServer(create_app(settings), **options) as server:
        with httpx.Client(base_url=server.url, trust_env=False) as http:
            path = channel_path(http)
        yield f"{server.ws_url}{path}/connect"


def silent_member(url: str, username: str) -> socket.socket:
    """A member that completes the upgrade, then never reads again: no pong ever comes back."""
    host_port, _, path = url.removeprefix("ws://").partition("/")
    host, port = host_port.split(":")
    sock = socket.create_connection((host, int(port)), timeout=TIMEOUT)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /{path}?username={username} HTTP/1.1\r\nHost: {host_port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return sock


def test_keepalive_drops_a_silent_peer_and_keeps_one_that_answers(pinging_server: str) -> None:
    with connect(f"{pinging_server}?username=ada") as ada:  # answers pings by itself
        frames_until(ada, "presence")
        silent = silent_member(pinging_server, "bob")
        try:
            assert "bob" in frames_until(ada, "presence_diff")[-1]["joins"]
            started = time.monotonic()
            assert frames_until(ada, "presence_diff")[-1]["leaves"] == ["bob"]
            assert time.monotonic() - started < 3.0
            time.sleep(1.0)  # five more pings for ada, all answered
            ada.send(json.dumps({"type": "message", "message": "still here"}))
            assert frames_until(ada, "ack")[-1]["message"] == "still here"
        finally:
            silent.close()


def serve_a_channel(tmp_path: Path, path: WebSocketPath) -> tuple[BackgroundServer, str]:
    """The app on `path`, started (the test stops it), and the WebSocket URL of a new channel."""
    settings = Settings(data_dir=tmp_path, websocket=path)
    server = BackgroundServer(create_app(settings), **uvicorn_options(settings)).start()
    with httpx.Client(base_url=server.url, trust_env=False) as http:
        return server, f"{server.ws_url}{channel_path(http)}/connect"


@pytest.mark.parametrize("path", PATHS)
def test_shutdown_closes_each_socket_with_1012_and_does_not_wait_for_it(
    tmp_path: Path, path: WebSocketPath
) -> None:
    server, url = serve_a_channel(tmp_path, path)
    with connect(f"{url}?username=ada") as ada:
        frames_until(ada, "presence")
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 3.0
        with pytest.raises(ConnectionClosed) as closed:
            ada.recv(timeout=TIMEOUT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012


@pytest.mark.parametrize("path", PATHS)
def test_shutdown_does_not_wait_for_a_peer_that_never_answers(
    tmp_path: Path, path: WebSocketPath
) -> None:
    server, url = serve_a_channel(tmp_path, path)
    silent = silent_member(url, "bob")
    try:
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 2.0
    finally:
        silent.close()


@pytest.mark.parametrize("path", PATHS)
def test_a_fragmented_message_arrives_whole(tmp_path: Path, path: WebSocketPath) -> None:
    settings = Settings(data_dir=tmp_path, websocket=path)
    with (
        BackgroundServer(create_app(settings), **uvicorn_options(settings)) as server,
        httpx.Client(base_url=server.url, trust_env=False) as http,
    ):
        channel = channel_path(http)
        with connect(f"{server.ws_url}{channel}/connect?username=ada") as ada:
            frames_until(ada, "presence")
            ada.send(['{"type": "message", ', '"message": "in ', 'three parts"}'])
            assert frames_until(ada, "ack")[-1]["message"] == "in three parts"


def test_a_text_sent_to_many_sockets_is_encoded_once() -> None:
    cache = FrameCache()
    text = json.dumps({"type": "message", "message": "é" * 200})
    first = cache.text_frame(text)
    assert cache.text_frame(text) is first  # the same str object: the same bytes object
    assert first[:2] == bytes([0x81, 126]) and first[4:] == text.encode()  # FIN+text, 16-bit len
    equal_but_not_the_same = "".join(list(text))
    again = cache.text_frame(equal_but_not_the_same)
    assert again == first and again is not first


def test_the_fast_path_uses_only_public_websockets_api() -> None:
    """websockets' undocumented members (and the stdlib's private maps) may change in any
    release: the fast path reads the public close_code, close_reason and close_exc."""
    source = Path(fast_websocket.__file__).read_text()
    private = [name for name in PRIVATE_MEMBERS if name in source]
    assert private == [], f"accord_app/web/fast_websocket.py uses private members: {private}"


def test_the_uvicorn_hooks_the_fast_path_relies_on_are_still_there() -> None:
    """These are not uvicorn's public API: if an upgrade changes one, fail here, loudly, and
    not as sockets that hang. Checked: how the HTTP protocols build the `ws=` protocol and
    hand it the connection, what Config and ServerState hold, and that a graceful shutdown
    calls shutdown() on each connection."""
    for module in (h11_impl, httptools_impl):
        source = inspect.getsource(module)
        built = re.search(
            r"self\.ws_protocol_class\(\s*(?:#[^\n]*)?\s*config=self\.config,\s*"
            r"server_state=self\.server_state,\s*app_state=self\.app_state,\s*\)\s*"
            r"protocol\.connection_made\(self\.transport\)\s*protocol\.data_received\(",
            source,
        )
        assert built, f"{module.__name__} builds its ws= protocol differently now"
    shutdown = inspect.getsource(Server.shutdown)
    assert re.search(
        r"for connection in list\(self\.server_state\.connections\):\s*connection\.shutdown\(\)",
        shutdown,
    ), "uvicorn's shutdown no longer calls shutdown() on each connection"
    state = ServerState()
    assert isinstance(state.connections, set) and isinstance(state.tasks, set)
    assert isinstance(state.default_headers, list)
    config = Config(app="accord_app.app:app")
    for name in ("ws_max_size", "ws_max_queue", "ws_ping_interval", "ws_ping_timeout"):
        assert hasattr(config, name), f"uvicorn's Config has no {name} any more"
    assert isinstance(config.root_path, str)
    assert "loaded_app" in inspect.getsource(Config.load)
