"""Hibernatable WebSockets over in-memory transports, no network involved: every test runs with
a transport the runtime reads (MemoryTransport, like the ASGI path) and with one that calls the
runtime back (MemoryDirectTransport, like the fast path)."""

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from accord_app.actors import (
    Actor,
    ActorContext,
    AttachmentTooLarge,
    HibernatableWebSocket,
    MemoryDirectTransport,
    MemoryTransport,
    Namespace,
    Runtime,
    TransportClosed,
    sockets,
)
from accord_app.actors.storage import fsync_path

pytestmark = pytest.mark.anyio
constructed: list[int] = []
closes: list[tuple[str, int]] = []


class Room(Actor):
    def __init__(self, ctx: ActorContext) -> None:
        super().__init__(ctx)
        constructed.append(1)

    async def join(self, transport: MemoryTransport, name: str) -> None:
        ws = self.ctx.accept_websocket(transport, tags=[name, "member"])
        ws.serialize_attachment({"name": name})
        self.ctx.set_websocket_auto_response("ping", "pong")

    async def members(self) -> list[str]:
        return sorted(ws.deserialize_attachment()["name"] for ws in self.ctx.get_websockets())

    async def history(self) -> list[str]:
        return list(self.storage.list(prefix="msg:").values())

    async def kick(self, name: str) -> None:
        for ws in self.ctx.get_websockets(tag=name):
            ws.close(4000, "kicked")

    async def websocket_message(self, ws: HibernatableWebSocket, data: str | bytes) -> None:
        if data == "fail":
            self.storage.put("msg:fail", "must be rolled back")
            raise ValueError("handler failed")
        name = ws.deserialize_attachment()["name"]
        count = len(self.storage.list(prefix="msg:"))
        self.storage.put(f"msg:{count:06}", f"{name}: {data!s}")
        for other in self.ctx.get_websockets("member"):
            other.send(f"{name}: {data!s}")

    async def websocket_close(self, ws: HibernatableWebSocket, code: int, reason: str) -> None:
        name = ws.deserialize_attachment()["name"]
        closes.append((name, code))
        for other in self.ctx.get_websockets():
            other.send(f"{name} left")


TRANSPORTS: dict[str, type[MemoryTransport]] = {
    "awaited": MemoryTransport,
    "direct": MemoryDirectTransport,
}
new_transport: type[MemoryTransport] = MemoryTransport  # the kind this test runs with


@pytest.fixture(autouse=True, params=list(TRANSPORTS))
def each_transport(request: pytest.FixtureRequest) -> Iterator[None]:
    global new_transport
    new_transport = TRANSPORTS[request.param]
    yield
    new_transport = MemoryTransport


@pytest.fixture(autouse=True)
def reset_records() -> None:
    constructed.clear()
    closes.clear()


async def receive(client: MemoryTransport) -> str | bytes:
    return await asyncio.wait_for(client.client_receive(), 2)


async def eventually(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 2
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def join(rooms: Namespace[Room], name: str) -> MemoryTransport:
    client = new_transport()
    await rooms.get(rooms.id_from_name("lobby")).join(client, name)
    return client


async def test_messages_reach_every_member_and_are_stored(tmp_path: Path) -> None:
    runtime = Runtime(tmp_path)
    rooms = runtime.namespace("rooms", Room)
    ada, bob = await join(rooms, "ada"), await join(rooms, "bob")
    ada.client_send("hello")
    assert await receive(ada) == "ada: hello"
    assert await receive(bob) == "ada: hello"
    lobby = rooms.get(rooms.id_from_name("lobby"))
    assert await lobby.members() == ["ada", "bob"]
    assert await lobby.history() == ["ada: hello"]
    await runtime.close()


async def test_hibernated_actor_wakes_with_storage_and_attachments(tmp_path: Path) -> None:
    runtime = Runtime(tmp_path, idle_timeout=0.05)
    rooms = runtime.namespace("rooms", Room)
    ada, bob = await join(rooms, "ada"), await join(rooms, "bob")
    ada.client_send("before")
    assert await receive(ada) == await receive(bob) == "ada: before"
    await eventually(lambda: rooms.live_count == 0)
    [info] = rooms.list_actors()
    assert not info.live and info.websockets == 2  # the sockets stayed open
    bob.client_send("after")
    assert await receive(ada) == "bob: after"  # the attachment still names bob
    assert len(constructed) == 2
    assert await rooms.get(rooms.id_from_name("lobby")).history() == ["ada: before", "bob: after"]
    await runtime.close()


async def test_auto_response_does_not_wake_the_actor(tmp_path: Path) -> None:
    runtime = Runtime(tmp_path, idle_timeout=0.05)
    rooms = runtime.namespace("rooms", Room)
    ada = await join(rooms, "ada")
    await eventually(lambda: rooms.live_count == 0)
    for _ in range(3):
        ada.client_send("ping")
        assert await receive(ada) == "pong"
    assert rooms.live_count == 0 and len(constructed) == 1
    await runtime.close()


async def test_close_of_a_hibernated_socket_runs_the_handler(tmp_path: Path) -> None:
    runtime = Runtime(tmp_path, idle_timeout=0.05)
    rooms = runtime.namespace("rooms", Room)
    ada, bob = await join(rooms, "ada"), await join(rooms, "bob")
    await eventually(lambda: rooms.live_count == 0)
    bob.client_close(1001, "tab closed")
    assert await receive(ada) == "bob left"
    assert closes == [("bob", 1001)]
    assert await rooms.get(rooms.id_from_name("lobby")).members() == ["ada"]  # no ghost
    await runtime.close()


async def test_frames_wait_for_the_writes_before_them(tmp_path: Path) -> None:
    release = threading.Event()

    def slow_fsync(path: Path) -> None:
        release.wait(10)
        fsync_path(path)

    runtime = Runtime(tmp_path, fsync=slow_fsync)
    rooms = runtime.namespace("rooms", Room)
    release.set()
    ada = await join(rooms, "ada")
    release.clear()
    ada.client_send("durable first")
    await asyncio.sleep(0.05)
    frame = asyncio.ensure_future(ada.client_receive())
    await asyncio.sleep(0.05)
    assert not frame.done()
    release.set()
    assert await asyncio.wait_for(frame, 2) == "ada: durable first"
    await runtime.close()


async def test_server_close_and_failing_handler(tmp_path: Path) -> None:
    runtime = Runtime(tmp_path)
    rooms = runtime.namespace("rooms", Room)
    ada, bob = await join(rooms, "ada"), await join(rooms, "bob")
    ada.client_send("fail")  # logged, rolled back, the socket stays open
    ada.client_send("still here")
    assert await receive(bob) == "ada: still here"
    lobby = rooms.get(rooms.id_from_name("lobby"))
    assert await lobby.history() == ["ada: still here"]
    await lobby.kick("bob")
    with pytest.raises(TransportClosed) as closed:
        while True:
            await receive(bob)
    assert closed.value.code == 4000
    assert await lobby.members() == ["ada"] and closes == []  # closed by us: no close event
    await runtime.close()


async def test_attachment_is_limited_to_16_kib(tmp_path: Path) -> None:
    runtime = Runtime(tmp_path)
    rooms = runtime.namespace("rooms", Room)

    class Greedy(Room):
        async def join(self, transport: MemoryTransport, name: str) -> None:
            ws = self.ctx.accept_websocket(transport)
            ws.serialize_attachment("x" * 16_000)
            ws.serialize_attachment("x" * 17_000)

    greedy = runtime.namespace("greedy", Greedy)
    with pytest.raises(AttachmentTooLarge, match="16384 bytes"):
        await greedy.get(greedy.new_unique_id()).join(new_transport(), "g")
    assert rooms.list_actors() == []
    await runtime.close()


async def test_socket_of_an_overloaded_actor_is_closed_and_reported(tmp_path: Path) -> None:
    class Slow(Room):
        async def websocket_message(self, ws: HibernatableWebSocket, data: str | bytes) -> None:
            await asyncio.sleep(0.05)

    runtime = Runtime(tmp_path, max_queue=1)
    rooms = runtime.namespace("slow", Slow)
    clients = [new_transport() for _ in range(3)]
    lobby = rooms.get(rooms.id_from_name("lobby"))
    for number, client in enumerate(clients):
        await lobby.join(client, f"user{number}")
    for client in clients:
        client.client_send("work")
    await eventually(lambda: bool(closes))
    await asyncio.sleep(0.2)
    assert 1 <= len(closes) <= 2 and {code for _, code in closes} == {1013}
    for name, _ in closes:
        with pytest.raises(TransportClosed):
            await receive(clients[int(name.removeprefix("user"))])
    assert len(await lobby.members()) == 3 - len(closes)
    await runtime.close()


class PacedTransport(MemoryTransport):
    """A peer that reads one frame per `pause` seconds, or never (pause=None)."""

    def __init__(self, pause: float | None) -> None:
        super().__init__()
        self.pause = pause
        self.aborted: tuple[int, str] | None = None
        self.delivered = 0

    async def send_text(self, data: str) -> None:
        if self.pause is None:
            await asyncio.Event().wait()  # never reads
        await asyncio.sleep(self.pause)
        self.delivered += 1

    def abort(self, code: int, reason: str) -> None:
        self.aborted = (code, reason)
        super().abort(code, reason)


class PacedDirectTransport(MemoryDirectTransport):
    """The same peer behind a DirectTransport: its buffer is full after each frame until it
    has read it, `pause` seconds later (never, with pause=None)."""

    def __init__(self, pause: float | None) -> None:
        super().__init__()
        self.pause = pause
        self.aborted: tuple[int, str] | None = None
        self.delivered = 0
        self.writable = False  # the burst below finds it full

    def write_frame(self, frame: str | bytes | TransportClosed) -> None:
        super().write_frame(frame)
        self.delivered += 1
        self.writable = False
        if self.pause is not None:
            asyncio.get_running_loop().call_later(self.pause, self.client_drained)

    def abort(self, code: int, reason: str) -> None:
        self.aborted = (code, reason)
        super().abort(code, reason)


def paced(pause: float | None) -> PacedTransport | PacedDirectTransport:
    if new_transport is MemoryDirectTransport:
        transport = PacedDirectTransport(pause)
        if pause is not None:
            asyncio.get_running_loop().call_later(pause, transport.client_drained)
        return transport
    return PacedTransport(pause)


def burst(ws: HibernatableWebSocket, total_bytes: int) -> None:
    frame = "x" * 2000
    for _ in range(total_bytes // len(frame)):
        ws.deliver(frame)


async def test_a_peer_that_stops_reading_is_cut_off_and_gets_nothing_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sockets, "SEND_STALL_SECONDS", 0.1)
    transport = paced(None)
    ws = HibernatableWebSocket(transport, ["room"], lambda ws, data: ws.deliver(data))
    burst(ws, sockets.MAX_OUTBOX_BYTES + 10_000)
    await asyncio.sleep(0.3)
    assert transport.aborted is not None and transport.aborted[0] == sockets.CLOSE_TOO_SLOW
    transport.pause = 0.0  # would read now: nothing must be sent on a cut-off socket
    if isinstance(transport, PacedDirectTransport):
        transport.client_drained()
    ws.deliver("after the cut-off")
    await asyncio.sleep(0.05)
    assert transport.delivered == 0


async def test_a_slow_but_reading_peer_survives_a_big_burst(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sockets, "SEND_STALL_SECONDS", 0.1)
    transport = paced(0.0005)
    ws = HibernatableWebSocket(transport, ["room"], lambda ws, data: ws.deliver(data))
    burst(ws, sockets.MAX_OUTBOX_BYTES + 200_000)  # over the soft limit in one go
    await asyncio.sleep(0.5)
    assert transport.aborted is None
    assert transport.delivered > 100  # it kept making progress
