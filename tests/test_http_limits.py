"""What one HTTP connection may make the server hold (accord_app/web/middleware.py's LimitedHttp):
header size and count, header and body deadlines, open connections per address, the Host
header. Raw sockets against uvicorn on loopback, so nothing but the server decides."""

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from accord_app import Settings, create_app
from accord_app.app import uvicorn_options
from accord_app.chat.ratelimit import ChatLimits
from accord_app.lab.server import BackgroundServer
from accord_app.settings import WebSocketPath
from accord_app.web.middleware import (
    CAP_PENALTY_SECONDS,
    MAX_HEADER_BYTES,
    HttpLimits,
    http_protocol,
)

# Short deadlines and a small cap, so each test takes a fraction of a second.
QUICK = HttpLimits(header_timeout=0.5, body_timeout=0.5, connections_per_address=4)


def serve(tmp_path: Path, limits: HttpLimits | None = None, **settings: object) -> BackgroundServer:
    chosen = replace(Settings(data_dir=tmp_path), **settings)  # type: ignore[arg-type]
    options = uvicorn_options(chosen)
    if limits is not None:
        options["http"] = http_protocol(replace(limits, allowed_hosts=frozenset({"accord.test"})))
    return BackgroundServer(create_app(chosen), **options)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[BackgroundServer]:
    with serve(tmp_path, QUICK) as running:
        yield running


def connect(server: BackgroundServer, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(
        ("127.0.0.1", server.port), timeout=5, source_address=(source, 0)
    )
    return sock


def answer(sock: socket.socket, data: bytes = b"") -> tuple[int, dict[str, str]]:
    """Status and JSON body of the one answer on `sock` (of which `data` was read already),
    read until the server closes it."""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def request(path: str = "/api", host: str = "127.0.0.1", extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n".encode()


def test_a_header_larger_than_the_cap_is_refused_with_431(tmp_path: Path) -> None:
    with serve(tmp_path) as server, connect(server) as sock:  # the default limits
        sock.sendall(request(extra=f"X-Big: {'a' * (4 * MAX_HEADER_BYTES)}\r\n"))
        status, body = answer(sock)
    assert (status, body["code"]) == (431, "headers_too_large")


def test_too_many_headers_are_refused_with_431(server: BackgroundServer) -> None:
    with connect(server) as sock:
        sock.sendall(request(extra="".join(f"X-H{n}: 1\r\n" for n in range(200))))
        status, body = answer(sock)
    assert (status, body["code"]) == (431, "too_many_headers")


def test_headers_that_never_end_are_cut_off_with_408(server: BackgroundServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /api HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        status, body = answer(sock)
    assert (status, body["code"]) == (408, "request_timeout")
    assert time.monotonic() - started < 3


def test_a_silent_connection_is_cut_off(server: BackgroundServer) -> None:
    with connect(server) as sock:
        status, _ = answer(sock)
    assert status == 408


def test_a_body_shorter_than_its_length_is_cut_off_with_408(server: BackgroundServer) -> None:
    with connect(server) as sock:
        sock.sendall(
            b"POST /api/servers HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"name":'
        )
        status, body = answer(sock)
    assert (status, body["code"]) == (408, "request_timeout")


def test_open_connections_are_capped_per_address(server: BackgroundServer) -> None:
    held = [connect(server) for _ in range(QUICK.connections_per_address)]
    try:
        time.sleep(0.1)  # the server has accepted them all
        with connect(server) as sock:
            data = sock.recv(65536)
            status, body = answer(sock, data)
        assert (status, body["code"]) == (429, "too_many_connections")
        assert f"retry-after: {CAP_PENALTY_SECONDS}\r\n".encode() in data
        refused_at = time.monotonic()
        # Until its Retry-After, the address's next attempts wait in the penalty box, unread,
        # instead of each costing an answer; another address is not affected.
        with connect(server) as waiting, connect(server, source="127.0.0.2") as other:
            waiting.sendall(request())
            other.sendall(request())
            assert answer(other)[0] == 200
            waiting.settimeout(0.3)
            with pytest.raises(TimeoutError):
                waiting.recv(1)
            for sock in held:  # the cap has room again by the time the box opens
                sock.close()
            waiting.settimeout(5)
            assert answer(waiting)[0] == 200
        assert time.monotonic() - refused_at >= CAP_PENALTY_SECONDS - 0.05
    finally:
        for sock in held:
            sock.close()
    with connect(server) as sock:  # closed ones count no more
        sock.sendall(request())
        assert answer(sock)[0] == 200


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost:8787", "[::1]:1", "accord.test"])
def test_loopback_and_listed_hosts_are_answered(server: BackgroundServer, host: str) -> None:
    with connect(server) as sock:
        sock.sendall(request(host=host))
        assert answer(sock)[0] == 200


@pytest.mark.parametrize("host", ["rebound.example:8787", "localhost.evil", "a b", "x:y"])
def test_other_hosts_are_refused_so_dns_rebinding_fails(
    server: BackgroundServer, host: str
) -> None:
    with connect(server) as sock:
        sock.sendall(request(host=host))
        status, body = answer(sock)
    assert (status, body["code"]) == (421, "host_not_allowed")


def test_a_rebound_websocket_upgrade_is_refused(server: BackgroundServer) -> None:
    with connect(server) as sock:
        sock.sendall(
            b"GET /api/servers/x/channels/y/connect HTTP/1.1\r\nHost: rebound.example:8787\r\n"
            b"Origin: http://rebound.example:8787\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        assert answer(sock)[0] == 421


def test_malformed_http_gets_the_json_error_shape(server: BackgroundServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /api HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n")
        status, body = answer(sock)
    assert (status, body["code"]) == (400, "bad_request")


@pytest.mark.parametrize("path", list(WebSocketPath))
@pytest.mark.parametrize(
    ("headers", "status", "says"),
    [
        ("", 400, "Sec-WebSocket-Key"),  # no key at all
        ("Sec-WebSocket-Key: short\r\n", 400, "Sec-WebSocket-Key"),
        ("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", 400, "Sec-WebSocket-Version"),
    ],
)
def test_a_malformed_websocket_upgrade_gets_the_json_error_shape(
    tmp_path: Path, path: WebSocketPath, headers: str, status: int, says: str
) -> None:
    """The WebSocket protocols (the fast path's and uvicorn's) answer these themselves."""
    with serve(tmp_path, websocket=path) as running, connect(running) as sock:
        version = "8" if "==" in headers else "13"
        sock.sendall(
            b"GET /api/servers/x/channels/y/connect HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"{headers}Sec-WebSocket-Version: {version}\r\n\r\n".encode()
        )
        answered, body = answer(sock)
    assert (answered, body["code"]) == (status, "invalid_websocket_handshake")
    assert says in body["message"]


@pytest.mark.anyio
async def test_a_lone_server_does_not_believe_x_forwarded_for(tmp_path: Path) -> None:
    limits = replace(ChatLimits(), client_connections=1)
    with serve(tmp_path, chat_limits=limits) as server, httpx.Client(base_url=server.url) as http:
        server_id = http.post("/api/servers", json={"name": "Workshop"}).json()["id"]
        created = http.post(f"/api/servers/{server_id}/channels", json={"name": "general"})
        url = f"{server.ws_url}/api/servers/{server_id}/channels/{created.json()['id']}/connect"
        async with ws_connect(f"{url}?username=ada", proxy=None):
            forged = {"X-Forwarded-For": "10.9.9.9"}
            with pytest.raises(InvalidStatus) as refused:
                async with ws_connect(f"{url}?username=bob", additional_headers=forged, proxy=None):
                    pass
    assert refused.value.response.status_code == 429
