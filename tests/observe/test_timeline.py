"""The inspector's timeline of one process: the runtime's events while someone looks, commits
summed per actor between looks, nothing heard once nobody looks."""

import asyncio
import time
from pathlib import Path

import pytest

from accord_app.actors import Actor, Runtime
from accord_app.chat.sharding import Sharding
from accord_app.observe import timeline
from accord_app.observe.survey import ChannelNames
from accord_app.observe.timeline import Timeline

pytestmark = pytest.mark.anyio


class Notes(Actor):
    async def write(self, key: str) -> None:
        self.storage.put(key, 1)

    async def wake_me(self) -> None:
        self.storage.set_alarm(time.time() + 0.05)

    async def alarm(self) -> None:
        self.storage.put("alarmed", 1)


async def test_the_timeline_tells_what_happened_since_the_last_look(tmp_path: Path) -> None:
    runtime = Runtime(tmp_path, idle_timeout=0.2, max_live=1)
    notes = runtime.namespace("notes", Notes)
    log = Timeline(runtime, ChannelNames(notes, Sharding.CHANNEL), worker=2)
    log.renew()
    first, second = (notes.get(notes.id_from_name(name)) for name in ("a", "b"))
    await asyncio.gather(first.write("x"), first.write("y"), first.write("z"))
    await second.write("x")  # one awake at most: the first one is evicted
    lines = log.since(None, 0)
    seen = [(line.kind, line.actor) for line in lines]
    assert seen[:3] == [("woke", first.id.hex), ("evicted", first.id.hex), ("woke", second.id.hex)]
    commits = {line.actor: line.detail for line in lines if line.kind == "commit"}
    assert commits[first.id.hex].startswith(("1 commit, 3 turns", "2 commits, 3 turns"))
    assert commits[second.id.hex].startswith("1 commit, 1 turn, fsync up to ")
    assert {line.worker for line in lines} == {2}

    await second.wake_me()
    await asyncio.sleep(0.5)  # the alarm fires, then the actor hibernates
    later = log.since(log.id, len(lines))
    assert [line.kind for line in later if line.kind != "commit"] == ["alarm", "hibernated"]
    assert log.since(log.id, log.last) == []
    assert len(log.since("another process's log", log.last)) == log.last  # all, from the start
    await runtime.close()


async def test_nobody_looking_nobody_listening(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(timeline, "LEASE_SECONDS", 0.1)
    runtime = Runtime(tmp_path)
    notes = runtime.namespace("notes", Notes)
    log = Timeline(runtime, ChannelNames(notes, Sharding.CHANNEL), worker=None)
    log.renew()
    assert runtime.observers.active
    await asyncio.sleep(0.3)
    assert not runtime.observers.active  # the lease ran out
    await notes.get(notes.id_from_name("a")).write("x")
    assert log.since(None, 0) == []
    log.renew()
    await notes.get(notes.id_from_name("b")).write("x")
    assert [line.kind for line in log.since(None, 0)] == ["woke", "commit"]
    await runtime.close()
