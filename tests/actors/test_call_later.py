"""ctx.call_later: a timer in memory whose callback runs as a turn of its own, keeps the actor
awake until it has run, and dies with the instance that set it."""

import asyncio
from pathlib import Path

import pytest

from accord_app.actors import Actor, CommitFailed, Namespace, Runtime, Stub
from accord_app.actors.storage import fsync_path

pytestmark = pytest.mark.anyio


class Ticker(Actor):
    async def schedule(self, delay: float) -> None:
        self.ctx.call_later(delay, self._tick)

    async def _tick(self) -> None:
        self.storage.put("ticks", (self.storage.get("ticks") or 0) + 1)  # a turn may write

    async def ticks(self) -> int:
        ticks: int = self.storage.get("ticks") or 0
        return ticks

    async def write(self) -> None:
        self.storage.put("other", 1)


class FailingFsync:
    def __init__(self) -> None:
        self.fail = False

    def __call__(self, path: Path) -> None:
        if self.fail:
            raise OSError(5, "injected fsync failure")
        fsync_path(path)


def ticker(runtime: Runtime) -> tuple[Namespace[Ticker], Stub[Ticker]]:
    tickers = runtime.namespace("tickers", Ticker)
    return tickers, tickers.get(tickers.id_from_name("a"))


async def test_the_callback_runs_as_a_turn_after_the_delay(tmp_path: Path) -> None:
    runtime = Runtime(tmp_path, idle_timeout=60)
    _, stub = ticker(runtime)
    await stub.schedule(0.05)
    assert await stub.ticks() == 0  # not yet
    await asyncio.sleep(0.3)
    assert await stub.ticks() == 1  # it ran once, and its write was kept
    await runtime.close()


async def test_a_pending_timer_keeps_the_actor_awake_until_it_has_run(tmp_path: Path) -> None:
    runtime = Runtime(tmp_path, idle_timeout=0.05)
    tickers, stub = ticker(runtime)
    await stub.schedule(0.4)
    await asyncio.sleep(0.25)  # five idle timeouts: without the timer it would sleep now
    assert tickers.live_count == 1
    await asyncio.sleep(0.5)
    assert tickers.live_count == 0  # run, then idle: it hibernates as usual
    assert await stub.ticks() == 1
    await runtime.close()


async def test_a_reset_drops_the_timers_of_the_instance_it_throws_away(tmp_path: Path) -> None:
    fsync = FailingFsync()
    runtime = Runtime(tmp_path, idle_timeout=60, fsync=fsync)
    _, stub = ticker(runtime)
    await stub.schedule(0.2)
    fsync.fail = True
    with pytest.raises(CommitFailed):
        await stub.write()  # the commit fails: the instance is reset
    fsync.fail = False
    await asyncio.sleep(0.4)
    assert await stub.ticks() == 0  # the timer went with the instance
    await runtime.close()
