"""The delay relay adds its delay each way, keeps every byte in order and passes a close on
(on loopback, against an echo server); on the path from the proxy to one host, it slows that
host's channels and no other's."""

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest
from cluster_client import Running
from host_tools import LINK_DELAY

from accord_app.lab.relay import DelayRelay

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


def test_a_trickle_sends_the_reply_a_byte_at_a_time(echo: tuple[str, int]) -> None:
    trickle = 0.02
    with (
        DelayRelay(("127.0.0.1", 0), echo, delay=0.0, trickle=trickle) as relay,
        dial(relay.address) as connection,
    ):
        started = time.perf_counter()
        connection.sendall(b"0123456789")
        received = bytearray()
        while len(received) < 10:
            received += connection.recv(16)
        took = time.perf_counter() - started
    assert received == b"0123456789"
    assert took >= 9 * trickle, took  # ten bytes, nine gaps at least: scheduling only adds


def fastest_seconds(running: Running, path: str, times: int = 5) -> float:
    """The quickest of a few answers: scheduling on busy cores only ever adds, like the relay,
    so the fastest one shows whether the relay was on the path."""
    took = []
    for _ in range(times):
        started = time.perf_counter()
        assert running.http.get(path).status_code == 200
        took.append(time.perf_counter() - started)
    return min(took)


def test_a_relay_on_the_path_to_one_host_slows_its_channels_and_no_others(
    slow_host_2: Running,
) -> None:
    by_host = slow_host_2.channels_on_every_worker()
    took = {
        host: fastest_seconds(slow_host_2, f"{channels[0].path}/messages")
        for host, channels in by_host.items()
    }
    print({host: f"{seconds * 1000:.0f} ms" for host, seconds in took.items()})
    # The request waits LINK_DELAY on its way in and LINK_DELAY on its way out.
    assert took[2] >= 2 * LINK_DELAY, took
    assert took[1] < LINK_DELAY and took[3] < LINK_DELAY, took
    # A server-wide question (its channel is on host 2) waits on host 2, whichever worker the
    # proxy gives it to: host 2 itself, behind the relay, or another, which asks host 2 through
    # the proxy and the relay. A server whose channel is on host 1 can be answered without it.
    server_of = {host: channels[0].server_id for host, channels in by_host.items()}
    slow = fastest_seconds(slow_host_2, f"/api/servers/{server_of[2]}/activity")
    fast = fastest_seconds(slow_host_2, f"/api/servers/{server_of[1]}/activity")
    assert slow >= 2 * LINK_DELAY > fast, (slow, fast)
