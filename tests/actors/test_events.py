"""What the runtime tells its observers (runtime.observe): wake-ups, turns, group commits with
their batch and fsync time, hibernation, eviction, sockets, overload; and list_actors' tiles."""

import asyncio
from pathlib import Path

import pytest

from accord_app.actors import (
    Actor,
    ActorEvent,
    ActorOverloaded,
    EventKind,
    MemoryTransport,
    Observers,
    Runtime,
)

pytestmark = pytest.mark.anyio


class Notes(Actor):
    async def write(self, *keys: str) -> None:
        for key in keys:
            self.storage.put(key, 1)

    async def read(self) -> int:
        return len(self.storage.list())

    async def wait(self, gate: asyncio.Event) -> None:
        await gate.wait()

    async def listen(self, transport: MemoryTransport) -> None:
        self.ctx.accept_websocket(transport)


def kinds(events: list[ActorEvent], actor_hex: str | None = None) -> list[EventKind]:
    return [e.kind for e in events if actor_hex is None or e.actor_id == actor_hex]


async def test_an_actor_s_life_is_told_to_observers(tmp_path: Path) -> None:
    runtime = Runtime(tmp_path, idle_timeout=0.2)
    events: list[ActorEvent] = []
    stop = runtime.observe(events.append)
    notes = runtime.namespace("notes", Notes)
    actor_id = notes.id_from_name("general")
    stub = notes.get(actor_id)
    # Five calls queued at once: one wake-up, five turns, and commits sharing the fsyncs.
    await asyncio.gather(*(stub.write(f"k{i}", f"j{i}") for i in range(5)))
    await stub.read()
    mine = [e for e in events if e.actor_id == actor_id.hex]
    assert kinds(mine)[0] is EventKind.WOKE
    assert {e.name for e in mine} == {"general"}
    assert {e.actor_class for e in mine} == {"Notes"} and {e.namespace for e in mine} == {"notes"}
    turns = [e for e in mine if e.kind is EventKind.TURN]
    assert len(turns) == 6 and all(e.seconds is not None and e.seconds >= 0 for e in turns)
    assert turns[0].count == 4  # the mailbox depth after the first turn: four still queued
    commits = [e for e in mine if e.kind is EventKind.COMMIT]
    assert sum(e.count or 0 for e in commits) == 5  # five writing turns; the read wrote nothing
    assert sum(e.writes or 0 for e in commits) == 10  # two puts each
    assert len(commits) < 5 and all(e.seconds is not None and e.seconds > 0 for e in commits)
    info = notes.list_actors()[0]
    assert (info.awake, info.name, info.turns) == (True, "general", 6)
    assert info.last_commit_seconds == commits[-1].seconds
    await asyncio.sleep(0.5)
    assert kinds(events, actor_id.hex)[-1] is EventKind.HIBERNATED
    assert not notes.list_actors()[0].awake
    stop()
    await stub.read()  # wakes again, unobserved
    assert kinds(events, actor_id.hex)[-1] is EventKind.HIBERNATED
    await runtime.close()


async def test_eviction_sockets_and_overload_are_told(tmp_path: Path) -> None:
    runtime = Runtime(tmp_path, idle_timeout=60, max_live=1, max_queue=2)
    events: list[ActorEvent] = []
    runtime.observe(events.append)
    notes = runtime.namespace("notes", Notes)
    first, second = notes.get(notes.new_unique_id()), notes.get(notes.new_unique_id())
    await first.read()
    await second.read()  # no room for two: the first is evicted, not hibernated
    assert kinds(events, first.id.hex)[-1] is EventKind.EVICTED
    assert EventKind.HIBERNATED not in kinds(events)

    transport = MemoryTransport()
    await second.listen(transport)
    assert [(e.kind, e.count) for e in events if e.kind is EventKind.SOCKET_OPENED] == [
        (EventKind.SOCKET_OPENED, 1)
    ]
    transport.client_close(1000, "bye")
    await second.read()
    await asyncio.sleep(0.05)
    closed = [e for e in events if e.kind is EventKind.SOCKET_CLOSED]
    assert [(e.actor_id, e.count) for e in closed] == [(second.id.hex, 0)]

    gate = asyncio.Event()
    busy = [second.wait(gate), second.read()]  # queued before any turn starts: full
    with pytest.raises(ActorOverloaded):
        await second.read()
    assert [e.count for e in events if e.kind is EventKind.OVERLOADED] == [2]
    gate.set()
    await asyncio.gather(*busy)
    await runtime.close()


def test_an_observer_that_fails_is_logged_and_the_others_still_hear() -> None:
    observers = Observers()
    assert not observers.active
    heard: list[ActorEvent] = []

    def broken(_: ActorEvent) -> None:
        raise RuntimeError("observer bug")

    observers.add(broken)
    stop = observers.add(heard.append)
    assert observers.active
    event = ActorEvent(EventKind.ALARM, "Notes", "0" * 64, None, 0.0)
    observers.emit(event)
    assert heard == [event]
    stop()
    observers.emit(event)
    assert heard == [event]


async def test_an_observer_hears_only_the_kinds_it_asked_for_and_turns_are_tallied(
    tmp_path: Path,
) -> None:
    runtime = Runtime(tmp_path, idle_timeout=60)
    woke: list[ActorEvent] = []
    runtime.observe(woke.append, {EventKind.WOKE})
    assert runtime.observers.kinds == {EventKind.WOKE}  # so no turn builds an event
    notes = runtime.namespace("notes", Notes)
    stub = notes.get(notes.new_unique_id())
    await asyncio.gather(*(stub.write("a", "b") for _ in range(3)))
    assert [e.kind for e in woke] == [EventKind.WOKE]
    activity = notes.activity
    assert activity.turns.count == 3 and sum(activity.turns.buckets) == 3
    assert activity.commit_turns.sum == 3 and activity.commit_writes.sum == 6
    assert activity.fsync_seconds.count == sum(activity.fsync_seconds.buckets) >= 1
    await runtime.close()
