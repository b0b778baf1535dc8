"""The runtime end to end, in memory and on a temporary disk: RPC, turns, the output gate,
group commit, resets, hibernation, overload and introspection."""

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from accord_app.actors import (
    Actor,
    ActorContext,
    ActorOverloaded,
    ActorReset,
    CommitFailed,
    Runtime,
    UnknownMethod,
)
from accord_app.actors import storage as storage_module
from accord_app.actors.storage import fsync_path

pytestmark = pytest.mark.anyio
constructed: list[str] = []


class Counter(Actor):
    def __init__(self, ctx: ActorContext) -> None:
        super().__init__(ctx)
        constructed.append(ctx.id.hex)
        self.log: list[str] = []

    async def increment(self, by: int = 1) -> int:
        value = (self.storage.get("count") or 0) + by
        self.storage.put("count", value)
        return value

    async def read(self) -> int:
        count: int = self.storage.get("count") or 0
        return count

    async def slow_step(self, name: str) -> list[str]:
        self.log.append(f"{name} in")
        await asyncio.sleep(0.01)  # another caller's turn must not start here
        self.log.append(f"{name} out")
        return self.log

    async def increment_then_fail(self) -> None:
        await self.increment(100)
        raise RuntimeError("boom")

    async def summary(self) -> list[int]:
        rows = self.storage.sql.execute(
            "WITH numbers(n) AS (SELECT 1 UNION SELECT 2) SELECT n FROM numbers"
        )
        return [row["n"] for row in rows]

    async def _private(self) -> None:
        pass

    def not_async(self) -> None:
        pass


class CountingFsync:
    """fsync that counts calls and can be held back or made to fail."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = threading.Event()
        self.release.set()
        self.fail = False

    def __call__(self, path: Path) -> None:
        self.calls += 1
        assert self.release.wait(10), "test never released the fsync"
        if self.fail:
            raise OSError(5, "injected fsync failure")
        fsync_path(path)


@pytest.fixture(autouse=True)
def forget_constructions() -> None:
    constructed.clear()


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for `condition`, polled on the event loop; a generous deadline turns a hang into
    a failure that says `what` never happened."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.001)


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    opened = Runtime(tmp_path, idle_timeout=60)
    yield opened
    await opened.close()


async def test_rpc_returns_the_result_and_storage_persists(tmp_path: Path) -> None:
    first = Runtime(tmp_path)
    counters = first.namespace("counters", Counter)
    stub = counters.get(counters.id_from_name("a"))
    assert [await stub.increment() for _ in range(3)] == [1, 2, 3]
    assert await stub.increment(by=10) == 13
    await first.close()
    second = Runtime(tmp_path)
    counters = second.namespace("counters", Counter)
    assert await counters.get(counters.id_from_name("a")).read() == 13
    await second.close()


async def test_only_public_async_methods_are_callable(runtime: Runtime) -> None:
    stub = runtime.namespace("counters", Counter).get(
        runtime.namespace("counters", Counter).new_unique_id()
    )
    for name in ("_private", "not_async", "missing", "alarm", "websocket_message"):
        with pytest.raises(UnknownMethod, match="no public async method"):
            getattr(stub, name)


async def test_instance_created_lazily_once_per_id(runtime: Runtime) -> None:
    counters = runtime.namespace("counters", Counter)
    actor_id = counters.id_from_name("a")
    assert constructed == []
    stubs = [counters.get(actor_id) for _ in range(3)]
    assert constructed == []
    await asyncio.gather(*(stub.increment() for stub in stubs for _ in range(5)))
    assert constructed == [actor_id.hex]
    assert await stubs[0].read() == 15


async def test_turns_of_one_actor_never_interleave(runtime: Runtime) -> None:
    counters = runtime.namespace("counters", Counter)
    stub = counters.get(counters.id_from_name("a"))
    logs = await asyncio.gather(*(stub.slow_step(name) for name in "abcd"))
    assert logs[-1] == ["a in", "a out", "b in", "b out", "c in", "c out", "d in", "d out"]


class Guest(Actor):
    async def meet(self, everyone: asyncio.Barrier) -> int:
        # Waits inside its turn until every guest's turn has begun. Were the actors' turns run
        # one at a time, the first would wait for the others in vain, until its deadline.
        return await asyncio.wait_for(everyone.wait(), 10)


async def test_different_actors_run_concurrently(runtime: Runtime) -> None:
    guests = runtime.namespace("guests", Guest)
    everyone = asyncio.Barrier(2)
    # Whichever storage opens first (in worker threads), each turn is still under way when
    # the other begins: no nap to outlast, so a slow disk cannot make them miss each other.
    met = await asyncio.gather(*(guests.get(guests.id_from_name(n)).meet(everyone) for n in "ab"))
    assert sorted(met) == [0, 1]


class Cruncher(Actor):
    """Turns that compute without ever awaiting."""

    async def crunch(self) -> int:
        time.sleep(0.002)  # stands for pure computation: the turn never yields
        value = (self.storage.get("count") or 0) + 1
        self.storage.put("count", value)
        return value


async def test_a_long_queue_of_busy_turns_does_not_hold_the_event_loop(runtime: Runtime) -> None:
    crunchers, counters = runtime.namespace("crunchers", Cruncher), runtime.namespace("c", Counter)
    cruncher = crunchers.get(crunchers.id_from_name("busy"))
    queued = [cruncher.crunch() for _ in range(100)]  # 200 ms of turns that never await
    # Another actor answers long before that queue is through (counted in turns, not read on
    # a clock that a shared core can stop at any moment), and so do its first turns.
    assert await counters.get(counters.id_from_name("quick")).read() == 0
    assert sum(call.done() for call in queued) < 50
    await queued[0]
    assert sum(call.done() for call in queued) < 50
    assert await asyncio.gather(*queued) == list(range(1, 101))


async def test_a_turn_that_raises_leaves_storage_unchanged(runtime: Runtime) -> None:
    counters = runtime.namespace("counters", Counter)
    stub = counters.get(counters.id_from_name("a"))
    await stub.increment()
    with pytest.raises(RuntimeError, match="boom"):
        await stub.increment_then_fail()
    assert await stub.read() == 1


async def test_ack_is_withheld_until_the_commit_is_durable(tmp_path: Path) -> None:
    fsync = CountingFsync()
    runtime = Runtime(tmp_path, fsync=fsync)
    counters = runtime.namespace("counters", Counter)
    stub = counters.get(counters.id_from_name("a"))
    await stub.read()  # the instance exists; no write yet
    fsync.release.clear()
    ack = stub.increment()
    read_after = stub.read()  # reads the uncommitted 1: its reply must wait as well
    # Until the commit's fsync has started (and waits to be released).
    await until(lambda: fsync.calls > 0, "no fsync started")
    assert fsync.calls == 1 and not ack.done() and not read_after.done()
    fsync.release.set()
    assert await ack == 1 and await read_after == 1
    await runtime.close()


async def test_a_read_spelled_with_with_answers_without_waiting_for_an_fsync(
    tmp_path: Path,
) -> None:
    fsync = CountingFsync()
    runtime = Runtime(tmp_path, fsync=fsync)
    counters = runtime.namespace("counters", Counter)
    stub = counters.get(counters.id_from_name("a"))
    fsync.release.clear()  # a write's reply would now wait (for ever)
    assert await asyncio.wait_for(stub.summary(), 2) == [1, 2]
    assert fsync.calls == 0
    fsync.release.set()
    await runtime.close()


async def test_turns_during_an_fsync_share_the_next_one(tmp_path: Path) -> None:
    fsync = CountingFsync()
    runtime = Runtime(tmp_path, fsync=fsync, max_queue=10_000)
    counters = runtime.namespace("counters", Counter)
    stub = counters.get(counters.id_from_name("a"))
    fsync.release.clear()
    first = stub.increment()
    await until(lambda: fsync.calls == 1, "the first commit's fsync never started")
    rest = [stub.increment() for _ in range(500)]
    # All 500 turns run while that fsync is held (counted, not given a time that a loaded core
    # may not keep); were each to wait for a commit, the count would stay at 1.
    await until(
        lambda: [actor.turns for actor in counters.list_actors()] == [501],
        "the turns waited for the fsync",
    )
    assert fsync.calls == 1 and not first.done() and not any(ack.done() for ack in rest)
    fsync.release.set()
    assert await first == 1
    assert sorted(await asyncio.gather(*rest)) == list(range(2, 502))
    assert fsync.calls == 2  # 501 durable writes, two fsyncs
    await runtime.close()


async def test_per_turn_mode_fsyncs_every_writing_turn(tmp_path: Path) -> None:
    fsync = CountingFsync()
    runtime = Runtime(tmp_path, fsync=fsync, commit_mode="per_turn")
    counters = runtime.namespace("counters", Counter)
    stub = counters.get(counters.id_from_name("a"))
    assert sorted(await asyncio.gather(*(stub.increment() for _ in range(20)))) == list(
        range(1, 21)
    )
    await stub.read()
    assert fsync.calls == 20
    await runtime.close()


async def test_failed_commit_drops_replies_and_resets_the_actor(tmp_path: Path) -> None:
    fsync = CountingFsync()
    runtime = Runtime(tmp_path, fsync=fsync)
    counters = runtime.namespace("counters", Counter)
    stub = counters.get(counters.id_from_name("a"))
    await stub.increment()
    assert len(constructed) == 1
    fsync.fail = True
    with pytest.raises(CommitFailed, match="injected fsync failure"):
        await stub.increment()
    fsync.fail = False
    assert await stub.read() in (1, 2)  # the write may or may not have reached the disk
    assert len(constructed) == 2  # built again from disk
    await runtime.close()


async def test_block_concurrency_while_runs_before_any_event(runtime: Runtime) -> None:
    order: list[str] = []

    class Loader(Actor):
        def __init__(self, ctx: ActorContext) -> None:
            super().__init__(ctx)
            ctx.block_concurrency_while(self.load)

        async def load(self) -> None:
            await asyncio.sleep(0.02)
            order.append("loaded")

        async def hello(self, n: int) -> None:
            order.append(f"hello {n}")

    loaders = runtime.namespace("loaders", Loader)
    stub = loaders.get(loaders.id_from_name("x"))
    await asyncio.gather(stub.hello(1), stub.hello(2))
    assert order == ["loaded", "hello 1", "hello 2"]


async def test_failing_initialisation_resets_and_reports(runtime: Runtime) -> None:
    attempts: list[int] = []

    class Flaky(Actor):
        def __init__(self, ctx: ActorContext) -> None:
            super().__init__(ctx)
            ctx.block_concurrency_while(self.load)

        async def load(self) -> None:
            attempts.append(1)
            if len(attempts) == 1:
                raise ConnectionError("backend down")

        async def ping(self) -> str:
            return "pong"

    stub = runtime.namespace("flaky", Flaky).get(runtime.namespace("flaky", Flaky).new_unique_id())
    with pytest.raises(ConnectionError):
        await stub.ping()
    assert await stub.ping() == "pong"
    assert len(attempts) == 2


async def test_overloaded_actor_refuses_at_once(tmp_path: Path) -> None:
    runtime = Runtime(tmp_path, max_queue=5)
    counters = runtime.namespace("counters", Counter)
    stub = counters.get(counters.id_from_name("a"))
    accepted = [stub.slow_step(str(n)) for n in range(5)]
    await asyncio.sleep(0.001)  # the first one runs now
    accepted.append(stub.slow_step("fifth waiting"))
    with pytest.raises(ActorOverloaded, match="max_queue=5"):
        stub.slow_step("one too many")
    await asyncio.gather(*accepted)
    await runtime.close()


async def test_idle_actor_hibernates_and_wakes_with_its_storage(tmp_path: Path) -> None:
    runtime = Runtime(tmp_path, idle_timeout=0.05)
    counters = runtime.namespace("counters", Counter)
    stub = counters.get(counters.id_from_name("a"))
    await stub.increment(5)
    assert counters.live_count == 1
    await asyncio.sleep(0.2)
    assert counters.live_count == 0
    [info] = counters.list_actors()
    assert not info.live and info.storage_bytes > 0
    assert await stub.increment() == 6
    assert len(constructed) == 2
    await runtime.close()


async def test_busy_actor_does_not_hibernate(tmp_path: Path) -> None:
    runtime = Runtime(tmp_path, idle_timeout=0.05)
    counters = runtime.namespace("counters", Counter)
    stub = counters.get(counters.id_from_name("a"))
    for _ in range(15):
        await stub.slow_step("x")  # 10 ms each: never idle for 50 ms
    assert counters.live_count == 1
    await runtime.close()


async def test_introspection_lists_live_and_hibernated_actors(tmp_path: Path) -> None:
    runtime = Runtime(tmp_path, idle_timeout=60)
    counters = runtime.namespace("counters", Counter)
    await counters.get(counters.id_from_name("a")).increment()
    await runtime.close()
    runtime = Runtime(tmp_path, idle_timeout=60)
    counters = runtime.namespace("counters", Counter)
    busy = counters.get(counters.id_from_name("b"))
    calls: list[Any] = [busy.slow_step(str(n)) for n in range(3)]
    deadline = time.monotonic() + 5  # until its first turn runs (its storage opens meanwhile)
    while counters.live_count == 0:
        assert time.monotonic() < deadline, "the actor never woke"
        await asyncio.sleep(0.001)
    infos = {info.id: info for info in counters.list_actors()}
    hibernated = infos[counters.id_from_name("a").hex]
    live = infos[counters.id_from_name("b").hex]
    assert not hibernated.live and hibernated.storage_bytes > 0 and hibernated.queue_length == 0
    assert live.live and live.queue_length == 2
    path = counters.storage_path(live.id)
    assert path.relative_to(tmp_path).parts == ("counters", live.id[:2], live.id[2:4], path.name)
    await asyncio.gather(*calls)
    await runtime.close()


async def test_wal_is_checkpointed_and_reused_under_steady_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage_module, "CHECKPOINT_AFTER_WAL_BYTES", 64 * 1024)
    monkeypatch.setattr(storage_module, "WAL_SIZE_LIMIT_BYTES", 16 * 1024)
    runtime = Runtime(tmp_path, max_queue=10_000)
    counters = runtime.namespace("counters", Counter)
    stub = counters.get(counters.id_from_name("a"))
    path = counters.storage_path(stub.id.hex)
    largest_wal = 0
    for _ in range(20):  # turns never pause on their own: the runtime must make the gap
        await asyncio.gather(*(stub.increment() for _ in range(200)))
        largest_wal = max(largest_wal, path.with_name(path.name + "-wal").stat().st_size)
    assert largest_wal < 1024 * 1024
    assert path.stat().st_size > 0  # pages reached the database file itself
    await runtime.close()
    runtime = Runtime(tmp_path)
    counters = runtime.namespace("counters", Counter)
    assert await counters.get(counters.id_from_name("a")).read() == 4000
    await runtime.close()


class Schema(Actor):
    """Creates its table in the constructor, as the channel actor does."""

    def __init__(self, ctx: ActorContext) -> None:
        super().__init__(ctx)
        self.storage.sql.execute("CREATE TABLE IF NOT EXISTS notes (text TEXT)")

    async def fail(self) -> None:
        raise RuntimeError("the first event fails")

    async def add(self, text: str) -> int:
        self.storage.sql.execute("INSERT INTO notes VALUES (?)", text)
        return len(self.storage.sql.execute("SELECT text FROM notes"))


async def test_a_failing_first_event_keeps_what_the_constructor_wrote(runtime: Runtime) -> None:
    schemas = runtime.namespace("schemas", Schema)
    stub = schemas.get(schemas.id_from_name("a"))
    with pytest.raises(RuntimeError, match="first event"):
        await stub.fail()
    assert await stub.add("the table is still there") == 1


class Resettable(Actor):
    async def put(self, key: str, value: int) -> str:
        self.storage.put(key, value)
        return "ok"

    async def get(self, key: str) -> Any:
        return self.storage.get(key)

    async def fail_to_initialise(self) -> None:
        async def fail() -> None:
            raise RuntimeError("blocker failed")

        self.ctx.block_concurrency_while(fail)


async def test_a_reset_during_a_commit_drops_the_answers_of_rolled_back_writes(
    tmp_path: Path,
) -> None:
    release = threading.Event()

    def held_fsync(path: Path) -> None:
        fsync_path(path)
        release.wait(5)

    runtime = Runtime(tmp_path, fsync=held_fsync)
    stub = runtime.namespace("resets", Resettable).get(
        runtime.namespace("resets", Resettable).id_from_name("x")
    )
    first = stub.put("a", 1)  # its commit is in flight, held in the fsync
    await asyncio.sleep(0.05)
    second = stub.put("b", 2)  # waits behind that commit
    reset = stub.fail_to_initialise()  # resets the actor: "b" is rolled back
    await asyncio.sleep(0.05)
    release.set()
    assert await first == "ok"
    with pytest.raises(RuntimeError, match="blocker failed"):
        await reset
    with pytest.raises(ActorReset):
        await second
    assert await stub.get("a") == 1
    assert await stub.get("b") is None  # never acked, never stored
    await runtime.close()


async def test_at_most_max_live_actors_are_awake_the_least_recently_active_sleeps(
    tmp_path: Path,
) -> None:
    runtime = Runtime(tmp_path, idle_timeout=60, max_live=3)
    counters = runtime.namespace("counters", Counter)
    stubs = {name: counters.get(counters.id_from_name(name)) for name in "abcde"}
    for name in "abc":
        await stubs[name].increment()
    await stubs["a"].read()  # now b is the least recently active
    await stubs["d"].increment()
    awake = {info.id for info in counters.list_actors() if info.live}
    assert awake == {counters.id_from_name(name).hex for name in "acd"}
    assert await stubs["b"].read() == 1  # woken again, with its storage; c went to sleep
    assert counters.live_count == 3
    # Three actors busy at once: a fourth cannot wake, and is told so instead of waiting.
    busy = [stubs[name].slow_step(name) for name in "abd"]
    await asyncio.sleep(0.001)
    with pytest.raises(ActorOverloaded, match="3 actors are awake and busy"):
        await stubs["e"].read()
    await asyncio.gather(*busy)
    assert await stubs["e"].read() == 0
    await runtime.close()
