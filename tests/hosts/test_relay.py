"""The delay relay adds its delay each way, keeps every byte in order and passes a close on.
On loopback, against an echo server: no namespaces needed."""

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest
from delay_relay import DelayRelay

DELAY = 0.05


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo) as server:
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server.server_address[:2]
        finally:
            server.shutdown()
            thread.join()


def dial(address: str) -> socket.socket:
    host, port = address.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=5)


def round_trip(connection: socket.socket) -> float:
    started = time.perf_counter()
    connection.sendall(b"ping")
    assert connection.recv(16) == b"ping"
    return time.perf_counter() - started


def test_a_round_trip_takes_the_delay_twice_and_only_through_the_relay(
    echo: tuple[str, int],
) -> None:
    with (
        DelayRelay(("127.0.0.1", 0), echo, delay=DELAY) as relay,
        dial(relay.address) as relayed,
        dial(f"{echo[0]}:{echo[1]}") as direct,
    ):
        slow = sorted(round_trip(relayed) for _ in range(5))
        fast = sorted(round_trip(direct) for _ in range(5))
    assert 2 * DELAY <= slow[0] < 2 * DELAY + 0.1, slow  # scheduling may add, never remove
    assert fast[-1] < DELAY, fast


def test_bytes_arrive_whole_and_in_order_and_a_close_is_passed_on(echo: tuple[str, int]) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB, more than one read
    with (
        DelayRelay(("127.0.0.1", 0), echo, delay=DELAY) as relay,
        dial(relay.address) as connection,
    ):
        sender = threading.Thread(target=connection.sendall, args=(payload,))
        sender.start()
        received = bytearray()
        while len(received) < len(payload):
            received += connection.recv(65536)
        sender.join()
        connection.shutdown(socket.SHUT_WR)  # the echo server sees it and closes: so must we
        assert connection.recv(16) == b""
    assert received == payload


def test_an_unreachable_target_closes_the_callers_connection(echo: tuple[str, int]) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        nobody = unused.getsockname()[:2]  # bound, never listening: connections are refused
        with DelayRelay(("127.0.0.1", 0), nobody, delay=DELAY) as relay, dial(relay.address) as c:
            assert c.recv(16) == b""
