"""The runtime's promises on the paths where something fails: a failed turn sends nothing, a
cancelled one does not wedge the actor, a write outside a turn is refused, a failed commit does
not keep the actor in memory. Each runs with a transport the runtime reads (MemoryTransport,
like the ASGI path) and with one that calls the runtime back (MemoryDirectTransport, like the
fast path)."""

import asyncio
import errno
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from accord_app.actors import (
    Actor,
    ActorError,
    CommitFailed,
    HibernatableWebSocket,
    MemoryDirectTransport,
    MemoryTransport,
    Namespace,
    Runtime,
    StorageError,
)

pytestmark = pytest.mark.anyio

TRANSPORTS: dict[str, type[MemoryTransport]] = {
    "awaited": MemoryTransport,
    "direct": MemoryDirectTransport,
}


@pytest.fixture(params=list(TRANSPORTS))
def transport_class(request: pytest.FixtureRequest) -> Iterator[type[MemoryTransport]]:
    yield TRANSPORTS[request.param]


class Room(Actor):
    async def join(self, transport: MemoryTransport) -> None:
        self.ctx.accept_websocket(transport)

    async def say(self, text: str, *, write: bool, fail: bool) -> None:
        """Optionally write, send `text` to every member, then optionally raise."""
        if write:
            self.storage.put(f"said:{text}", text)
        for ws in self.ctx.get_websockets():
            ws.send(text)
        if fail:
            raise ValueError("the turn failed after sending")

    async def said(self) -> list[str]:
        return list(self.storage.list(prefix="said:").values())

    async def write_then_meet_a_cancellation(self) -> None:
        """Awaits something that another task cancels: CancelledError from the actor's code."""
        self.storage.put("said:cancelled", "cancelled")
        waiting = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(waiting.cancel)
        await waiting

    async def websocket_message(self, ws: HibernatableWebSocket, data: str | bytes) -> None:
        text = str(data)
        if text == "cancel":
            await self.write_then_meet_a_cancellation()
        await self.say(text, write=text.startswith("w"), fail=text.endswith("!"))


async def receive(client: MemoryTransport) -> str | bytes:
    return await asyncio.wait_for(client.client_receive(), 5)


async def joined(rooms: Namespace[Room], transport_class: type[MemoryTransport]) -> MemoryTransport:
    client = transport_class()
    await rooms.get(rooms.id_from_name("lobby")).join(client)
    return client


@pytest.mark.parametrize("write", [True, False], ids=["wrote", "no-write"])
async def test_a_failed_call_sends_none_of_its_frames(
    tmp_path: Path, transport_class: type[MemoryTransport], write: bool
) -> None:
    runtime = Runtime(tmp_path)
    rooms = runtime.namespace("rooms", Room)
    member = await joined(rooms, transport_class)
    lobby = rooms.get(rooms.id_from_name("lobby"))
    with pytest.raises(ValueError, match="failed after sending"):
        await lobby.say("lost", write=write, fail=True)
    await lobby.say("kept", write=write, fail=False)
    assert await receive(member) == "kept"  # not "lost": its turn failed
    assert await lobby.said() == (["kept"] if write else [])
    await runtime.close()


@pytest.mark.parametrize("prefix", ["w", "r"], ids=["wrote", "no-write"])
async def test_a_failed_socket_message_sends_none_of_its_frames(
    tmp_path: Path, transport_class: type[MemoryTransport], prefix: str
) -> None:
    runtime = Runtime(tmp_path)
    rooms = runtime.namespace("rooms", Room)
    sender, member = await joined(rooms, transport_class), await joined(rooms, transport_class)
    sender.client_send(f"{prefix}-lost!")
    sender.client_send(f"{prefix}-kept")
    assert await receive(member) == f"{prefix}-kept"
    assert await receive(sender) == f"{prefix}-kept"
    await runtime.close()


async def test_a_turn_cancelled_by_the_actors_own_code_fails_alone(
    tmp_path: Path, transport_class: type[MemoryTransport]
) -> None:
    runtime = Runtime(tmp_path)
    rooms = runtime.namespace("rooms", Room)
    member = await joined(rooms, transport_class)
    lobby = rooms.get(rooms.id_from_name("lobby"))
    # Both queued before either runs: the second must not be stranded in the queue.
    cancelled = lobby.write_then_meet_a_cancellation()
    after = lobby.say("w-after", write=True, fail=False)
    with pytest.raises(ActorError, match="cancel"):
        await asyncio.wait_for(cancelled, 5)
    await asyncio.wait_for(after, 5)
    assert await receive(member) == "w-after"
    # The cancelled turn's write was rolled back, not committed with the next turn's.
    assert await asyncio.wait_for(lobby.said(), 5) == ["w-after"]
    await runtime.close()


async def test_a_cancelled_socket_message_does_not_stall_the_socket(
    tmp_path: Path, transport_class: type[MemoryTransport]
) -> None:
    runtime = Runtime(tmp_path)
    rooms = runtime.namespace("rooms", Room)
    sender, member = await joined(rooms, transport_class), await joined(rooms, transport_class)
    sender.client_send("cancel")
    sender.client_send("w-next")
    assert await receive(member) == "w-next"
    lobby = rooms.get(rooms.id_from_name("lobby"))
    assert await asyncio.wait_for(lobby.said(), 5) == ["w-next"]
    await runtime.close()


late_writes: list["asyncio.Task[str]"] = []  # the stragglers' tasks, for the test to await


class Straggler(Actor):
    """Starts a task that writes once its turn is over."""

    async def start_writing_later(self) -> None:
        late_writes.append(asyncio.get_running_loop().create_task(self.write_later()))

    async def write_later(self) -> str:
        await asyncio.sleep(0)  # the turn that started it ends meanwhile
        try:
            self.storage.put("late", "written after the turn")
        except StorageError as refused:
            return str(refused)
        return "accepted"

    async def late(self) -> str | None:
        return self.storage.get("late")  # type: ignore[no-any-return]


async def test_a_write_outside_a_turn_is_refused_with_what_to_do(tmp_path: Path) -> None:
    runtime = Runtime(tmp_path)
    stragglers = runtime.namespace("stragglers", Straggler)
    straggler = stragglers.get(stragglers.id_from_name("a"))
    late_writes.clear()
    await straggler.start_writing_later()  # returns once its turn has ended
    outcome = await asyncio.wait_for(late_writes[0], 5)  # no other turn runs meanwhile
    assert "outside a turn" in outcome and "stub" in outcome
    assert await straggler.late() is None
    await runtime.close()


class Alarmed(Room):
    attempts = 0  # in memory: a failed alarm rolls back its writes, not the instance

    async def arm(self) -> None:
        self.storage.set_alarm(0)

    async def alarm(self) -> None:
        self.attempts += 1
        self.storage.put("attempt", self.attempts)
        for ws in self.ctx.get_websockets():
            ws.send(f"alarm {self.attempts}")
        if self.attempts == 1:
            raise ValueError("the first alarm fails after sending")


async def test_a_failed_alarm_sends_none_of_its_frames(
    tmp_path: Path, transport_class: type[MemoryTransport]
) -> None:
    runtime = Runtime(tmp_path, alarm_retry_base=0.01)
    rooms = runtime.namespace("alarmed", Alarmed)
    member = await joined(rooms, transport_class)  # type: ignore[arg-type]
    await rooms.get(rooms.id_from_name("lobby")).arm()
    assert await receive(member) == "alarm 2"  # the retry's frame, not the failed one's
    await runtime.close()


class Writer(Actor):
    async def write(self) -> None:
        self.storage.put("k", "v")


def slow_failing_fsync(path: Path) -> None:
    """An fsync that outlasts the idle timeout, then fails (a disk going away)."""
    time.sleep(0.2)
    raise OSError(errno.EIO, "Input/output error", str(path))


async def test_an_actor_whose_commit_failed_while_idle_leaves_memory(tmp_path: Path) -> None:
    runtime = Runtime(tmp_path, idle_timeout=0.05, fsync=slow_failing_fsync)
    writers = runtime.namespace("writers", Writer)
    writer = writers.get(writers.id_from_name("a"))
    with pytest.raises(CommitFailed):
        await asyncio.wait_for(writer.write(), 5)
    # The idle timer came and went while the commit was in flight; after the failure the
    # actor must still hibernate (or be reset) and its host be dropped.
    deadline = asyncio.get_running_loop().time() + 5
    while writers._hosts:  # the runtime's own record of the actors it holds in memory
        assert asyncio.get_running_loop().time() < deadline, "the actor is still in memory"
        await asyncio.sleep(0.01)
    await runtime.close()
